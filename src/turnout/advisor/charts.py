"""The report's charts, as plotly figures built from the report dictionary (the 'report'
extra: ``pip install 'turnout[report]'``).

- latency distribution per target and concurrency (end-to-end, and time to first token);
- throughput against concurrency (requests/s and output tokens/s);
- monthly cost against monthly volume, hosted and local, with the break-even point marked.
"""

from __future__ import annotations

from typing import Any

import plotly.graph_objects as go
from plotly.subplots import make_subplots

from turnout.advisor.money import count, usd

__all__ = ["BREAK_EVEN_COLOR", "PALETTE", "cost_figure", "figures", "target_colors"]

#: one colour per target, in the report's order (tests look for them in a screenshot)
PALETTE = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2")
BREAK_EVEN_COLOR = "#111111"
_LAYOUT: dict[str, Any] = {
    "template": "plotly_white",
    "height": 420,
    "margin": {"l": 60, "r": 20, "t": 60, "b": 50},
    "legend": {"orientation": "h", "y": -0.18},
}


def target_colors(report: dict[str, Any]) -> dict[str, str]:
    names = [t["name"] for t in report["targets"]]
    return {name: PALETTE[i % len(PALETTE)] for i, name in enumerate(names)}


def figures(report: dict[str, Any]) -> list[tuple[str, go.Figure]]:
    """(anchor id, figure) for every chart the report has data for."""
    colors = target_colors(report)
    out = [("latency", _distribution(report, colors, "e2e_latency_s", "End-to-end latency"))]
    if any(s["ttft_s"] is not None for s in report["samples"]):
        out.append(("ttft", _distribution(report, colors, "ttft_s", "Time to first token")))
    if report["results"]:
        out.append(("throughput", _throughput(report, colors)))
    for i, pair in enumerate(report["cost"]["break_even"]):
        if pair["curve"]:
            out.append((f"cost-{i}", _cost(pair, colors)))
    return out


def _distribution(
    report: dict[str, Any], colors: dict[str, str], field: str, title: str
) -> go.Figure:
    fig = go.Figure()
    for name, color in colors.items():
        samples = [s for s in report["samples"] if s["target"] == name and s[field] is not None]
        if not samples:
            continue
        fig.add_trace(
            go.Box(
                x=[f"concurrency {s['concurrency']}" for s in samples],
                y=[s[field] for s in samples],
                name=name,
                marker_color=color,
                boxpoints="all",
                jitter=0.4,
                pointpos=0,
                boxmean=True,
            )
        )
    fig.update_layout(title=f"{title} per target (seconds)", boxmode="group", **_LAYOUT)
    fig.update_yaxes(title_text="seconds", rangemode="tozero")
    return fig


def _throughput(report: dict[str, Any], colors: dict[str, str]) -> go.Figure:
    fig = make_subplots(rows=1, cols=2, subplot_titles=("requests/s", "output tokens/s"))
    for name, color in colors.items():
        rows = sorted(
            (r for r in report["results"] if r["target"] == name), key=lambda r: r["concurrency"]
        )
        if not rows:
            continue
        x = [r["concurrency"] for r in rows]
        for col, key in ((1, "requests_per_s"), (2, "output_tokens_per_s")):
            fig.add_trace(
                go.Scatter(
                    x=x,
                    y=[r["throughput"][key] for r in rows],
                    name=name,
                    legendgroup=name,
                    showlegend=col == 1,
                    mode="lines+markers",
                    line={"color": color, "width": 3},
                    marker={"size": 10},
                ),
                row=1,
                col=col,
            )
    fig.update_layout(title="Throughput against concurrency", **_LAYOUT)
    fig.update_xaxes(title_text="requests in flight", type="log", dtick=0.30103)
    fig.update_yaxes(rangemode="tozero")
    return fig


def _cost(pair: dict[str, Any], colors: dict[str, str]) -> go.Figure:
    volume = pair["requests_per_month"] if pair["reachable"] else None
    return cost_figure(
        pair["curve"],
        hosted=pair["hosted"],
        local=pair["local"],
        break_even=volume,
        hosted_color=colors.get(pair["hosted"], PALETTE[1]),
        local_color=colors.get(pair["local"], PALETTE[0]),
    )


def cost_figure(
    curve: list[list[float]],
    *,
    hosted: str,
    local: str,
    break_even: float | None,
    hosted_color: str = PALETTE[1],
    local_color: str = PALETTE[0],
    current: float | None = None,
) -> go.Figure:
    """Monthly cost of both against monthly volume (``curve``: [requests, hosted, local,
    units] rows), the break-even point marked, and ``current`` traffic as a line."""
    x = [p[0] for p in curve]
    fig = go.Figure()
    lines = [
        (f"{hosted} (hosted, per token)", 1, hosted_color, "linear"),
        (f"{local} (local hardware)", 2, local_color, "hv"),
    ]
    for name, column, color, shape in lines:
        fig.add_trace(
            go.Scatter(
                x=x,
                y=[p[column] for p in curve],
                name=name,
                mode="lines",
                line={"color": color, "width": 3, "shape": shape},
            )
        )
    if break_even is not None and curve:
        per_request = curve[-1][1] / max(curve[-1][0], 1e-12)
        cost = break_even * per_request
        fig.add_trace(
            go.Scatter(
                x=[break_even],
                y=[cost],
                name="break-even",
                mode="markers+text",
                marker={"color": BREAK_EVEN_COLOR, "size": 16, "symbol": "diamond"},
                text=[f"break-even: {count(break_even)} requests/month, {usd(cost)}/month"],
                textposition="top left",
            )
        )
        fig.add_vline(x=break_even, line={"color": BREAK_EVEN_COLOR, "dash": "dot"})
    if current is not None:
        fig.add_vline(
            x=current,
            line={"color": "#7f7f7f", "dash": "dash"},
            annotation_text=f"your traffic: {count(current)} requests/month",
        )
    fig.update_layout(title=f"Monthly cost against monthly volume: {local} vs {hosted}", **_LAYOUT)
    fig.update_xaxes(title_text="requests per month")
    fig.update_yaxes(title_text="US dollars per month", rangemode="tozero")
    return fig
