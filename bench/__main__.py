"""``python -m bench``: run the performance suite and report (see bench/README.md)."""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

from bench import report
from bench.context import Context, Options, Outcome
from bench.load import generator_name
from bench.scenarios import SCENARIOS

BUSY_LOAD = 0.5
"""A 1-minute load average above this when the run starts is reported as a busy machine."""


def parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="small counts, under 2 minutes")
    parser.add_argument(
        "--only", metavar="SCENARIO[,...]", help=f"run these only ({', '.join(SCENARIOS)})"
    )
    parser.add_argument(
        "--duration", type=float, help="seconds of each timed load run (5 quick, 20 full)"
    )
    parser.add_argument(
        "--database",
        choices=["sqlite", "postgres"],
        default="sqlite",
        help="postgres: the URL in IHOOK_BENCH_DATABASE_URL (wiped!)",
    )
    parser.add_argument(
        "--generator",
        choices=["wrk", "python"],
        help="load generator for timed runs (default: wrk if on PATH)",
    )
    parser.add_argument(
        "--no-scheduler", action="store_true", help="do not run `ihook scheduler` beside workers"
    )
    parser.add_argument("--keep", action="store_true", help="keep each stack's temp dir and logs")
    parser.add_argument("--output", type=Path, default=report.RESULTS, help="results file")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    names = list(SCENARIOS) if not args.only else [n.strip() for n in args.only.split(",")]
    unknown = [n for n in names if n not in SCENARIOS]
    if unknown:
        print(f"unknown scenario(s): {', '.join(unknown)}; known: {', '.join(SCENARIOS)}")
        return 2
    database = "sqlite"
    if args.database == "postgres":
        database = os.environ.get("IHOOK_BENCH_DATABASE_URL", "")
        if not database:
            print("--database postgres needs IHOOK_BENCH_DATABASE_URL (a database it may wipe)")
            return 2
    generator = args.generator or generator_name()
    options = Options(
        quick=args.quick,
        duration=args.duration,
        database=database,
        keep=args.keep,
        generator=generator,
        scheduler=not args.no_scheduler,
    )
    ctx = Context(options)
    machine = report.machine()
    if machine["loadavg"][0] > BUSY_LOAD:
        ctx.log(f"warning: the machine is busy (load average {machine['loadavg']})")
    ctx.log(f"bench: {', '.join(names)} ({'quick' if args.quick else 'full'}), {generator}")
    outcomes: dict[str, Outcome] = {}
    started = time.monotonic()
    try:
        for name in names:
            began, load = time.monotonic(), round(os.getloadavg()[0], 2)
            outcomes[name] = SCENARIOS[name].run(ctx)
            outcomes[name].metrics["seconds"] = round(time.monotonic() - began, 1)
            outcomes[name].metrics["loadavg_before"] = load
    except KeyboardInterrupt:
        ctx.log("interrupted: every process the bench started has been stopped")
        return 130
    machine["loadavg_after"] = [round(x, 2) for x in os.getloadavg()]
    summary = report.summary(outcomes, generator)
    results = {
        "command": " ".join(["python -m bench", *(argv if argv is not None else sys.argv[1:])]),
        "machine": machine,
        "options": options.__dict__ | {"database": args.database},
        "seconds": round(time.monotonic() - started, 1),
        "summary": summary,
        "scenarios": {
            name: {
                "rows": [row.__dict__ for row in o.rows],
                "checks": o.checks,
                "lost": o.lost,
                "doubled": o.doubled,
                "metrics": o.metrics,
            }
            for name, o in outcomes.items()
        },
        "path": str(args.output),
    }
    report.write(results, args.output)
    report.print_report(outcomes, results)
    print(json.dumps(summary, separators=(",", ":")))
    return 1 if summary["checks_failed"] else 0


if __name__ == "__main__":
    sys.exit(main())
