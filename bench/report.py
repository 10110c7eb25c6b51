"""The results: a table on stdout, ``bench/results.json``, and one JSON summary line."""

from __future__ import annotations

import json
import os
import platform
import sys
from pathlib import Path
from typing import Any

from bench.context import Outcome, Row

RESULTS = Path(__file__).with_name("results.json")
"""Where the full results go (ignored by git)."""


def machine() -> dict[str, Any]:
    """What the numbers were measured on, and how busy it was when the run began."""
    model = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    ram_gib = None
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal"):
                ram_gib = round(int(line.split()[1]) / 1024 / 1024, 1)
    except OSError:
        pass
    return {
        "cpus": os.cpu_count(),
        "cpu_model": model or platform.processor(),
        "ram_gib": ram_gib,
        "python": platform.python_version(),
        "system": f"{platform.system()} {platform.release()}",
        "loadavg": [round(x, 2) for x in os.getloadavg()],
    }


def _fmt(value: float | None) -> str:
    if value is None:
        return "-"
    if abs(value) >= 100:
        return f"{value:,.0f}"
    return f"{value:.3g}" if abs(value) < 10 else f"{value:.1f}"


def table(rows: list[Row]) -> str:
    """The rows as a Markdown table (readable in a terminal too)."""
    head = ["scenario", "case", "unit", "ihook", "baseline", "baseline is", "ratio", "target", ""]
    lines = [head]
    for row in rows:
        verdict = {True: "ok", False: "MISS", None: ""}[row.ok]
        lines.append(
            [
                row.scenario,
                row.case,
                row.unit,
                _fmt(row.ihook),
                _fmt(row.baseline),
                row.baseline_name,
                _fmt(row.ratio),
                row.target,
                verdict,
            ]
        )
    widths = [max(len(line[i]) for line in lines) for i in range(len(head))]
    out = []
    for n, line in enumerate(lines):
        cells = [cell.ljust(width) for cell, width in zip(line, widths, strict=True)]
        out.append("| " + " | ".join(cells) + " |")
        if n == 0:
            out.append("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    return "\n".join(out)


def summary(outcomes: dict[str, Outcome], generator: str) -> dict[str, Any]:
    """The last line of the run: the ratios, the rates behind them, lost and doubled."""
    ingest = outcomes.get("ingest")
    e2e = outcomes.get("e2e")
    fanout = outcomes.get("fanout")
    polling = outcomes.get("polling")
    growth = outcomes.get("growth")

    def pick(outcome: Outcome | None, key: str) -> Any:
        return None if outcome is None else outcome.metrics.get(key)

    failed = sum(c.startswith("FAIL") for o in outcomes.values() for c in o.checks)
    values = {
        "ingest_ratio": pick(ingest, "ratio"),
        "e2e_ratio": pick(e2e, "ratio"),
        "delivery_ratio": pick(fanout, "ratio"),
        "ingest_rate": pick(ingest, "ihook_rate"),
        "ingest_bare_rate": pick(ingest, "bare_rate"),
        "ingest_p99_ms": pick(ingest, "ihook_p99_ms"),
        "e2e_rate": pick(e2e, "rate_2_workers"),
        "e2e_plain_loop_rate": pick(e2e, "plain_loop_rate"),
        "e2e_rq_ratio": pick(e2e, "rq_ratio"),
        "e2e_rq_rate": pick(e2e, "rq_rate_2_workers"),
        "e2e_p99_ms": pick(e2e, "latency_p99_ms"),
        "delivery_rate_per_worker": pick(fanout, "rate_per_worker"),
        "delivery_raw_client_rate": pick(fanout, "raw_rate"),
        "poll_items_rate": pick(polling, "poll_rate"),
        "poll_baseline_rate": pick(polling, "poll_baseline_rate"),
        "transfer_rows_rate": pick(polling, "transfer_rate"),
        "transfer_baseline_rate": pick(polling, "transfer_baseline_rate"),
        "growth_ingest_ratio": pick(growth, "ingest_ratio"),
        "growth_e2e_ratio": pick(growth, "e2e_ratio"),
        "lost": sum(o.lost for o in outcomes.values()),
        "doubled": sum(o.doubled for o in outcomes.values()),
        "checks_failed": failed,
        "generator": generator,
    }
    return {k: round(v, 3) if isinstance(v, float) else v for k, v in values.items()}


def write(results: dict[str, Any], path: Path = RESULTS) -> None:
    path.write_text(json.dumps(results, indent=2, default=str) + "\n")


def print_report(outcomes: dict[str, Outcome], results: dict[str, Any]) -> None:
    rows = [row for o in outcomes.values() for row in o.rows]
    print(table(rows))
    print()
    for name, outcome in outcomes.items():
        for check in outcome.checks:
            print(f"{name}: {check}")
    print(f"results written to {results.get('path', RESULTS)}")
    sys.stdout.flush()
