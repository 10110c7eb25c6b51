"""Adapters to external systems, found by kind, each declaring the schema of its config."""

from connectors.base import Connector, load_config
from connectors.errors import (
    ConfigError,
    ConnectFailed,
    ConnectorError,
    OutboundRefused,
    RecordError,
    RemoteError,
    ResponseTooLarge,
    TransientError,
)
from connectors.http import HttpConnector
from connectors.records import RecordsConnector, RecordStore, make_key
from connectors.registry import (
    build_connector,
    connector_class,
    connector_kinds,
    register_connector,
)
from connectors.smtp import SmtpConnector
from connectors.sql import SqlConnector

__all__ = [
    "ConfigError",
    "ConnectFailed",
    "Connector",
    "ConnectorError",
    "HttpConnector",
    "OutboundRefused",
    "RecordError",
    "RecordStore",
    "RecordsConnector",
    "RemoteError",
    "ResponseTooLarge",
    "SmtpConnector",
    "SqlConnector",
    "TransientError",
    "build_connector",
    "connector_class",
    "connector_kinds",
    "load_config",
    "make_key",
    "register_connector",
]
