"""The ``turnout advise`` report as JSON, Markdown or a self-contained HTML page."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson

from turnout.advisor.advise import DAYS_PER_MONTH
from turnout.advisor.money import count, pct, usd

__all__ = ["COLUMNS", "model_rows", "render_advise", "write_advise"]

COLUMNS = (
    "model",
    "hosted requests",
    "failed",
    "tokens/day",
    "hosted $/month",
    "API p50 s",
    "local units",
    "local $/month",
    "savings $/month",
    "local p50 / API p50",
    "break-even tokens/day",
)


def model_rows(report: dict[str, Any]) -> list[list[str]]:
    rows = []
    for model in report["models"]:
        hosted = model.get("hosted")
        if hosted is None:
            rows.append([model["model"], "0", "-", "-", "-", "-", "-", "-", "-", "-", "-"])
            continue
        option = model.get("local_option") or {}
        latency = hosted["latency_s"]
        rows.append(
            [
                model["model"],
                str(hosted["requests"]),
                str(hosted["failed"]),
                count(hosted["per_month"]["tokens"] / DAYS_PER_MONTH),
                usd(hosted["per_month"]["cost_usd"]),
                f"{latency['p50']:.3g}" if latency else "-",
                str(option.get("units", "-")),
                usd(option["monthly_cost_usd"]) if "monthly_cost_usd" in option else "-",
                usd(option["savings_usd_per_month"]) if "units" in option else "-",
                pct(option["latency_ratio"]) if option.get("latency_ratio") else "-",
                _break_even(option),
            ]
        )
    return rows


def _break_even(option: dict[str, Any]) -> str:
    tokens = option.get("break_even_tokens_per_day")
    if not tokens:
        return "-" if "units" not in option else "never"
    return count(tokens) if option["break_even_reachable"] else f"({count(tokens)}, unreachable)"


def _meta(report: dict[str, Any]) -> str:
    window = report["window"]
    hardware = report["hardware"]["name"] if report["hardware"] else "no hardware given"
    return (
        f"request log from {window['since'][:10]} to {window['until'][:10]} "
        f"({window['days']:.3g} days of traffic) · {hardware}"
    )


def _assumptions(report: dict[str, Any]) -> list[tuple[str, list[str]]]:
    out = []
    for model in report["models"]:
        option = model.get("local_option") or {}
        if option.get("assumptions"):
            out.append((model["model"], option["assumptions"]))
    return out


def render_markdown(report: dict[str, Any]) -> str:
    lines = [
        "# turnout advise",
        "",
        _meta(report),
        "",
        "## Verdict",
        "",
        *[f"- {line}" for line in report["verdict"]],
        "",
        "## Traffic and the local option, per model",
        "",
        "| " + " | ".join(COLUMNS) + " |",
        "|" + " --- |" * len(COLUMNS),
        *["| " + " | ".join(row) + " |" for row in model_rows(report)],
        "",
    ]
    for model, assumptions in _assumptions(report):
        lines += [f"**{model}**, assumptions:", "", *[f"- {a}" for a in assumptions], ""]
    return "\n".join(lines)


def render_html(report: dict[str, Any]) -> str:
    from turnout.advisor.charts import cost_figure
    from turnout.advisor.html import bullets, chart, page, section, table

    charts = []
    for i, model in enumerate(report["models"]):
        option = model.get("local_option") or {}
        if option.get("curve"):
            fig = cost_figure(
                option["curve"],
                hosted=f"{model['model']} on hosted APIs",
                local=report["hardware"]["name"],
                break_even=option["break_even_requests_per_month"]
                if option["break_even_reachable"]
                else None,
                current=option["current_requests_per_month"],
            )
            charts.append(chart(f"cost-{i}", fig))
    assumptions = [
        f"<p><b>{model}</b></p>" + bullets(items) for model, items in _assumptions(report)
    ]
    body = [
        section("verdict", "Verdict", bullets(report["verdict"], "verdict")),
        section("charts", "Charts", *charts) if charts else "",
        section("models", "Traffic and the local option, per model"),
        table(COLUMNS, model_rows(report)),
        section("assumptions", "Assumptions", *assumptions) if assumptions else "",
    ]
    return page("turnout advise", _meta(report), body, report)


def render_advise(report: dict[str, Any], fmt: str) -> bytes:
    if fmt == "json":
        return orjson.dumps(report, option=orjson.OPT_INDENT_2) + b"\n"
    if fmt == "md":
        return render_markdown(report).encode()
    return render_html(report).encode()


def write_advise(report: dict[str, Any], fmt: str, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(render_advise(report, fmt))
    if fmt == "html":
        path.with_suffix(".json").write_bytes(render_advise(report, "json"))
