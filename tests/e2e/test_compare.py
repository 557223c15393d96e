"""``turnout compare`` end to end: the demo model (in-process) against a fake hosted API with a
hosted API's latency and list prices. The JSON's numbers are checked against what the fake
upstream logged and against costs computed by hand; the HTML report is opened in headless
Chromium without network and its screenshot must show the charts; Ctrl-C stops a run and
still writes what was measured."""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.e2e.support import MASTER_KEY, Gateway, gateway_env
from tests.fakes import FakeUpstream
from tests.fakes.upstream import RecordedRequest

pytest.importorskip("transformers", reason="the demo model needs the transformers extra")

HOSTED = "claude-sonnet-4-5"
LOCAL = "local-demo"
#: Anthropic's list price for Claude Sonnet 4.5, USD per million input / output tokens
PRICE_IN, PRICE_OUT = 3.0, 15.0
#: a rented GPU at $0.50 an hour: 0.5 × 730 = $365 a month
HOURLY = 0.5
MAX_TOKENS = 4
REQUESTS = 3
LEVELS = (1, 2)
WARMUP = 1
UTILIZATION = 0.5
FIRST_BYTE_DELAY = 0.08
TOKEN_DELAY = 0.005
WORKLOAD = [
    {
        "messages": [
            {"role": "system", "content": "You answer briefly."},
            {"role": "user", "content": "What is the capital of France and why is it famous?"},
        ],
        "max_tokens": 16,
    },
    {
        "messages": [
            {
                "role": "user",
                "content": "Summarise this e-mail from jane.doe@example.com: the shipment of "
                "order 1182 arrived damaged, please send a replacement before Friday.",
            }
        ]
    },
    {
        "messages": [
            {"role": "user", "content": "Write a Python one-liner that reverses a string s."}
        ],
        "temperature": 0,
    },
]


@dataclass
class CompareRun:
    proc: subprocess.CompletedProcess[str]
    report: dict[str, Any]
    html: Path
    #: the chat requests the fake hosted API received, in arrival order
    hosted_requests: list[RecordedRequest]


def compare_cmd(config: Path, *args: str) -> list[str]:
    return [sys.executable, "-m", "turnout", "compare", "--config", str(config), *args]


def write_config(workdir: Path, upstream: FakeUpstream, *, demo: bool) -> Path:
    config: dict[str, Any] = {
        "local": {"demo": demo},
        "backends": {
            "anthropic-fake": {
                "base_url": upstream.base_url,
                "api_key": "sk-fake",
                "timeout": {"connect": 2, "read": 10, "total": 30},
            }
        },
        "models": {HOSTED: {"deployments": [{"backend": "anthropic-fake", "model": HOSTED}]}},
        "prices": {HOSTED: {"input": PRICE_IN, "output": PRICE_OUT}},
    }
    path = workdir / "turnout.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


