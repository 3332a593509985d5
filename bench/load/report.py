"""The figures of bench/load/run.py: per-target summary, the printed table, an SVG plot.

The plot is written by hand as SVG so that the benchmark needs nothing beyond the
project's own venv.
"""

from __future__ import annotations

import math
import statistics
from html import escape
from pathlib import Path
from typing import Any

Run = dict[str, Any]


def _median(values: list[float]) -> float | None:
    return round(statistics.median(values), 3) if values else None


def _by_round(runs: list[Run]) -> dict[int, dict[str, Run]]:
    out: dict[int, dict[str, Run]] = {}
    for run in runs:
        out.setdefault(run["round"], {})[run["target"]] = run
    return out


def _overhead(rounds: dict[int, dict[str, Run]], name: str, base: str, pct: str) -> float | None:
    """Median over rounds of ``name``'s latency minus ``base``'s at percentile ``pct``."""
    return _median(
        [
            rs[name]["latency_ms"][pct] - rs[base]["latency_ms"][pct]
            for rs in rounds.values()
            if name in rs and base in rs
        ]
    )


def summarize(
    phases: dict[str, list[Run]],
    names: list[str],
    servers: dict[str, Any],
    bound_ms: float,
    server_of: dict[str, str] | None = None,
) -> dict[str, Any]:
    """One row per target: overhead vs direct (same round, same percentile), throughput, cost.
    ``servers`` holds RSS and process counts by server name; ``server_of`` names a target's
    server where it is not the default (the stub for direct, expertgate for eg-*)."""
    rounds = _by_round(phases["overhead"])
    closed_rounds = _by_round(phases["closed"])
    ladder_top = max((r["rate"] for r in phases["ladder"]), default=0)
    sat_direct = next((r["rps"] for r in phases["saturation"] if r["target"] == "direct"), None)
    out: dict[str, Any] = {}
    for name in names:
        mine = [r for rs in rounds.values() for t, r in rs.items() if t == name]
        laddered = [r for r in phases["ladder"] if r["target"] == name]
        passed = [r["rate"] for r in laddered if r["passed"]]
        closed = [rs[name] for rs in closed_rounds.values() if name in rs]
        sat = next((r for r in phases["saturation"] if r["target"] == name), None)
        every = [r for runs in phases.values() for r in runs if r["target"] == name]
        # Open-loop steps past a target's capacity end in client time-outs: counted apart.
        overload = [r for r in phases["ladder"] if r["target"] == name and not r["passed"]]
        counted = [r for r in every if r not in overload]
        server = (server_of or {}).get(name) or (
            "stub" if name == "direct" else ("expertgate" if name.startswith("eg-") else name)
        )
        out[name] = {
            "p50_ms": _median([r["latency_ms"]["p50"] for r in mine]),
            "p99_ms": _median([r["latency_ms"]["p99"] for r in mine]),
            "overhead_p50_ms": _overhead(rounds, name, "direct", "p50"),
            "overhead_p99_ms": _overhead(rounds, name, "direct", "p99"),
            "max_sustained_rps": max(passed, default=0) if laddered else None,  # None: not laddered
            "max_sustained_capped": bool(passed) and max(passed) == ladder_top,
            "closed32_rps": _median([r["rps"] for r in closed]),
            "closed32_p99_ms": _median([r["latency_ms"]["p99"] for r in closed]),
            "cpu_s_per_1000": _median([r["cpu_ms_per_request"] for r in closed if r["cpu_ms_per_request"]]),
            "saturation_rps": sat["rps"] if sat else None,
            "saturation_vs_direct": round(sat["rps"] / sat_direct, 3) if sat and sat_direct else None,
            "errors": sum(sum(r["errors"].values()) for r in counted),
            "errors_overloaded_steps": sum(sum(r["errors"].values()) for r in overload),
            "requests": sum(r["sent"] for r in every),
            "rss_mib": servers.get(server, {}).get("rss_mib"),
            "processes": servers.get(server, {}).get("processes"),
            "p99_bound_ms": bound_ms,
        }
    return out


