""""How good is my base model?": the evaluate stage measures M0 and M0_sft, and per-iteration overrides are
validated as one merged section that names the iteration."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import yaml

from pipeline.config import ConfigError, parse_params
from tests.helpers import TINY_PARAMS
from tests.inprocess import run_stage

BASE = yaml.safe_load(Path("params.yaml").read_text(encoding="utf-8"))


def _with_iteration(spec: dict) -> dict:
    return {**BASE, "iterations": {"T1": {"prev": "M0_sft", **spec}}}


def test_two_overrides_of_one_section_are_checked_together():
    # each alone would break the rule "num_prompts 0 needs tasks": together they are valid
    params = parse_params(_with_iteration({"self_instruct.num_prompts": 0, "self_instruct.tasks": 4}))
    t1 = params.for_iteration("T1")
    assert (t1.self_instruct.num_prompts, t1.self_instruct.tasks) == (0, 4)
    assert (params.self_instruct.num_prompts, params.self_instruct.tasks) == (3, 0)  # the global section unchanged


def test_an_override_that_breaks_a_rule_names_the_iteration():
    with pytest.raises(ConfigError) as e:
        parse_params(_with_iteration({"self_instruct": {"num_prompts": 0}}))
    assert str(e.value) == ("params.yaml: iterations.T1: self_instruct.num_prompts: 0 — with self_instruct.tasks 0 "
                            "too, an iteration has no prompts; set one of them")


def test_a_nested_override_is_built_as_its_section():
    t1 = parse_params(_with_iteration({"dpo.lora": {"r": 4}})).for_iteration("T1")
    assert t1.dpo.lora is not None and t1.dpo.lora.r == 4 and t1.dpo.lora.alpha == 32


@pytest.mark.parametrize("spec", [{"data": {"train_tasks": {"path": "x.jsonl"}}},
                                  {"data.train_tasks": {"path": "x.jsonl"}}])
def test_a_data_override_is_refused_when_params_load(spec):
    with pytest.raises(ConfigError, match=r"^params.yaml: iterations.T1.data.train_tasks: a data source cannot change"):
        parse_params(_with_iteration(spec))


def _eval_params(wd, **evaluate):
    params = {**TINY_PARAMS, "evaluate": {"max_prompts": 2, "max_labelled_pairs": 2, "max_new_tokens": 8,
                                          "compare_max_new_tokens": 8, "heldout_tasks": 2, "heldout_samples": 2,
                                          **evaluate}}
    (wd / "params.yaml").write_text(yaml.safe_dump(params))


def test_evaluate_measures_the_base_model(tiny_workdir):
    shutil.copytree(tiny_workdir / "models/M0_sft", tiny_workdir / "models/M0")
    _eval_params(tiny_workdir)
    proc = run_stage("evaluate", "--iteration", "M0")
    assert proc.returncode == 0, proc.stderr[-3000:]
    metrics = json.loads((tiny_workdir / "metrics/M0/eval.json").read_text())
    # previous and M0 are M0 itself: no win rate, no evaluator; the absolute measures are there
    assert metrics["baselines"] == {} and metrics["evaluator"] is None
    assert metrics["heldout"]["tasks"] == 2 and set(metrics["heldout"]["models"]) == {"current"}
    assert metrics["judge_accuracy"]["pairs"] == 2
    assert (tiny_workdir / "data/M0/eval_heldout.jsonl").exists()
    assert not (tiny_workdir / "data/M0/eval_comparisons.jsonl").read_text().strip()


def test_evaluate_measures_the_seed_sft_model_against_m0(tiny_workdir):
    shutil.copytree(tiny_workdir / "models/M0_sft", tiny_workdir / "models/M0")
    _eval_params(tiny_workdir, heldout_tasks=0)
    proc = run_stage("evaluate", "--iteration", "M0_sft")
    assert proc.returncode == 0, proc.stderr[-3000:]
    metrics = json.loads((tiny_workdir / "metrics/M0_sft/eval.json").read_text())
    assert set(metrics["baselines"]) == {"previous", "M0"}  # previous is M0 for M0_sft
    assert metrics["baselines"]["previous"]["n"] == 2 and metrics["evaluator"] == "models/M0"


def test_evaluate_of_an_unknown_key_lists_the_iterations(tiny_workdir):
    proc = run_stage("evaluate", "--iteration", "M7")
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines()[-1] == "error: params.yaml: iterations: no iteration 'M7' — declared: M1"
