"""The CPU changes to transformers' continuous batching (turnout.backends.local.cb_sampling
and paged_attention): same tokens, same distribution, less work."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

from turnout.backends.base import BackendRequest, RequestContext  # noqa: E402
from turnout.backends.local import cb_sampling, paged_attention  # noqa: E402
from turnout.backends.local.demo_model import generate_demo_model  # noqa: E402
from turnout.backends.local.transformers_engine import TransformersEngine  # noqa: E402


def test_inverse_cdf_draws_with_the_given_probabilities() -> None:
    torch.manual_seed(0)
    probs = torch.tensor([[0.0, 0.5, 0.0, 0.3, 0.2], [0.0, 0.0, 0.0, 0.0, 1.0]])
    draws = torch.cat([cb_sampling.sample_by_inverse_cdf(probs) for _ in range(4000)], dim=1)
    first = torch.bincount(draws[0], minlength=5).float() / draws.shape[1]
    assert first[0] == 0 and first[2] == 0  # zero-probability tokens never come out
    assert torch.allclose(first[[1, 3, 4]], torch.tensor([0.5, 0.3, 0.2]), atol=0.03)
    assert bool((draws[1] == 4).all())


def test_top_p_skips_rows_that_keep_everything_and_matches_transformers_elsewhere() -> None:
    from transformers.generation.continuous_batching.cb_logits_processors import (
        ContinuousBatchingTopPLogitsWarper,
    )
    from transformers.generation.logits_process import TopPLogitsWarper

    stock = ContinuousBatchingTopPLogitsWarper(TopPLogitsWarper(0.9))
    manager = type("M", (), {})()
    manager.logit_processor = type("L", (), {"logits_processor": [stock]})()
    assert cb_sampling.install_processors(manager)
    skip = manager.logit_processor.logits_processor[0]
    assert isinstance(skip, ContinuousBatchingTopPLogitsWarper) and skip is not stock
    scores = torch.randn(3, 50)
    top_p = torch.tensor([1.0, 0.5, 1.0]).view(torch.int32)
    out = skip(scores, top_p)
    assert torch.equal(out[[0, 2]], scores[[0, 2]])
    assert torch.equal(out[1], stock(scores[1:2], top_p[1:2])[0])
    assert (out[1] == float("-inf")).any()
    keep_all = torch.tensor([1.0, 1.0, 1.0]).view(torch.int32)
    assert skip(scores, keep_all) is scores


async def _greedy(model_dir: Path, *, paged: bool) -> list[str]:
    original = paged_attention.use_for
    if not paged:
        paged_attention.use_for = lambda model: False
    try:
        # 64 tokens per step: the longer prompts are prefilled in chunks after cached tokens
        engine = TransformersEngine("t", model_dir, {"num_blocks": 32, "max_batch_tokens": 64})
        await engine.load()
    finally:
        paged_attention.use_for = original
    assert (engine.model.config._attn_implementation == paged_attention.NAME) is paged

    async def one(i: int, words: int) -> str:
        body: dict[str, Any] = {
            "model": "t",
            "messages": [{"role": "user", "content": "word " * words}],
            "max_tokens": 16,
            "temperature": 0,
        }
        text = []
        async for chunk in engine.stream_chat(
            BackendRequest(body), RequestContext.create(f"r{i}", 60)
        ):
            choices = chunk.data["choices"]
            if choices and choices[0]["delta"].get("content"):
                text.append(choices[0]["delta"]["content"])
        return "".join(text)

    try:
        # one at a time: the same batches in both runs (a concurrent run's batches depend on
        # timing, and matrix products of other batch sizes may round a near-tie differently)
        alone = [await one(i, n) for i, n in enumerate((3, 40, 90, 7, 60))]
        together = await asyncio.gather(*(one(i, n) for i, n in enumerate((3, 40, 90, 7, 60))))
        assert all(together)
        return alone
    finally:
        await engine.unload()


def test_paged_attention_gives_the_tokens_of_transformers_sdpa(tmp_path: Path) -> None:
    model_dir = generate_demo_model(tmp_path / "demo")
    ours = asyncio.run(_greedy(model_dir, paged=True))
    theirs = asyncio.run(_greedy(model_dir, paged=False))
    assert ours == theirs
    assert all(ours)
