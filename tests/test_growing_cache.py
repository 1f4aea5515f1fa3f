"""The hf engine's block-growing key/value cache (pipeline/engines/growing_cache.py) holds what transformers'
DynamicCache holds: the same keys and values after prefill, decode steps, a crop and a batch repeat, the same
greedy tokens and logits from generate, and it reallocates only when a block is full."""

import torch
from transformers import DynamicCache, LlamaConfig, LlamaForCausalLM

from pipeline.engines.growing_cache import GrowingLayer, growing_cache


def tiny_llama():
    torch.manual_seed(0)
    return LlamaForCausalLM(LlamaConfig(vocab_size=128, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                                        num_attention_heads=4, num_key_value_heads=2)).eval()


def _states(batch, length, seed):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(batch, 2, length, 8, generator=g), torch.randn(batch, 2, length, 8, generator=g)


def test_every_full_attention_layer_grows():
    cache = growing_cache(tiny_llama().config)
    assert len(cache.layers) == 2 and all(type(layer) is GrowingLayer for layer in cache.layers)


def test_layer_holds_what_dynamic_layer_holds_through_steps_crop_and_repeat():
    from transformers.cache_utils import DynamicLayer

    grow, plain = GrowingLayer(block=4), DynamicLayer()
    for step, length in enumerate([5, 1, 1, 1, 1, 1, 3]):  # a prefill, decode steps past one block, a suffix
        k, v = _states(2, length, seed=step)
        got, want = grow.update(k, v), plain.update(k, v)
        torch.testing.assert_close(got[0], want[0], rtol=0, atol=0)
        torch.testing.assert_close(got[1], want[1], rtol=0, atol=0)
    assert grow.get_seq_length() == plain.get_seq_length() == 13
    grow.crop(-3)
    plain.crop(-3)
    k, v = _states(2, 2, seed=99)  # writes over the cropped positions
    torch.testing.assert_close(grow.update(k, v)[0], plain.update(k, v)[0], rtol=0, atol=0)
    grow.batch_repeat_interleave(3)
    plain.batch_repeat_interleave(3)
    k, v = _states(6, 1, seed=100)
    torch.testing.assert_close(grow.update(k, v)[1], plain.update(k, v)[1], rtol=0, atol=0)
    assert grow.keys.shape == (6, 2, 13, 8)


def test_buffer_is_reallocated_only_when_full():
    layer = GrowingLayer(block=8)
    layer.update(*_states(1, 10, seed=0))
    first = layer._k.data_ptr()
    for step in range(8):  # room for 8 more tokens: written in place
        layer.update(*_states(1, 1, seed=step + 1))
        assert layer._k.data_ptr() == first
    layer.update(*_states(1, 1, seed=20))  # the ninth does not fit
    assert layer._k.data_ptr() != first and layer.get_seq_length() == 19


def test_generate_is_unchanged():
    model = tiny_llama()
    ids = torch.randint(3, 120, (3, 6), generator=torch.Generator().manual_seed(1))
    mask = torch.ones_like(ids)
    mask[1, :2] = 0
    settings = {"max_new_tokens": 20, "do_sample": False, "pad_token_id": 0, "eos_token_id": None,
                "return_dict_in_generate": True, "output_logits": True}
    with torch.inference_mode():
        want = model.generate(input_ids=ids, attention_mask=mask, past_key_values=DynamicCache(config=model.config),
                              **settings)
        got = model.generate(input_ids=ids, attention_mask=mask,
                             past_key_values=growing_cache(model.config, block=7), **settings)
    assert torch.equal(got.sequences, want.sequences)
    torch.testing.assert_close(torch.stack(got.logits), torch.stack(want.logits), rtol=1e-6, atol=1e-6)
