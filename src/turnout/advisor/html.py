"""Reports as one self-contained HTML page: plotly's JavaScript is embedded (no network is
needed to open it), the charts are drawn from figures embedded as JSON, and the report's raw
numbers travel in the page as well (``<script id="turnout-report">``)."""

from __future__ import annotations

from collections.abc import Sequence
from html import escape
from importlib.resources import files
from string import Template
from typing import Any

import orjson
import plotly.offline

from turnout.advisor.charts import figures
from turnout.advisor.report import RESULT_COLUMNS, RESULTS_NOTE, cost_entries, result_rows

__all__ = ["bullets", "chart", "page", "render_html", "section", "table"]

_PLOTLY_CONFIG = {"displaylogo": False, "responsive": True}


def page(title: str, meta: str, body: Sequence[str], report: dict[str, Any]) -> str:
    """The whole page: ``body`` is HTML (sections), ``report`` is embedded as JSON."""
    template = Template(files("turnout.advisor").joinpath("templates/report.html").read_text())
    pretty = orjson.dumps(report, option=orjson.OPT_INDENT_2).decode()
    return template.substitute(
        version=escape(str(report.get("turnout_version", ""))),
        title=escape(title),
        plotlyjs=plotly.offline.get_plotlyjs(),
        meta=escape(meta),
        body="\n".join(body),
        raw_pretty=escape(pretty),
        raw=_script_safe(orjson.dumps(report).decode()),
    )


def section(anchor: str, heading: str, *content: str) -> str:
    return f'<h2 id="{escape(anchor)}">{escape(heading)}</h2>\n' + "\n".join(content)


def chart(anchor: str, fig: Any) -> str:
    div = fig.to_html(
        full_html=False, include_plotlyjs=False, div_id=f"chart-{anchor}", config=_PLOTLY_CONFIG
    )
    return f'<div class="chart">{div}</div>'


def table(header: Sequence[str] | None, rows: Sequence[Sequence[str]]) -> str:
    head = "<tr>" + "".join(f"<th>{escape(c)}</th>" for c in header) + "</tr>" if header else ""
    body = "".join(
        "<tr>" + "".join(f"<td>{escape(str(c))}</td>" for c in row) + "</tr>" for row in rows
    )
    return f"<table>{head}{body}</table>"


def bullets(items: Sequence[str], css: str = "assumptions") -> str:
    if not items:
        return ""
    return f"<ul class='{css}'>" + "".join(f"<li>{escape(i)}</li>" for i in items) + "</ul>"


def paragraph(text: str, css: str = "") -> str:
    cls = f" class='{css}'" if css else ""
    return f"<p{cls}>{escape(text)}</p>"


# ------------------------------------------------------------------------ the compare report


def render_html(report: dict[str, Any]) -> str:
    """The ``turnout compare`` report."""
    workload = report["settings"]["workload"]
    meta = (
        f"{report['finished_at'][:19]} UTC · {report['source']} · workload "
        f"{workload['source']} ({workload['requests']} requests)"
    )
    stopped = (
        "<p class='stopped'>The run was stopped early: the figures cover only the requests "
        "that finished before it stopped.</p>"
        if report["interrupted"]
        else ""
    )
    body = [
        stopped,
        section("verdict", "Verdict", bullets(report["verdict"], "verdict")),
        section("charts", "Charts", *(chart(a, f) for a, f in figures(report))),
        section(
            "results",
            "Latency and throughput",
            table(RESULT_COLUMNS, result_rows(report["results"])),
            paragraph(RESULTS_NOTE, "assumptions"),
        ),
        section("cost", "Cost", _cost(report["cost"])),
        section("privacy", "Privacy exposure", _privacy(report["privacy"])),
        section("settings", "Settings", _settings(report["settings"])),
    ]
    title = "turnout compare: " + " vs ".join(t["name"] for t in report["targets"])
    return page(title, meta, body, report)


def _cost(cost: dict[str, Any]) -> str:
    out = []
    for heading, text, assumptions in cost_entries(cost):
        out.append(f"<p><b>{escape(heading)}</b>: {escape(text)}</p>")
        out.append(bullets(assumptions))
    return "\n".join(out) or "<p>Nothing to price.</p>"


def _privacy(privacy: dict[str, Any]) -> str:
    out = [
        paragraph(
            f"{privacy['sensitive_requests']} of {privacy['workload_requests']} workload "
            "requests carry sensitive data."
        )
    ]
    if privacy["by_category"]:
        out.append(table(("category", "requests"), list(privacy["by_category"].items())))
    received = privacy["received_by_hosted_targets"]
    if received:
        out.append(paragraph("Measured requests with sensitive data that hosted targets got:"))
        out.append(bullets([f"{name}: {n}" for name, n in received.items()]))
    return "\n".join(out)


def _settings(settings: dict[str, Any]) -> str:
    shown = {**settings, "workload": settings["workload"]["source"]}
    return table(None, [(k, _value(v)) for k, v in shown.items()])


def _value(value: Any) -> str:
    if isinstance(value, list | tuple):
        return ", ".join(map(str, value))
    return str(value).lower() if isinstance(value, bool) else str(value)


def _script_safe(text: str) -> str:
    """JSON inside <script>: a "</" would end the element early."""
    return text.replace("</", "<\\/").replace("<!--", "<\\!--")