def summarize_stream(runs: list[Run], names: list[str]) -> dict[str, Any]:
    """The streaming phase, one row per target: overhead vs ``direct-stream`` at the light
    rate (same round, same percentile), throughput and CPU at 32 connections, errors.
    ``mode`` is the load generator's (open or closed loop); round -1 is the warm-up."""
    rounds = _by_round([r for r in runs if r["mode"] == "open" and r["round"] >= 0])
    closed = [r for r in runs if r["mode"] == "closed"]
    out: dict[str, Any] = {}
    for name in names:
        mine = [rs[name] for rs in rounds.values() if name in rs]
        loaded = [r for r in closed if r["target"] == name]
        out[name] = {
            "p50_ms": _median([r["latency_ms"]["p50"] for r in mine]),
            "p99_ms": _median([r["latency_ms"]["p99"] for r in mine]),
            "overhead_p50_ms": _overhead(rounds, name, "direct-stream", "p50"),
            "overhead_p99_ms": _overhead(rounds, name, "direct-stream", "p99"),
            "closed32_rps": _median([r["rps"] for r in loaded]),
            "cpu_s_per_1000": _median([r["cpu_ms_per_request"] for r in loaded if r["cpu_ms_per_request"]]),
            "errors": sum(sum(r["errors"].values()) for r in runs if r["target"] == name),
            "requests": sum(r["sent"] for r in runs if r["target"] == name),
        }
    return out


def goals(summary: dict[str, Any], audit: dict[str, Any], stream: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    """The targets of issue 10, each with the measured value and whether this run met it.
    Errors count every expertgate request, streamed ones included."""
    eg, full = summary.get("eg-pass", {}), summary.get("eg-full", {})
    streamed = (stream or {}).get("eg-pass-stream", {})
    peer = summary.get("litellm-bare")
    out: list[dict[str, Any]] = []

    def add(goal: str, measured: object, met: bool | None) -> None:
        out.append({"goal": goal, "measured": measured, "met": met})

    add(
        "pass-through overhead p50 <= 2 ms",
        eg.get("overhead_p50_ms"),
        eg.get("overhead_p50_ms") is not None and eg["overhead_p50_ms"] <= 2,
    )
    if peer:
        add(
            "pass-through overhead p50 below LiteLLM's (bare)",
            [eg.get("overhead_p50_ms"), peer["overhead_p50_ms"]],
            eg.get("overhead_p50_ms") is not None
            and peer["overhead_p50_ms"] is not None
            and eg["overhead_p50_ms"] < peer["overhead_p50_ms"],
        )
        add(
            "pass-through RPS at 32 connections >= 2x LiteLLM's (bare)",
            [eg.get("closed32_rps"), peer["closed32_rps"]],
            bool(eg.get("closed32_rps") and peer["closed32_rps"]) and eg["closed32_rps"] >= 2 * peer["closed32_rps"],
        )
    add(
        f"full pipeline >= 100 RPS sustained with p99 <= {full.get('p99_bound_ms', 0):g} ms",
        full.get("max_sustained_rps"),
        (full.get("max_sustained_rps") or 0) >= 100,
    )
    errors = eg.get("errors", 0) + full.get("errors", 0) + streamed.get("errors", 0)
    add("zero errors (expertgate)", errors, errors == 0)
    add("zero audit events lost", audit["lost"], audit["lost"] == 0 and audit["verify"].startswith("exit 0"))
    add(
        "at the backend's saturation, >= 97% of direct throughput (pass-through)",
        eg.get("saturation_vs_direct"),
        (eg.get("saturation_vs_direct") or 0) >= 0.97,
    )
    return out


def _fmt(v: object, digits: int = 1) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:.{digits}f}"
    return str(v)


