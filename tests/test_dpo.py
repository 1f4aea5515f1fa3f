"""The dpo stage's options on the tiny model: LoRA with the adapter merged into a plain saved model."""

import json

import pytest
import torch
import yaml

from pipeline.config import ConfigError, load_params
from tests.fakes import write_pairs
from tests.helpers import TINY_PARAMS, run_stage


def test_lora_dpo_saves_a_merged_model_the_next_iteration_loads(tiny_workdir):
    from safetensors.torch import load_file

    params = {**TINY_PARAMS, "dpo": {"batch_size": 2, "max_length": 64, "learning_rate": 1e-3, "save_steps": 100,
                                     "lora": {"r": 4, "alpha": 8, "target_modules": ["q_proj", "v_proj"]}},
              "iterations": {"M1": {"prev": "M0_sft"}, "M2": {"prev": "M1"}}}
    (tiny_workdir / "params.yaml").write_text(yaml.safe_dump(params))
    write_pairs(tiny_workdir, 6)
    run_stage("dpo", "--iteration", "M1")
    m1 = tiny_workdir / "models/M1"
    assert not (m1 / "adapter_config.json").exists(), "the adapter is merged, not saved beside the model"
    before = load_file(str(tiny_workdir / "models/M0_sft/model.safetensors"))
    after = load_file(str(m1 / "model.safetensors"))
    assert set(before) == set(after) and not any("lora" in k for k in after)
    changed = {k for k in after if not torch.equal(before[k], after[k])}
    assert changed and all(("q_proj" in k or "v_proj" in k) for k in changed)  # only the adapted layers move
    card = json.loads((m1 / "model_card.json").read_text())
    assert card["training"]["lora"]["r"] == 4
    # M1 is a plain model: the next iteration trains from it like from any other.
    write_pairs(tiny_workdir, 4, key="M2")
    run_stage("dpo", "--iteration", "M2")
    assert (tiny_workdir / "models/M2/model.safetensors").exists()


def test_lora_over_bfloat16_frozen_weights_saves_a_float32_merge(tiny_workdir):
    from safetensors.torch import load_file

    params = {**TINY_PARAMS, "dpo": {"batch_size": 2, "max_length": 64, "learning_rate": 1e-3, "save_steps": 100,
                                     "lora": {"r": 4, "alpha": 8, "target_modules": ["q_proj"],
                                              "base_dtype": "bfloat16"}},
              "iterations": {"M1": {"prev": "M0_sft"}}}
    (tiny_workdir / "params.yaml").write_text(yaml.safe_dump(params))
    write_pairs(tiny_workdir, 6)
    run_stage("dpo", "--iteration", "M1")
    before = load_file(str(tiny_workdir / "models/M0_sft/model.safetensors"))
    after = load_file(str(tiny_workdir / "models/M1/model.safetensors"))
    assert all(t.dtype == torch.float32 for t in after.values())  # merged in float32, saved as the pipeline expects
    for name, weight in after.items():
        rounded = before[name].to(torch.bfloat16).to(torch.float32)  # the frozen weights went through bfloat16 once
        if "q_proj" in name:
            assert not torch.equal(weight, rounded), name  # the adapter's update survives the merge
        else:
            assert torch.equal(weight, rounded), name
    card = json.loads((tiny_workdir / "models/M1/model_card.json").read_text())
    assert card["dtype"] == "float32" and card["training"]["lora"]["base_dtype"] == "bfloat16"


def test_lora_params_are_validated(tmp_path):
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump({"dpo": {"lora": {"r": 0}}}))
    with pytest.raises(ConfigError, match=r"dpo\.lora\.r: 0 — must be at least 1"):
        load_params(path)
    path.write_text(yaml.safe_dump({"dpo": {"lora": {"rank": 8}}}))
    with pytest.raises(ConfigError, match=r"dpo\.lora\.rank: unknown key"):
        load_params(path)
    path.write_text(yaml.safe_dump({"dpo": {"lora": 8}}))
    with pytest.raises(ConfigError, match=r"dpo\.lora: 8 — must be a mapping with keys r, alpha"):
        load_params(path)
    path.write_text(yaml.safe_dump({"dpo": {"lora": {"r": 8}}}))
    assert load_params(path).dpo.lora.alpha == 32
    assert load_params(path).dpo.lora.base_dtype == "float32"
    path.write_text(yaml.safe_dump({"dpo": {"lora": {"base_dtype": "int8"}}}))
    with pytest.raises(ConfigError, match=r"dpo\.lora\.base_dtype: 'int8' — must be 'float32' \| 'bfloat16'"):
        load_params(path)


