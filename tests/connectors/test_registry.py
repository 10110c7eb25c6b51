from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pytest
from marshmallow import Schema, fields

from connectors import (
    ConfigError,
    Connector,
    HttpConnector,
    build_connector,
    connector_class,
    register_connector,
    registry,
)
from connectors.outbound import OutboundPolicy


@pytest.fixture(autouse=True)
def _own_registry(monkeypatch: pytest.MonkeyPatch) -> None:
    # Kinds registered here must not leak into other tests.
    monkeypatch.setattr(registry, "_CONNECTORS", dict(registry._CONNECTORS))


class EchoConfig(Schema):
    greeting = fields.String(required=True)
    password = fields.String(load_only=True)


class Echo:
    kind = "echo"
    Config = EchoConfig

    def __init__(self, config: Mapping[str, Any], *, policy: OutboundPolicy, client: Any = None):
        self.config = config
        self.policy = policy

    def close(self) -> None:
        pass


def test_register_and_build() -> None:
    register_connector(Echo)
    assert connector_class("echo") is Echo
    built = build_connector("echo", {"greeting": "hi"}, policy=OutboundPolicy())
    assert isinstance(built, Echo) and isinstance(built, Connector)
    assert built.config == {"greeting": "hi"}


def test_http_is_built_in() -> None:
    assert connector_class("http") is HttpConnector


def test_duplicate_kind_is_refused() -> None:
    class OtherHttp(Echo):
        kind = "http"

    with pytest.raises(ValueError, match="'http' is already registered by .*HttpConnector"):
        register_connector(OtherHttp)
    register_connector(HttpConnector)  # the same class again is harmless


def test_unknown_kind_names_known_ones() -> None:
    with pytest.raises(ConfigError, match=r"unknown connector kind 'ftp' \(known: .*http"):
        connector_class("ftp")
    with pytest.raises(ConfigError, match="unknown connector kind"):
        build_connector("ftp", {}, policy=OutboundPolicy())


def test_declaration_is_checked() -> None:
    class NoKind:
        Config = EchoConfig

    class NoConfig:
        kind = "bare"

    with pytest.raises(TypeError, match="kind"):
        register_connector(NoKind)
    with pytest.raises(TypeError, match="Config"):
        register_connector(NoConfig)


def test_config_errors_list_fields() -> None:
    register_connector(Echo)
    with pytest.raises(ConfigError) as info:
        build_connector("echo", {"colour": "red"}, policy=OutboundPolicy())
    assert "greeting: Missing data" in str(info.value)
    assert "colour: Unknown field" in str(info.value)
    with pytest.raises(ConfigError, match="must be an object"):
        build_connector("echo", ["x"], policy=OutboundPolicy())  # type: ignore[arg-type]
