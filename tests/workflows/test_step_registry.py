from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pytest
from marshmallow import Schema

from workflows import registry, validate_definition
from workflows.context import StepContext
from workflows.errors import DefinitionError, WorkflowError
from workflows.registry import Step, register_step, step_class
from workflows.schema import StepConfig, template_field


@pytest.fixture(autouse=True)
def _own_registry(monkeypatch: pytest.MonkeyPatch) -> None:
    # Steps registered here must not leak into other tests.
    monkeypatch.setattr(registry, "_STEPS", dict(registry._STEPS))


class ShoutConfig(StepConfig):
    text = template_field(required=True)


class Shout(Step):
    type = "shout"
    Config = ShoutConfig

    def run(self, config: Mapping[str, Any], ctx: StepContext) -> Any:
        return ctx.render(config["text"]).upper()


def test_register_and_find() -> None:
    register_step(Shout)
    assert step_class("shout") is Shout
    register_step(Shout)  # the same class again is harmless (module reloads)


def test_duplicate_type_is_refused() -> None:
    class Other(Shout):
        pass

    register_step(Shout)
    with pytest.raises(ValueError, match="'shout' is already registered by .*Shout"):
        register_step(Other)


def test_builtin_type_cannot_be_replaced() -> None:
    class MyFilter(Step):
        type = "filter"

    with pytest.raises(ValueError, match="already registered"):
        register_step(MyFilter)


def test_unknown_type_names_known_ones() -> None:
    with pytest.raises(WorkflowError, match=r"unknown step type 'nope' \(known: .*transform"):
        step_class("nope")


def test_declaration_is_checked() -> None:
    class NoType(Step):
        pass

    class PlainSchema(Schema):
        pass

    class BadConfig(Step):
        type = "bad"
        Config = PlainSchema

    with pytest.raises(TypeError, match="type"):
        register_step(NoType)
    with pytest.raises(TypeError, match="StepConfig"):
        register_step(BadConfig)


def test_registered_step_is_validated_from_its_schema() -> None:
    register_step(Shout)
    doc = {"name": "t", "steps": [{"id": "s", "type": "shout", "text": "{{ x "}]}
    with pytest.raises(DefinitionError) as info:
        validate_definition(doc)
    assert "bad template" in info.value.errors["steps.s"]["text"][0]
