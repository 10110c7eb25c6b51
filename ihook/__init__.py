"""ihook: a self-hosted webhook and workflow integration platform."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"
__all__ = ["__version__", "create_app", "init_app"]

if TYPE_CHECKING:
    from ihook.app import create_app, init_app


def __getattr__(name: str) -> Any:
    # Imported lazily so `import ihook` (e.g. by the worker's job lookup) stays light.
    if name in ("create_app", "init_app"):
        from ihook import app

        return getattr(app, name)
    raise AttributeError(name)
