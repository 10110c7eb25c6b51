"""The scenarios, by name, in the order the suite runs them.

A scenario is a module with ``NAME``, a one-line docstring and ``run(ctx) -> Outcome``.
It starts its own ``Stack`` (so each begins on an empty database), measures ihook and
its baselines in that same stack, checks its counts, and returns rows for the table.
"""

from __future__ import annotations

from types import ModuleType

from bench.scenarios import e2e, fanout, growth, ingest, polling

SCENARIOS: dict[str, ModuleType] = {m.NAME: m for m in (ingest, e2e, fanout, polling, growth)}
"""Every scenario the suite knows, by name."""

__all__ = ["SCENARIOS"]
