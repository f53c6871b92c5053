"""Turn a bench run's results into the tables and chart of docs/performance.md."""

from __future__ import annotations

import statistics
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # no display: write files only
import matplotlib.pyplot as plt

DOCS = Path(__file__).resolve().parents[1] / "docs"
JSON_NAME = "performance.json"
CHART_NAME = "performance.png"
BEGIN, END = "<!-- bench:begin -->", "<!-- bench:end -->"
CEILING = "ceiling"
LOADGEN_LIMIT = 0.9  # the load generator's core this busy: it, not the server, was the limit
# What must be exactly 1 in every run: messages delivered of those expected; clients that got
# each message once and in order; call users whose view of the directory ended true.
EXACT = ("delivered_ratio", "exact_ratio", "status_ratio")

# (scenario, figure, what the issue asks of quartchat / the ceiling's figure, or None)
TARGETS: list[tuple[str, str, float | None]] = [
    ("fanout_1x100", "server_cpu_us_per_delivery", 1.3),
    ("fanout_50x20", "server_cpu_us_per_delivery", 1.3),
    ("paced_1000", "latency_ms_p99", 2.0),
    ("idle_2000", "rss_kb_per_connection", 1.25),
    ("calls_100", "server_cpu_us_per_call_message", 1.5),
]

COLUMNS: dict[str, list[tuple[str, str]]] = {
    "fanout": [
        ("delivered/expected", "delivered_ratio"),
        ("clients exact", "exact_ratio"),
        ("deliveries/s", "deliveries_per_second"),
        ("p50 ms", "latency_ms_p50"),
        ("p95 ms", "latency_ms_p95"),
        ("p99 ms", "latency_ms_p99"),
        ("server CPU µs/delivery", "server_cpu_us_per_delivery"),
        ("server busy", "server_busy"),
        ("load generator busy", "loadgen_busy"),
        ("server RSS MB", "server_rss_mb"),
    ],
    "idle": [
        ("connections", "connections"),
        ("connections/s", "connections_per_second"),
        ("handshake p50 ms", "handshake_ms_p50"),
        ("handshake p99 ms", "handshake_ms_p99"),
        ("RSS KB/connection", "rss_kb_per_connection"),
        ("server CPU µs/connection", "server_cpu_us_per_connection"),
        ("load generator busy", "loadgen_busy"),
    ],
    "calls": [
        ("calls", "calls"),
        ("relayed/expected", "delivered_ratio"),
        ("directories true", "status_ratio"),
        ("calls/s", "calls_per_second"),
        ("setup p50 ms", "setup_ms_p50"),
        ("setup p99 ms", "setup_ms_p99"),
        ("server CPU µs/relayed message", "server_cpu_us_per_call_message"),
        ("server busy", "server_busy"),
        ("load generator busy", "loadgen_busy"),
    ],
    "storm": [
        ("clients", "connections"),
        ("resumed/clients", "delivered_ratio"),
        ("restart s", "restart_seconds"),
        ("full recovery s", "recovery_seconds"),
        ("refused attempts", "refused_attempts"),
        ("load generator CPU s", "loadgen_cpu_seconds"),
    ],
}


def _kind(scenario: str) -> str:
    return {"idle": "idle", "calls": "calls", "storm": "storm"}.get(
        scenario.split("_")[0], "fanout"
    )


