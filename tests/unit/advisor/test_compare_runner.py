"""The comparison runner with scripted targets (test doubles of the Target interface): the
order of warm-ups and passes, concurrency, stopping early, and the report it leads to."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest

from turnout.advisor.compare import Comparison, Settings
from turnout.advisor.cost import Hardware
from turnout.advisor.metrics import Outcome, Sample
from turnout.advisor.report import build_report, render
from turnout.advisor.targets import Source, Target
from turnout.advisor.workload import builtin_workload
from turnout.policies.privacy import Detector
from turnout.pricing import Price, PriceTable


class ScriptedTarget(Target):
    """Answers after ``delay`` seconds with fixed usage; every ``fail_every``-th request fails."""

    def __init__(self, name: str, deployment: str, delay: float, fail_every: int = 0) -> None:
        super().__init__(name)
        self.deployment = deployment
        self.delay = delay
        self.fail_every = fail_every
        self.sent: list[dict[str, Any]] = []
        self.in_flight = 0
        self.peak = 0

    async def send(self, body: dict[str, Any], stream: bool) -> Outcome:
        self.sent.append(body)
        self.in_flight += 1
        self.peak = max(self.peak, self.in_flight)
        try:
            await asyncio.sleep(self.delay)
        finally:
            self.in_flight -= 1
        if self.fail_every and len(self.sent) % self.fail_every == 0:
            return Outcome(False, self.delay, error="upstream_timeout")
        return Outcome(
            True,
            self.delay,
            ttft=self.delay / 2,
            prompt_tokens=100,
            completion_tokens=20,
            deployment=self.deployment,
        )


class ScriptedSource(Source):
    def __init__(self) -> None:
        super().__init__(PriceTable({"api-model": Price(1.0, 10.0)}))

    async def start(self) -> None: ...

    async def aclose(self) -> None: ...

    async def target(self, model: str) -> Target:
        raise NotImplementedError

    def local_backend(self, backend: str) -> bool:
        return backend == "local"


class Recorder:
    def __init__(self) -> None:
        self.total = 0
        self.phases: list[tuple[str, int, int, bool]] = []
        self.samples: list[Sample] = []

    def begin(self, total: int) -> None:
        self.total = total

    def phase(self, target: str, concurrency: int, repeat: int, warmup: bool) -> None:
        self.phases.append((target, concurrency, repeat, warmup))

    def advance(self, sample: Sample) -> None:
        self.samples.append(sample)


async def test_levels_warmups_repeats_and_costs() -> None:
    local = ScriptedTarget("small", "local/small", 0.01)
    api = ScriptedTarget("api", "cloud/api-model", 0.02, fail_every=5)
    progress = Recorder()
    settings = Settings(concurrency=(1, 3), requests=6, repeats=2, warmup=1)
    source = ScriptedSource()
    comparison = Comparison(source, [local, api], builtin_workload(), settings, progress)
    result = await comparison.run()

    assert not result.interrupted
    assert progress.total == 2 * 2 * 2 * 6
    assert progress.phases[:4] == [
        ("small", 1, 0, True),
        ("api", 1, 0, True),
        ("small", 1, 0, False),
        ("api", 1, 0, False),
    ]
    assert len(local.sent) == 2 * (1 + 2 * 6)  # per level: warm-up + 2 passes
    assert local.peak == 3
    assert len(progress.samples) == 48 == len(result.samples())

    kinds = {t.name: t.kind for t in result.targets}
    assert kinds == {"small": "local", "api": "hosted"}
    stats = {(s.target, s.concurrency): s for s in result.stats()}
    api_c3 = stats[("api", 3)]
    assert api_c3.requests == 12 and api_c3.failed == api_c3.errors["upstream_timeout"] > 0
    assert api_c3.cost == pytest.approx(api_c3.completed * (100 * 1 + 20 * 10) / 1e6)
    assert stats[("small", 1)].cost is None

    report = build_report(
        result,
        source="scripted",
        hardware=Hardware("gpu", hourly_price=1.0),
        utilization=0.5,
        detector=Detector(),
    )
    data = json.loads(render(report, "json"))
    assert data["schema"] == "turnout.compare/1"
    [pair] = data["cost"]["break_even"]
    assert pair["local"] == "small" and pair["hosted"] == "api"
    assert data["cost"]["targets"]["api"]["cost_per_request_usd"] == pytest.approx(0.0003)
    assert any("failed" in line and "upstream_timeout" in line for line in data["verdict"])
    markdown = render(report, "md").decode()
    assert "## Verdict" in markdown and "| small | 1 | 12 / 12 |" in markdown
    assert "Break-even, small vs api" in markdown


async def test_stop_keeps_what_finished_and_abandons_the_rest() -> None:
    slow = ScriptedTarget("slow", "cloud/api-model", 0.05)
    progress = Recorder()
    stop = asyncio.Event()
    settings = Settings(concurrency=(2, 4), requests=1000, warmup=0)

    async def press_ctrl_c() -> None:
        while len(progress.samples) < 5:
            await asyncio.sleep(0.01)
        stop.set()

    comparison = Comparison(ScriptedSource(), [slow], builtin_workload(), settings, progress)
    presser = asyncio.create_task(press_ctrl_c())
    result = await asyncio.wait_for(comparison.run(stop), timeout=10)
    await presser
    assert result.interrupted
    [run] = result.runs
    assert not run.complete and run.concurrency == 2
    assert 5 <= len(run.samples) < 1000
    assert len(slow.sent) <= len(run.samples) + 2  # at most the two in flight were abandoned
    assert slow.in_flight == 0
    [stats] = result.stats()
    assert stats.completed == len(run.samples)
    report = build_report(result, source="s", hardware=None, utilization=0.5, detector=Detector())
    assert report["verdict"][0].startswith("The run was stopped early")
    assert "**stopped early**" in render(report, "md").decode()


async def test_html_report_embeds_plotly_and_the_numbers() -> None:
    pytest.importorskip("plotly", reason="the report extra is not installed")
    local = ScriptedTarget("small", "local/small", 0.001)
    api = ScriptedTarget("api", "cloud/api-model", 0.001)
    settings = Settings(concurrency=(1, 2), requests=4, warmup=0)
    result = await Comparison(ScriptedSource(), [local, api], builtin_workload(), settings).run()
    report = build_report(
        result,
        source="scripted </script> <b>",
        hardware=Hardware("gpu", hourly_price=0.01),
        utilization=0.5,
        detector=Detector(),
    )
    page = render(report, "html").decode()
    assert "Plotly" in page and "<script src" not in page
    for anchor in ("latency", "ttft", "throughput", "cost-0"):
        assert f'id="chart-{anchor}"' in page
    assert "scripted &lt;/script&gt; &lt;b&gt;" in page  # escaped in the text
    raw = page.split('id="turnout-report">')[1].split("</script>")[0]
    assert json.loads(raw.replace("<\\/", "</"))["source"] == "scripted </script> <b>"
