"""Crash safety: a stage killed with SIGKILL and run again reuses its finished shards and writes the same bytes."""

import json
import re
import shutil
import signal
import time
from pathlib import Path

import pytest
import yaml

from pipeline.training import last_checkpoint
from tests.fakes import write_pairs
from tests.helpers import TINY_PARAMS, write_prompts
from tests.proc import Stage, run_stage, start_stage, wait_for_files

# A kill is meant to land mid-stage, but the stage may outrun the poll that triggers it (a loaded machine).
# Such an attempt proves nothing, so it is run again with slower work per step rather than accepted.
SHARDS = 8  # one prompt per shard
SAMPLE_MAX_NEW_TOKENS = (16, 64)  # the retry makes every shard about 4x slower
DPO_PAIRS = (40, 160)  # each retry leaves more steps after the first checkpoint


def killed(stage: Stage) -> bool:
    """SIGKILL the stage; False when it had already finished (exit 0), a failure when it had crashed."""
    code = stage.kill()
    assert code in (0, -signal.SIGKILL), f"the stage crashed (exit {code}):\n{stage.err()[-3000:]}"
    return code == -signal.SIGKILL


def shard_files(workdir: Path) -> list[Path]:
    # Finished shards only: a shard being written is a temporary file whose name starts with ".".
    return sorted((workdir / ".work").glob("sample-M1-*/shard-*.jsonl"))


def sample_killed_and_rerun(workdir: Path, kill_after_shards: int, max_new_tokens: int) -> bool:
    """One attempt; False when the stage wrote every shard before the kill landed."""
    params = {**TINY_PARAMS, "engine": {"backend": "hf", "batch_size": 4, "shard_size": 1},
              "sample": {"n": 2, "max_new_tokens": max_new_tokens, "thoughts": "none"}}
    (workdir / "params.yaml").write_text(yaml.safe_dump(params))
    logs = workdir / "logs" / f"sample-{max_new_tokens}"
    out = workdir / "data/M1/responses.jsonl"
    run_stage("sample", "--iteration", "M1", logs=logs)
    reference = out.read_bytes()
    out.unlink()

    stage = start_stage("sample", "--iteration", "M1", logs=logs)
    wait_for_files(lambda: shard_files(workdir), kill_after_shards, stage)
    was_killed = killed(stage)
    finished = len(shard_files(workdir))  # after the kill: more shards may have finished while it landed
    if not was_killed or finished == SHARDS:
        return False
    assert finished >= kill_after_shards, f"no shard within the deadline:\n{stage.err()[-3000:]}"
    assert not out.exists()  # the output is written only after the last shard

    rerun = run_stage("sample", "--iteration", "M1", logs=logs)
    assert out.read_bytes() == reference
    reuse = rf"reused {finished} finished shard\(s\), generated {SHARDS - finished}$"
    assert re.search(reuse, rerun.err(), re.MULTILINE), rerun.err()[-3000:]
    assert not list((workdir / ".work").glob("sample-M1-*")), "the work folder is removed after success"
    return True


@pytest.mark.slow  # real SIGKILLs of subprocesses; every generating stage is killed in-process in test_kills.py
@pytest.mark.parametrize("kill_after_shards", [1, 4])
def test_sigkill_then_rerun_gives_identical_output(tiny_workdir, kill_after_shards):
    write_prompts(tiny_workdir, n=SHARDS)
    for max_new_tokens in SAMPLE_MAX_NEW_TOKENS:
        if sample_killed_and_rerun(tiny_workdir, kill_after_shards, max_new_tokens):
            return
    pytest.fail(f"sample wrote all {SHARDS} shards before every kill, even at {max_new_tokens} new tokens")


def complete_checkpoints(workdir: Path) -> list[Path]:
    """The newest checkpoint with a readable trainer state (what a resume would use), as a list of 0 or 1."""
    found = [last_checkpoint(str(d)) for d in (workdir / ".work").glob("dpo-M1-*")]
    return [Path(c) for c in found if c is not None]


def dpo_killed_and_resumed(workdir: Path, pairs: int, launch: dict | None = None) -> bool:
    """One attempt; False when training finished before the kill landed. With ``launch`` the stage trains on
    several processes, and the kill hits the stage only: its launcher and workers must stop with it (else they
    would still hold the rendezvous port the re-run needs, and write a model)."""
    params = {**TINY_PARAMS, "dpo": {"batch_size": 1, "max_length": 64, "learning_rate": 1e-4, "save_steps": 2,
                                     "precompute_ref_log_probs": False, **({"launch": launch} if launch else {})}}
    (workdir / "params.yaml").write_text(yaml.safe_dump(params))
    write_pairs(workdir, pairs)
    logs = workdir / "logs" / f"dpo-{pairs}"
    stage = start_stage("dpo", "--iteration", "M1", logs=logs)
    wait_for_files(lambda: complete_checkpoints(workdir), 1, stage)
    if not killed(stage):
        shutil.rmtree(workdir / "models/M1")  # the next attempt checks that a killed run wrote no model
        return False
    resume = complete_checkpoints(workdir)  # after the kill: a later checkpoint may have completed meanwhile
    assert resume, f"no complete checkpoint within the deadline:\n{stage.err()[-3000:]}"
    assert not (workdir / "models/M1/config.json").exists()
    if launch:
        time.sleep(5)  # long enough for orphaned workers to reach another checkpoint or the end
        assert not (workdir / "models/M1/config.json").exists(), "training went on after the stage was killed"

    rerun = run_stage("dpo", "--iteration", "M1", logs=logs)
    logged = re.search(r"dpo: resuming from (\S+)$", rerun.err(), re.MULTILINE)
    assert logged and Path(logged[1]).resolve() == resume[0].resolve(), rerun.err()[-3000:]
    log = json.loads((workdir / "metrics/M1/dpo.json").read_text())
    processes = launch["processes"] if launch else 1
    assert log["steps"] == pairs // processes and log["pairs"] == pairs
    assert not list((workdir / ".work").glob("dpo-M1-*")), "checkpoints are removed after success"
    return True


