"""Errors raised by the workflow engine.

    WorkflowError                  any failure of the engine
    ├── DefinitionError            a workflow definition does not validate (``errors`` lists all)
    ├── ExpressionError            a jmespath expression or jinja2 template is bad or fails
    └── StepFailed                 a step raised; ``step_id``, ``cause``, ``retryable`` set

Connector failures keep their own tree (``connectors.errors``); the runner wraps them in
``StepFailed`` and reads ``retryable`` from them.
"""

from __future__ import annotations


class WorkflowError(Exception):
    """Raised when the engine cannot do what was asked."""


class DefinitionError(WorkflowError):
    """Raised when a definition is invalid; ``errors`` maps where -> field -> messages.

    Where is ``"steps.<id>"`` (``"steps.<index>"`` when the id is missing) or a top-level
    field name such as ``"name"``, ``"trigger"`` or ``"steps"``.
    """

    def __init__(self, errors: dict[str, dict[str, list[str]]]):
        count = sum(len(msgs) for fields in errors.values() for msgs in fields.values())
        super().__init__(f"invalid workflow definition ({count} problem(s))")
        self.errors = errors


class ExpressionError(WorkflowError):
    """Raised when an expression does not compile or fails to evaluate."""


class StepFailed(WorkflowError):
    """Raised when a step cannot finish; ``retryable`` says whether a later try may succeed."""

    def __init__(self, step_id: str, cause: str, *, retryable: bool = False):
        super().__init__(f"step '{step_id}' failed: {cause}")
        self.step_id = step_id
        self.cause = cause
        self.retryable = retryable
