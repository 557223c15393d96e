"""Attention for transformers' continuous batching on the CPU: one sequence at a time.

On a device without flash attention, transformers' continuous batching packs every request
of a step into one row, reads each request's keys and values back from the paged cache
(``PagedAttentionCache.update``) and runs SDPA once over the whole packed batch with a
dense additive mask that keeps each query to its own request, after repeating the key and
value heads for grouped-query attention. At a decode step with 16 requests of ~200 tokens
each query is scored against all ~3,200 cached tokens, 16 times the work that counts, and
the repeated heads are a copy of the whole read-back cache per layer.

:func:`paged_attention_forward` keeps transformers' cache handling (the same
``cache.update`` writes the new tokens and reads the batch back) and then runs SDPA per
request over that request's own slice of keys and values, using the packed-sequence
offsets (``cu_seq_lens_q`` / ``cu_seq_lens_k``) continuous batching passes to every
attention function: a decode query (one token) attends to its whole slice with no mask and
its grouped heads folded into the query (no repeated keys); a prefill chunk that starts the
request is causal; a chunk with cached tokens before it gets a small causal mask of its
own. Continuous batching builds no dense mask for an implementation it does not know, so
that work goes too. Every other forward of the model (no paged cache: the sequential
path, embeddings) goes to transformers' SDPA function with SDPA's masks, unchanged.

It is registered with transformers' ``AttentionInterface`` (and SDPA's mask builder with
``AttentionMaskInterface``) as :data:`NAME`, and selected by :func:`use_for` after
``init_continuous_batching`` (which accepts only its own names), for models whose layers are
all plain full attention; sliding windows, attention sinks and soft-capping keep SDPA.
"""

from __future__ import annotations

from typing import Any

NAME = "turnout_paged_sdpa"

__all__ = ["NAME", "paged_attention_forward", "register", "use_for"]


def register() -> None:
    """Register :func:`paged_attention_forward` with transformers as :data:`NAME`, with
    SDPA's mask builder (so every path that is not paged attention sees SDPA's masks)."""
    from transformers import AttentionInterface
    from transformers.masking_utils import AttentionMaskInterface, sdpa_mask

    AttentionInterface.register(NAME, paged_attention_forward)
    AttentionMaskInterface.register(NAME, sdpa_mask)


def use_for(model: Any) -> bool:
    """Switch ``model`` to :data:`NAME` (call after ``init_continuous_batching``, before the
    manager starts) when every layer is plain full attention; False (nothing changed) for
    sliding-window layers, attention sinks or soft-capping, which keep transformers' SDPA."""
    from transformers.generation.continuous_batching.cache import group_layers_by_attn_type

    config = model.config.get_text_config()
    if (
        list(group_layers_by_attn_type(config)) != ["full_attention"]
        or getattr(config, "attn_logit_softcapping", None) is not None
        or any(hasattr(module, "sinks") for module in model.modules())
    ):
        return False
    register()
    model.set_attn_implementation(NAME)
    return True


def paged_attention_forward(
    module: Any,
    query: Any,  # [1, heads, total_q, head_dim]
    key: Any,  # [1, kv_heads, total_q, head_dim]
    value: Any,
    attention_mask: Any,
    dropout: float = 0.0,
    scaling: float | None = None,
    **kwargs: Any,
) -> tuple[Any, None]:
    from transformers.generation.continuous_batching.cache import PagedAttentionCache
    from transformers.integrations.sdpa_attention import sdpa_attention_forward

    cache = kwargs.get("cache")
    if not isinstance(cache, PagedAttentionCache) or kwargs.get("block_table") is not None:
        return sdpa_attention_forward(
            module, query, key, value, attention_mask, dropout=dropout, scaling=scaling, **kwargs
        )
    kwargs.pop("cache")
    key, value = cache.update(
        key_states=key, value_states=value, layer_idx=module.layer_idx, kwargs=kwargs
    )
    starts_q = kwargs["cu_seq_lens_q"].tolist()
    starts_k = kwargs["cu_seq_lens_k"].tolist()
    out = query.new_empty(query.shape[0], query.shape[2], query.shape[1], query.shape[3])
    for i in range(len(starts_q) - 1):
        q0, q1, k0, k1 = starts_q[i], starts_q[i + 1], starts_k[i], starts_k[i + 1]
        if q1 > q0:
            out[0, q0:q1] = _one_sequence(
                query[:, :, q0:q1], key[:, :, k0:k1], value[:, :, k0:k1], scaling
            )[0]
    return out, None


def _one_sequence(query: Any, key: Any, value: Any, scale: float | None) -> Any:
    """Causal SDPA for one request whose ``q_len`` newest tokens are the queries; returns
    [1, q_len, heads, head_dim]."""
    import torch
    from torch.nn.functional import scaled_dot_product_attention as sdpa

    _, heads, q_len, dim = query.shape
    kv_heads, k_len = key.shape[1], key.shape[2]
    if q_len == 1:  # decode: attend to everything, grouped heads folded into the query
        folded = query.reshape(1, kv_heads, heads // kv_heads, dim)
        attended = sdpa(folded, key, value, scale=scale)
        return attended.reshape(1, heads, 1, dim).transpose(1, 2)
    if kv_heads != heads:
        key = key.repeat_interleave(heads // kv_heads, dim=1)
        value = value.repeat_interleave(heads // kv_heads, dim=1)
    if k_len == q_len:  # a prefill with nothing cached before it
        attended = sdpa(query, key, value, is_causal=True, scale=scale)
    else:  # a chunk after cached tokens: query j sees keys up to k_len - q_len + j
        mask = torch.ones(q_len, k_len, dtype=torch.bool, device=query.device)
        attended = sdpa(query, key, value, attn_mask=mask.tril(k_len - q_len), scale=scale)
    return attended.transpose(1, 2)
