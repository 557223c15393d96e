"""The plain-language verdict of a comparison report: a few sentences a decision maker can
read without the tables, each drawn from the report's own numbers."""

from __future__ import annotations

from typing import Any

from turnout.advisor.money import count, pct, usd
from turnout.config import DEMO_GGUF_NAME, DEMO_NAME

__all__ = ["verdict"]


def verdict(report: dict[str, Any]) -> list[str]:
    lines: list[str] = []
    if report.get("interrupted"):
        lines.append(
            "The run was stopped early: these figures cover only the requests that finished "
            "before it stopped."
        )
    lines += _latency(report["results"])
    lines += _throughput(report["results"])
    lines += _errors(report["results"])
    lines += _cost(report["cost"])
    lines.append(_privacy(report["privacy"]))
    demos = [t["name"] for t in report["targets"] if _is_demo(t)]
    if demos:
        lines.append(
            f"{', '.join(demos)} is turnout's demo model (random weights, it writes nonsense): "
            "its speed shows how the comparison works, not what a real model would do."
        )
    return lines


def _is_demo(target: dict[str, Any]) -> bool:
    names = {DEMO_NAME, DEMO_GGUF_NAME}
    deployments = {d.partition("/")[2] for d in target.get("deployments", {})}
    return target["name"] in names or bool(deployments & names)


def _latency(results: list[dict[str, Any]]) -> list[str]:
    ok = [r for r in results if r["e2e_latency_s"]]
    if not ok:
        return ["No request completed, so there is nothing to compare."]
    level = min(r["concurrency"] for r in ok)
    rows = sorted(
        (r for r in ok if r["concurrency"] == level), key=lambda r: r["e2e_latency_s"]["p50"]
    )
    parts = [_latency_part(r) for r in rows]
    sentence = f"At concurrency {level}, " + "; ".join(parts) + "."
    if len(rows) > 1:
        fast, slow = rows[0], rows[-1]
        ratio = slow["e2e_latency_s"]["p50"] / max(fast["e2e_latency_s"]["p50"], 1e-9)
        sentence += (
            f" {fast['target']} answered {ratio:.2g}× as fast as {slow['target']} at the median."
        )
    return [sentence]


def _latency_part(row: dict[str, Any]) -> str:
    e2e = row["e2e_latency_s"]
    text = f"{row['target']} took {_s(e2e['p50'])} at the median (p99 {_s(e2e['p99'])})"
    if row["ttft_s"]:
        text += f", first token after {_s(row['ttft_s']['p50'])}"
    return text


def _throughput(results: list[dict[str, Any]]) -> list[str]:
    best: dict[str, dict[str, Any]] = {}
    for r in results:
        rate = r["throughput"]["requests_per_s"] or 0.0
        if r["target"] not in best or rate > best[r["target"]]["throughput"]["requests_per_s"]:
            best[r["target"]] = r
    if len({r["concurrency"] for r in results}) < 2 or not best:
        return []
    parts = [
        f"{name} {r['throughput']['requests_per_s']:.3g} requests/s "
        f"({r['throughput']['output_tokens_per_s']:.3g} output tokens/s) at concurrency "
        f"{r['concurrency']}"
        for name, r in best.items()
    ]
    return ["Best throughput measured: " + "; ".join(parts) + "."]


def _errors(results: list[dict[str, Any]]) -> list[str]:
    totals: dict[str, list[int]] = {}
    kinds: dict[str, dict[str, int]] = {}
    for r in results:
        total = totals.setdefault(r["target"], [0, 0])
        total[0] += r["failed"]
        total[1] += r["requests"]
        for kind, n in r["errors"].items():
            kinds.setdefault(r["target"], {})[kind] = kinds.get(r["target"], {}).get(kind, 0) + n
    lines = []
    for target, (failed, requests) in totals.items():
        if failed:
            detail = ", ".join(f"{k} {n}" for k, n in sorted(kinds[target].items()))
            lines.append(
                f"{target} failed {failed} of {requests} requests ({pct(failed / requests)}): "
                f"{detail}."
            )
    return lines


def _cost(cost: dict[str, Any]) -> list[str]:
    if cost["hardware"] is None:
        if any(t.get("kind") == "local" for t in cost["targets"].values()):
            return [
                "Local hardware was not priced: give --hardware (a preset such as l40s-aws, "
                "or a profile file) for the cost per request and the break-even volume."
            ]
        return []
    lines = []
    for pair in cost["break_even"]:
        lines.append(_break_even_sentence(pair, cost))
    if not cost["break_even"]:
        lines.append(
            "No break-even volume: it needs a local target and a hosted target with a known "
            "price that both completed requests."
        )
    return lines


def _break_even_sentence(pair: dict[str, Any], cost: dict[str, Any]) -> str:
    hardware = cost["hardware"]
    hosted = cost["targets"][pair["hosted"]]
    extra = " busy or idle" if hardware["hourly_price"] else " plus energy while busy"
    head = (
        f"On {hardware['name']}, {pair['local']} costs {usd(hardware['fixed_monthly_usd'])} "
        f"a month{extra}; {pair['hosted']} costs {usd(hosted['cost_per_request_usd'])} "
        "per request of this workload."
    )
    volume = pair["requests_per_month"]
    if volume is None:
        return f"{head} Local never becomes cheaper: {pair['reason']}."
    if not pair["reachable"]:
        return (
            f"{head} Local would break even at {count(volume)} requests a month, "
            f"{pct(pair['utilization'])} of what one unit serves at the measured throughput: "
            "the API stays cheaper at any volume unless the local throughput improves."
        )
    daily = pair["tokens_per_month"] / 30.4
    return (
        f"{head} Local becomes cheaper above {count(volume)} requests a month "
        f"(about {count(pair['tokens_per_month'])} tokens, {count(daily)} a day), with the "
        f"hardware busy {pct(pair['utilization'])} of the time; below that, the API is cheaper."
    )


def _privacy(privacy: dict[str, Any]) -> str:
    total, sensitive = privacy["workload_requests"], privacy["sensitive_requests"]
    if not sensitive:
        return (
            f"None of the {total} workload requests carried sensitive data that the privacy "
            "detector recognises."
        )
    categories = ", ".join(f"{k} {n}" for k, n in privacy["by_category"].items())
    text = (
        f"{sensitive} of the {total} workload requests ({pct(privacy['share'])}) carry "
        f"sensitive data ({categories})."
    )
    received = {k: n for k, n in privacy["received_by_hosted_targets"].items() if n}
    if received:
        sent = "; ".join(f"{name} received {n}" for name, n in received.items())
        text += f" In this run {sent}; served locally they would not leave your hardware."
    return text


def _s(seconds: float) -> str:
    return f"{seconds * 1000:.0f} ms" if seconds < 1 else f"{seconds:.2f} s"
