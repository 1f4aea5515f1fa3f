"""Limits a run must respect or refuse before it works: the engine's context (engine.max_model_len) in the hf
engine, training lengths (dpo.max_length, sft.max_length) measured on the examples, launch settings."""

from __future__ import annotations

import pytest

from pipeline.config import ConfigError, parse_params
from pipeline.engines.base import SamplingSettings
from pipeline.engines.hf import HFEngine
from pipeline.errors import StageError
from pipeline.training import fit_to_length

LONG = [{"role": "user", "content": "Tell me about the sea. " * 30}]
SHORT = [{"role": "user", "content": "Hi."}]


def test_the_hf_engine_refuses_a_prompt_that_fills_its_context(tiny_model_dir):
    engine = HFEngine(str(tiny_model_dir), batch_size=2, max_model_len=64)
    with pytest.raises(StageError, match=r"^engine.max_model_len: 64 — a prompt has \d+ tokens \(judge\)"):
        engine.generate([SHORT, LONG], SamplingSettings(n=1, max_new_tokens=8), desc="judge")


def test_the_hf_engine_stops_a_completion_at_the_end_of_its_context(tiny_model_dir):
    engine = HFEngine(str(tiny_model_dir), batch_size=2, max_model_len=64)
    prompt = len(engine.encode(engine.format_chat(SHORT)))
    out = engine.generate([SHORT], SamplingSettings(n=2, temperature=1.0, max_new_tokens=60, seed=0))
    # random weights rarely write EOS: each completion runs to the context's end
    assert all(c.num_tokens <= 64 - prompt for c in out[0])
    assert any(c.num_tokens == 64 - prompt and c.finish_reason == "length" for c in out[0])
    free = HFEngine(str(tiny_model_dir), batch_size=2)
    assert max(c.num_tokens for c in free.generate([SHORT], SamplingSettings(n=2, temperature=1.0,
                                                                              max_new_tokens=60, seed=0))[0]) > 64 - prompt


def test_fit_to_length_counts_cuts_and_refuses_when_nothing_is_left():
    assert fit_to_length([(10, [5, 30]), (40, [2, 2]), (3, [4, 4])], 32, "dpo.max_length") == {
        "examples_dropped_prompt_too_long": 1, "examples_truncated": 1, "completion_tokens_cut": 8}
    with pytest.raises(StageError) as e:
        fit_to_length([(40, [5, 6]), (35, [9, 2])], 32, "dpo.max_length")
    assert str(e.value) == ("dpo.max_length: 32 — every example's prompt fills it (the shortest prompt has 35 "
                            "tokens), so nothing of a completion would be trained; raise it above 44")


@pytest.mark.parametrize(("launch", "message"), [
    ({"machines": 2, "machine_rank": 5}, ("params.yaml: dpo.launch: machine_rank: 5 — must be below machines (2): "
                                          "ranks count from 0")),
    ({"main_process_port": 70000}, ("params.yaml: dpo.launch.main_process_port: 70000 — must be between 1 and 65535 "
                                    "(a TCP port)")),
    ({"main_process_ip": "not an ip!"}, ("params.yaml: dpo.launch.main_process_ip: 'not an ip!' — neither an IP "
                                         "address nor a host name")),
])
def test_launch_settings_that_torchrun_would_choke_on(launch, message):
    with pytest.raises(ConfigError) as e:
        parse_params({"dpo": {"launch": launch}})
    assert str(e.value) == message


@pytest.mark.parametrize("ip", ["10.0.0.1", "::1", "node-1.cluster.local", "localhost"])
def test_launch_addresses_that_are_fine(ip):
    assert parse_params({"dpo": {"launch": {"main_process_ip": ip}}}).dpo.launch.main_process_ip == ip


def test_greedy_sampling_of_several_responses_is_refused():
    with pytest.raises(ConfigError, match=r"^params.yaml: sample.temperature: 0 — greedy decoding gives the same "
                                          r"response 4 times"):
        parse_params({"sample": {"temperature": 0, "n": 4}})


def test_lora_targets_are_checked_on_an_empty_model_before_any_weight_loads(tiny_model_dir):
    from pipeline.dpo import check_lora_targets

    check_lora_targets(tiny_model_dir, ["q_proj", "v_proj"])
    check_lora_targets(tiny_model_dir, ["self_attn.q_proj", "all-linear"][:1])
    with pytest.raises(StageError, match=r"^dpo.lora.target_modules: 'qproj' — no module of .* has that name; did "
                                         r"you mean 'q_proj'\? its linear layers: .*down_proj"):
        check_lora_targets(tiny_model_dir, ["q_proj", "qproj"])


def test_accumulating_more_batches_than_an_epoch_holds_is_refused():
    from pipeline.config import DpoConfig
    from pipeline.dpo import check_accumulation

    check_accumulation(8, DpoConfig(batch_size=4, gradient_accumulation_steps=2))
    with pytest.raises(StageError, match=r"^dpo.gradient_accumulation_steps: 1000 — the 5 pairs make 2 batch\(es\) of "
                                         r"dpo.batch_size 4 per process, so no step could accumulate that many; at "
                                         r"most 2 here"):
        check_accumulation(5, DpoConfig(batch_size=4, gradient_accumulation_steps=1000))
