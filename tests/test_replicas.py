"""engine.data_parallel_size: a generating stage run as several engine replicas that share its shards."""

import json
import shutil
import threading
import time

import pytest
import yaml

from pipeline.engines.base import SamplingSettings
from pipeline.launch import replica_envs
from pipeline.shards import ShardCache
from tests.fakes import ScriptedEngine
from tests.helpers import TINY_PARAMS, run_stage, write_prompts

CONVS = [[{"role": "user", "content": f"question {i}"}] for i in range(10)]
SETTINGS = SamplingSettings(n=2, max_new_tokens=12, seed=3)


class SlowScripted(ScriptedEngine):
    """Each shard takes a little while, so two replicas overlap."""

    def generate(self, conversations, settings, desc="generate"):
        time.sleep(0.05)
        return super().generate(conversations, settings, desc)


def engine():
    return SlowScripted(lambda prompt, i: f"{prompt[-11:]} #{i}")


def test_replica_environments_split_the_gpus_or_the_cores():
    envs = replica_envs(2, 2, "run1", ["0", "1", "2", "3", "4"], cores=8)
    assert [e["CUDA_VISIBLE_DEVICES"] for e in envs] == ["0,1", "2,3"]
    assert [e["SELFREWARD_REPLICA"] for e in envs] == ["0/2/run1", "1/2/run1"]
    cpu = replica_envs(2, 1, "r", [], cores=8)
    assert all("CUDA_VISIBLE_DEVICES" not in e for e in cpu)
    with pytest.raises(ValueError, match="2 replicas x 4 GPU"):
        replica_envs(2, 4, "r", ["0", "1", "2"], cores=8)
    with pytest.raises(ValueError, match="1000 replicas on a CPU need a core each; this machine has 2"):
        replica_envs(1000, 1, "r", [], cores=2)