def test_reused_logprob_rules():
    """Reuse only where TRL's ids are exactly the generated ids + EOS, from the reference model, untruncated."""
    from pipeline.reference import PairTokens, reused_logprob

    eos = 2
    tokens = PairTokens(prompt_ids=[5, 6, 7], chosen_ids=[10, 11, eos], rejected_ids=[12, eos])
    gen = {"model_sha256": "abc", "chosen": {"token_ids": [10, 11], "logprob": -3.5, "stop_logprob": -0.25},
           "rejected": {"token_ids": [12, 13], "logprob": -1.0, "stop_logprob": -0.5}}
    assert reused_logprob(tokens, "chosen", gen, [5, 6, 7], eos, "abc", None) == (-3.75, "reused")
    assert reused_logprob(tokens, "rejected", gen, [5, 6, 7], eos, "abc", None) == (
        None, "completion tokenized differently")
    assert reused_logprob(tokens, "chosen", gen, [5, 6, 7], eos, "other", None) == (None, "generated by another model")
    assert reused_logprob(tokens, "chosen", gen, [5, 6], eos, "abc", None) == (None, "prompt tokenized differently")
    assert reused_logprob(tokens, "chosen", gen, [5, 6, 7], eos, "abc", 5) == (None, "truncated at max_length")
    assert reused_logprob(tokens, "chosen", None, [5, 6, 7], eos, "abc", None) == (None, "no log-probs recorded")
    no_eos = {**gen, "chosen": {**gen["chosen"], "stop_logprob": None}}
    assert reused_logprob(tokens, "chosen", no_eos, [5, 6, 7], eos, "abc", None) == (
        None, "no end-of-sequence log-prob")


def test_length_grouped_batches_hold_pairs_of_similar_padded_length():
    """dpo.group_by_length: a batch is padded to prompt + longer completion, so pairs are grouped by that,
    within transformers' megabatches (min(50, pairs // (4 x batch)) batches: 64 pairs, batch 4 -> 16 pairs)."""
    import random

    from pipeline.dpo import length_grouped_sampler, padded_length, padding_fraction

    assert padded_length({"prompt_ids": [1, 2, 3], "chosen_ids": [4], "rejected_ids": [5, 6, 7, 8]}) == 7
    lengths = list(range(1, 65))
    random.Random(0).shuffle(lengths)
    dataset = [{"prompt_ids": [0] * n, "chosen_ids": [1], "rejected_ids": [2, 2]} for n in lengths]
    order = list(length_grouped_sampler(dataset, 4, generator=torch.Generator().manual_seed(0)))
    assert sorted(order) == list(range(64)), "every pair once per epoch"
    padded = [lengths[i] + 2 for i in order]
    assert padded[0] == 66, "the longest pair comes first (an out-of-memory error shows at once)"
    for mb in range(0, 64, 16):  # each megabatch sorted longest first (the first swapped with the longest)
        rest = padded[mb + 1:mb + 16]
        assert rest == sorted(rest, reverse=True)
    seq = [(n + 1, n + 2) for n in lengths]
    shuffled = torch.randperm(64, generator=torch.Generator().manual_seed(0)).tolist()
    assert padding_fraction(seq, order, 4) < padding_fraction(seq, shuffled, 4) / 2  # here 0.155 vs 0.355


def test_group_by_length_dpo_trains(tiny_workdir):
    params = {**TINY_PARAMS, "dpo": {"batch_size": 2, "max_length": 64, "save_steps": 100, "group_by_length": True}}
    (tiny_workdir / "params.yaml").write_text(yaml.safe_dump(params))
    write_pairs(tiny_workdir, 6)
    run_stage("dpo", "--iteration", "M1")
    metrics = json.loads((tiny_workdir / "metrics/M1/dpo.json").read_text())
    assert metrics["steps"] == 3
    card = json.loads((tiny_workdir / "models/M1/model_card.json").read_text())
    assert card["training"]["group_by_length"] is True


def test_padding_fraction_exact():
    from pipeline.dpo import padding_fraction

    lengths = [(10, 12), (3, 2), (11, 9), (4, 4)]
    # batches {0,1}: 4 sequences padded to 12 = 48 slots, 27 real; {2,3}: 4 x 11 = 44, 28 real.
    assert padding_fraction(lengths, [0, 1, 2, 3], 2) == pytest.approx((48 - 27 + 44 - 28) / (48 + 44))
    # grouped {0,2}: 4 x 12 = 48, 42 real; {1,3}: 4 x 4 = 16, 13 real.
    assert padding_fraction(lengths, [0, 2, 1, 3], 2) == pytest.approx((48 - 42 + 16 - 13) / (48 + 16))
    assert padding_fraction([], [], 2) == 0.0
