"""Every generating stage dies at several points and is run again: the output is byte-identical to an
uninterrupted run, and the finished shards are reused.

In-process, a crash is an exception raised inside the engine while it generates shard k (nothing after it runs,
as after a SIGKILL: the stage's outputs are never written, its finished shards stay under .work/). The
subprocess tests with a real SIGKILL are in tests/test_faults.py; the last test here kills `dvc repro` itself.
"""

import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time

import pytest
import yaml

from tests.fakes import ScriptedEngine
from tests.helpers import TINY_PARAMS, scripted_model, write_prompts
from tests.inprocess import run_stage


class Killed(BaseException):
    """Not an Exception: no handler in the pipeline may catch it, as none can catch a SIGKILL."""


class Mortal(ScriptedEngine):
    """A scripted model that dies in its ``die_at``-th generate call (one call per shard)."""

    calls = 0
    die_at = None

    def generate(self, conversations, settings, desc="generate"):
        Mortal.calls += 1
        if Mortal.calls == Mortal.die_at:
            raise Killed(f"killed in generate call {Mortal.calls}")
        return super().generate(conversations, settings, desc)


WORDS = ("rivers", "poems", "budget", "garden", "planets", "history", "recipe", "chess", "email", "train",
         "volcano", "music", "soap", "bridge", "tax", "winter", "robot", "coffee", "maps", "bees")


def model(prompt, i):
    """scripted_model, plus new tasks for self-instruct requests (different words, so that ROUGE-L lets them in)."""
    if "<task>" in prompt:
        h = sum(map(ord, prompt[-400:])) + 7 * i
        return f"Explain {WORDS[h % 20]} and {WORDS[(h // 20) % 20]} to a {WORDS[(h // 400) % 20]} fan.</task>"
    return scripted_model(prompt, i)


@pytest.fixture()
def mortal(tiny_workdir, monkeypatch):
    from stages import _generate

    monkeypatch.setattr(_generate, "open_engine", lambda params, *a, **k: lambda d: Mortal(
        model, lambda ctx, opts: [-1.0 - 0.1 * k for k in range(len(opts))], cache_choices=True))
    params = {**TINY_PARAMS, "engine": {"backend": "hf", "shard_size": 2},
              "self_instruct": {"num_prompts": 6, "max_requests": 16, "shard_size": 2, "generator": "M0_sft"},
              "sample": {"n": 3, "max_new_tokens": 200, "thoughts": "none", "shard_size": 1},
              "judge": {"k": 2, "max_new_tokens": 60}, "meta_judge": {"num_judgments": 3, "max_new_tokens": 60},
              "evaluate": {"baselines": ["previous"], "evaluator": "M0_sft", "max_prompts": 3, "max_new_tokens": 100,
                           "max_labelled_pairs": 2, "judge_k": 1, "bootstrap": 20}}
    (tiny_workdir / "params.yaml").write_text(yaml.safe_dump(params))
    write_prompts(tiny_workdir, n=4)
    return tiny_workdir


STAGES = {  # stage -> (the outputs it writes under data/M1, the stages that must run first)
    "self_instruct": (["prompts.jsonl", "instruction_candidates.jsonl"], []),
    "sample": (["responses.jsonl"], []),
    "judge": (["judgments.jsonl"], ["sample", "verify"]),
    "meta_judge": (["extra_judgments.jsonl", "meta_judgments.jsonl", "ratings.jsonl"], ["sample", "verify", "judge"]),
    "evaluate": (["eval_answers.jsonl", "eval_comparisons.jsonl", "eval_judge.jsonl"], []),
    "reflect": (["reflections.jsonl"], ["self_instruct", "sample", "verify"]),  # on arithmetic tasks
}
KILL_POINTS = [1, 2, 3]  # die in the 1st, 2nd or 3rd shard: before any is saved, after one, after two


def run(stage):
    """Run a stage to the end; how many shards it generated (one engine call each)."""
    Mortal.calls, Mortal.die_at = 0, None
    proc = run_stage(stage, "--iteration", "M1")
    assert proc.returncode == 0, f"{stage}: {proc.stderr}"
    return Mortal.calls


def outputs(workdir, stage):
    return {name: (workdir / "data/M1" / name).read_bytes() for name in STAGES[stage][0]}