def median(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Figure by figure, the median over several runs of one scenario (of three runs, one
    of the three values); one run is itself."""
    if len(runs) == 1:
        return dict(runs[0])
    merged: dict[str, Any] = {}
    for key in runs[0]:
        values = [run[key] for run in runs if key in run]
        numbers = all(isinstance(v, int | float) and not isinstance(v, bool) for v in values)
        merged[key] = statistics.median(values) if numbers else values[0]
    merged["rounds"] = len(runs)
    return merged


def round_ratios(data: dict[str, Any], target: str, scenario: str, figure: str) -> list[float]:
    """The ratio in each round that ran both ``target`` and the ceiling."""
    runs = data.get("runs", {})
    ours = runs.get(target, {}).get(scenario, [])
    theirs = runs.get(CEILING, {}).get(scenario, [])
    if len(ours) < 2:
        return []
    return [
        float(a[figure]) / float(b[figure])
        for a, b in zip(ours, theirs, strict=False)
        if a.get(figure) is not None and b.get(figure)
    ]


def _every_run(data: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    runs = data.get("runs") or {
        t: {s: [r] for s, r in v.items()} for t, v in data["results"].items()
    }
    return [
        (target, scenario, result)
        for target, by_scenario in runs.items()
        for scenario, found in by_scenario.items()
        for result in found
    ]


def target_ratio(data: dict[str, Any], target: str, scenario: str, figure: str) -> float | None:
    """The ratio a target is judged by: the median of the rounds' ratios (the two runs of a
    round, seconds apart, drift together), or the ratio of the figures after one round."""
    rounds = round_ratios(data, target, scenario, figure)
    if rounds:
        return float(statistics.median(rounds))
    return ratio(data["results"], target, scenario, figure)


def shortfalls(data: dict[str, Any], judge_targets: bool = True) -> list[str]:
    """What a run got wrong: a scenario that failed, anything lost, duplicated or out of
    order, and (``judge_targets``) each target missed."""
    found = [
        f"{target}/{scenario} {key} = {result[key]}"
        for target, scenario, result in _every_run(data)
        for key in ("error", *EXACT)
        if key in result and result[key] != 1
    ]
    if judge_targets:
        for scenario, figure, most in TARGETS:
            ours = target_ratio(data, "quartchat", scenario, figure)
            if most is not None and (ours is None or ours > most):
                found.append(f"target missed: {scenario} {figure} {_fmt_ratio(ours)} > {most}")
    return found


def ratio(results: dict[str, Any], target: str, scenario: str, figure: str) -> float | None:
    ceiling = results.get(CEILING, {}).get(scenario, {}).get(figure)
    value = results.get(target, {}).get(scenario, {}).get(figure)
    if not ceiling or value is None:
        return None
    return float(value) / float(ceiling)


def _cell(value: Any) -> str:
    if isinstance(value, float) and value < 10:
        return f"{value:.4f}".rstrip("0").rstrip(".") if value < 1.0001 else f"{value:.2f}"
    if isinstance(value, (int, float)):
        return f"{value:,.0f}" if value >= 1000 else f"{value:g}"
    return str(value)


def markdown(data: dict[str, Any]) -> str:
    results = data["results"]
    machine = data["machine"]
    lines = [
        f"Run of {data['date']} (profile `{data['profile']}`): {machine['cpu']}, "
        f"{machine['cores']} cores, Python {machine['python']}. Raw figures: "
        f"[{JSON_NAME}]({JSON_NAME}).",
        "",
        "### Against the targets (ratio = quartchat / the raw-Hypercorn ceiling, same run)",
        "",
        "Ceiling and quartchat figures are medians over the rounds, run alternately; the "
        'ratio is the median of the rounds\' ratios, and "per round" their range.',
        "",
        "| scenario | figure | ceiling | quartchat | ratio | per round | target | uvloop ratio "
        "| Redis, 2 workers: ratio | met |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for scenario, figure, most in TARGETS:
        ours = target_ratio(data, "quartchat", scenario, figure)
        uv = target_ratio(data, "quartchat-uvloop", scenario, figure)
        redis = target_ratio(data, "quartchat-redis-2w", scenario, figure)
        met = "yes" if ours is not None and most is not None and ours <= most else "**no**"
        rounds = round_ratios(data, "quartchat", scenario, figure)
        spread = f"{min(rounds):.2f}–{max(rounds):.2f}" if rounds else "–"
        lines.append(
            f"| {scenario} | {figure} "
            f"| {_cell(results.get(CEILING, {}).get(scenario, {}).get(figure, '–'))} "
            f"| {_cell(results.get('quartchat', {}).get(scenario, {}).get(figure, '–'))} "
            f"| {_fmt_ratio(ours)} | {spread} | ≤ {most} | {_fmt_ratio(uv)} "
            f"| {_fmt_ratio(redis)} | {met} |"
        )
    every = _every_run(data)
    wrong = shortfalls(data, judge_targets=False)
    lines += [
        "",
        "In every run of every scenario and target: delivered/expected = 1.0000, every client "
        "got each message once and in order, and every call user's directory ended true."
        if not wrong
        else f"**Lost, duplicated, out of order or failed: {'; '.join(wrong)}.**",
    ]
    bound = sorted(
        {
            f"{target}/{scenario}"
            for target, scenario, result in every
            if result.get("loadgen_busy", 0) >= LOADGEN_LIMIT
        }
    )
    if bound:
        lines.append(
            f"The load generator's core was ≥ {LOADGEN_LIMIT:.0%} busy, so it (not only the "
            f"server) was the limit, in: {', '.join(bound)}."
        )
    lines += ["", *_redis_against_one_process(results)]
    for kind, columns in COLUMNS.items():
        lines += ["", f"### {kind} scenarios", ""]
        lines.append("| target | scenario | " + " | ".join(title for title, _ in columns) + " |")
        lines.append("|---|---|" + "---|" * len(columns))
        for target, by_scenario in results.items():
            for scenario, result in by_scenario.items():
                if _kind(scenario) != kind:
                    continue
                cells = " | ".join(_cell(result.get(key, "–")) for _, key in columns)
                lines.append(f"| {target} | {scenario} | {cells} |")
        lines += _as_ratios(data, kind, columns)
    lines += ["", f"![Ratios to the ceiling, by target and figure]({CHART_NAME})"]
    return "\n".join(lines) + "\n"


def _as_ratios(data: dict[str, Any], kind: str, columns: list[tuple[str, str]]) -> list[str]:
    """The same figures of every other target as ratios to the ceiling's (lower is better
    for costs and times, higher for rates), each as :func:`target_ratio` gives it."""
    results = data["results"]
    rows = [
        (target, scenario)
        for target, by_scenario in results.items()
        if target != CEILING
        for scenario in by_scenario
        if _kind(scenario) == kind and scenario in results.get(CEILING, {})
    ]
    if not rows:
        return []
    counts = {*EXACT, "connections", "calls"}  # the same by design
    shown = [(title, key) for title, key in columns if key not in counts]
    lines = [
        "",
        "The same, as ratios to the ceiling's figure in the same scenario (for quartchat, "
        "the median of the rounds' ratios):",
        "",
        "| target | scenario | " + " | ".join(title for title, _ in shown) + " |",
        "|---|---|" + "---|" * len(shown),
    ]
    for target, scenario in rows:
        cells = " | ".join(
            _fmt_ratio(target_ratio(data, target, scenario, key)) for _, key in shown
        )
        lines.append(f"| {target} | {scenario} | {cells} |")
    return lines


def _redis_against_one_process(results: dict[str, Any]) -> list[str]:
    """What the Redis broker across two workers costs against quartchat in one process."""
    ours, redis = results.get("quartchat", {}), results.get("quartchat-redis-2w", {})
    rows = [
        (scenario, figure, ours[scenario][figure], redis[scenario][figure])
        for scenario, figure, _ in TARGETS
        if figure in ours.get(scenario, {}) and figure in redis.get(scenario, {})
    ]
    if not rows:
        return []
    lines = [
        "### The Redis broker across two workers, against one process",
        "",
        "| scenario | figure | one process | Redis, 2 workers | ratio |",
        "|---|---|---|---|---|",
    ]
    for scenario, figure, one, two in rows:
        lines.append(
            f"| {scenario} | {figure} | {_cell(one)} | {_cell(two)} | "
            f"{_fmt_ratio(float(two) / float(one) if one else None)} |"
        )
    return lines


def _fmt_ratio(value: float | None) -> str:
    return "–" if value is None else f"{value:.2f}×"


def chart(data: dict[str, Any], path: Path) -> None:
    """Each quartchat target's figures as ratios to the ceiling's, next to the targets."""
    results = data["results"]
    targets = [name for name in results if name.startswith("quartchat")]
    figure, axes = plt.subplots(figsize=(9, 4.5), dpi=100)
    width = 0.8 / max(1, len(targets))
    for i, target in enumerate(targets):
        values = [target_ratio(data, target, s, f) or 0.0 for s, f, _ in TARGETS]
        positions = [x + i * width for x in range(len(TARGETS))]
        bars = axes.bar(positions, values, width, label=target)
        axes.bar_label(bars, labels=[f"{v:.2f}" if v else "not run" for v in values], fontsize=7)
    for x, (_, _, most) in enumerate(TARGETS):
        if most is not None:
            axes.hlines(
                most,
                x - width / 2,
                x + width * (len(targets) - 0.5),
                colors="black",
                linestyles="dashed",
                linewidth=1,
            )
    axes.axhline(1.0, color="grey", linewidth=0.8)
    axes.set_xticks([x + width * (len(targets) - 1) / 2 for x in range(len(TARGETS))])
    axes.set_xticklabels([f"{s}\n{f.replace('_', ' ')}" for s, f, _ in TARGETS], fontsize=7)
    axes.set_ylabel("quartchat / raw-Hypercorn ceiling")
    axes.set_title("Ratios to the ceiling (lower is better; dashed: the target)")
    axes.legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(path)
    plt.close(figure)


def update_docs(tables: str, doc: Path = DOCS / "performance.md") -> None:
    """Replace what lies between the bench markers of ``doc`` with ``tables``."""
    text = doc.read_text()
    head, _, rest = text.partition(BEGIN)
    _, _, tail = rest.partition(END)
    doc.write_text(f"{head}{BEGIN}\n{tables}{END}{tail}")


def main() -> None:
    """``python -m bench.report [performance.json]``: write the tables and chart of a run
    again (after a change to this module), without running anything."""
    import json
    import sys

    source = Path(sys.argv[1]) if len(sys.argv) > 1 else DOCS / JSON_NAME
    data = json.loads(source.read_text())
    chart(data, source.parent / CHART_NAME)
    doc = source.parent / "performance.md"
    if doc.exists():
        update_docs(markdown(data), doc)
    else:
        print(markdown(data))


if __name__ == "__main__":
    main()
