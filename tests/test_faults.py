"""Crash safety: a stage killed with SIGKILL and run again reuses its finished shards and writes the same bytes."""

import json
import os
import signal
import subprocess
import sys
import time

import pytest
import yaml

from tests.test_iteration import REPO, TINY_PARAMS, tiny_workdir, write_prompts  # noqa: F401 (fixture)


def start_stage(name, *args):
    env = {**os.environ, "PYTHONPATH": str(REPO), "HF_HUB_OFFLINE": "1"}
    return subprocess.Popen([sys.executable, "-m", f"stages.{name}", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env)


@pytest.fixture()
def sample_workdir(tiny_workdir):
    params = {**TINY_PARAMS, "engine": {"backend": "hf", "batch_size": 4, "shard_size": 1},
              "sample": {"n": 2, "max_new_tokens": 16, "thoughts": "none"}}
    (tiny_workdir / "params.yaml").write_text(yaml.safe_dump(params))
    write_prompts(tiny_workdir, n=8)
    return tiny_workdir


@pytest.mark.parametrize("kill_after_shards", [1, 4])
def test_sigkill_then_rerun_gives_identical_output(sample_workdir, kill_after_shards):
    out = sample_workdir / "data/M1/responses.jsonl"
    proc = start_stage("sample", "--iteration", "M1")
    assert proc.wait(timeout=300) == 0, proc.stderr.read()[-2000:]
    reference = out.read_bytes()
    out.unlink()

    proc = start_stage("sample", "--iteration", "M1")
    deadline = time.time() + 300
    while time.time() < deadline:
        shards = list((sample_workdir / ".work").glob("sample-M1-*/shard-*.jsonl"))
        if len(shards) >= kill_after_shards or proc.poll() is not None:
            break
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not out.exists() or out.read_bytes() == reference  # never half written
    finished = len(list((sample_workdir / ".work").glob("sample-M1-*/shard-*.jsonl")))
    assert finished >= kill_after_shards

    proc = start_stage("sample", "--iteration", "M1")
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err[-2000:]
    assert out.read_bytes() == reference
    if finished < 8:
        assert f"reused {finished} finished shard(s)" in err
    assert not list((sample_workdir / ".work").glob("sample-M1-*")), "the work folder is removed after success"


def write_pairs(workdir, n, key="M1"):
    d = workdir / "data" / key
    d.mkdir(parents=True, exist_ok=True)
    rows = [{"pair_id": f"rp{i}", "prompt": [{"role": "user", "content": f"Name a colour, number {i}."}],
             "chosen": [{"role": "assistant", "content": f"Blue is colour {i}."}],
             "rejected": [{"role": "assistant", "content": f"I will not say anything about {i}, sorry."}]}
            for i in range(n)]
    (d / "response_pairs.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (d / "judgment_pairs.jsonl").write_text("")


def test_dpo_killed_mid_training_resumes_from_last_checkpoint(tiny_workdir):
    """SIGKILL during DPO, run again: training resumes from the last complete checkpoint, not from step 0."""
    params = {**TINY_PARAMS, "dpo": {"batch_size": 1, "max_length": 64, "learning_rate": 1e-4, "save_steps": 2,
                                     "precompute_ref_log_probs": False}}
    (tiny_workdir / "params.yaml").write_text(yaml.safe_dump(params))
    write_pairs(tiny_workdir, 40)
    proc = start_stage("dpo", "--iteration", "M1")
    deadline = time.time() + 300
    states = []
    while time.time() < deadline and proc.poll() is None:
        states = list((tiny_workdir / ".work").glob("dpo-M1-*/checkpoint-*/trainer_state.json"))
        if states:
            break
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert states and proc.returncode == -signal.SIGKILL, "the stage must be killed mid-training"
    assert not (tiny_workdir / "models/M1/config.json").exists()

    proc = start_stage("dpo", "--iteration", "M1")
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err[-2000:]
    assert "dpo: resuming from" in err and "checkpoint-" in err
    log = json.loads((tiny_workdir / "metrics/M1/dpo.json").read_text())
    assert log["steps"] == 40 and log["pairs"] == 40
    assert not list((tiny_workdir / ".work").glob("dpo-M1-*")), "checkpoints are removed after success"


def test_incomplete_checkpoint_is_skipped(tmp_path):
    from pipeline.training import last_checkpoint

    assert last_checkpoint(str(tmp_path / "none")) is None
    for step, state in [(2, '{"global_step": 2}'), (10, '{"global_step": 10}'), (12, '{"global_')]:
        (tmp_path / f"checkpoint-{step}").mkdir()
        (tmp_path / f"checkpoint-{step}" / "trainer_state.json").write_text(state)
    (tmp_path / "checkpoint-14").mkdir()  # killed before the state file was written
    assert last_checkpoint(str(tmp_path)) == str(tmp_path / "checkpoint-10")
