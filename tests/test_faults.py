"""Crash safety: a stage killed with SIGKILL and run again reuses its finished shards and writes the same bytes."""

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
