"""Cheaper sampling for transformers' continuous batching.

transformers (5.x) samples each batch with ``torch.multinomial`` over the whole vocabulary,
which on the CPU draws one exponential random number per vocabulary entry and row (16 rows
of a 32,000-token vocabulary: ~13 ms per step on two cores, as long as the model's forward
pass on a small model), and its top-p warper sorts every row of the batch, also rows whose
request left ``top_p`` at 1 (~20 ms). Two changes, same distribution:

- :class:`SkipFullTopP` applies top-p only to the rows that asked for ``top_p < 1``; the
  others are returned untouched (top-p 1 keeps every token);
- :func:`sample_by_inverse_cdf` draws one uniform number per row and finds the token by
  binary search over the cumulative probabilities (~0.5 ms): the same categorical
  distribution as ``torch.multinomial``, from a different stream of random numbers.

Both are installed on one batching manager by :func:`install`; where transformers'
internals are not what this module expects, nothing is changed and the reason is logged.
"""

from __future__ import annotations

import logging
import types
from typing import Any

log = logging.getLogger("turnout.engine.transformers")

__all__ = ["install", "install_processors", "install_sampler", "sample_by_inverse_cdf"]


def install(manager: Any) -> None:
    """Both changes; call after the manager's batch processor exists (after a first request)."""
    install_processors(manager)
    install_sampler(manager)


def install_processors(manager: Any) -> bool:
    """Swap transformers' continuous-batching top-p warper for :class:`SkipFullTopP`."""
    from transformers.generation.continuous_batching.cb_logits_processors import (
        ContinuousBatchingTopPLogitsWarper,
    )

    processors = getattr(getattr(manager, "logit_processor", None), "logits_processor", None)
    if processors is None:
        log.info("continuous batching: no logits processor list found; top-p left as is")
        return False
    changed = False
    for i, processor in enumerate(processors):
        if type(processor) is ContinuousBatchingTopPLogitsWarper:
            processors[i] = _skip_full_top_p(processor)
            changed = True
    return changed


def install_sampler(manager: Any) -> bool:
    """Replace the batch's sampler (``ModelRunner._sample``) by :func:`sample_by_inverse_cdf`."""
    runner = getattr(getattr(manager, "batch_processor", None), "model_runner", None)
    if runner is None or not callable(getattr(runner, "_sample", None)):
        log.info("continuous batching: no model runner with _sample found; sampler left as is")
        return False
    if not hasattr(runner, "do_sample") or not hasattr(runner, "return_logprobs"):
        log.info("continuous batching: unexpected model runner; sampler left as is")
        return False
    runner._sample = types.MethodType(_runner_sample, runner)
    return True


def sample_by_inverse_cdf(probs: Any) -> Any:
    """One token per row of ``probs`` (shape [rows, vocab], rows summing to ~1), drawn with
    the probabilities given: the first index whose cumulative probability exceeds a uniform
    draw scaled to the row's total. Zero-probability tokens are never drawn."""
    import torch

    cumulative = probs.cumsum(dim=-1)
    draw = torch.rand((probs.shape[0], 1), device=probs.device) * cumulative[:, -1:]
    tokens = torch.searchsorted(cumulative, draw, right=True)
    # Rounding can put the draw at the very end of a row: take that row's likeliest token.
    overflow = tokens >= probs.shape[-1]
    if bool(overflow.any()):
        tokens = torch.where(overflow, probs.argmax(dim=-1, keepdim=True), tokens)
    return tokens  # shape [rows, 1]


def _runner_sample(self: Any, scores: Any, output_ids: Any) -> None:
    """``ModelRunner._sample`` with :func:`sample_by_inverse_cdf` in place of multinomial."""
    import torch

    if self.do_sample or self.return_logprobs:
        probs = torch.nn.functional.softmax(scores[0], dim=-1)
    else:
        probs = scores.squeeze(0)
    if self.do_sample:
        next_tokens = sample_by_inverse_cdf(probs)
    else:
        next_tokens = torch.argmax(probs, dim=-1, keepdim=True)
    count = next_tokens.size(0)
    if self.return_logprobs:
        logprobs = probs.gather(dim=1, index=next_tokens).squeeze(-1).log()
        output_ids[1, :count].copy_(logprobs.view(dtype=torch.int32))
    output_ids[0, :count].copy_(next_tokens.squeeze(-1))


def _skip_full_top_p(processor: Any) -> Any:
    from transformers.generation.continuous_batching.cb_logits_processors import (
        ContinuousBatchingTopPLogitsWarper,
    )

    class SkipFullTopP(ContinuousBatchingTopPLogitsWarper):
        """transformers' per-request top-p, applied only to the rows with ``top_p < 1``."""

        def __call__(self, scores: Any, tensor_arg: Any) -> Any:
            import torch

            top_p = tensor_arg[: scores.size(0)].view(dtype=torch.float32)
            rows = (top_p < 1.0).nonzero().flatten()
            if rows.numel() == 0:
                return scores
            if rows.numel() == scores.size(0):
                return super().__call__(scores, tensor_arg)
            out = scores.clone()
            out[rows] = super().__call__(scores[rows], tensor_arg[rows])
            return out

    skip = SkipFullTopP.__new__(SkipFullTopP)
    skip.__dict__.update(processor.__dict__)
    return skip
