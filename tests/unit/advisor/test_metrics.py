"""Per-request figures and their statistics, as vllm bench serve defines them."""

from __future__ import annotations

import pytest

from turnout.advisor.metrics import Distribution, Outcome, Sample, percentile, summarize
from turnout.advisor.timing import StreamClock


def test_percentile_interpolates_between_ranks_like_numpy() -> None:
    data = [1.0, 2.0, 3.0, 4.0]
    assert percentile(data, 50) == 2.5
    assert percentile(data, 90) == pytest.approx(3.7)
    assert percentile(data, 99) == pytest.approx(3.97)
    assert percentile([5.0], 99) == 5.0
    with pytest.raises(ValueError):
        percentile([], 50)


def test_distribution_skips_missing_values() -> None:
    dist = Distribution.of([0.3, None, 0.1, 0.2])
    assert dist is not None
    assert (dist.count, dist.p50, dist.max) == (3, 0.2, 0.3)
    assert dist.mean == pytest.approx(0.2)
    assert Distribution.of([None]) is None


def test_tpot_and_output_rate() -> None:
    outcome = Outcome(ok=True, latency=1.0, ttft=0.1, completion_tokens=10)
    assert outcome.tpot == pytest.approx(0.1)  # (1.0 - 0.1) / 9
    assert outcome.output_rate == 10.0
    assert Outcome(ok=True, latency=1.0, ttft=0.1, completion_tokens=1).tpot is None
    assert Outcome(ok=True, latency=1.0, completion_tokens=5).tpot is None  # no stream
    assert Outcome(ok=False, latency=0.5, error="upstream_timeout").output_rate is None


def sample(outcome: Outcome, cost: float | None = None) -> Sample:
    return Sample("t", 2, 0, 0, 0.0, outcome, cost)


def test_summarize_counts_throughput_errors_and_cost() -> None:
    samples = [
        sample(Outcome(True, 1.0, ttft=0.2, prompt_tokens=10, completion_tokens=5), 0.001),
        sample(Outcome(True, 2.0, ttft=0.4, prompt_tokens=20, completion_tokens=15), 0.003),
        sample(Outcome(False, 0.1, error="rate_limit_exceeded")),
        sample(Outcome(False, 3.0, error="upstream_timeout")),
        sample(Outcome(False, 0.1, error="rate_limit_exceeded")),
    ]
    stats = summarize("t", 2, samples, duration=4.0)
    assert (stats.requests, stats.completed, stats.failed) == (5, 2, 3)
    assert stats.error_rate == 0.6
    assert stats.errors == {"rate_limit_exceeded": 2, "upstream_timeout": 1}
    assert stats.requests_per_s == 0.5
    assert stats.output_tokens_per_s == 5.0  # 20 output tokens / 4 s
    assert stats.total_tokens_per_s == 12.5
    assert stats.cost == pytest.approx(0.004)
    assert stats.e2e_latency is not None and stats.e2e_latency.p50 == 1.5  # failures left out
    data = stats.as_dict()
    assert data["throughput"] == {
        "requests_per_s": 0.5,
        "output_tokens_per_s": 5.0,
        "total_tokens_per_s": 12.5,
    }
    assert data["ttft_s"]["p50"] == pytest.approx(0.3)


def test_stream_clock_times_the_first_chunk_with_output() -> None:
    clock = StreamClock()
    t0 = clock.t0
    role = {"choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}}]}
    text = {"choices": [{"index": 0, "delta": {"content": "Hi"}}]}
    usage = {"choices": [], "usage": {"prompt_tokens": 7, "completion_tokens": 3}}
    clock.chunk(role, t0 + 0.05)
    clock.chunk(text, t0 + 0.2)
    clock.chunk(text, t0 + 0.25)
    clock.chunk(text, t0 + 0.35)
    clock.chunk(usage, t0 + 0.36)
    outcome = clock.done("fake/model")
    assert outcome.ttft == pytest.approx(0.2)
    assert outcome.itl == pytest.approx([0.05, 0.1])
    assert (outcome.prompt_tokens, outcome.completion_tokens) == (7, 3)
    assert outcome.deployment == "fake/model" and outcome.ok
    failed = StreamClock().failed("upstream_error")
    assert not failed.ok and failed.error == "upstream_error" and failed.ttft is None
