"""``turnout advise``: the cost and latency analysis of ``turnout compare``, over the traffic
the gateway has logged instead of a workload sent on purpose.

For every public model, the requests its hosted deployments served in the window are scaled
to a month (730 hours) and priced at the price table; then, given a hardware profile and what
one unit of it sustains (output tokens per second, from ``--throughput`` or a compare report),
the report sizes the local hardware for that volume, prices it, and sets its latency beside
the API's. Every figure carries the assumptions it rests on.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import orjson

from turnout.advisor.analysis import hardware_lines
from turnout.advisor.cost import (
    HOURS_PER_MONTH,
    Hardware,
    break_even,
    capacity_per_month,
    cost_curve,
    plan_for_volume,
)
from turnout.advisor.metrics import Distribution
from turnout.advisor.money import count, pct, usd
from turnout.advisor.traffic import LoggedRequest
from turnout.exceptions import ConfigError
from turnout.pricing import PriceTable

__all__ = [
    "SCHEMA",
    "LocalProfile",
    "TrafficAggregator",
    "advise_report",
    "profile_from_compare",
]

SCHEMA = "turnout.advise/1"
DAYS_PER_MONTH = HOURS_PER_MONTH / 24
_CURVE_POINTS = 61


@dataclass(frozen=True, slots=True)
class LocalProfile:
    """What one unit of the local hardware sustains, and how fast it answers."""

    #: output tokens per second of one unit at its best concurrency
    output_tokens_per_s: float | None
    #: median end-to-end latency of a request (seconds), when known
    p50_latency: float | None
    source: str


def profile_from_compare(path: Path, target: str | None = None) -> LocalProfile:
    """The local target of a ``turnout compare`` JSON report: its best output throughput and
    its median latency at the lowest concurrency. Raises ConfigError."""
    try:
        report = orjson.loads(path.read_bytes())
        locals_ = [t["name"] for t in report["targets"] if t["kind"] == "local"]
        results = report["results"]
    except (OSError, orjson.JSONDecodeError, KeyError, TypeError) as exc:
        raise ConfigError(
            f"{path}: not a turnout compare JSON report ({type(exc).__name__}); write one "
            "with turnout compare --format json"
        ) from None
    name = target or (locals_[0] if locals_ else None)
    rows = [r for r in results if r["target"] == name and r["e2e_latency_s"]]
    if name is None or not rows:
        raise ConfigError(
            f"{path}: no measured local target{f' named {target!r}' if target else ''}; "
            f"local targets in it: {', '.join(locals_) or '(none)'}"
        )
    best = max(rows, key=lambda r: r["throughput"]["output_tokens_per_s"])
    lowest = min(rows, key=lambda r: r["concurrency"])
    return LocalProfile(
        best["throughput"]["output_tokens_per_s"],
        lowest["e2e_latency_s"]["p50"],
        f"{name} in {path} ({best['throughput']['output_tokens_per_s']:.4g} output tokens/s at "
        f"concurrency {best['concurrency']}; median latency at concurrency "
        f"{lowest['concurrency']})",
    )


# ------------------------------------------------------------------------------ aggregating


@dataclass(slots=True)
class _Side:
    """One model's traffic on one kind of deployment (hosted or local)."""

    requests: int = 0
    failed: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost: float = 0.0
    unpriced: int = 0
    latencies: list[float] = field(default_factory=list)
    ttfts: list[float] = field(default_factory=list)
    deployments: dict[str, int] = field(default_factory=dict)
    sensitive: int = 0
    categories: dict[str, int] = field(default_factory=dict)


class TrafficAggregator:
    """Consumes logged requests one at a time (a sink for :func:`read_traffic`)."""

    def __init__(self, prices: PriceTable, is_local: Callable[[str | None], bool]) -> None:
        self.prices = prices
        self.is_local = is_local
        self.models: dict[str, dict[str, _Side]] = {}
        self.first: datetime | None = None

    def add(self, rec: LoggedRequest) -> None:
        if self.first is None or rec.started_at < self.first:
            self.first = rec.started_at
        kind = "local" if self.is_local(rec.backend) else "hosted"
        side = self.models.setdefault(rec.model, {}).setdefault(kind, _Side())
        side.requests += 1
        if rec.privacy_categories:
            side.sensitive += 1
            for category in rec.privacy_categories:
                side.categories[str(category)] = side.categories.get(str(category), 0) + 1
        if not rec.ok:
            side.failed += 1
            return
        side.prompt_tokens += rec.prompt_tokens
        side.completion_tokens += rec.completion_tokens
        side.latencies.append(rec.latency)
        if rec.ttft is not None:
            side.ttfts.append(rec.ttft)
        if rec.deployment:
            side.deployments[rec.deployment] = side.deployments.get(rec.deployment, 0) + 1
        if kind == "hosted":
            self._price(side, rec)

    def _price(self, side: _Side, rec: LoggedRequest) -> None:
        if rec.cost is not None:
            side.cost += rec.cost
            return
        price = self.prices.lookup(rec.backend or "", rec.upstream_model or rec.model)
        if price is None:
            side.unpriced += 1
        else:
            side.cost += price.cost(rec.prompt_tokens, rec.completion_tokens)