@pytest.mark.parametrize("kill_at", KILL_POINTS)
@pytest.mark.parametrize("stage", list(STAGES))
def test_killed_stage_reruns_to_identical_output(mortal, stage, kill_at):
    if stage == "evaluate":  # evaluate compares M1 with its predecessor: make an M1
        shutil.copytree(mortal / "models/M0_sft", mortal / "models/M1")
    if stage == "reflect":  # 4 tasks, 3 samples each: every third answer is wrong, so 4 attempts get reflections
        params = yaml.safe_load((mortal / "params.yaml").read_text())
        params.update(self_instruct={"num_prompts": 0, "tasks": 4}, reflect={"enabled": True, "reflections": 4})
        (mortal / "params.yaml").write_text(yaml.safe_dump(params))
    for before in STAGES[stage][1]:
        run(before)
    shards = run(stage)
    assert shards >= 3, "the workload must have more shards than the last kill point"
    reference = outputs(mortal, stage)
    for name in reference:
        (mortal / "data/M1" / name).unlink()
    shutil.rmtree(mortal / ".work", ignore_errors=True)

    Mortal.calls, Mortal.die_at = 0, kill_at
    with pytest.raises(Killed):
        run_stage(stage, "--iteration", "M1")
    assert not any((mortal / "data/M1" / name).exists() for name in reference)  # nothing half written
    saved = len(list((mortal / ".work").glob(f"{stage}-M1-*/*.jsonl")))
    assert saved == kill_at - 1  # every shard finished before the kill was saved

    assert run(stage) == shards - saved  # the saved shards were reused, not generated again
    assert outputs(mortal, stage) == reference
    assert not list((mortal / ".work").glob(f"{stage}-M1-*")), "the work folder is removed after success"


# ------------------------------------------------------------------------------------------ dvc repro
DVC_YAML = """stages:
  sample:
    foreach: ${iterations}
    do:
      cmd: python -m stages.sample --iteration ${key}
      deps:
        - data/${key}/prompts.jsonl
        - models/${item.prev}
      params:
        - sample
        - engine
      outs:
        - data/${key}/responses.jsonl
        - metrics/${key}/sample.json: {cache: false}
"""


def dvc(root, *args, wait=True):
    env = {**os.environ, "PYTHONPATH": str(os.path.dirname(os.path.dirname(__file__))), "HF_HUB_OFFLINE": "1"}
    log = (root / "dvc.log").open("ab")
    proc = subprocess.Popen([sys.executable, "-m", "dvc", *args], cwd=root, env=env, stdout=log, stderr=log,
                            start_new_session=True)  # its own process group: the kill reaches the stage too
    return proc.wait(timeout=600) if wait else proc


def dvc_project(root, tiny_model_dir):
    from tests.helpers import REPO

    for name in ("prompts", "data/seed", "data/eval"):
        shutil.copytree(REPO / name, root / name)
    shutil.copytree(tiny_model_dir, root / "models/M0_sft")
    params = {**TINY_PARAMS, "engine": {"backend": "hf", "batch_size": 2, "shard_size": 1},
              "sample": {"n": 2, "max_new_tokens": 24, "thoughts": "none"}}
    (root / "params.yaml").write_text(yaml.safe_dump(params))
    (root / "dvc.yaml").write_text(DVC_YAML)
    write_prompts(root, n=8)
    assert dvc(root, "init", "--no-scm", "-q") == 0


def lock_outs(root):
    lock = yaml.safe_load((root / "dvc.lock").read_text())
    return {o["path"]: o["md5"] for s in lock["stages"].values() for o in s.get("outs", []) if "metrics" not in o["path"]}


@pytest.mark.slow
def test_killing_dvc_repro_mid_stage_then_rerunning_gives_the_same_lock(tmp_path, tiny_model_dir):
    whole, killed = tmp_path / "whole", tmp_path / "killed"
    for root in (whole, killed):
        root.mkdir()
        dvc_project(root, tiny_model_dir)
    assert dvc(whole, "repro") == 0, (whole / "dvc.log").read_text()[-2000:]

    proc = dvc(killed, "repro", wait=False)
    deadline = time.time() + 300
    while time.time() < deadline and proc.poll() is None:
        if len(list((killed / ".work").glob("sample-M1-*/*.jsonl"))) >= 3:
            break
        time.sleep(0.05)
    assert proc.poll() is None, "dvc repro ended before it could be killed"
    os.killpg(proc.pid, signal.SIGKILL)  # dvc and the stage it runs, as when a machine's job is killed
    proc.wait()
    assert not (killed / "data/M1/responses.jsonl").exists()
    assert dvc(killed, "repro") == 0, (killed / "dvc.log").read_text()[-2000:]
    assert "reused" in (killed / "dvc.log").read_text()
    assert lock_outs(killed) == lock_outs(whole)
    assert hashlib.sha256((killed / "data/M1/responses.jsonl").read_bytes()).hexdigest() == \
        hashlib.sha256((whole / "data/M1/responses.jsonl").read_bytes()).hexdigest()
    assert json.loads((killed / "metrics/M1/sample.json").read_text())["responses"] == 16
