"""The workflow engine: definitions, expressions, step types and the run loop."""

from workflows import steps as _steps  # noqa: F401  (registers the built-in step types)
from workflows.context import EventSink
from workflows.definition import validate_definition
from workflows.errors import DefinitionError, ExpressionError, StepFailed, WorkflowError
from workflows.registry import Step, register_step, step_class
from workflows.runner import Resources, RunResult, StepLog, run_workflow

__all__ = [
    "DefinitionError",
    "EventSink",
    "ExpressionError",
    "Resources",
    "RunResult",
    "Step",
    "StepFailed",
    "StepLog",
    "WorkflowError",
    "register_step",
    "run_workflow",
    "step_class",
    "validate_definition",
]
