"""The run loop: each step's call wrapped in small middleware, every call kept in a log.

Middleware is ``(call, log) -> call``; the chain, outermost first, is ``DEFAULT_MIDDLEWARE``.
Timing, excerpts, logging, ``when`` and ``foreach`` live there, not in the steps.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from connectors.errors import ConnectorError
from workflows.context import Resources, SkipRun, StepContext
from workflows.errors import StepFailed
from workflows.expressions import truthy, utc_now
from workflows.registry import step_class

__all__ = ["Resources", "RunResult", "Status", "StepLog", "run_workflow"]

MAX_FOREACH_ITEMS = 1000
"""Most items one ``foreach`` may loop over."""

EXCERPT_CHARS = 2000
"""Longest input/output excerpt kept in a step log."""

TRUNCATED = "…[truncated]"
"""Ends an excerpt that was cut."""

MAX_OUTPUT_CHARS = 1_048_576
"""Largest step output (as JSON text); a larger one fails the step instead of the worker."""

logger = logging.getLogger(__name__)


class Status(StrEnum):
    """How a step or a run ended."""

    SUCCEEDED = "succeeded"
    FAILED = "failed"
    SKIPPED = "skipped"


@dataclass
class StepLog:
    """What one step did, as kept in the run log."""

    id: str
    type: str
    status: str = Status.SUCCEEDED
    started_at: str = ""
    finished_at: str = ""
    duration_ms: float = 0.0
    input: str | None = None
    output: str | None = None
    error: str | None = None
    truncated: bool = False

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready dict (every field is a scalar: no deep copy needed)."""
        return {**vars(self), "status": str(self.status)}


@dataclass
class RunResult:
    """How a run ended; ``output`` is the output of the last step that ran.

    ``response`` is the output of the last ``respond`` step that ran (a sync endpoint's
    answer), kept whatever the run's end.
    """

    status: str
    steps: list[StepLog] = field(default_factory=list)
    output: Any = None
    error: str | None = None
    failed_step: str | None = None
    retryable: bool = False
    response: Any = None


class StepSkipped(Exception):
    """Raised by the ``when`` middleware to skip one step."""


Call = Callable[[Mapping[str, Any], StepContext], Any]
Middleware = Callable[[Call, StepLog], Call]


def describe(exc: BaseException) -> tuple[str, bool]:
    """The cause to log for ``exc`` and whether retrying may help."""
    if isinstance(exc, StepFailed):
        return exc.cause, exc.retryable
    message = str(exc) or type(exc).__name__
    if isinstance(exc, ConnectorError):
        extra = [f"status {exc.status}"] if exc.status and str(exc.status) not in message else []
        extra += [exc.url] if exc.url and exc.url not in message else []
        message = f"{message} ({', '.join(extra)})" if extra else message
    return f"{type(exc).__name__}: {message}", bool(getattr(exc, "retryable", False))


def excerpt(value: Any) -> tuple[str, bool]:
    """``value`` as JSON cut to ``EXCERPT_CHARS``, and whether it was cut."""
    text = _as_json(value)
    if len(text) <= EXCERPT_CHARS:
        return text, False
    return text[:EXCERPT_CHARS] + TRUNCATED, True


def _as_json(value: Any) -> str:
    try:
        return json.dumps(value, ensure_ascii=False, default=str)
    except ValueError:  # circular structures
        return repr(value)


def logged(call: Call, log: StepLog) -> Call:
    """Set the step's status and error from how the call ended, and log it."""

    def wrapped(config: Mapping[str, Any], ctx: StepContext) -> Any:
        try:
            result = call(config, ctx)
        except (StepSkipped, SkipRun) as signal:
            # A filter that stops the run did its job; only a skipped ``when`` is "skipped".
            log.status = Status.SKIPPED if isinstance(signal, StepSkipped) else Status.SUCCEEDED
            logger.debug("step %s: %s", log.id, signal)
            raise
        except Exception as exc:
            log.status, log.error = Status.FAILED, describe(exc)[0]
            logger.info("step %s failed after %.1f ms: %s", log.id, log.duration_ms, log.error)
            raise
        log.status = Status.SUCCEEDED
        logger.debug("step %s succeeded in %.1f ms", log.id, log.duration_ms)
        return result

    return wrapped


def timed(call: Call, log: StepLog) -> Call:
    """Record start, finish and duration."""

    def wrapped(config: Mapping[str, Any], ctx: StepContext) -> Any:
        log.started_at = utc_now()
        start = time.perf_counter()
        try:
            return call(config, ctx)
        finally:
            log.duration_ms = round((time.perf_counter() - start) * 1000, 3)
            log.finished_at = utc_now()

    return wrapped