@pytest.fixture(scope="module")
def hosted() -> Iterator[FakeUpstream]:
    with FakeUpstream() as fake:
        fake.first_byte_delay = FIRST_BYTE_DELAY
        fake.token_delay = TOKEN_DELAY
        yield fake


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory, hosted: FakeUpstream) -> CompareRun:
    workdir = tmp_path_factory.mktemp("compare")
    config = write_config(workdir, hosted, demo=True)
    workload = workdir / "workload.jsonl"
    workload.write_text("\n".join(json.dumps(item) for item in WORKLOAD) + "\n")
    hardware = workdir / "gpu.yaml"
    hardware.write_text(yaml.safe_dump({"name": "a test GPU", "hourly_price": HOURLY}))
    html = workdir / "report.html"
    cmd = compare_cmd(
        config,
        *("-t", LOCAL, "-t", HOSTED, "-w", str(workload), "-n", str(REQUESTS)),
        *("--concurrency", ",".join(map(str, LEVELS)), "--warmup", str(WARMUP)),
        *("--max-tokens", str(MAX_TOKENS), "--hardware", str(hardware)),
        *("--utilization", str(UTILIZATION), "-o", str(html), "--quiet"),
    )
    hosted.reset()
    hosted.first_byte_delay, hosted.token_delay = FIRST_BYTE_DELAY, TOKEN_DELAY
    proc = subprocess.run(
        cmd,
        cwd=workdir,
        env=gateway_env(workdir / "home"),
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    report = json.loads(html.with_suffix(".json").read_text())
    return CompareRun(proc, report, html, hosted.requests_to("/v1/chat/completions"))


def words(text: str) -> int:
    return len(text.split())


def expected_usage(item: dict[str, Any]) -> tuple[int, int]:
    """The fake counts words: every message's words in, "echo:" plus the last user message's
    words out, cut at max_tokens (which --max-tokens lowered to MAX_TOKENS)."""
    prompt = sum(words(m["content"]) for m in item["messages"])
    return prompt, min(MAX_TOKENS, 1 + words(item["messages"][-1]["content"]))


def result(report: dict[str, Any], target: str, concurrency: int) -> dict[str, Any]:
    [row] = [
        r for r in report["results"] if r["target"] == target and r["concurrency"] == concurrency
    ]
    return row


def measured(requests: list[RecordedRequest]) -> list[list[RecordedRequest]]:
    """The hosted requests of each level without the warm-up ones (each level's warm-up
    finishes before its measured requests start)."""
    per_level = WARMUP + REQUESTS
    assert len(requests) == per_level * len(LEVELS)
    return [requests[i * per_level + WARMUP : (i + 1) * per_level] for i in range(len(LEVELS))]


# ------------------------------------------------------------------------ the JSON report


def test_every_request_reached_the_fake_as_a_stream_with_usage(run: CompareRun) -> None:
    for rec in run.hosted_requests:
        assert rec.status == 200
        assert rec.json["model"] == HOSTED
        assert rec.json["stream"] is True
        assert rec.json["stream_options"] == {"include_usage": True}
        assert rec.json["max_tokens"] <= MAX_TOKENS
    assert len(run.hosted_requests) == len(LEVELS) * (WARMUP + REQUESTS)


def test_targets_are_classified(run: CompareRun) -> None:
    kinds = {t["name"]: t["kind"] for t in run.report["targets"]}
    assert kinds == {LOCAL: "local", HOSTED: "hosted"}
    [hosted] = [t for t in run.report["targets"] if t["name"] == HOSTED]
    assert hosted["deployments"] == {f"anthropic-fake/{HOSTED}": REQUESTS * len(LEVELS)}
    assert hosted["prices_per_million_tokens"] == {
        f"anthropic-fake/{HOSTED}": {"input": PRICE_IN, "output": PRICE_OUT}
    }


def test_token_counts_match_the_fake_log_and_the_arithmetic(run: CompareRun) -> None:
    for level, recs in zip(LEVELS, measured(run.hosted_requests), strict=True):
        row = result(run.report, HOSTED, level)
        assert (row["requests"], row["completed"], row["failed"]) == (REQUESTS, REQUESTS, 0)
        logged = [r.response_usage for r in recs]
        assert all(u is not None for u in logged)
        assert row["prompt_tokens"] == sum(u["prompt_tokens"] for u in logged if u)
        assert row["completion_tokens"] == sum(u["completion_tokens"] for u in logged if u)
        by_hand = [expected_usage(WORKLOAD[i % len(WORKLOAD)]) for i in range(REQUESTS)]
        assert row["prompt_tokens"] == sum(p for p, _ in by_hand)
        assert row["completion_tokens"] == sum(c for _, c in by_hand)


def test_hosted_cost_is_tokens_times_list_price(run: CompareRun) -> None:
    total = 0.0
    for level, recs in zip(LEVELS, measured(run.hosted_requests), strict=True):
        cost = sum(
            (u["prompt_tokens"] * PRICE_IN + u["completion_tokens"] * PRICE_OUT) / 1e6
            for u in (r.response_usage for r in recs)
            if u
        )
        assert result(run.report, HOSTED, level)["cost_usd"] == pytest.approx(cost, rel=1e-9)
        total += cost
    hosted = run.report["cost"]["targets"][HOSTED]
    per_request = total / (REQUESTS * len(LEVELS))
    assert hosted["cost_per_request_usd"] == pytest.approx(per_request, rel=1e-9)
    tokens = hosted["prompt_tokens_per_request"] + hosted["completion_tokens_per_request"]
    assert hosted["cost_per_million_tokens_usd"] == pytest.approx(per_request / tokens * 1e6)
    price = "$3 per million input tokens, $15 per million output tokens"
    assert any(price in line for line in hosted["assumptions"])


def test_local_cost_and_break_even_by_hand(run: CompareRun) -> None:
    cost = run.report["cost"]
    local = cost["targets"][LOCAL]
    best = max(
        (r for r in run.report["results"] if r["target"] == LOCAL),
        key=lambda r: r["throughput"]["requests_per_s"],
    )
    rps = best["throughput"]["requests_per_s"]
    assert local["requests_per_s"] == pytest.approx(rps, rel=1e-5)
    monthly = HOURLY * 730
    assert local["monthly_cost_usd"] == pytest.approx(monthly)
    served = local["requests_per_s"] * 730 * 3600 * UTILIZATION
    assert local["cost_per_request_usd"] == pytest.approx(monthly / served)
    assert any("$0.5/hour × 730 hours/month = $365.00/month" in a for a in local["assumptions"])

    [pair] = cost["break_even"]
    hosted_per_request = cost["targets"][HOSTED]["cost_per_request_usd"]
    volume = monthly / hosted_per_request  # a cloud GPU: no energy cost per request
    assert pair["requests_per_month"] == pytest.approx(volume)
    utilization = volume / (local["requests_per_s"] * 730 * 3600)
    assert pair["utilization"] == pytest.approx(utilization)
    assert pair["reachable"] is (utilization <= 1)
    hosted = cost["targets"][HOSTED]
    tokens = hosted["prompt_tokens_per_request"] + hosted["completion_tokens_per_request"]
    assert pair["tokens_per_month"] == pytest.approx(volume * tokens)
    # the curve: hosted grows linearly, local starts at one unit's monthly cost
    first, last = pair["curve"][0], pair["curve"][-1]
    assert first[:3] == [0, 0, pytest.approx(monthly)]
    assert last[1] == pytest.approx(last[0] * hosted_per_request)


def test_latency_metrics_reflect_the_fake_latency(run: CompareRun) -> None:
    for level in LEVELS:
        row = result(run.report, HOSTED, level)
        assert row["ttft_s"]["p50"] >= FIRST_BYTE_DELAY
        assert row["e2e_latency_s"]["p50"] >= FIRST_BYTE_DELAY + TOKEN_DELAY
        assert row["e2e_latency_s"]["p50"] >= row["ttft_s"]["p50"]
        assert row["tpot_s"]["p50"] > 0
        assert row["throughput"]["requests_per_s"] > 0
        local = result(run.report, LOCAL, level)
        assert local["completed"] == REQUESTS
        assert local["completion_tokens"] > 0 and local["ttft_s"]["count"] == REQUESTS
    samples = run.report["samples"]
    assert len(samples) == len(LEVELS) * 2 * REQUESTS
    assert all(s["ok"] for s in samples)


def test_privacy_exposure(run: CompareRun) -> None:
    privacy = run.report["privacy"]
    assert privacy["workload_requests"] == len(WORKLOAD)
    assert privacy["sensitive_requests"] == 1
    assert privacy["by_category"] == {"email": 1}
    # item 1 carries the e-mail; each level sent items 0, 1, 2 once
    assert privacy["received_by_hosted_targets"] == {HOSTED: len(LEVELS)}


def test_verdict_and_console_summary(run: CompareRun) -> None:
    verdict = " ".join(run.report["verdict"])
    assert "At concurrency 1" in verdict
    assert "break even" in verdict or "becomes cheaper" in verdict
    assert "1 of the 3 workload requests" in verdict
    assert "demo model" in verdict
    assert "report written" in run.proc.stdout


# ------------------------------------------------------------------------ the HTML report


CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
needs_chromium = pytest.mark.skipif(
    CHROMIUM is None,
    reason="Chromium is not installed (make test installs it: apt-get install -y chromium)",
)


def offline(cmd: list[str]) -> list[str]:
    """Run ``cmd`` without network: in a new network namespace (only a loopback that is
    down) where that is allowed, else with every host unresolvable and a dead proxy."""
    unshare = shutil.which("unshare")
    if unshare and subprocess.run([unshare, "-n", "true"], check=False).returncode == 0:
        return [unshare, "-n", *cmd]
    return [
        *cmd[:1],
        "--proxy-server=127.0.0.1:9",
        "--host-resolver-rules=MAP * ~NOTFOUND",
        *cmd[1:],
    ]


def chromium(*args: str) -> subprocess.CompletedProcess[str]:
    assert CHROMIUM is not None
    cmd = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", *args]
    return subprocess.run(offline(cmd), capture_output=True, text=True, timeout=90, check=False)


def test_html_is_one_file_with_nothing_to_fetch(run: CompareRun) -> None:
    text = run.html.read_text()
    lowered = text.lower()
    assert "<script src" not in lowered and "<link" not in lowered and "<img" not in lowered
    assert 'id="turnout-report"' in text
    embedded = text.split('<script type="application/json" id="turnout-report">')[1]
    embedded = embedded.split("</script>")[0].replace("<\\/", "</")
    assert json.loads(embedded)["results"] == run.report["results"]


@needs_chromium
def test_html_charts_render_offline_in_chromium(run: CompareRun, tmp_path: Path) -> None:
    dom = chromium("--virtual-time-budget=15000", "--dump-dom", run.html.as_uri())
    assert dom.returncode == 0, dom.stderr
    html = dom.stdout
    # plotly replaced every chart's div with SVG: latency, TTFT, throughput, cost
    charts = ("latency", "ttft", "throughput", "cost-0")
    for anchor in charts:
        chart = html.split(f'id="chart-{anchor}"')[1].split('<div class="chart">')[0]
        assert 'class="main-svg"' in chart, f"chart {anchor} was not drawn"
    assert html.count('class="trace boxes"') >= 4  # 2 targets × (latency, TTFT)
    assert html.count('class="js-line"') >= 6  # 2 × 2 throughput lines + 2 cost lines

    image_module = pytest.importorskip("PIL.Image", reason="Pillow (dev extra) is missing")

    png = tmp_path / "report.png"
    shot = chromium(
        f"--screenshot={png}",
        "--window-size=1280,4200",
        "--virtual-time-budget=15000",
        run.html.as_uri(),
    )
    assert png.is_file(), shot.stderr
    image = image_module.open(png).convert("RGB")
    colours = {rgb: n for n, rgb in image.getcolors(maxcolors=1 << 24) or []}
    total = image.width * image.height
    from turnout.advisor.charts import PALETTE

    for hex_colour in PALETTE[:2]:  # the two targets' traces
        rgb = tuple(int(hex_colour[i : i + 2], 16) for i in (1, 3, 5))
        assert colours.get(rgb, 0) > 300, f"{hex_colour} barely appears: a chart is missing"
    white = colours.get((255, 255, 255), 0) + colours.get((250, 250, 250), 0)
    assert white < 0.97 * total, "the screenshot is (almost) blank"


# ------------------------------------------------------------------------------- Ctrl-C


def test_ctrl_c_stops_and_writes_what_was_measured(tmp_path: Path, hosted: FakeUpstream) -> None:
    hosted.reset()
    hosted.first_byte_delay = 0.2  # slow enough that Ctrl-C comes while requests are in flight
    config = write_config(tmp_path, hosted, demo=False)
    out = tmp_path / "partial.json"
    cmd = compare_cmd(
        config,
        *("-t", HOSTED, "-n", "1000", "--concurrency", "2", "--warmup", "0"),
        *("--max-tokens", "2", "-o", str(out)),
    )
    env = gateway_env(tmp_path / "home", {"COLUMNS": "100"})
    proc = subprocess.Popen(
        cmd, cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        deadline = time.monotonic() + 60
        while len([r for r in hosted.requests if r.finished.is_set()]) < 6:
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline, "the run sent no requests"
            time.sleep(0.05)
        proc.send_signal(signal.SIGINT)
        stdout, stderr = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, stdout + stderr
    assert "stopping" in stderr and "report written" in stdout
    report = json.loads(out.read_text())
    assert report["interrupted"] is True
    [row] = report["results"]
    finished = [r for r in hosted.requests if r.finished.is_set() and not r.disconnected.is_set()]
    # up to 2 (the concurrency) may have finished at the fake but not yet at the client
    assert 6 - 2 <= row["completed"] <= len(finished) < 1000
    assert row["completed"] == len(report["samples"])
    assert "stopped early" in report["verdict"][0]
    assert row["duration_s"] > 0


# ---------------------------------------------------------------------- a running gateway


def test_compare_a_running_gateway(
    gateway: Gateway, upstream: FakeUpstream, tmp_path: Path
) -> None:
    """--url: the public models of the session's gateway over HTTP; "chat" reaches the fake,
    "chat-dead" a port where nothing listens (every request fails, by error code)."""
    out = tmp_path / "remote.json"
    cmd = [
        sys.executable, "-m", "turnout", "compare", "--url", gateway.url,
        "--api-key", MASTER_KEY, "-t", "chat", "-t", "chat-dead", "--local", "chat-dead",
        "-n", "4", "--concurrency", "2", "--warmup", "0", "--max-tokens", "3", "-o", str(out),
    ]  # fmt: skip
    env = gateway_env(tmp_path / "home")
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=60, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    report = json.loads(out.read_text())
    chat, dead = (result(report, name, 2) for name in ("chat", "chat-dead"))
    assert (chat["completed"], chat["failed"]) == (4, 0)
    recs = upstream.requests_to("/v1/chat/completions")
    assert len(recs) == 4 and all(r.json["stream"] for r in recs)
    assert chat["completion_tokens"] == sum(r.response_usage["completion_tokens"] for r in recs)
    assert (dead["completed"], dead["errors"]) == (0, {"upstream_unavailable": 4})
    kinds = {t["name"]: t for t in report["targets"]}
    assert kinds["chat"]["kind"] == "hosted"
    assert kinds["chat"]["deployments"] == {"fake/gpt-4o-mini": 4}  # x-turnout-deployment
    assert kinds["chat-dead"]["kind"] == "local"  # declared with --local
    assert report["source"] == f"gateway at {gateway.url}"
    # gpt-4o-mini is in the built-in price table
    assert report["cost"]["targets"]["chat"]["cost_per_request_usd"] > 0

    unknown = subprocess.run(
        [*cmd[:8], "-t", "no-such-model", "-o", str(out)],
        env=env, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert unknown.returncode == 2 and "serves no model 'no-such-model'" in unknown.stderr


def test_no_stream_and_markdown(tmp_path: Path, hosted: FakeUpstream) -> None:
    hosted.reset()
    config = write_config(tmp_path, hosted, demo=False)
    out = tmp_path / "report.md"
    cmd = compare_cmd(
        config,
        *("-t", HOSTED, "-n", "2", "--concurrency", "1", "--warmup", "0", "--no-stream"),
        *("--max-tokens", "2", "-o", str(out), "-q"),
    )
    env = gateway_env(tmp_path / "home")
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=60, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    text = out.read_text()
    assert text.startswith("# turnout compare") and "## Verdict" in text
    assert f"| {HOSTED} | 1 | 2 / 2 | - | - | - |" in text  # no TTFT without a stream
    assert all(r.json.get("stream") is None for r in hosted.requests_to("/v1/chat/completions"))
