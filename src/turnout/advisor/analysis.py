"""The cost section of a comparison report: what each target costs per request and per million
tokens, and the break-even volume of each local target against each hosted one, with the
assumptions behind every figure written next to it (see :mod:`turnout.advisor.cost`)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict
from typing import Any

from turnout.advisor.compare import TargetInfo
from turnout.advisor.cost import (
    HOURS_PER_MONTH,
    Hardware,
    break_even,
    capacity_per_month,
    cost_curve,
    local_at_utilization,
    per_million,
)
from turnout.advisor.metrics import LevelStats, Sample
from turnout.advisor.money import count, pct, usd
from turnout.pricing import PRICES_AS_OF, PriceTable

__all__ = ["cost_section", "hardware_lines"]

_BUILTIN = PriceTable()
_CURVE_POINTS = 61


def cost_section(
    targets: Sequence[TargetInfo],
    stats: Sequence[LevelStats],
    samples: Sequence[Sample],
    hardware: Hardware | None,
    utilization: float,
) -> dict[str, Any]:
    per_target: dict[str, dict[str, Any]] = {}
    for info in targets:
        mine = [s for s in samples if s.target == info.name and s.outcome.ok]
        if info.kind == "hosted":
            per_target[info.name] = _hosted(info, mine)
        elif info.kind == "local":
            levels = [st for st in stats if st.target == info.name]
            per_target[info.name] = _local(mine, levels, hardware, utilization)
        else:
            per_target[info.name] = {
                "kind": info.kind,
                "note": "not priced: it was served by both local and hosted deployments"
                if info.kind == "mixed"
                else "not priced: no request completed",
            }
    return {
        "hardware": _hardware_dict(hardware),
        "utilization": utilization,
        "hours_per_month": HOURS_PER_MONTH,
        "targets": per_target,
        "break_even": _break_evens(per_target, hardware) if hardware is not None else [],
    }


# --------------------------------------------------------------------------------- hosted


def _hosted(info: TargetInfo, samples: Sequence[Sample]) -> dict[str, Any]:
    priced = [s for s in samples if s.cost is not None]
    out: dict[str, Any] = {"kind": "hosted", "requests": len(samples), "priced": len(priced)}
    if not priced:
        missing = ", ".join(d for d, p in info.prices.items() if p is None) or info.name
        out["note"] = (
            f"no token price for {missing}: add it under prices: in the configuration "
            "(US dollars per million input and output tokens)"
        )
        return out
    cost = sum(s.cost or 0.0 for s in priced)
    prompt = sum(s.outcome.prompt_tokens for s in priced) / len(priced)
    completion = sum(s.outcome.completion_tokens for s in priced) / len(priced)
    per_request = cost / len(priced)
    out.update(
        cost_per_request_usd=per_request,
        cost_per_million_tokens_usd=per_million(per_request, prompt + completion),
        prompt_tokens_per_request=prompt,
        completion_tokens_per_request=completion,
        assumptions=[
            *(_price_line(d, p) for d, p in info.prices.items()),
            f"mean of {len(priced)} completed requests of this workload: {prompt:.0f} input "
            f"+ {completion:.0f} output tokens each, as the API counted them",
            "list prices; batch, cached-input and volume discounts are not applied",
        ],
    )
    return out


def _price_line(deployment: str, price: tuple[float, float] | None) -> str:
    if price is None:
        return f"{deployment}: no price known (requests to it are not counted in the cost)"
    backend, _, model = deployment.partition("/")
    builtin = _BUILTIN.lookup(backend, model)
    where = (
        f"built-in list price as of {PRICES_AS_OF}"
        if builtin is not None and (builtin.input, builtin.output) == price
        else "price from the configuration (prices:)"
    )
    return (
        f"{deployment}: ${price[0]:g} per million input tokens, ${price[1]:g} per million "
        f"output tokens ({where})"
    )


# ---------------------------------------------------------------------------------- local


def _local(
    samples: Sequence[Sample],
    levels: Sequence[LevelStats],
    hardware: Hardware | None,
    utilization: float,
) -> dict[str, Any]:
    best = max(levels, key=lambda st: st.requests_per_s, default=None)
    if best is None or best.requests_per_s <= 0 or not samples:
        return {"kind": "local", "note": "not priced: no request completed"}
    tokens = sum(s.outcome.prompt_tokens + s.outcome.completion_tokens for s in samples)
    tokens_per_request = tokens / len(samples)
    out: dict[str, Any] = {
        "kind": "local",
        "requests_per_s": best.requests_per_s,
        "output_tokens_per_s": best.output_tokens_per_s,
        "concurrency": best.concurrency,
        "tokens_per_request": tokens_per_request,
        "capacity_requests_per_month": capacity_per_month(best.requests_per_s),
    }
    throughput = (
        f"throughput: {best.requests_per_s:.3g} requests/s ({best.output_tokens_per_s:.3g} "
        f"output tokens/s) measured at concurrency {best.concurrency}, the best level of this "
        f"run, = {count(out['capacity_requests_per_month'])} requests/month busy all the time"
    )
    if hardware is None:
        out["note"] = "not priced: give --hardware (a preset or a profile file)"
        out["assumptions"] = [throughput]
        return out
    estimate = local_at_utilization(hardware, best.requests_per_s, utilization)
    assert estimate is not None  # throughput and utilization are positive
    out.update(
        monthly_cost_usd=estimate.monthly_cost,
        requests_per_month=estimate.requests_per_month,
        cost_per_request_usd=estimate.cost_per_request,
        cost_per_million_tokens_usd=per_million(estimate.cost_per_request, tokens_per_request),
        assumptions=[
            *hardware_lines(hardware, utilization),
            throughput,
            f"assumed utilization {pct(utilization)}: "
            f"{count(estimate.requests_per_month)} requests/month for "
            f"{usd(estimate.monthly_cost)}/month",
            f"{tokens_per_request:.0f} tokens per request (input + output, as this model counts "
            "them) for the cost per million tokens",
            "the hardware profile describes the machine that served this target in this run",
        ],
    )
    return out


def hardware_lines(hardware: Hardware, utilization: float | None = None) -> list[str]:
    """The hardware's monthly cost, spelled out with its sources."""
    lines = []
    source = f" (source: {hardware.source}, as of {hardware.as_of})" if hardware.source else ""
    if hardware.hourly_price is not None:
        lines.append(
            f"{hardware.name}: ${hardware.hourly_price:g}/hour × {HOURS_PER_MONTH:g} hours/month "
            f"= {usd(hardware.hourly_price * HOURS_PER_MONTH)}/month, billed busy or idle"
            f"{source}"
        )
    else:
        lines.append(
            f"{hardware.name}: {usd(hardware.purchase_price or 0.0)} spread over "
            f"{hardware.lifetime_months:g} months = "
            f"{usd((hardware.purchase_price or 0.0) / hardware.lifetime_months)}/month{source}"
        )
        energy = (
            f"energy: {hardware.power_kw:g} kW × {HOURS_PER_MONTH:g} hours × "
            f"${hardware.electricity_price:g}/kWh = {usd(hardware.energy_monthly)}/month "
            "when busy all the time"
        )
        if utilization is not None:
            energy += f", {usd(hardware.energy_monthly * utilization)} at {pct(utilization)}"
        lines.append(energy + "; idle power is not counted")
    if hardware.other_monthly:
        lines.append(f"other costs: {usd(hardware.other_monthly)}/month")
    return lines


