"""The comparison report: one JSON-ready dictionary built from the measurements, then written
as JSON, Markdown or a self-contained HTML page (:mod:`turnout.advisor.html`).

Every renderer reads the same dictionary, so the three formats always agree; the JSON is the
reference (its ``schema`` field names its version).
"""

from __future__ import annotations

from dataclasses import asdict
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import orjson

from turnout.advisor.analysis import cost_section
from turnout.advisor.compare import Measurements, TargetInfo
from turnout.advisor.cost import Hardware
from turnout.advisor.exposure import exposure
from turnout.advisor.money import count, pct, usd
from turnout.advisor.verdict import verdict
from turnout.policies.privacy import Detector

__all__ = [
    "FORMATS",
    "RESULT_COLUMNS",
    "SCHEMA",
    "build_report",
    "cost_entries",
    "render",
    "render_markdown",
    "result_rows",
    "write_report",
]

SCHEMA = "turnout.compare/1"
FORMATS = ("html", "json", "md")


def build_report(
    measurements: Measurements,
    *,
    source: str,
    hardware: Hardware | None,
    utilization: float,
    detector: Detector,
) -> dict[str, Any]:
    m = measurements
    stats = m.stats()
    samples = m.samples()
    report: dict[str, Any] = {
        "schema": SCHEMA,
        "turnout_version": _version(),
        "started_at": m.started_at.isoformat(),
        "finished_at": m.finished_at.isoformat(),
        "interrupted": m.interrupted,
        "source": source,
        "settings": {
            **asdict(m.settings),
            "workload": {
                "source": m.workload.source,
                "requests": len(m.workload.items),
                "kinds": m.workload.kinds(),
            },
        },
        "targets": [_target(t) for t in m.targets],
        "results": [st.as_dict() for st in stats],
        "cost": cost_section(m.targets, stats, samples, hardware, utilization),
        "privacy": exposure(m.workload, detector, samples, m.targets),
    }
    report["verdict"] = verdict(report)
    report["samples"] = [s.as_dict() for s in samples]
    return report


def _target(info: TargetInfo) -> dict[str, Any]:
    return {
        "name": info.name,
        "kind": info.kind,
        "deployments": info.deployments,
        "prices_per_million_tokens": {
            d: None if p is None else {"input": p[0], "output": p[1]}
            for d, p in info.prices.items()
        },
    }


def _version() -> str:
    try:
        return version("turnout")
    except PackageNotFoundError:  # pragma: no cover - running from a source tree
        return "unknown"


def render(report: dict[str, Any], fmt: str) -> bytes:
    if fmt == "json":
        return orjson.dumps(report, option=orjson.OPT_INDENT_2) + b"\n"
    if fmt == "md":
        return render_markdown(report).encode()
    if fmt == "html":
        from turnout.advisor.html import render_html  # needs the 'report' extra

        return render_html(report).encode()
    raise ValueError(f"unknown format {fmt!r}; use one of {', '.join(FORMATS)}")


def write_report(report: dict[str, Any], fmt: str, path: Path) -> None:
    """Write the report; the HTML page gets the JSON beside it too (same name, .json)."""
    data = render(report, fmt)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    if fmt == "html":
        path.with_suffix(".json").write_bytes(render(report, "json"))


# ------------------------------------------------------------------------------ markdown


def render_markdown(report: dict[str, Any]) -> str:
    lines = [
        "# turnout compare",
        "",
        f"{report['finished_at'][:19]} UTC · {report['source']} · workload "
        f"{report['settings']['workload']['source']} "
        f"({report['settings']['workload']['requests']} requests)"
        + (" · **stopped early**" if report["interrupted"] else ""),
        "",
        "## Verdict",
        "",
        *[f"- {line}" for line in report["verdict"]],
        "",
        "## Latency and throughput",
        "",
        *_results_table(report["results"]),
        "",
        RESULTS_NOTE,
        "",
        "## Cost",
        "",
        *_cost_lines(report["cost"]),
        "## Privacy exposure",
        "",
        *_privacy_lines(report["privacy"]),
        "",
    ]
    return "\n".join(lines)


