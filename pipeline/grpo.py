"""GRPO on an iteration's tasks with TRL's ``GRPOTrainer``: M_prev -> M_key, rewarded by the verifiers.

The online counterpart of the dpo step for tasks with known answers: TRL samples ``grpo.num_generations``
completions per task, :func:`pipeline.grpo_rewards.verifier_reward` checks each one as the verify step would and
returns its reward level, and TRL's GRPO loss (``grpo.loss_type``, clipping ``grpo.epsilon``, KL ``grpo.beta``)
updates the policy. Generation is TRL's own (transformers ``generate``) on a CPU; on a GPU, ``grpo.use_vllm``
hands it to vLLM as TRL does it (``grpo.vllm_mode``: colocate in this process, or a ``trl vllm-serve`` server).

Every reward TRL asked for is kept as a rollout row (step, prompt id, completion, reward, what was read and
why) in ``rollouts.jsonl`` beside the checkpoints, written as it is given; a run resumed from a checkpoint of step
N drops the rows of later steps (they are generated again), so the kept rows are those of the steps that
trained. :func:`grpo_iteration` is the whole step: train, save the model and its card, return metrics and rows.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import shutil
import statistics
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from transformers import TrainerCallback

from pipeline import grpo_rewards, launch, models
from pipeline.config import GrpoConfig, VerifyConfig
from pipeline.errors import StageError
from pipeline.models import load_model
from pipeline.records import Prompt, Rollout, digest, stable_id
from pipeline.training import (
    StopOnNonFiniteLoss,
    check_disk,
    common_args,
    last_checkpoint,
    log_summary,
    trained_model,
    training_precision,
    training_record,
)

log = logging.getLogger("pipeline")

ROLLOUTS = "rollouts.jsonl"


class RolloutLog(TrainerCallback):
    """The rewards given, one JSON line each, tagged with the optimizer step whose rollouts they scored.

    Used as the reward function's ``kept`` list (its ``append``) and as a trainer callback, which tells it the
    step. On the first step of a resumed run it drops the lines of steps after the checkpoint."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.step = 1

    def on_train_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        done = state.global_step  # 0, or the step of the checkpoint a resumed run starts from
        kept = [line for line in self.lines() if json.loads(line)["step"] <= done]
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text("".join(kept))
        tmp.replace(self.path)
        self.step = done + 1

    def on_step_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        self.step = state.global_step + 1

    def append(self, rollout: grpo_rewards.Reward) -> None:
        if not launch.is_main():
            return
        with self.path.open("a", encoding="utf-8") as f:
            f.write(json.dumps({"step": self.step, **dataclasses.asdict(rollout)}, ensure_ascii=False) + "\n")

    def lines(self) -> list[str]:
        return self.path.read_text(encoding="utf-8").splitlines(keepends=True) if self.path.exists() else []

    def rows(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self.lines()]


def check_batch(tasks: int, cfg: GrpoConfig) -> None:
    """A step needs whole groups of completions and at least one task per group: say so before any model loads."""
    per_step = cfg.batch_size * cfg.gradient_accumulation_steps  # one process: the stage has no launcher yet
    if per_step // cfg.num_generations > tasks:
        raise StageError(f"grpo: a step takes {per_step // cfg.num_generations} tasks (grpo.batch_size "
                         f"{cfg.batch_size} x gradient_accumulation_steps {cfg.gradient_accumulation_steps} / "
                         f"num_generations {cfg.num_generations}) but the iteration has {tasks}")


def check_vllm(cfg: GrpoConfig) -> None:
    """grpo.use_vllm is TRL's GPU path: without a CUDA device (or without vllm) say so before any model loads."""
    if not cfg.use_vllm:
        return
    import importlib.util

    import torch

    if not torch.cuda.is_available():
        raise StageError("grpo.use_vllm: true needs a CUDA GPU (TRL generates with vLLM on GPUs only); on a CPU set "
                         "grpo.use_vllm: false and TRL generates with transformers")
    if importlib.util.find_spec("vllm") is None:
        raise StageError("grpo.use_vllm: true but the vllm package is not installed (pip install vllm, in a "
                         "version TRL supports)")