def table(results: dict[str, Any]) -> str:
    """A Markdown table of the summary (also printed by the benchmark)."""
    s = results["summary"]
    head = (
        "| target | p50 ms | p99 ms | overhead p50 | overhead p99 | max RPS (p99 <= "
        f"{next(iter(s.values()))['p99_bound_ms']:g} ms) | RPS @32 conns | CPU-s / 1000 req | "
        "saturation vs direct | RSS MiB (procs) | errors (past capacity) |"
    )
    lines = [head, "|" + "---|" * 11]
    for name, row in s.items():
        max_rps = _fmt(row["max_sustained_rps"]) + ("+" if row["max_sustained_capped"] else "")
        lines.append(
            f"| {name} | {_fmt(row['p50_ms'], 2)} | {_fmt(row['p99_ms'], 2)} | {_fmt(row['overhead_p50_ms'], 2)} | "
            f"{_fmt(row['overhead_p99_ms'], 2)} | {max_rps} | {_fmt(row['closed32_rps'])} | "
            f"{_fmt(row['cpu_s_per_1000'], 2)} | {_fmt(row['saturation_vs_direct'], 3)} | "
            f"{_fmt(row['rss_mib'])} ({_fmt(row['processes'])}) | {row['errors']} ({row['errors_overloaded_steps']}) |"
        )
    streams = results.get("stream_summary")
    if streams:
        lines += ["", "streaming (`stream: true`, read to `[DONE]`; overhead vs direct-stream):", ""]
        lines.append(
            "| target | p50 ms | p99 ms | overhead p50 | overhead p99 | RPS @32 conns | CPU-s / 1000 req | errors |"
        )
        lines.append("|" + "---|" * 8)
        for name, row in streams.items():
            lines.append(
                f"| {name} | {_fmt(row['p50_ms'], 2)} | {_fmt(row['p99_ms'], 2)} | {_fmt(row['overhead_p50_ms'], 2)} | "
                f"{_fmt(row['overhead_p99_ms'], 2)} | {_fmt(row['closed32_rps'])} | {_fmt(row['cpu_s_per_1000'], 2)} | "
                f"{row['errors']} |"
            )
    a = results["audit"]
    lines.append("")
    lines.append(
        f"audit: {a['expertgate_ok']} expertgate requests answered 200, {a['chained']} chat audit events "
        f"chained, {a['outbox_pending']} pending in the outbox, lost {a['lost']}; verify {a['verify']}"
    )
    lines.append("")
    lines.append("goals of issue 10 in this run:")
    lines.append("")
    for g in results.get("goals", []):
        lines.append(f"- [{'x' if g['met'] else ' '}] {g['goal']}: {g['measured']}")
    lines.append("")
    c = results["tool_costs"]
    lines.append(
        f"tool costs: stub {c['stub_cpu_ms_per_request']} CPU-ms/request, "
        f"load generator {c['loadgen_cpu_ms_per_request']} CPU-ms/request"
    )
    return "\n".join(lines)