def test_two_replicas_share_the_shards_and_return_what_one_process_returns(tmp_path):
    alone = ShardCache("sample", "M1", ["in"], root=tmp_path / "alone").generate(engine(), CONVS, SETTINGS, 2)
    results, caches = {}, {}

    def replica(r):
        caches[r] = ShardCache("sample", "M1", ["in"], root=tmp_path / "shared", replica=(r, 2, "run1"))
        results[r] = caches[r].generate(engine(), CONVS, SETTINGS, 2)

    threads = [threading.Thread(target=replica, args=(r,)) for r in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results[0] == results[1] == alone
    assert caches[0].generated + caches[1].generated == 5  # every shard made once
    assert caches[0].generated >= 1 and caches[1].generated >= 1
    for r in (0, 1):  # the other's shards: read once written, waiting for those still being made
        assert caches[r].waited + caches[r].reused == caches[1 - r].generated
    caches[0].finish()  # a replica leaves the shards to the launching process
    assert any((tmp_path / "shared").iterdir())


def test_a_claim_left_by_a_killed_run_is_ignored(tmp_path):
    first = ShardCache("judge", "M1", ["in"], root=tmp_path, replica=(0, 2, "old"))
    first._claim(first.dir / "shard-00000-x.jsonl")  # the old run claimed a shard, then died before writing it
    again = ShardCache("judge", "M1", ["in"], root=tmp_path, replica=(0, 2, "new"))
    assert again._claim(again.dir / "shard-00000-x.jsonl")


@pytest.fixture()
def two_replicas(workdir, monkeypatch):
    """sample asked for 2 replicas, with a placeholder M0_sft (nothing loads) and run_replicas recorded, not run:
    the launching process's part alone."""
    from pipeline import launch

    (workdir / "models/M0_sft").mkdir(parents=True)
    (workdir / "models/M0_sft/config.json").write_text("{}")
    params = {**TINY_PARAMS, "engine": {**TINY_PARAMS["engine"], "data_parallel_size": 2}}
    (workdir / "params.yaml").write_text(yaml.safe_dump(params))
    write_prompts(workdir, 2)
    calls = []
    code = {"exit": 0}

    def run_replicas(n, per_replica, module, args):
        calls.append((n, per_replica, module, args))
        (workdir / ".work/sample-M1-abc").mkdir(parents=True)  # the shards the replicas would leave
        return code["exit"]

    monkeypatch.setattr(launch, "run_replicas", run_replicas)
    return workdir, calls, code


def test_the_launching_process_runs_the_replicas_and_writes_nothing_itself(two_replicas, caplog):
    from tests.inprocess import run_stage as run_here

    workdir, calls, _ = two_replicas
    caplog.set_level("INFO", logger="pipeline")
    proc = run_here("sample", "--iteration", "M1")
    assert proc.returncode == 0, proc.stderr
    assert calls == [(2, 1, "stages.sample", ["--iteration", "M1"])]
    assert "sample M1: 2 replicas done; replica 0 wrote the outputs" in caplog.messages
    assert not (workdir / "data/M1/responses.jsonl").exists() and not (workdir / "metrics/M1").exists()
    assert not list((workdir / ".work").glob("sample-M1-*"))  # their shards cleared


def test_a_failed_replica_fails_the_stage_in_one_line(two_replicas):
    from tests.inprocess import run_stage as run_here

    _, _, code = two_replicas
    code["exit"] = 3
    proc = run_here("sample", "--iteration", "M1")
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines()[-1] == "error: sample M1: a replica failed (exit 3); its error is above"


def test_a_stage_that_skips_the_replicas_cannot_open_its_shards(two_replicas, monkeypatch):
    """With data_parallel_size > 1, the shard cache refuses a stage main that did not call replicated() first;
    inside a replica it opens."""
    from pipeline import launch
    from stages import _common, _generate

    it = _common.Iteration(_common.parser(None).parse_args(["--iteration", "M1"]), "sample")
    with pytest.raises(RuntimeError, match=r"call _generate\.replicated\(it\)"):
        _generate.cache(it, "inputs")
    monkeypatch.setenv(launch.REPLICA_ENV, "1/2/run1")
    assert not _generate.replicated(it)
    assert _generate.cache(it, "inputs").replica == (1, 2, "run1")


def split_floats(value, floats):
    """``value`` with every float replaced by None; the floats appended to ``floats`` in order."""
    if isinstance(value, float):
        floats.append(value)
        return None
    if isinstance(value, dict):
        return {k: split_floats(v, floats) for k, v in value.items()}
    if isinstance(value, list):
        return [split_floats(v, floats) for v in value]
    return value


def outputs(root):
    """Every row of data/M1 with its floats apart (log-probs, digit probabilities, expected scores, margins):
    each replica computes with its share of the cores, and a float32 sum split over another number of threads
    rounds differently (about 1e-6 here), while every text, token id, integer and id must be the same."""
    rows, floats = {}, {}
    for path in sorted((root / "data/M1").glob("*.jsonl")):
        name = path.relative_to(root).as_posix()
        floats[name] = []
        rows[name] = [split_floats(json.loads(line), floats[name]) for line in path.read_text().splitlines()]
    return rows, floats


@pytest.mark.slow
def test_stages_on_two_replicas_write_what_one_process_writes(tiny_workdir, tmp_path):
    """sample, judge and meta_judge on the tiny model with engine.data_parallel_size 2 (two hf replicas on this
    CPU): the same rows as one process (every text, token id and id exactly, floats to 1e-4), both replicas
    generated, no shards left (verify and reflect generate nothing here and run as one process)."""
    write_prompts(tiny_workdir, 6)
    other = tmp_path / "one"
    shutil.copytree(tiny_workdir, other)
    stages = ("sample", "verify", "reflect", "judge", "meta_judge")
    params = {**TINY_PARAMS, "engine": {**TINY_PARAMS["engine"], "shard_size": 2, "data_parallel_size": 2}}
    (tiny_workdir / "params.yaml").write_text(yaml.safe_dump(params))
    logs = [run_stage(s, "--iteration", "M1").stderr for s in stages]
    assert "replica 0 of 2 generated" in logs[0] and "replica 1 of 2 generated" in logs[0]
    assert all("2 replicas done; replica 0 wrote the outputs" in log for log in (logs[0], logs[3], logs[4]))
    assert not list((tiny_workdir / ".work").glob("*"))
    import os

    one = {**params, "engine": {**params["engine"], "data_parallel_size": 1}}
    (other / "params.yaml").write_text(yaml.safe_dump(one))
    os.chdir(other)
    for s in stages:
        run_stage(s, "--iteration", "M1")
    (rows, floats), (rows_one, floats_one) = outputs(tiny_workdir), outputs(other)
    assert rows == rows_one and sum(map(len, rows.values())) > 0
    for name in floats:
        assert floats[name] == pytest.approx(floats_one[name], rel=1e-4, abs=1e-4), name
