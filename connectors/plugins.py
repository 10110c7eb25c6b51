"""Connector kinds from other installed packages, found through entry points.

A package declares, in its ``pyproject.toml``::

    [project.entry-points."ihook.connectors"]
    crm = "ihook_crm:CrmConnector"     # a class, registered here if it is not yet
    # or: crm = "ihook_crm"            # a module that registers its classes on import

A broken plugin (import error, duplicate kind, not a connector) is reported, never fatal.
"""

from __future__ import annotations

import inspect
import logging
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from importlib.metadata import EntryPoint, entry_points
from types import ModuleType
from typing import Any

from connectors.registry import connector_class, connector_kinds, register_connector

__all__ = ["GROUP", "PluginInfo", "load_connector_plugins", "load_group"]

GROUP = "ihook.connectors"
"""The entry point group of connector plugins."""

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class PluginInfo:
    """One entry point: where it came from and what it registered, or why it failed."""

    group: str
    name: str
    distribution: str | None
    version: str | None
    provides: tuple[str, ...] = ()
    """The step types or connector kinds it registered."""
    error: str | None = None
    """``"ExceptionName: message"`` when the plugin is broken."""

    @property
    def ok(self) -> bool:
        """Whether it loaded."""
        return self.error is None


Accept = Callable[[Any], tuple[str, ...]]
"""Registers a loaded entry point object; returns what it provides, raises if it is unfit."""


def load_group(group: str, accept: Accept) -> list[PluginInfo]:
    """Load every entry point of ``group`` through ``accept``; one failure stops none other."""
    report = []
    for ep in sorted(entry_points(group=group), key=lambda ep: (ep.name, ep.value)):
        dist, version = _origin(ep)
        try:
            provides = accept(ep.load())
        except Exception as exc:  # a plugin may raise anything while it imports
            error = f"{type(exc).__name__}: {exc}"
            logger.warning("plugin %s (%s from %s) is broken: %s", ep.name, group, dist, error)
            report.append(PluginInfo(group, ep.name, dist, version, error=error))
        else:
            report.append(PluginInfo(group, ep.name, dist, version, provides))
    return report


def provided_by_module(module: ModuleType, registered: Mapping[str, type]) -> tuple[str, ...]:
    """The names in ``registered`` whose class the module defines or holds."""
    prefix = module.__name__
    held = {id(value) for value in vars(module).values()}
    return tuple(
        sorted(
            name
            for name, cls in registered.items()
            if f"{cls.__module__}.".startswith(f"{prefix}.") or id(cls) in held
        )
    )


def _origin(ep: EntryPoint) -> tuple[str | None, str | None]:
    dist = ep.dist
    if dist is None:
        return None, None
    return dist.name, dist.version


def _accept_connector(obj: Any) -> tuple[str, ...]:
    if inspect.ismodule(obj):
        registered = {kind: connector_class(kind) for kind in connector_kinds()}
        kinds = provided_by_module(obj, registered)
        if not kinds:
            raise TypeError(f"module {obj.__name__} registers no connector kind")
        return kinds
    if not inspect.isclass(obj):
        raise TypeError(f"{obj!r} is not a connector class or module")
    kind = getattr(obj, "kind", None)
    if not (isinstance(kind, str) and kind in connector_kinds() and connector_class(kind) is obj):
        register_connector(obj)  # TypeError or ValueError (duplicate kind) says why not
    return (obj.kind,)


_lock = threading.Lock()
_report: list[PluginInfo] | None = None


def load_connector_plugins() -> list[PluginInfo]:
    """Load the ``ihook.connectors`` entry points once per process; return the report."""
    global _report
    with _lock:
        if _report is None:
            _report = load_group(GROUP, _accept_connector)
        return list(_report)
