"""Step types (and connectors) from other installed packages, found through entry points.

A package declares, in its ``pyproject.toml``::

    [project.entry-points."ihook.steps"]
    shout = "ihook_shout:Shout"        # a Step class, registered here if it is not yet
    # or: shout = "ihook_shout"        # a module that registers its steps on import

``load_plugins()`` loads ``ihook.connectors`` too, so one call at start-up loads both.
"""

from __future__ import annotations

import inspect
import threading
from typing import Any

from connectors.plugins import PluginInfo, load_connector_plugins, load_group, provided_by_module
from workflows.registry import Step, register_step, step_class, step_types

__all__ = ["GROUP", "PluginInfo", "load_plugins", "load_step_plugins"]

GROUP = "ihook.steps"
"""The entry point group of step plugins."""


def _accept_step(obj: Any) -> tuple[str, ...]:
    if inspect.ismodule(obj):
        types = provided_by_module(obj, {name: step_class(name) for name in step_types()})
        if not types:
            raise TypeError(f"module {obj.__name__} registers no step type")
        return types
    if not (inspect.isclass(obj) and issubclass(obj, Step)):
        raise TypeError(f"{obj!r} is not a workflows.Step subclass or a module")
    name = getattr(obj, "type", None)
    if not (isinstance(name, str) and name in step_types() and step_class(name) is obj):
        register_step(obj)  # TypeError or ValueError (duplicate type) says why not
    return (obj.type,)


_lock = threading.Lock()
_report: list[PluginInfo] | None = None


def load_step_plugins() -> list[PluginInfo]:
    """Load the ``ihook.steps`` entry points once per process; return the report."""
    global _report
    with _lock:
        if _report is None:
            _report = load_group(GROUP, _accept_step)
        return list(_report)


def load_plugins() -> list[PluginInfo]:
    """Load connector, then step plugins (once per process); the report of both."""
    return load_connector_plugins() + load_step_plugins()