@pytest.mark.slow
def test_dpo_on_two_processes_killed_resumes_and_leaves_no_orphans(tiny_workdir):
    """dpo.launch with 2 processes: SIGKILL the stage; its launcher and workers stop too; the re-run resumes."""
    for pairs in DPO_PAIRS:
        if dpo_killed_and_resumed(tiny_workdir, pairs, {"processes": 2, "main_process_port": 29521}):
            return
    pytest.fail(f"dpo finished before every kill, even with {pairs} pairs")


@pytest.mark.slow
def test_dpo_killed_mid_training_resumes_from_last_checkpoint(tiny_workdir):
    """SIGKILL during DPO, run again: training resumes from the last complete checkpoint, not from step 0."""
    for pairs in DPO_PAIRS:
        if dpo_killed_and_resumed(tiny_workdir, pairs):
            return
    pytest.fail(f"dpo finished before every kill, even with {pairs} pairs")


def grpo_checkpoints(workdir: Path) -> list[Path]:
    found = [last_checkpoint(str(d)) for d in (workdir / ".work").glob("grpo-M1-*")]
    return [Path(c) for c in found if c is not None]


@pytest.mark.slow
def test_grpo_killed_mid_training_resumes_and_keeps_each_steps_rollouts_once(tiny_workdir):
    """grpo.enabled: SIGKILL the dpo stage after a checkpoint, run it again: training resumes there, and
    rollouts.jsonl holds each step's rollouts once (those of the step the kill cut short are made again)."""
    from pipeline.records import Prompt, write_jsonl

    write_jsonl(tiny_workdir / "data/M1/prompts.jsonl", [
        Prompt(prompt_id=f"w{n}", instruction=f"Write at least {n} words.", source="test", answer="",
               verifier="constraints", inputs={"instruction_id_list": ["length_constraints:number_words"],
                                               "kwargs": [{"relation": "at least", "num_words": n}]})
        for n in (9, 10, 11, 12)])
    for steps in (8, 24):  # more steps after the first checkpoint when the kill comes too late
        params = {**TINY_PARAMS, "grpo": {"enabled": True, "num_generations": 4, "max_completion_length": 16,
                                          "batch_size": 8, "learning_rate": 1e-3, "max_steps": steps,
                                          "save_steps": 1, "dtype": "float32"}}
        (tiny_workdir / "params.yaml").write_text(yaml.safe_dump(params))
        logs = tiny_workdir / "logs" / f"grpo-{steps}"
        stage = start_stage("dpo", "--iteration", "M1", logs=logs)
        wait_for_files(lambda: grpo_checkpoints(tiny_workdir), 1, stage)
        if not killed(stage):
            shutil.rmtree(tiny_workdir / "models/M1")
            continue
        resume = grpo_checkpoints(tiny_workdir)
        assert resume and not (tiny_workdir / "models/M1/config.json").exists()
        rerun = run_stage("dpo", "--iteration", "M1", logs=logs)
        logged = re.search(r"grpo: resuming from (\S+)$", rerun.err(), re.MULTILINE)
        assert logged and Path(logged[1]).resolve() == resume[0].resolve(), rerun.err()[-3000:]
        rows = [json.loads(line) for line in (tiny_workdir / "data/M1/rollouts.jsonl").read_text().splitlines()]
        assert [r["step"] for r in rows] == [s for s in range(1, steps + 1) for _ in range(8)]
        assert len({r["rollout_id"] for r in rows}) == len(rows)
        assert json.loads((tiny_workdir / "metrics/M1/grpo.json").read_text())["steps"] == steps
        assert not list((tiny_workdir / ".work").glob("grpo-M1-*")), "checkpoints are removed after success"
        return
    pytest.fail("grpo finished before every kill, even with 24 steps")


def test_incomplete_checkpoint_is_skipped(tmp_path):
    assert last_checkpoint(str(tmp_path / "none")) is None
    for step, state in [(2, '{"global_step": 2}'), (10, '{"global_step": 10}'), (12, '{"global_')]:
        (tmp_path / f"checkpoint-{step}").mkdir()
        (tmp_path / f"checkpoint-{step}" / "trainer_state.json").write_text(state)
    (tmp_path / "checkpoint-14").mkdir()  # killed before the state file was written
    assert last_checkpoint(str(tmp_path)) == str(tmp_path / "checkpoint-10")
