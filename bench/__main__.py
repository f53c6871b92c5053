"""Run the benchmark: every scenario against the raw-ASGI ceiling and quartchat, in one run.

    python -m bench                      # the full run (bench/run.sh), results into docs/
    python -m bench --profile smoke --out /tmp/bench   # seconds: checks that it all works

Each server is pinned to core 0 and this load generator to core 1 (``taskset``), so the
two never share a core; a load generator busy near 100% of its core was the limit, not
the server, and the report says so.

The exit status is 1 when a scenario failed or lost, duplicated or reordered anything, and
(in the full profile) when quartchat missed a target; the results are written first.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from quartchat.sockets import PROTOCOL

from . import calls, report, scenarios
from .servers import Running, Target

SERVER_CORE, LOADGEN_CORE = 0, 1

# name -> (function, keyword arguments), per profile
PROFILES: dict[str, dict[str, tuple[Any, dict[str, Any]]]] = {
    "full": {
        "fanout_1x100": (scenarios.fanout, dict(rooms=1, members=100, senders=1, messages=2000)),
        "fanout_50x20": (scenarios.fanout, dict(rooms=50, members=20, senders=5, messages=40)),
        "paced_1000": (
            scenarios.fanout,
            dict(rooms=20, members=50, senders=1, messages=8, rate=500),
        ),
        "idle_2000": (scenarios.idle, dict(connections=2000, rooms=100)),
        "calls_100": (calls.calls, dict(pairs=100, calls_per_pair=3)),
        "storm_2000": (scenarios.storm, dict(clients=2000, rooms=100)),
    },
    "smoke": {
        "fanout_1x100": (scenarios.fanout, dict(rooms=1, members=10, senders=1, messages=20)),
        "fanout_50x20": (scenarios.fanout, dict(rooms=3, members=4, senders=2, messages=5)),
        "paced_1000": (
            scenarios.fanout,
            dict(rooms=2, members=5, senders=1, messages=3, rate=50),
        ),
        "idle_2000": (scenarios.idle, dict(connections=20, rooms=2)),
        "calls_100": (calls.calls, dict(pairs=2, calls_per_pair=2)),
        "storm_2000": (scenarios.storm, dict(clients=20, rooms=4)),
    },
}

FANOUT = ["fanout_1x100", "fanout_50x20"]
ALL = [*FANOUT, "paced_1000", "idle_2000", "calls_100"]
ORDER = [*ALL, "storm_2000"]

# (target, the scenarios it runs)
TARGETS: list[tuple[Target, list[str]]] = [
    (Target("ceiling", "ceiling"), ALL),
    (Target("quartchat", "quartchat"), [*ALL, "storm_2000"]),  # the ceiling keeps no history
    (Target("quartchat-uvloop", "quartchat", {"QUARTCHAT_SERVER_EVENT_LOOP": "uvloop"}), ALL),
    (
        Target("quartchat-redis-2w", "quartchat", {"QUARTCHAT_SERVER_WORKERS": "2"}, redis=True),
        ALL,
    ),
    # the dialect browsers speak, with a client_id on every message (docs/protocol.md)
    (Target("quartchat-v1", "quartchat", dialect=PROTOCOL), FANOUT),
    (Target("uvicorn-ceiling", "ceiling", server="uvicorn"), FANOUT),
    (Target("starlette-uvicorn", "starlette", server="uvicorn"), FANOUT),
    (Target("quart-websocket", "quart"), ["idle_2000"]),
]

# The targets' ratios are what the run is for: the ceiling and quartchat run every scenario
# but the storm this many times, alternating scenario by scenario, and their figures are the
# medians.  A shared machine drifts by ±20% from one minute to the next; two runs a few
# seconds apart drift together, and the median of the three rounds' ratios shrugs off one bad
# minute (bench.report.target_ratio).
ROUNDS = {"full": 3, "smoke": 1}
REPEATED = {"ceiling", "quartchat"}


def plan(profile: str, only: list[str] | None) -> list[tuple[int, str, Target]]:
    """(round, scenario, target) in the order they run."""
    steps = []
    for round_ in range(ROUNDS[profile]):
        for scenario in ORDER:
            for target, names in TARGETS:
                if scenario not in names or (only and target.name not in only):
                    continue
                if round_ == 0 or (target.name in REPEATED and scenario in ALL):
                    steps.append((round_, scenario, target))
    return steps


async def run(profile: str, only: list[str] | None) -> dict[str, Any]:
    runs: dict[str, dict[str, list[dict[str, Any]]]] = {}
    with tempfile.TemporaryDirectory() as workdir:
        for round_, scenario, target in plan(profile, only):
            function, arguments = PROFILES[profile][scenario]
            where = Path(workdir) / f"{target.name}-{scenario}-{round_}"
            started = time.perf_counter()
            try:
                server = Running(target, where, SERVER_CORE)
                try:
                    result = await function(server, scenario.split("_")[0], **arguments)
                finally:
                    server.stop()
            except Exception as error:  # recorded, and the run goes on: see shortfalls
                result = {"error": f"{type(error).__name__}: {error}"}
            result["wall_seconds"] = round(time.perf_counter() - started, 1)
            runs.setdefault(target.name, {}).setdefault(scenario, []).append(result)
            print(f"{round_} {target.name:20} {scenario:14} {json.dumps(result)}", flush=True)
    results = {
        target: {scenario: report.median(found) for scenario, found in by_scenario.items()}
        for target, by_scenario in runs.items()
    }
    return {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "profile": profile,
        "machine": _machine(),
        "scenarios": {name: arguments for name, (_, arguments) in PROFILES[profile].items()},
        "results": results,
        "runs": runs,
    }


def _machine() -> dict[str, Any]:
    model = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        platform.processor(),
    )
    return {"cpu": model, "cores": os.cpu_count(), "python": platform.python_version()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", choices=sorted(PROFILES), default="full")
    parser.add_argument("--only", nargs="*", help="target names to run (default: all)")
    parser.add_argument(
        "--out", type=Path, default=report.DOCS, help="where results.json and the chart go"
    )
    parser.add_argument("--no-docs", action="store_true", help="do not rewrite docs/performance.md")
    args = parser.parse_args()
    os.sched_setaffinity(0, {LOADGEN_CORE % (os.cpu_count() or 1)})
    data = asyncio.run(run(args.profile, args.only))
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / report.JSON_NAME).write_text(json.dumps(data, indent=2) + "\n")
    report.chart(data, args.out / report.CHART_NAME)
    tables = report.markdown(data)
    print(tables)
    if not args.no_docs:
        report.update_docs(tables)
    wrong = report.shortfalls(data, judge_targets=args.profile == "full")
    if wrong:
        sys.exit("bench: " + "; ".join(wrong))


if __name__ == "__main__":
    main()