def excerpted(call: Call, log: StepLog) -> Call:
    """Keep excerpts of the step's input (the previous output) and its output.

    An output larger than ``MAX_OUTPUT_CHARS`` fails the step: the run would otherwise
    carry it into every later expression and into the database.
    """

    def wrapped(config: Mapping[str, Any], ctx: StepContext) -> Any:
        log.input, cut_input = excerpt(ctx.input)
        log.truncated = cut_input
        result = call(config, ctx)
        text = _as_json(result)
        if len(text) > MAX_OUTPUT_CHARS:
            raise StepFailed(
                ctx.step_id,
                f"output of {len(text)} characters is over the cap of {MAX_OUTPUT_CHARS}",
            )
        log.output, cut_output = (text, False) if len(text) <= EXCERPT_CHARS else excerpt(result)
        log.truncated = cut_input or cut_output
        return result

    return wrapped


def guard_when(call: Call, log: StepLog) -> Call:
    """Skip the step unless its ``when`` is true (evaluated once, before any ``foreach``)."""

    def wrapped(config: Mapping[str, Any], ctx: StepContext) -> Any:
        when = config.get("when")
        if when is not None and not truthy(ctx.search(when)):
            raise StepSkipped(f"when {when!r} was false")
        return call(config, ctx)

    return wrapped


def loop_foreach(call: Call, log: StepLog) -> Call:
    """Run once per item of ``foreach`` (capped); the output is the list of outputs."""

    def wrapped(config: Mapping[str, Any], ctx: StepContext) -> Any:
        expr = config.get("foreach")
        if expr is None:
            return call(config, ctx)
        items = ctx.search(expr)
        if items is None:
            items = []
        if not isinstance(items, list):
            raise StepFailed(ctx.step_id, f"foreach must select a list, got {type(items).__name__}")
        if len(items) > MAX_FOREACH_ITEMS:
            raise StepFailed(
                ctx.step_id, f"foreach selected {len(items)} items; the cap is {MAX_FOREACH_ITEMS}"
            )
        outputs = []
        for index, item in enumerate(items):
            try:
                outputs.append(call(config, ctx.for_item(item)))
            except SkipRun:
                raise
            except Exception as exc:
                cause, retryable = describe(exc)
                failed = StepFailed(ctx.step_id, f"item {index}: {cause}", retryable=retryable)
                raise failed from exc
        return outputs

    return wrapped


DEFAULT_MIDDLEWARE: tuple[Middleware, ...] = (logged, timed, excerpted, guard_when, loop_foreach)
"""Outermost first."""


def invoke(config: Mapping[str, Any], ctx: StepContext) -> Any:
    """The innermost call: find the step type and run it."""
    return step_class(config["type"])().run(config, ctx)


def run_workflow(
    definition: Mapping[str, Any],
    event: Mapping[str, Any],
    *,
    resources: Resources,
    run: Mapping[str, Any] | None = None,
    vars: Mapping[str, Any] | None = None,
    middleware: Sequence[Middleware] = DEFAULT_MIDDLEWARE,
) -> RunResult:
    """Run a validated definition for one event; step failures end up in the result."""
    context = _context(definition, event, run, vars)
    logs: list[StepLog] = []
    previous: Any = context["data"]
    output: Any = None
    response: Any = None
    for spec in definition["steps"]:
        log = StepLog(id=str(spec.get("id")), type=str(spec.get("type")))
        logs.append(log)
        call: Call = invoke
        for wrap in reversed(middleware):
            call = wrap(call, log)
        ctx = StepContext(step_id=log.id, data=context, resources=resources, input=previous)
        try:
            result = call(spec, ctx)
        except StepSkipped:
            context["steps"][log.id] = None
            continue
        except SkipRun:
            return RunResult(Status.SKIPPED, logs, response=response)
        except Exception as exc:
            cause, retryable = describe(exc)
            error = f"step {log.id!r} ({log.type}) failed: {cause}"
            return RunResult(Status.FAILED, logs, None, error, log.id, retryable, response)
        context["steps"][log.id] = output = previous = result
        if step_class(log.type).responds:
            response = result
    return RunResult(Status.SUCCEEDED, logs, output, response=response)


def _context(
    definition: Mapping[str, Any],
    event: Mapping[str, Any],
    run: Mapping[str, Any] | None,
    variables: Mapping[str, Any] | None,
) -> dict[str, Any]:
    event = dict(event)
    return {
        "event": event,
        "data": event.get("data"),
        "steps": {},
        "vars": {**definition.get("vars", {}), **(variables or {})},
        "run": {"id": None, "attempt": 1, **(run or {})},
        "item": None,
    }
