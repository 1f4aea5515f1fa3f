"""The judge learns from the truth, end to end in-process (scripted generation, the tiny model trains for real):
sample, verify, judge_training (known pairs judged, each judgment marked correct or not), pairs (judge-training
pairs: a correct judgment chosen over an incorrect one) and dpo, in both judge modes."""

import json
import shutil

import pytest
import yaml

from tests.helpers import choice, no_comma_tasks, read, scripted_model, shrunk
from tests.inprocess import run_stage

TASKS = no_comma_tasks("c", "place")


@pytest.fixture()
def judge_workdir(workdir, tiny_model_dir, monkeypatch):
    from stages import _generate
    from tests.fakes import ScriptedEngine

    shutil.copytree(tiny_model_dir, workdir / "models" / "M0_sft")
    monkeypatch.setattr(_generate, "open_engine", lambda params, *a, **k: lambda d: ScriptedEngine(scripted_model, choice))
    (workdir / "data/tasks/constraints/train.jsonl").write_text("".join(json.dumps(t) + "\n" for t in TASKS))
    return workdir


def _params(mode):
    params = shrunk("constraints", {"engine": {"backend": "hf", "batch_size": 16, "shard_size": 8},
                                    "self_instruct": {"tasks": 3}, "sample": {"max_new_tokens": 80},
                                    "judge": {"max_new_tokens": 20, "verifiable_prompts": 0},
                                    "dpo": {"epochs": 1, "batch_size": 2, "max_length": 512}})
    params["judge_training"] = {"enabled": True, "mode": mode, "judgments": 4, "max_new_tokens": 80}
    return params


def _run(workdir, params, stages=("self_instruct", "sample", "verify", "reflect", "judge", "judge_training", "pairs", "dpo")):
    (workdir / "params.yaml").write_text(yaml.safe_dump(params))
    for stage in stages:
        proc = run_stage(stage, "--iteration", "M1")
        assert proc.returncode == 0, f"{stage}: {proc.stderr}"
    return workdir / "data/M1"


def test_pairwise_known_pairs_judgments_and_training_pairs(judge_workdir):
    d = _run(judge_workdir, _params("pairwise"))
    known = read(d / "known_pairs.jsonl")
    # 4 samples per task, answers with a comma on odd samples: one known pair per task, the comma-free one better
    assert len(known) == 3 and {k["source"] for k in known} == {"constraints"} and {k["split"] for k in known} == {"train"}
    assert all("," not in k["better"] and "," in k["worse"] for k in known)
    judged = read(d / "known_judgments.jsonl")
    assert len(judged) == 3 * 2 * 4  # both orders, k = 4
    assert [(j["shown"], j["judge_index"], j["verdict"], j["correct"]) for j in judged[:8]] == [
        ("better_first", 0, "A", True), ("better_first", 1, "B", False), ("better_first", 2, "A", True),
        ("better_first", 3, "B", False), ("worse_first", 0, "B", True), ("worse_first", 1, "A", False),
        ("worse_first", 2, "B", True), ("worse_first", 3, "A", False)]
    assert {j["method"] for j in judged} == {"strict"} and all(j["token_ids"] for j in judged)
    m = json.loads((judge_workdir / "metrics/M1/judge_training.json").read_text())
    overall = m["accuracy"]["overall"]
    assert (m["known_pairs"], m["judgments"], overall["n"], overall["accuracy"], overall["position_bias"]) == (
        3, 24, 3, 0.5, 0.5)
    assert overall["accuracy_se"] == 0.0  # every pair scores 0.5: no spread over prompts
    tp = read(d / "judge_training_pairs.jsonl")
    assert len(tp) == 3 * 2 and {p["kind"] for p in tp} == {"judge_training"}  # one per known pair and order
    by_id = {j["judgment_id"]: j for j in judged}
    for p in tp:
        chosen, rejected = by_id[p["chosen_id"]], by_id[p["rejected_id"]]
        assert chosen["correct"] and not rejected["correct"]
        assert (chosen["known_id"], chosen["shown"]) == (rejected["known_id"], rejected["shown"])
        assert p["prompt"][0]["content"] == chosen["prompt_text"] and "tie is not allowed" in chosen["prompt_text"]
        assert p["chosen"][0]["content"] == chosen["text"] and p["generated"]["chosen"]["token_ids"] == chosen["token_ids"]
    pairs_metrics = json.loads((judge_workdir / "metrics/M1/pairs.json").read_text())
    assert pairs_metrics["judge_training_pairs"] == 6 and pairs_metrics["judge_training"]["by_source"] == {"constraints": 6}
    dpo = json.loads((judge_workdir / "metrics/M1/dpo.json").read_text())
    assert dpo["judge_training_pairs"] == 6 and dpo["pairs"] == 6 + dpo["response_pairs"]


