"""grpo.enabled through the stages, in-process on the tiny model: the offline stages write empty outputs and load
no model, the dpo stage trains with GRPO on the iteration's tasks and writes the rollout rows (stable ids, the
step, the model they started from) and grpo.json, and a prompt without a verifier stops before any model loads."""

import json
import shutil

import yaml

from pipeline import models
from tests.helpers import read, shrunk
from tests.inprocess import run_stage

OFFLINE = ("sample", "verify", "reflect", "judge", "meta_judge", "judge_training", "pairs")


def word_tasks(n=4):
    """Constraint tasks (the task-file format) a random 16-token completion sometimes meets: a word-count bound."""
    return [{"task_id": f"w{k}", "family": "constraints", "prompt": f"Write at least {9 + k} words.", "answer": "",
             "verifier": "constraints", "instruction_id_list": ["length_constraints:number_words"],
             "kwargs": [{"relation": "at least", "num_words": 9 + k}]} for k in range(n)]


def _workdir(workdir, tiny_model_dir, tasks):
    shutil.copytree(tiny_model_dir, workdir / "models" / "M0_sft")
    (workdir / "data/tasks/constraints/train.jsonl").write_text("".join(json.dumps(t) + "\n" for t in tasks))
    params = shrunk("constraints", {"engine": {"backend": "hf"}, "self_instruct": {"tasks": len(tasks)}})
    params["grpo"] = {"enabled": True, "num_generations": 4, "max_completion_length": 16, "batch_size": 8,
                      "learning_rate": 1e-3, "max_steps": 2, "save_steps": 1, "dtype": "float32"}
    (workdir / "params.yaml").write_text(yaml.safe_dump(params))


def test_grpo_enabled_skips_the_offline_stages_and_trains_online(workdir, tiny_model_dir, monkeypatch):
    from stages import _generate

    _workdir(workdir, tiny_model_dir, word_tasks())

    def no_engine(*a, **k):
        raise AssertionError("an offline stage opened an engine under grpo.enabled")

    monkeypatch.setattr(_generate, "open_engine", no_engine)
    for stage in ("self_instruct", *OFFLINE, "dpo"):
        proc = run_stage(stage, "--iteration", "M1")
        assert proc.returncode == 0, f"{stage}: {proc.stderr}"
    d, m = workdir / "data/M1", workdir / "metrics/M1"
    for name in ("responses", "verifications", "reflections", "judgments", "meta_judgments", "known_pairs",
                 "response_pairs", "judge_training_pairs"):
        assert (d / f"{name}.jsonl").read_text() == "", name
    for stage in OFFLINE:
        assert json.loads((m / f"{stage}.json").read_text())["skipped"].startswith("grpo.enabled"), stage
    rows = read(d / "rollouts.jsonl")
    assert len(rows) == 16 and [r["step"] for r in rows] == [1] * 8 + [2] * 8
    assert len({r["rollout_id"] for r in rows}) == 16 and all(r["rollout_id"].startswith("ro-") for r in rows)
    assert {r["iteration"] for r in rows} == {"M1"} and {r["model"] for r in rows} == {"M0_sft"}
    assert {r["prompt_id"] for r in rows} <= {p["prompt_id"] for p in read(d / "prompts.jsonl")}
    figures = json.loads((m / "grpo.json").read_text())
    assert figures["enabled"] and figures["steps"] == 2 and figures["rollouts"] == 16
    assert json.loads((m / "dpo.json").read_text())["method"] == "grpo"
    card = models.read_card(workdir / "models/M1")
    assert card["training"]["method"] == "grpo" and card["parent"] == "M0_sft"
    assert card["data_sha256"]["prompts"] == models.sha256_file(d / "prompts.jsonl")
    check_inspection(workdir, rows)


def check_inspection(root, rows):
    """The rollouts as `selfreward list` / `trace`, the report page and summary.json show them."""
    from pipeline import page, summary
    from pipeline.inspection import load_iteration, table_rows, trace
    from tests.test_inspection import cli

    it = load_iteration("M1", root)
    listed = table_rows(it, "rollouts")
    assert [r["rollout_id"] for r in listed] == [r["rollout_id"] for r in rows]
    assert [(r["step"], r["reward"], r["text"]) for r in listed] == [(r["step"], r["reward"], r["completion"])
                                                                      for r in rows]
    code, out, err = cli("list", "rollouts", "--iteration", "M1", "--where", "step=2", "--format", "jsonl")
    assert code == 0, err
    assert [json.loads(line)["rollout_id"] for line in out.splitlines()] == [r["rollout_id"] for r in rows[8:]]
    first = rows[0]
    t = trace(it, first["rollout_id"])
    assert t["focus"]["rollout"]["completion"] == first["completion"] and t["prompt"]["id"] == first["prompt_id"]
    assert {ro["id"] for ro in t["rollouts"]} == {r["rollout_id"] for r in rows if r["prompt_id"] == first["prompt_id"]}
    code, out, err = cli("trace", first["rollout_id"])
    assert code == 0, err
    assert f"→ rollout {first['rollout_id']} · step 1 · reward" in out
    html = page.build_page(it, compress=False)
    assert '<section id="rollouts">' in html and first["rollout_id"] in html and "Rewards of GRPO rollouts" in html
    head = summary.iteration_summary({"grpo": json.loads((root / "metrics/M1/grpo.json").read_text())})
    assert head["grpo"]["steps"] == 2 and head["grpo"]["rollouts"] == 16


def test_a_prompt_without_a_verifier_stops_the_grpo_step_before_the_model_loads(workdir, tiny_model_dir,
                                                                               monkeypatch):
    _workdir(workdir, tiny_model_dir, word_tasks())
    assert run_stage("self_instruct", "--iteration", "M1").returncode == 0
    prompts = workdir / "data/M1/prompts.jsonl"
    rows = read(prompts)
    rows[0].update(verifier=None, answer=None, inputs={})
    prompts.write_text("".join(json.dumps(r) + "\n" for r in rows))

    def no_load(*a, **k):
        raise AssertionError("the model was loaded")

    monkeypatch.setattr("pipeline.grpo.load_model", no_load)
    proc = run_stage("dpo", "--iteration", "M1")
    assert proc.returncode == 2
    line = proc.stderr.strip().splitlines()[-1]
    assert f'prompt "{rows[0]["prompt_id"]}" has no verifier' in line
    assert not (workdir / "models/M1").exists()
