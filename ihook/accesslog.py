"""Gunicorn's logger with ingest keys cut out of access-log lines.

``/hooks/{key}`` carries a secret; an access log must not (DESIGN.md §8).
"""

from __future__ import annotations

import re
from typing import Any

from gunicorn.glogging import Logger

_KEY = re.compile(r"(/hooks/)[^/?\s]+")


def redact_path(text: str) -> str:
    """``/hooks/abc123`` → ``/hooks/[redacted]``; other paths unchanged."""
    return _KEY.sub(r"\1[redacted]", text)


class RedactingLogger(Logger):
    """Access-log atoms with the ingest key replaced; used by ``ihook api``."""

    def atoms(self, resp: Any, req: Any, environ: Any, request_time: Any) -> dict[str, Any]:
        atoms = super().atoms(resp, req, environ, request_time)
        for name in ("r", "U"):
            if isinstance(atoms.get(name), str):
                atoms[name] = redact_path(atoms[name])
        return atoms