def test_pointwise_judgments_are_marked_against_the_other_side(judge_workdir):
    d = _run(judge_workdir, _params("pointwise"), stages=("self_instruct", "sample", "verify", "reflect", "judge",
                                                         "judge_training", "pairs"))
    judged = read(d / "known_judgments.jsonl")
    assert len(judged) == 3 * 2 * 4 and {j["mode"] for j in judged} == {"pointwise"}
    assert {j["shown"] for j in judged} == {"better", "worse"}
    for j in judged:  # the rule, written out: above (better side) or below (worse side) the other side's mean
        other = [o["score"] for o in judged if o["known_id"] == j["known_id"] and o["shown"] != j["shown"]
                 and o["score"] is not None]
        mean = sum(other) / len(other) if other else None
        want = j["score"] is not None and mean is not None and (
            j["score"] > mean if j["shown"] == "better" else j["score"] < mean)
        assert j["correct"] == want, j
    tp = read(d / "judge_training_pairs.jsonl")
    assert all(p["provenance"]["mode"] == "pointwise" for p in tp)


def test_off_loads_no_model_and_writes_empty_outputs(judge_workdir):
    params = _params("pairwise")
    params["judge_training"] = {"enabled": False}
    (judge_workdir / "params.yaml").write_text(yaml.safe_dump(params))
    shutil.rmtree(judge_workdir / "models")  # no model: the stage must not need one
    proc = run_stage("judge_training", "--iteration", "M1")
    assert proc.returncode == 0, proc.stderr
    assert read(judge_workdir / "data/M1/known_pairs.jsonl") == [] == read(judge_workdir / "data/M1/known_judgments.jsonl")


def test_self_taught_pairs_join_the_known_pairs(judge_workdir):
    params = _params("pairwise")
    params["judge_training"].update(sources=["constraints", "self_taught"], self_taught_prompts=2)
    d = _run(judge_workdir, params, stages=("self_instruct", "sample", "verify", "reflect", "judge",
                                            "judge_training", "pairs"))
    known = read(d / "known_pairs.jsonl")
    taught = [k for k in known if k["source"] == "self_taught"]
    assert len(known) == 3 + 2 and len(taught) == 2
    for k in taught:  # the first sample's answer to x against the answer to the x' the model wrote
        assert k["better"].startswith("Answer 0:") and k["worse"] == "An answer about another topic."
        assert k["provenance"]["similar_instruction"] == "Tell me about a different topic instead."
        assert k["better_id"] is not None and k["worse_id"] is None
    m = json.loads((judge_workdir / "metrics/M1/judge_training.json").read_text())
    assert m["self_taught"] == {"instructions": 2, "pairs": 2, "no_similar_instruction": 0, "same_answers": 0,
                                "unparsed_answers": 0}
    assert m["accuracy"]["by_source"]["self_taught"]["n"] == 2
    assert len(read(d / "known_judgments.jsonl")) == 5 * 2 * 4


def test_inspection_lists_and_traces_known_pairs(judge_workdir):
    from pipeline import inspection

    _run(judge_workdir, _params("pairwise"), stages=("self_instruct", "sample", "verify", "reflect", "judge",
                                                     "judge_training", "pairs"))
    it = inspection.load_iteration("M1", judge_workdir)
    known = inspection.table_rows(it, "known_pairs")
    assert len(known) == 3 and all(r["judgments"] == 8 and r["correct"] == 0.5 and r["pairs"] == 4 for r in known)
    judged = inspection.table_rows(it, "known_judgments")
    assert len(judged) == 24 and {r["mode"] for r in judged} == {"pairwise"}
    training = [r for r in inspection.table_rows(it, "pairs") if r["kind"] == "judge_training"]
    assert len(training) == 6
    t = inspection.trace(it, training[0]["pair_id"])
    assert t["focus"]["pair"]["why"]["agrees"] and len(t["known_pairs"]) == 1
    assert {j["correct"] for j in t["known_pairs"][0]["judgments"]} == {True, False}
    t = inspection.trace(it, judged[0]["judgment_id"])
    assert t["focus"]["known_judgment"]["id"] == judged[0]["judgment_id"]
