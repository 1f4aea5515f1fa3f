"""Generation and training lengths in the presets: at the papers' scale, and consistent with each other, so that
the rules they cite can fire and what a method trains on is not cut away."""

from __future__ import annotations

import pytest

from pipeline.config import load_params
from tests.helpers import REPO

PRESETS = sorted(p.stem for p in (REPO / "params").glob("*.yaml"))
PROMPT_ROOM = 512  # tokens a training prompt may take (thought prompt + instruction), beside the sampled tokens


@pytest.mark.parametrize("name", ["self_rewarding", "meta_rewarding"])
def test_the_open_prompt_presets_sample_whole_responses(name):
    p = load_params(REPO / "params" / f"{name}.yaml")
    assert p.sample.max_new_tokens >= 2048
    assert p.pairs.truncated_response == "drop"  # a cut response never takes a side for being cut


@pytest.mark.parametrize("name", ["self_rewarding", "meta_rewarding", "tpo"])
def test_evaluated_answers_are_as_long_as_trained_ones(name):
    p = load_params(REPO / "params" / f"{name}.yaml")
    assert p.evaluate.max_new_tokens == p.sample.max_new_tokens


def test_the_meta_rewarding_cap_on_chosen_responses_can_fire():
    p = load_params(REPO / "params/meta_rewarding.yaml")
    m1 = p.for_iteration("M1")
    # ~4 characters a token: responses of 2,048 tokens can exceed the 2,500-character cap of iteration 1
    assert m1.pairs.max_chosen_chars == 2500 and 4 * m1.sample.max_new_tokens > m1.pairs.max_chosen_chars


@pytest.mark.parametrize("name", PRESETS)
def test_training_keeps_every_sampled_token(name):
    p = load_params(REPO / "params" / f"{name}.yaml")
    for key in p.iterations:
        it = p.for_iteration(key)
        assert it.dpo.max_length >= it.sample.max_new_tokens + PROMPT_ROOM, (key, it.dpo.max_length)
        assert it.sample.max_new_tokens < it.engine.max_model_len


@pytest.mark.parametrize("name", ["meta_rewarding"])
def test_judge_and_meta_judge_sampling_are_stated_not_inherited(name):
    import yaml

    raw = yaml.safe_load((REPO / "params" / f"{name}.yaml").read_text())
    for section in ("judge", "meta_judge"):
        assert {"temperature", "top_p", "max_new_tokens"} <= set(raw[section]), section
    assert {"learning_rate", "batch_size", "epochs"} <= set(raw["sft"])
