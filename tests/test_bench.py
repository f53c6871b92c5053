"""The benchmark runs: its smoke profile (a few connections and messages per scenario)
against every target, end to end.  Nothing here is timed: the figures are for
docs/performance.md, from bench/run.sh; this only checks that they can be produced and
that no scenario lost, duplicated or reordered anything (the bench exits with 1 if one did)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from .servers import ROOT


def smoke(out: Path, *targets: str) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "bench", "--profile", "smoke", "--no-docs", "--out", str(out)]
    run = subprocess.run(
        [*command, "--only", *targets], cwd=ROOT, capture_output=True, text=True, timeout=150
    )
    assert run.returncode == 0, run.stderr[-3000:]
    return run


@pytest.mark.timeout(180)
def test_the_smoke_profile_runs_every_scenario_and_writes_its_report(tmp_path: Path) -> None:
    run = smoke(tmp_path, "ceiling", "quartchat")
    data = json.loads((tmp_path / "performance.json").read_text())
    scenarios = set(data["scenarios"])
    assert scenarios >= {"fanout_1x100", "fanout_50x20", "paced_1000", "idle_2000", "calls_100"}
    assert set(data["results"]["quartchat"]) == scenarios
    assert set(data["results"]["ceiling"]) == scenarios - {"storm_2000"}  # it keeps no history
    for target in ("ceiling", "quartchat"):
        for scenario, result in data["results"][target].items():
            if "delivered_ratio" in result:
                assert result["delivered_ratio"] == 1.0, (target, scenario, result)
            assert result["server_rss_mb"] > 0
    assert data["results"]["quartchat"]["calls_100"]["calls"] == 4  # 2 pairs x 2 calls
    assert data["results"]["quartchat"]["storm_2000"]["recovery_seconds"] > 0
    assert (tmp_path / "performance.png").read_bytes().startswith(b"\x89PNG")
    assert "| fanout_1x100 | server_cpu_us_per_delivery |" in run.stdout


@pytest.mark.timeout(180)
def test_the_reference_targets_run_their_scenarios(tmp_path: Path) -> None:
    """uvloop, the Redis broker on two workers, the browsers' dialect, Uvicorn, Starlette
    with broadcaster, and an idle Quart websocket."""
    references = {
        "quartchat-uvloop": {
            "fanout_1x100",
            "fanout_50x20",
            "paced_1000",
            "idle_2000",
            "calls_100",
        },
        "quartchat-redis-2w": {
            "fanout_1x100",
            "fanout_50x20",
            "paced_1000",
            "idle_2000",
            "calls_100",
        },
        "quartchat-v1": {"fanout_1x100", "fanout_50x20"},
        "uvicorn-ceiling": {"fanout_1x100", "fanout_50x20"},
        "starlette-uvicorn": {"fanout_1x100", "fanout_50x20"},
        "quart-websocket": {"idle_2000"},
    }
    smoke(tmp_path, *references)
    results = json.loads((tmp_path / "performance.json").read_text())["results"]
    assert {target: set(found) for target, found in results.items()} == references
    for target, by_scenario in results.items():
        for scenario, result in by_scenario.items():
            assert "error" not in result, (target, scenario, result)
            assert result["server_rss_mb"] > 0, (target, scenario)
            for exact in ("delivered_ratio", "exact_ratio", "status_ratio"):
                assert result.get(exact, 1) == 1, (target, scenario, result)
