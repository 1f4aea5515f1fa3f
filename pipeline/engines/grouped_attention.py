"""Grouped-query attention without copying the key/value cache, for generation on a CPU.

SmolLM2-135M has 9 query heads and 3 key/value heads. transformers' ``sdpa`` attention, given a padding mask
(every left-padded batch has one), repeats each key/value head once per query head of its group
(``repeat_kv``) before calling ``scaled_dot_product_attention``: at every decode step it copies the whole
cache three times over, in every layer. Profiled on the evaluate stage's constraint answers (32 sequences,
384 new tokens, a 2-core AMD EPYC, 2026-12-03), that copy was 41% of the time.

The same attention, exactly, without the copy: the g query heads that share one key/value head are laid out as
g times as many query rows of a single head (``(B, H_kv, g * q, D)``), each row with its own copy of the
mask's row. Every query still attends to the keys and values of its own group, with the same scale and mask, so
the result is the grouped-query attention the model defines; only the order of floating-point additions may
differ (the engine contract test compares log-probs with those of a plain forward pass).

:func:`use_grouped_attention` registers this as the attention of a loaded model; it leaves a model without
grouped heads, or one that needs attention weights, to transformers' own.
"""

from __future__ import annotations

from typing import Any

import torch

NAME = "sdpa_grouped"


def grouped_sdpa_forward(module: torch.nn.Module, query: torch.Tensor, key: torch.Tensor, value: torch.Tensor,
                         attention_mask: torch.Tensor | None, dropout: float = 0.0, scaling: float | None = None,
                         is_causal: bool | None = None, **kwargs: Any) -> tuple[torch.Tensor, None]:
    """query (B, H, q, D), key / value (B, H_kv, k, D), attention_mask broadcastable to (B, 1, q, k) or None;
    returns (B, q, H, D) as transformers' attention functions do."""
    batch, heads, q_len, dim = query.shape
    kv_heads = key.shape[1]
    groups = heads // kv_heads
    if (groups == 1 or attention_mask is None or attention_mask.dim() != 4 or attention_mask.shape[1] != 1
            or kwargs.get("position_bias") is not None or kwargs.get("cache") is not None):
        # no grouping to exploit, the unmasked case (transformers' kernel path is already copy-free), a per-head
        # mask or a model-specific extra: transformers' own
        from transformers.integrations.sdpa_attention import sdpa_attention_forward

        return sdpa_attention_forward(module, query, key, value, attention_mask, dropout=dropout, scaling=scaling,
                                      is_causal=is_causal, **kwargs)
    # head h = j * groups + r uses key/value head j (repeat_kv's layout): rows (r, t) of group j, r-major
    q = query.reshape(batch, kv_heads, groups * q_len, dim)
    mask = attention_mask
    if mask.shape[-2] != 1:  # one mask row per query position: repeat it for each head of the group
        mask = mask.expand(mask.shape[0], mask.shape[1], q_len, mask.shape[-1])
        mask = mask.unsqueeze(2).expand(mask.shape[0], mask.shape[1], groups, q_len, mask.shape[-1])
        mask = mask.reshape(mask.shape[0], mask.shape[1], groups * q_len, mask.shape[-1])
    out = torch.nn.functional.scaled_dot_product_attention(q, key, value, attn_mask=mask, dropout_p=dropout,
                                                           scale=scaling, is_causal=False)
    out = out.reshape(batch, heads, q_len, dim)
    return out.transpose(1, 2).contiguous(), None


def use_grouped_attention(model: Any) -> bool:
    """Switch a loaded model's attention to :func:`grouped_sdpa_forward` where it has grouped key/value heads and
    uses ``sdpa``; True when it did. Generation only: nothing asks for attention weights there."""
    config = getattr(model, "config", None)
    heads = getattr(config, "num_attention_heads", None)
    kv_heads = getattr(config, "num_key_value_heads", None)
    if not heads or not kv_heads or heads == kv_heads or getattr(config, "_attn_implementation", None) != "sdpa":
        return False
    from transformers import AttentionInterface
    from transformers.masking_utils import ALL_MASK_ATTENTION_FUNCTIONS

    AttentionInterface.register(NAME, grouped_sdpa_forward)
    ALL_MASK_ATTENTION_FUNCTIONS.register(NAME, ALL_MASK_ATTENTION_FUNCTIONS["sdpa"])  # the masks sdpa gets
    model.set_attn_implementation(NAME)
    return True