# -------------------------------------------------------------------------------- the report


@dataclass(frozen=True, slots=True)
class Window:
    since: datetime
    until: datetime
    #: the first logged request, when later than ``since``
    first: datetime | None

    @property
    def days(self) -> float:
        start = max(self.since, self.first) if self.first else self.since
        return max((self.until - start).total_seconds() / 86400, 1 / 24)

    @property
    def month_scale(self) -> float:
        return DAYS_PER_MONTH / self.days


def advise_report(
    traffic: TrafficAggregator,
    window: Window,
    hardware: Hardware | None,
    profile: LocalProfile | None,
    max_utilization: float,
) -> dict[str, Any]:
    models = [
        _model(name, sides, window, hardware, profile, max_utilization)
        for name, sides in sorted(traffic.models.items())
    ]
    report: dict[str, Any] = {
        "schema": SCHEMA,
        "window": {
            "since": window.since.isoformat(),
            "until": window.until.isoformat(),
            "first_logged": window.first.isoformat() if window.first else None,
            "days": window.days,
            "month_scale": window.month_scale,
        },
        "hardware": None if hardware is None else {"name": hardware.name, **_hw(hardware)},
        "local_profile": None if profile is None else _profile(profile),
        "max_utilization": max_utilization,
        "models": models,
    }
    report["verdict"] = _verdict(report, hardware, profile)
    return report


def _hw(hardware: Hardware) -> dict[str, Any]:
    return {
        "fixed_monthly_usd": hardware.fixed_monthly,
        "energy_monthly_usd_busy_all_month": hardware.energy_monthly,
        "source": hardware.source,
        "as_of": hardware.as_of,
        "assumptions": hardware_lines(hardware),
    }


def _profile(profile: LocalProfile) -> dict[str, Any]:
    return {
        "output_tokens_per_s": profile.output_tokens_per_s,
        "p50_latency_s": profile.p50_latency,
        "source": profile.source,
    }


def _side_dict(side: _Side, scale: float) -> dict[str, Any]:
    ok = side.requests - side.failed
    latency = Distribution.of(side.latencies)
    ttft = Distribution.of(side.ttfts)
    return {
        "requests": side.requests,
        "failed": side.failed,
        "error_rate": side.failed / side.requests if side.requests else 0.0,
        "prompt_tokens": side.prompt_tokens,
        "completion_tokens": side.completion_tokens,
        "tokens_per_request": (side.prompt_tokens + side.completion_tokens) / ok if ok else 0.0,
        "deployments": side.deployments,
        "latency_s": latency.as_dict() if latency else None,
        "ttft_s": ttft.as_dict() if ttft else None,
        "cost_usd": side.cost,
        "unpriced_requests": side.unpriced,
        "per_month": {
            "requests": side.requests * scale,
            "tokens": (side.prompt_tokens + side.completion_tokens) * scale,
            "cost_usd": side.cost * scale,
        },
        "sensitive_requests": side.sensitive,
        "categories": dict(sorted(side.categories.items())),
    }


def _model(
    name: str,
    sides: dict[str, _Side],
    window: Window,
    hardware: Hardware | None,
    profile: LocalProfile | None,
    max_utilization: float,
) -> dict[str, Any]:
    out: dict[str, Any] = {"model": name}
    for kind, side in sides.items():
        out[kind] = _side_dict(side, window.month_scale)
    hosted = sides.get("hosted")
    if hosted is not None and hardware is not None and profile is not None:
        local_p50 = _local_p50(out, profile)
        out["local_option"] = _local_option(
            hosted, window, hardware, profile, max_utilization, local_p50
        )
    return out


def _local_p50(model: dict[str, Any], profile: LocalProfile) -> tuple[float, str] | None:
    logged = (model.get("local") or {}).get("latency_s")
    if logged:
        return logged["p50"], "this model's own local traffic in the window"
    if profile.p50_latency is not None:
        return profile.p50_latency, profile.source
    return None