RESULT_COLUMNS = (
    "target",
    "concurrency",
    "ok / sent",
    "TTFT p50",
    "TTFT p99",
    "TPOT p50",
    "E2E p50",
    "E2E p90",
    "E2E p99",
    "tok/s per request p50",
    "requests/s",
    "output tok/s",
    "errors",
)
RESULTS_NOTE = (
    "Seconds. TTFT: time to first token; TPOT: time per output token after the first; E2E: "
    "end-to-end latency; tok/s per request: output tokens over E2E; throughput over the wall "
    "time of each run."
)


def result_rows(results: list[dict[str, Any]]) -> list[list[str]]:
    """The cells of the results table, one row per target and concurrency."""
    rows = []
    for r in results:
        errors = ", ".join(f"{k} {n}" for k, n in r["errors"].items()) or "-"
        rows.append(
            [
                r["target"],
                str(r["concurrency"]),
                f"{r['completed']} / {r['requests']}",
                _q(r["ttft_s"], "p50"),
                _q(r["ttft_s"], "p99"),
                _q(r["tpot_s"], "p50"),
                _q(r["e2e_latency_s"], "p50"),
                _q(r["e2e_latency_s"], "p90"),
                _q(r["e2e_latency_s"], "p99"),
                _q(r["output_tokens_per_s_per_request"], "p50"),
                f"{r['throughput']['requests_per_s']:.3g}",
                f"{r['throughput']['output_tokens_per_s']:.3g}",
                errors,
            ]
        )
    return rows


def _results_table(results: list[dict[str, Any]]) -> list[str]:
    lines = ["| " + " | ".join(RESULT_COLUMNS) + " |", "|" + " --- |" * len(RESULT_COLUMNS)]
    lines += ["| " + " | ".join(row) + " |" for row in result_rows(results)]
    return lines


def _q(dist: dict[str, Any] | None, key: str) -> str:
    return "-" if dist is None else f"{dist[key]:.4g}"


def cost_entries(cost: dict[str, Any]) -> list[tuple[str, str, list[str]]]:
    """(heading, figures, assumptions) for each target and each break-even pair."""
    out = []
    for name, t in cost["targets"].items():
        figures = []
        if "cost_per_request_usd" in t:
            figures.append(f"{usd(t['cost_per_request_usd'])} per request")
        if t.get("cost_per_million_tokens_usd") is not None:
            figures.append(f"{usd(t['cost_per_million_tokens_usd'])} per million tokens")
        if "monthly_cost_usd" in t:
            figures.append(f"{usd(t['monthly_cost_usd'])} per month")
        text = ", ".join(figures) or t.get("note", "")
        out.append((f"{name} ({t['kind']})", text, list(t.get("assumptions", []))))
    for pair in cost["break_even"]:
        volume = pair["requests_per_month"]
        if volume is None:
            text = f"none: {pair['reason']}"
        else:
            text = (
                f"{count(volume)} requests/month (about {count(pair['tokens_per_month'])} "
                f"tokens), {pct(pair['utilization'])} of one unit's capacity"
                + ("" if pair["reachable"] else f"; not reachable: {pair['reason']}")
            )
        out.append((f"Break-even, {pair['local']} vs {pair['hosted']}", text, pair["assumptions"]))
    return out


def _cost_lines(cost: dict[str, Any]) -> list[str]:
    lines = []
    for heading, text, assumptions in cost_entries(cost):
        lines.append(f"**{heading}**: {text}")
        lines += [f"  - {a}" for a in assumptions]
        lines.append("")
    return lines


def _privacy_lines(privacy: dict[str, Any]) -> list[str]:
    lines = [
        f"{privacy['sensitive_requests']} of {privacy['workload_requests']} workload requests "
        "carry sensitive data."
    ]
    if privacy["by_category"]:
        lines += ["", "| category | requests |", "| --- | --- |"]
        lines += [f"| {k} | {n} |" for k, n in privacy["by_category"].items()]
    received = privacy["received_by_hosted_targets"]
    if received:
        lines += ["", "Measured requests with sensitive data that hosted targets received:"]
        lines += [f"- {name}: {n}" for name, n in received.items()]
    return lines
