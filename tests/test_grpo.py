"""The GRPO step (pipeline/grpo.py) on the tiny model: TRL's GRPOTrainer rewarded by the verifiers changes the
weights, keeps one rollout row per reward given (with the step it trained), resumes from a checkpoint without
keeping the rows of the steps it redoes, and refuses batches that are not whole groups before any model loads."""

import json
from pathlib import Path

import pytest
import torch

from pipeline import grpo, models
from pipeline.config import ConfigError, GrpoConfig, VerifyConfig
from pipeline.errors import StageError
from pipeline.records import Prompt


def word_count_task(pid: str, at_least: int) -> Prompt:
    """Random completions of 16 tokens hold a varying number of words: some meet the bound, some do not, so a
    group's rewards differ and GRPO has an advantage to follow (a task no completion can pass gives none)."""
    return Prompt(prompt_id=pid, instruction=f"Write at least {at_least} words.", source="test", answer="",
                  verifier="constraints",
                  inputs={"instruction_id_list": ["length_constraints:number_words"],
                          "kwargs": [{"relation": "at least", "num_words": at_least}]})


REPO = Path(__file__).resolve().parent.parent
TASKS = [word_count_task(f"w{n}", n) for n in (9, 10, 11, 12)]
SMALL = {"num_generations": 4, "max_completion_length": 16, "batch_size": 8, "learning_rate": 1e-3,
         "save_steps": 1, "dtype": "float32"}


def weights(model_dir):
    from safetensors.torch import load_file

    return load_file(str(model_dir / "model.safetensors"))


def test_a_grpo_step_changes_the_weights_and_keeps_every_rollout(tiny_model_dir, tmp_path):
    cfg = GrpoConfig(**SMALL, max_steps=2)
    out = tmp_path / "models" / "M1"
    metrics, rows = grpo.grpo_iteration(tiny_model_dir, TASKS, cfg, VerifyConfig(), out, {"name": "M1"},
                                        tmp_path / "work")
    assert metrics["steps"] == 2 and metrics["rollouts"] == len(rows) == 2 * cfg.batch_size
    assert [r.step for r in rows] == [1] * 8 + [2] * 8 and {r.iteration for r in rows} == {"M1"}
    assert {r.prompt_id for r in rows} <= {t.prompt_id for t in TASKS} and len({r.rollout_id for r in rows}) == 16
    assert all(r.reward in (0.0, 2.0) for r in rows) and all(isinstance(r.completion, str) for r in rows)
    spreads = [s["groups_zero_spread"] for s in metrics["per_step"]]
    assert min(spreads) < 1.0, "no group had rewards that differ: nothing to learn from (the test's premise)"
    before, after = weights(tiny_model_dir), weights(out)
    assert any(not torch.equal(before[k], after[k]) for k in before)
    card = models.read_card(out)
    assert card["training"]["method"] == "grpo" and card["training"]["rollouts"] == 16
    assert not list((tmp_path / "work").glob("grpo-M1-*"))  # checkpoints removed once the model is saved


def test_resume_keeps_the_rollouts_of_the_steps_that_trained(tiny_model_dir, tmp_path):
    """A run stopped after step 1's checkpoint, with rows of a step 2 it never finished, resumes at step 2: the
    unfinished step's rows are dropped and made again."""
    cfg = GrpoConfig(**SMALL, max_steps=1)
    work = tmp_path / "work"
    first_dir = work / "first"
    grpo.train_grpo(tiny_model_dir, TASKS, cfg, VerifyConfig(), first_dir)
    log_file = first_dir / grpo.ROLLOUTS
    step_one = log_file.read_text().splitlines()
    assert len(step_one) == 8
    with log_file.open("a") as f:  # what a process killed during step 2 leaves
        f.write(json.dumps({"step": 2, "prompt_id": "w9", "completion": "lost", "reward": 0.0, "extracted": None,
                            "method": "none", "correct": False, "detail": ""}) + "\n")
    _, _, summary, rows = grpo.train_grpo(tiny_model_dir, TASKS, GrpoConfig(**SMALL, max_steps=2), VerifyConfig(),
                                          first_dir)
    assert [r["step"] for r in rows] == [1] * 8 + [2] * 8
    assert "lost" not in {r["completion"] for r in rows}
    assert [json.loads(line) for line in step_one] == rows[:8]
    assert summary["steps"] == 2  # the checkpoint's logged step and the one run after it


def test_loss_type_is_read_from_a_params_file_and_checked(tmp_path):
    """A single name (not a list, unlike dpo.loss_type): TRL's names pass, a typo names the nearest one."""
    from pipeline.config import load_params

    base = (REPO / "params/grpo.yaml").read_text()
    good = tmp_path / "good.yaml"
    good.write_text(base.replace("loss_type: dapo", "loss_type: dr_grpo"))
    assert load_params(good).grpo.loss_type == "dr_grpo"
    bad = tmp_path / "bad.yaml"
    bad.write_text(base.replace("loss_type: dapo", "loss_type: dr_grp"))
    with pytest.raises(ConfigError, match="'dr_grp' is not a loss type of TRL's GRPOTrainer — did you mean 'dr_grpo'"):
        load_params(bad)


def test_vllm_generation_is_refused_without_a_gpu_before_the_model_loads(tmp_path, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(StageError, match="grpo.use_vllm: true needs a CUDA GPU"):
        grpo.grpo_iteration(tmp_path / "no-model", TASKS, GrpoConfig(**SMALL, use_vllm=True), VerifyConfig(),
                            tmp_path / "M1", {}, tmp_path / "work")
    with pytest.raises(ConfigError, match="vllm_mode: server needs grpo.vllm_server_base_url"):
        GrpoConfig(**SMALL, use_vllm=True, vllm_mode="server")


def test_batches_must_be_whole_groups():
    with pytest.raises(ConfigError, match="multiple of grpo.num_generations"):
        GrpoConfig(num_generations=4, batch_size=6)


def test_a_step_needs_as_many_tasks_as_it_has_groups(tmp_path):
    with pytest.raises(StageError, match="a step takes 4 tasks"):
        grpo.grpo_iteration(tmp_path, TASKS[:2], GrpoConfig(num_generations=2, batch_size=8), VerifyConfig(),
                            tmp_path / "M1", {}, tmp_path / "work")


def test_no_tasks_is_one_line(tmp_path):
    with pytest.raises(StageError, match="no tasks to train on"):
        grpo.grpo_iteration(tmp_path, [], GrpoConfig(), VerifyConfig(), tmp_path / "M1", {}, tmp_path / "work")