def _local_option(
    hosted: _Side,
    window: Window,
    hardware: Hardware,
    profile: LocalProfile,
    max_utilization: float,
    local_p50: tuple[float, str] | None,
) -> dict[str, Any]:
    ok = hosted.requests - hosted.failed
    if not ok or not profile.output_tokens_per_s or hosted.completion_tokens == 0:
        return {"note": "no completed hosted requests with output tokens to size hardware for"}
    completion = hosted.completion_tokens / ok
    tokens = (hosted.prompt_tokens + hosted.completion_tokens) / ok
    rps = profile.output_tokens_per_s / completion
    volume = ok * window.month_scale
    plan = plan_for_volume(hardware, rps, volume, max_utilization)
    assert plan is not None  # rps and max_utilization are positive
    hosted_month = hosted.cost * window.month_scale
    per_request = hosted.cost / ok
    even = break_even(hardware, per_request, rps)
    span = max(2.5 * (even.requests_per_month or 0) if even.reachable else 0, 1.5 * volume)
    api_p50 = Distribution.of(hosted.latencies)
    out: dict[str, Any] = {
        "requests_per_s_per_unit": rps,
        "units": plan.units,
        "utilization": plan.utilization,
        "monthly_cost_usd": plan.monthly_cost,
        "hosted_monthly_cost_usd": hosted_month,
        "savings_usd_per_month": hosted_month - plan.monthly_cost,
        "break_even_requests_per_month": even.requests_per_month,
        "break_even_tokens_per_day": (
            even.requests_per_month * tokens / DAYS_PER_MONTH if even.requests_per_month else None
        ),
        "break_even_reachable": even.reachable,
        "break_even_reason": even.reason,
        "local_p50_latency_s": local_p50[0] if local_p50 else None,
        "api_p50_latency_s": api_p50.p50 if api_p50 else None,
        "latency_ratio": (local_p50[0] / api_p50.p50) if local_p50 and api_p50 else None,
        "current_requests_per_month": volume,
        "curve": [
            [p.requests_per_month, p.hosted, p.local, p.units]
            for p in cost_curve(hardware, per_request, rps, span, _CURVE_POINTS)
        ],
    }
    out["assumptions"] = [
        f"volume: {count(ok)} completed hosted requests in {window.days:.3g} days, scaled to "
        f"a month of {DAYS_PER_MONTH:.4g} days = {count(volume)} requests",
        f"hosted cost: {usd(hosted_month)}/month at the price table's list prices"
        + (
            f" ({hosted.unpriced} requests had no price and count as free)"
            if hosted.unpriced
            else ""
        ),
        f"one unit sustains {profile.output_tokens_per_s:.4g} output tokens/s ({profile.source})"
        f" = {rps:.3g} requests/s at {completion:.0f} output tokens per request "
        f"= {count(capacity_per_month(rps))} requests/month",
        f"units sized to be busy at most {pct(max_utilization)} of the time: {plan.units}, "
        f"busy {pct(plan.utilization)} on average",
        *hardware_lines(hardware, plan.utilization),
        "local latency: "
        + (f"median {local_p50[0]:.3g} s from {local_p50[1]}" if local_p50 else "unknown"),
        "token counts are the hosted API's; a local model's tokenizer counts the same text "
        "somewhat differently",
    ]
    return out


# -------------------------------------------------------------------------------- verdict


def _verdict(
    report: dict[str, Any], hardware: Hardware | None, profile: LocalProfile | None
) -> list[str]:
    models = report["models"]
    if not models:
        return ["The request log holds no chat or completion requests in this window."]
    days = report["window"]["days"]
    lines = []
    for model in models:
        hosted = model.get("hosted")
        if hosted is None:
            lines.append(f"{model['model']}: all its traffic already runs on local hardware.")
            continue
        lines.append(_model_sentence(model, hosted, days, hardware))
        if hosted["sensitive_requests"]:
            lines.append(
                f"{model['model']}: {_requests(hosted['sensitive_requests'])} carrying sensitive "
                f"data ({', '.join(f'{k} {n}' for k, n in hosted['categories'].items())}) "
                "went to hosted deployments."
            )
    if hardware is None:
        lines.append("Give --hardware (a preset or a profile file) to price local hardware.")
    elif profile is None or not profile.output_tokens_per_s:
        lines.append(
            "Give --throughput (output tokens/s of one unit) or --compare REPORT.json (from "
            "turnout compare on that hardware) to size the local hardware."
        )
    return lines


def _requests(n: int) -> str:
    return f"{n} request" if n == 1 else f"{n} requests"


def _model_sentence(
    model: dict[str, Any], hosted: dict[str, Any], days: float, hardware: Hardware | None
) -> str:
    per_day = hosted["per_month"]["tokens"] / DAYS_PER_MONTH
    head = (
        f"{model['model']}: at the last {days:.3g} days' {count(per_day)} tokens/day "
        f"({count(hosted['per_month']['requests'] / DAYS_PER_MONTH)} requests/day, "
        f"{usd(hosted['per_month']['cost_usd'])}/month on hosted APIs)"
    )
    option = model.get("local_option")
    if hardware is None or option is None or "units" not in option:
        return head + "."
    units = f"{option['units']} × {hardware.name}" if option["units"] > 1 else hardware.name
    savings = option["savings_usd_per_month"]
    money = (
        f"would save {usd(savings)}/month"
        if savings > 0
        else f"would cost {usd(-savings)}/month more"
    )
    text = f"{head}, {units} {money} (busy {pct(option['utilization'])})"
    if option["latency_ratio"] is not None:
        text += f" at {pct(option['latency_ratio'])} of the API's median latency"
    text += "."
    tokens = option["break_even_tokens_per_day"]
    if tokens and option["break_even_reachable"]:
        text += f" Local pays off above {count(tokens)} tokens/day."
    elif option["break_even_reason"]:
        text += f" Local never pays off here: {option['break_even_reason']}."
    return text