def _bars(
    x0: float,
    y0: float,
    w: float,
    h: float,
    title: str,
    unit: str,
    rows: list[tuple[str, list[float | None]]],
    series: list[str],
    log: bool = False,
) -> list[str]:
    """A grouped horizontal bar chart at (x0, y0) of size w x h (log: bar length ~ log10(1 + v))."""
    colors = ["#3b6ea5", "#e08a2c", "#5a9e5a"]
    values = [v for _, vs in rows for v in vs if v is not None]
    top = max([*values, 1e-9])
    label_w = 120
    out = [f'<text x="{x0}" y="{y0 + 14}" font-size="14" font-weight="bold">{escape(title)}</text>']
    for i, s in enumerate(series):
        out.append(
            f'<rect x="{x0 + label_w + i * 110}" y="{y0 + 22}" width="10" height="10" fill="{colors[i]}"/>'
            f'<text x="{x0 + label_w + 14 + i * 110}" y="{y0 + 31}" font-size="11">{escape(s)}</text>'
        )
    row_h = (h - 44) / max(1, len(rows))
    bar_h = min(14.0, (row_h - 6) / max(1, len(series)))
    for r, (name, vs) in enumerate(rows):
        y = y0 + 44 + r * row_h
        out.append(f'<text x="{x0}" y="{y + row_h / 2 + 4}" font-size="12">{escape(name)}</text>')
        for i, v in enumerate(vs):
            if v is None:
                continue
            scale = math.log10(1 + max(v, 0)) / math.log10(1 + top) if log else max(v, 0) / top
            bw = max(0.0, (w - label_w - 70) * scale)
            by = y + i * bar_h + (row_h - bar_h * len(series)) / 2
            out.append(
                f'<rect x="{x0 + label_w}" y="{by:.1f}" width="{bw:.1f}" height="{bar_h - 2:.1f}" fill="{colors[i]}"/>'
                f'<text x="{x0 + label_w + bw + 4:.1f}" y="{by + bar_h - 4:.1f}" font-size="10">{v:.1f} {unit}</text>'
            )
    return out


def write_svg(results: dict[str, Any], path: Path) -> None:
    """Bar charts of the summary, two to a row; the streamed ones when the run streamed."""
    gateways = [(n, r) for n, r in results["summary"].items() if n != "direct"]
    streams = [(n, r) for n, r in results.get("stream_summary", {}).items() if n != "direct-stream"]

    def rows(entries: list[tuple[str, Any]], *keys: str) -> list[tuple[str, list[float | None]]]:
        return [(n, [r[k] for k in keys]) for n, r in entries]

    # Per grid row, its panels: (title, unit, rows, series, log scale).
    grid: list[list[tuple[str, str, list[tuple[str, list[float | None]]], list[str], bool]]] = [
        [
            ("Latency overhead vs direct (open loop, log scale)", "ms",
             rows(gateways, "overhead_p50_ms", "overhead_p99_ms"), ["p50", "p99"], True),
            ("Throughput", "RPS", rows(gateways, "closed32_rps", "max_sustained_rps"),
             ["32 connections", "max open-loop, p99 in bound"], False),
        ],
        [
            ("Server CPU (32 connections)", "s", rows(gateways, "cpu_s_per_1000"), ["CPU-s per 1000 requests"], False),
            ("Resident memory (server + children)", "MiB", rows(gateways, "rss_mib"), ["RSS"], False),
        ],
    ]  # fmt: skip
    if streams:
        grid += [
            [
                ("Streamed: overhead vs direct-stream (log scale)", "ms",
                 rows(streams, "overhead_p50_ms", "overhead_p99_ms"), ["p50", "p99"], True),
                ("Streamed: throughput (32 connections)", "/s", rows(streams, "closed32_rps"),
                 ["answers per second"], False),
            ],
            [
                ("Streamed: server CPU (32 connections)", "s", rows(streams, "cpu_s_per_1000"),
                 ["CPU-s per 1000 answers"], False),
            ],
        ]  # fmt: skip
    body: list[str] = []
    y = 10
    for panels in grid:
        height = 44 + 40 * len(panels[0][2])
        for (title, unit, data, series, log), x, width in zip(panels, (10, 490), (470, 460), strict=False):
            body += _bars(x, y, width, height, title, unit, data, series, log=log)
        y += height + 20
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="960" height="{y + 10}" '
        'font-family="sans-serif"><rect width="100%" height="100%" fill="white"/>',
        *body,
    ]
    c = results.get("conditions", {})
    parts.append(
        f'<text x="10" y="{y - 6}" font-size="10" fill="#666">'
        f"{escape(str(c.get('date', '')))} {escape(str(c.get('machine', '')))} {escape(str(c.get('note', '')))}</text>"
    )
    parts.append("</svg>")
    path.write_text("\n".join(parts) + "\n")