def _hardware_dict(hardware: Hardware | None) -> dict[str, Any] | None:
    if hardware is None:
        return None
    return {
        **asdict(hardware),
        "fixed_monthly_usd": hardware.fixed_monthly,
        "energy_monthly_usd_busy_all_month": hardware.energy_monthly,
    }


# ----------------------------------------------------------------------------- break-even


def _break_evens(per_target: dict[str, dict[str, Any]], hardware: Hardware) -> list[dict[str, Any]]:
    out = []
    for local_name, local in per_target.items():
        if local.get("kind") != "local" or "requests_per_s" not in local:
            continue
        for hosted_name, hosted in per_target.items():
            if hosted.get("kind") == "hosted" and "cost_per_request_usd" in hosted:
                out.append(_pair(local_name, local, hosted_name, hosted, hardware))
    return out


def _pair(
    local_name: str,
    local: dict[str, Any],
    hosted_name: str,
    hosted: dict[str, Any],
    hardware: Hardware,
) -> dict[str, Any]:
    rps = float(local["requests_per_s"])
    per_request = float(hosted["cost_per_request_usd"])
    tokens = hosted["prompt_tokens_per_request"] + hosted["completion_tokens_per_request"]
    result = break_even(hardware, per_request, rps)
    capacity = capacity_per_month(rps)
    volume = result.requests_per_month
    span = 2.5 * volume if result.reachable and volume else 1.5 * capacity
    energy = hardware.energy_monthly / capacity
    assumptions = [
        f"{hosted_name}: {usd(per_request)} per request of this workload (above)",
        f"{local_name}: {usd(hardware.fixed_monthly)}/month fixed"
        + (f" + {usd(energy)} energy per request" if energy else "")
        + f", at most {count(capacity)} requests/month per unit",
        "break-even = fixed monthly cost / (hosted cost per request - local energy per request)",
        f"tokens: {tokens:.0f} per request, as {hosted_name} counted them",
    ]
    return {
        "local": local_name,
        "hosted": hosted_name,
        "requests_per_month": volume,
        "tokens_per_month": volume * tokens if volume is not None else None,
        "utilization": result.utilization,
        "reachable": result.reachable,
        "reason": result.reason,
        "assumptions": assumptions,
        "curve": [
            [p.requests_per_month, p.hosted, p.local, p.units]
            for p in cost_curve(hardware, per_request, rps, span, _CURVE_POINTS)
        ],
    }
