"""The held-out known pool (stage known_pool) and the judge measured on it every iteration (evaluate.known_pairs):
in-process with scripted generation."""

import json
import shutil

import pytest
import yaml

from tests.helpers import REPO, choice, no_comma_tasks, read, scripted_model
from tests.inprocess import run_stage

TASKS = no_comma_tasks("h", "town")


@pytest.fixture()
def pool_workdir(workdir, tiny_model_dir, monkeypatch):
    from stages import _generate
    from tests.fakes import ScriptedEngine

    shutil.copytree(tiny_model_dir, workdir / "models" / "M0")
    monkeypatch.setattr(_generate, "open_engine", lambda params, *a, **k: lambda d: ScriptedEngine(scripted_model, choice))
    (workdir / "data/tasks/constraints/heldout.jsonl").write_text("".join(json.dumps(t) + "\n" for t in TASKS))
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    params["engine"].update(backend="hf", batch_size=16, shard_size=8)
    params["known_pool"] = {"enabled": True, "answer_tasks": 0, "constraint_prompts": None, "samples": 4,
                            "max_new_tokens": 80, "open_prompts": 1}
    params["judge_training"] = {"max_new_tokens": 80}
    params["evaluate"].update(baselines=[], max_prompts=0, judge_accuracy=False, heldout_tasks=0, constraint_tasks=0,
                              known_pairs=None, known_modes=["pairwise", "pointwise"], max_labelled_pairs=2)
    (workdir / "params.yaml").write_text(yaml.safe_dump(params))
    return workdir


def test_pool_then_the_judge_measured_on_it(pool_workdir):
    proc = run_stage("known_pool")
    assert proc.returncode == 0, proc.stderr
    pool = read(pool_workdir / "data/M0/known_pool.jsonl")
    assert len(pool) == 4 and {p["split"] for p in pool} == {"heldout"}
    assert [p["source"] for p in pool] == ["constraints"] * 3 + ["self_taught"]
    assert all("," not in p["better"] and "," in p["worse"] for p in pool[:3])
    assert pool[3]["worse"] == "An answer about another topic." and pool[3]["prompt_id"] == "eval-001"
    assert len(read(pool_workdir / "data/M0/known_pool_responses.jsonl")) == 3 * 4
    proc = run_stage("evaluate", "--iteration", "M0")
    assert proc.returncode == 0, proc.stderr
    m = json.loads((pool_workdir / "metrics/M0/eval.json").read_text())["known_pairs"]
    assert (m["pairs"], m["by_source"]) == (6, {"constraints": 3, "labelled": 2, "self_taught": 1})
    pairwise = m["modes"]["pairwise"]
    # greedy: one judgment per order, sample 0, which names the comma-free response: right on every pool pair
    assert pairwise["by_source"]["constraints"]["accuracy"] == 1.0 and pairwise["by_source"]["constraints"]["n"] == 3
    assert pairwise["by_source"]["labelled"]["n"] == 2 and pairwise["overall"]["n"] == 6
    assert set(m["modes"]) == {"pairwise", "pointwise"}
    rows = read(pool_workdir / "data/M0/eval_known.jsonl")
    assert len(rows) == 6 * 2 * 2  # 6 pairs, two orders (pairwise) and two sides (pointwise)


def test_evaluate_without_the_pool_names_the_stage_to_run(pool_workdir):
    proc = run_stage("evaluate", "--iteration", "M0")
    assert proc.returncode == 2
    assert "data/M0/known_pool.jsonl is missing: run `dvc repro known_pool`" in proc.stderr


def test_pool_off_loads_no_model(pool_workdir):
    params = yaml.safe_load((pool_workdir / "params.yaml").read_text())
    params["known_pool"] = {"enabled": False}
    (pool_workdir / "params.yaml").write_text(yaml.safe_dump(params))
    shutil.rmtree(pool_workdir / "models")
    proc = run_stage("known_pool")
    assert proc.returncode == 0, proc.stderr
    assert read(pool_workdir / "data/M0/known_pool.jsonl") == []


def test_bad_known_inputs_stop_with_one_line_before_any_model_loads(pool_workdir):
    shutil.rmtree(pool_workdir / "models")  # a model load would fail differently: the check must come first
    (pool_workdir / "data/M0").mkdir(parents=True)
    same = {"known_id": "kp-1", "prompt_id": "p1", "instruction": "Say hi.", "better": "Hi.", "worse": " Hi. ",
            "source": "verified", "split": "heldout"}
    (pool_workdir / "data/M0/known_pool.jsonl").write_text(json.dumps(same) + "\n")
    proc = run_stage("evaluate", "--iteration", "M0")
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 2 and len(lines) == 1
    assert lines[0] == "error: data/M0/known_pool.jsonl:1: better and worse are the same text: nothing to prefer"
    (pool_workdir / "data/M0/known_pool.jsonl").write_text("")
    labelled = pool_workdir / "data/eval/labelled_pairs.jsonl"
    row = {"id": "lp-x", "category": "t", "instruction": "Say hi.", "response_a": "Hi.", "response_b": "Hi.",
           "preferred": "A"}
    labelled.write_text(json.dumps(row) + "\n")
    proc = run_stage("evaluate", "--iteration", "M0")
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 2 and len(lines) == 1 and "response_a and response_b are the same text" in lines[0]
    assert "labelled_pairs.jsonl" in lines[0]
