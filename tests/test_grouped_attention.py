"""The hf engine's grouped-query attention (pipeline/engines/grouped_attention.py) is transformers' sdpa attention
without the per-head copy of the key/value cache: same outputs, for decode and prefill rows, boolean and additive
masks, and it is switched on only where a model has grouped heads."""

import pytest
import torch
from transformers.integrations.sdpa_attention import sdpa_attention_forward

from pipeline.engines.grouped_attention import NAME, grouped_sdpa_forward, use_grouped_attention


def tiny_llama(num_attention_heads, num_key_value_heads):
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    return LlamaForCausalLM(LlamaConfig(vocab_size=128, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                                        num_attention_heads=num_attention_heads,
                                        num_key_value_heads=num_key_value_heads))


class _Module(torch.nn.Module):
    def __init__(self, groups):
        super().__init__()
        self.num_key_value_groups, self.is_causal = groups, True


def _inputs(batch, heads, kv_heads, q_len, k_len, dim=8, seed=0):
    g = torch.Generator().manual_seed(seed)
    q = torch.randn(batch, heads, q_len, dim, generator=g)
    k = torch.randn(batch, kv_heads, k_len, dim, generator=g)
    v = torch.randn(batch, kv_heads, k_len, dim, generator=g)
    # left padding: row b has b pad positions; causal over the last q_len positions
    keep = torch.ones(batch, 1, q_len, k_len, dtype=torch.bool)
    for b in range(batch):
        keep[b, :, :, :b] = False
    causal = torch.arange(k_len)[None, :] <= (torch.arange(q_len)[:, None] + k_len - q_len)
    return q, k, v, keep & causal


@pytest.mark.parametrize("q_len", [1, 5])
@pytest.mark.parametrize("additive", [False, True])
def test_grouped_equals_repeated_heads(q_len, additive):
    q, k, v, mask = _inputs(batch=3, heads=9, kv_heads=3, q_len=q_len, k_len=7)
    if additive:
        mask = torch.zeros(mask.shape).masked_fill(~mask, torch.finfo(torch.float32).min)
    module = _Module(groups=3)
    want, _ = sdpa_attention_forward(module, q, k, v, mask, scaling=0.3)
    got, _ = grouped_sdpa_forward(module, q, k, v, mask, scaling=0.3)
    assert got.shape == want.shape == (3, q_len, 9, 8)
    torch.testing.assert_close(got, want, rtol=1e-6, atol=1e-6)


def test_grouping_is_per_group_of_heads():
    """Head h uses key/value head h // groups: give each key/value head its own values and read them back."""
    batch, kv_heads, groups, k_len, dim = 1, 3, 3, 4, 2
    q = torch.zeros(batch, kv_heads * groups, 1, dim)
    k = torch.zeros(batch, kv_heads, k_len, dim)
    v = torch.arange(kv_heads, dtype=torch.float32).view(1, kv_heads, 1, 1).expand(batch, kv_heads, k_len, dim)
    out, _ = grouped_sdpa_forward(_Module(groups), q, k, v, torch.ones(batch, 1, 1, k_len, dtype=torch.bool))
    assert out[0, 0, :, 0].tolist() == [0.0, 0.0, 0.0, 1.0, 1.0, 1.0, 2.0, 2.0, 2.0]


def test_no_mask_falls_back_to_transformers():
    q, k, v, _ = _inputs(batch=2, heads=4, kv_heads=2, q_len=3, k_len=3)
    want, _ = sdpa_attention_forward(_Module(2), q, k, v, None)
    got, _ = grouped_sdpa_forward(_Module(2), q, k, v, None)
    torch.testing.assert_close(got, want)


def test_switched_on_only_for_grouped_heads():
    grouped = tiny_llama(num_attention_heads=4, num_key_value_heads=2)
    assert use_grouped_attention(grouped) and grouped.config._attn_implementation == NAME
    plain = tiny_llama(num_attention_heads=4, num_key_value_heads=4)
    assert not use_grouped_attention(plain) and plain.config._attn_implementation == "sdpa"


def test_model_outputs_unchanged_on_a_padded_batch():
    model = tiny_llama(num_attention_heads=4, num_key_value_heads=2).eval()
    ids = torch.randint(3, 120, (3, 9), generator=torch.Generator().manual_seed(1))
    mask = torch.ones_like(ids)
    mask[1, :4] = 0
    mask[2, :7] = 0
    with torch.inference_mode():
        want = model(input_ids=ids, attention_mask=mask).logits
        use_grouped_attention(model)
        got = model(input_ids=ids, attention_mask=mask).logits
    assert model.config._attn_implementation == NAME
    keep = mask.bool()
    torch.testing.assert_close(got[keep], want[keep], rtol=1e-5, atol=1e-5)