def train_grpo(model_dir: Path, tasks: Sequence[Prompt], cfg: GrpoConfig, verify: VerifyConfig,
               checkpoint_dir: Path) -> tuple[Any, Any, dict[str, Any], list[dict[str, Any]]]:
    """Train and return (model, tokenizer, training summary, rollout rows). Resumes from the last checkpoint."""
    from datasets import Dataset
    from trl import GRPOConfig, GRPOTrainer

    precision = training_precision(cfg.dtype, "grpo")
    model, tok = load_model(model_dir, "float32")
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    checkpoint_dir.mkdir(parents=True, exist_ok=True)
    rollouts = RolloutLog(checkpoint_dir / ROLLOUTS)
    reward = grpo_rewards.verifier_reward(tasks, verify, kept=rollouts)
    base = common_args(str(checkpoint_dir), epochs=cfg.epochs, learning_rate=cfg.learning_rate,
                       batch_size=cfg.batch_size, grad_accum=cfg.gradient_accumulation_steps, seed=cfg.seed,
                       save_steps=cfg.save_steps, compute_dtype=precision.dtype)
    args = GRPOConfig(
        **base, max_steps=cfg.max_steps, num_generations=cfg.num_generations,
        max_completion_length=cfg.max_completion_length, temperature=cfg.temperature, top_p=cfg.top_p, top_k=0,
        beta=cfg.beta, epsilon=cfg.epsilon, loss_type=cfg.loss_type, scale_rewards=cfg.scale_rewards,
        num_iterations=cfg.num_iterations, mask_truncated_completions=cfg.mask_truncated_completions,
        log_completions=False, use_vllm=cfg.use_vllm, vllm_mode=cfg.vllm_mode,
        vllm_server_base_url=cfg.vllm_server_base_url, vllm_gpu_memory_utilization=cfg.vllm_gpu_memory_utilization,
    )
    trainer = GRPOTrainer(model=model, reward_funcs=[reward], args=args,
                          train_dataset=Dataset.from_list(grpo_rewards.dataset_rows(tasks)), processing_class=tok,
                          callbacks=[rollouts, StopOnNonFiniteLoss()])
    resume = last_checkpoint(str(checkpoint_dir))
    if resume is not None:
        log.info("grpo: resuming from %s", resume)
    trainer.train(resume_from_checkpoint=resume)
    trained, state = trained_model(trainer)
    summary = {**log_summary(trainer.state.log_history), "precision": precision.record(), "state_dict": state}
    return trained, tok, summary, rollouts.rows()


def step_figures(log_history: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per optimizer step, TRL's logged GRPO statistics under plain names."""
    names = {"reward": "reward_mean", "reward_std": "reward_std", "frac_reward_zero_std": "groups_zero_spread",
             "kl": "kl", "completions/mean_length": "completion_length", "loss": "loss", "entropy": "entropy",
             "completions/clipped_ratio": "completions_cut"}
    out = []
    for h in log_history:
        if "reward" not in h:
            continue
        out.append({"step": h.get("step"), **{plain: h[key] for key, plain in names.items() if key in h}})
    return out


def grpo_iteration(prev_dir: Path, tasks: Sequence[Prompt], cfg: GrpoConfig, verify: VerifyConfig, out_dir: Path,
                   card: dict[str, Any], work_root: Path) -> tuple[dict[str, Any], list[Rollout]]:
    """The grpo step: train from ``prev_dir`` on ``tasks``, save to ``out_dir``; return (metrics, rollout rows).

    Checkpoints (and the rollout rows as they are given) live under ``work_root`` until the model is saved."""
    tasks = list(tasks)
    if not tasks:
        raise StageError(f"grpo {out_dir.name}: no tasks to train on — GRPO needs prompts with known answers")
    grpo_rewards.dataset_rows(tasks)  # every prompt a task the verifiers can check: one line, before any model loads
    grpo_rewards.verifier_reward(tasks, verify)
    check_batch(len(tasks), cfg)
    check_vllm(cfg)
    check_disk(prev_dir, "grpo")
    ref = models.model_ref(prev_dir)
    work = work_root / f"grpo-{out_dir.name}-{digest(ref, dataclasses.asdict(cfg), [t.prompt_id for t in tasks])}"
    start = time.time()
    model, tok, summary, logged = train_grpo(prev_dir, tasks, cfg, verify, work)
    seen: dict[tuple[int, str], int] = {}  # a rollout's place in its step's group: part of its stable id
    rows = []
    for r in logged:
        n = seen[r["step"], r["prompt_id"]] = seen.get((r["step"], r["prompt_id"]), -1) + 1
        rows.append(Rollout(rollout_id=stable_id("ro", out_dir.name, r["step"], r["prompt_id"], n, r["completion"]),
                            iteration=out_dir.name, **r, **ref))  # by the policy trained from ref, at that step
    saved: dict[str, Any] = {"weights_sha256": None}
    if launch.is_main():
        saved = models.save_model(model, tok, out_dir, state_dict=summary.pop("state_dict"), card={
            **card, "precision": summary["precision"],
            "training": {"method": "grpo", "tasks": len(tasks), "rollouts": len(rows), **training_record(cfg)}})
    summary.pop("state_dict", None)
    launch.barrier()
    steps = step_figures(summary["log"])
    rewards = [r.reward for r in rows]
    seconds = time.time() - start
    if launch.is_main():
        for stale in work_root.glob(f"grpo-{out_dir.name}-*"):
            shutil.rmtree(stale, ignore_errors=True)
    metrics = {
        "tasks": len(tasks), "rollouts": len(rows), "steps": len(steps),
        "first_reward_mean": steps[0].get("reward_mean") if steps else None,
        "last_reward_mean": steps[-1].get("reward_mean") if steps else None,
        "mean_reward": statistics.fmean(rewards) if rewards else None,
        "correct_share": statistics.fmean(float(r.correct) for r in rows) if rows else None,
        "seconds": round(seconds, 1), "weights_sha256": saved["weights_sha256"],
        "precision": summary["precision"], "per_step": steps, "log": summary["log"]}
    return metrics, rows
