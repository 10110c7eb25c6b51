"""Step types found by name; a step is declared by its config schema.

@register_step
class Transform(Step):
    type = "transform"
    Config = TransformConfig
    def run(self, config, ctx): ...
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar, TypeVar

from marshmallow import Schema

from workflows import expressions
from workflows.context import StepContext
from workflows.errors import ExpressionError, WorkflowError
from workflows.schema import JMESPATH, StepConfig, iter_expressions

SchemaClass = type[Schema]


class Step:
    """Base of every step type."""

    type: ClassVar[str]
    Config: ClassVar[SchemaClass] = StepConfig
    connector_kinds: ClassVar[tuple[str, ...]] = ()
    """Kinds the ``connector`` field may name; empty when the step uses none."""
    responds: ClassVar[bool] = False
    """True when the step's output is the answer of a ``sync`` endpoint (``respond``)."""

    def run(self, config: Mapping[str, Any], ctx: StepContext) -> Any:
        """Do the work once and return the step's output."""
        raise NotImplementedError

    @classmethod
    def connector_refs(cls, config: Mapping[str, Any]) -> list[tuple[str, Any, tuple[str, ...]]]:
        """``(field, connector name, kinds it may be)`` for each connector the config names.

        Validation checks each at save time; a step naming connectors elsewhere than its
        ``connector`` field (``transfer``'s source and target) says so here.
        """
        if not cls.connector_kinds or "connector" not in config:
            return []
        return [("connector", config["connector"], cls.connector_kinds)]

    def validate(self, config: Mapping[str, Any]) -> dict[str, list[str]]:
        """Check the expression fields of a loaded config; return ``{field: [messages]}``."""
        errors: dict[str, list[str]] = {}
        for name, kind, src in iter_expressions(self.Config(), config):
            check = expressions.check_jmespath if kind == JMESPATH else expressions.check_template
            try:
                check(src)
            except ExpressionError as exc:
                errors.setdefault(name, []).append(str(exc))
        return errors


S = TypeVar("S", bound=type[Step])

_STEPS: dict[str, type[Step]] = {}


def register_step(cls: S) -> S:
    """Class decorator: make ``cls`` available under ``cls.type``."""
    name = getattr(cls, "type", None)
    if not isinstance(name, str) or not name:
        raise TypeError(f"{cls.__qualname__} must declare a non-empty string `type`")
    if not issubclass(cls.Config, StepConfig):
        raise TypeError(f"{cls.__qualname__}.Config must extend workflows.schema.StepConfig")
    existing = _STEPS.get(name)
    if existing is not None and existing is not cls:
        raise ValueError(
            f"step type {name!r} is already registered by "
            f"{existing.__module__}.{existing.__qualname__}"
        )
    _STEPS[name] = cls
    return cls


def step_types() -> list[str]:
    """The registered step types, sorted."""
    return sorted(_STEPS)


def step_class(name: str) -> type[Step]:
    """The class registered for ``name``; WorkflowError names the known types otherwise."""
    try:
        return _STEPS[name]
    except (KeyError, TypeError):
        raise WorkflowError(
            f"unknown step type {name!r} (known: {', '.join(step_types())})"
        ) from None
