"""Constraint instructions in the loop: the constraints verifier in the verify step (reward levels all > some >
none), verified pairs from those levels, task checks before any model loads, the evaluate step's IFEval figures,
the headline summary, and what `selfreward list` / `trace` show of a failed constraint."""

import json

import pytest

from pipeline import evaluation, inspection, pairs, rewards, summary, verifiable
from pipeline.config import EvaluateConfig, JudgeConfig, PairsConfig, SampleConfig, VerifyConfig
from pipeline.errors import StageError
from pipeline.records import Prompt, Response
from pipeline.tasks import Task
from tests.fakes import ScriptedEngine
from tests.helpers import MADE_BY

NO_COMMA = "punctuation:no_comma"
WORDS = "length_constraints:number_words"
LOWER = "change_case:english_lowercase"


def constraint_prompt(pid="c1", ids=(NO_COMMA, WORDS), kwargs=({}, {"num_words": 5, "relation": "less than"})):
    return Prompt(prompt_id=pid, instruction="Describe the sea.", source="constraints", answer="",
                  verifier="constraints", inputs={"instruction_id_list": list(ids), "kwargs": [dict(k) for k in kwargs]})


def reply(pid, i, text, thought=""):
    return Response(response_id=f"{pid}-r{i}", prompt_id=pid, sample_index=i, instruction="Describe the sea.",
                    prompt_text="Describe the sea.", output=(thought + "\n" + text) if thought else text,
                    thought=thought, response=text, parse_ok=True, num_tokens=len(text), finish_reason="stop")


# three responses: both constraints hold, one holds (a comma), none holds (a comma and nine words)
TEXTS = ["The sea is calm.", "Calm, blue sea.", "The sea, wide and grey, rolls on under a pale sky."]


def test_verify_step_levels_detail_and_counts():
    prompts = [constraint_prompt()]
    rows, metrics = rewards.verify_responses(prompts, [reply("c1", i, t) for i, t in enumerate(TEXTS)],
                                             VerifyConfig(), MADE_BY)
    assert [(v.correct, v.level) for v in rows] == [(True, 2), (False, 1), (False, 0)]
    assert [[o["strict"] for o in v.constraints] for v in rows] == [[True, True], [False, True], [False, False]]
    assert rows[0].detail == "" and rows[1].detail.startswith(NO_COMMA + ": ")
    assert rows[2].detail.startswith(NO_COMMA + ": ") and rows[2].detail.endswith("(+1 more)")
    assert metrics["constraints"] == {
        "responses": 3, "all": 1, "some": 1, "none": 1,
        "by_type": {WORDS: {"checked": 3, "strict": 2, "loose": 2}, NO_COMMA: {"checked": 3, "strict": 1, "loose": 1}}}
    assert metrics["accuracy"] == pytest.approx(1 / 3) and metrics["level_histogram"] == {"0": 1, "1": 1, "2": 1}


def test_a_verification_of_another_verifier_is_written_as_before():
    prompt = Prompt(prompt_id="a1", instruction="What is 2 + 2?", source="t", answer="4", verifier="numeric")
    rows, metrics = rewards.verify_responses([prompt], [reply("a1", 0, "Final answer: 4")], VerifyConfig(), MADE_BY)
    assert "constraints" not in rows[0].to_dict() and "constraints" not in metrics


def test_constraints_read_the_final_response_not_the_thought():
    prompt = constraint_prompt(ids=(NO_COMMA,), kwargs=({},))
    r = reply("c1", 0, "No commas here.", thought="Well, let me think, carefully.")
    (v,), _ = rewards.verify_responses([prompt], [r], VerifyConfig(), MADE_BY)
    assert v.correct and v.level == 2


def test_verified_pairs_prefer_all_constraints_over_none():
    prompts = [constraint_prompt()]
    responses = [reply("c1", i, t) for i, t in enumerate(TEXTS)]
    rows, _ = rewards.verify_responses(prompts, responses, VerifyConfig(), MADE_BY)
    got, counts = pairs.verified_pairs(responses, rows, PairsConfig(verified_per_prompt=1), "M1")
    assert [(p.chosen_id, p.rejected_id, p.chosen_score, p.rejected_score) for p in got] == [
        ("c1-r0", "c1-r2", 2.0, 0.0)]
    assert got[0].provenance["reward"] == "verifier:constraints" and counts["verified_pairs"] == 1


@pytest.mark.parametrize("inputs, field, words", [
    ({"instruction_id_list": ["punctuation:no_coma"], "kwargs": [{}]}, "instruction_id_list", "no_coma"),
    ({"instruction_id_list": [WORDS], "kwargs": [{"num_words": "five", "relation": "less than"}]}, "kwargs", "num_words"),
    ({"instruction_id_list": [NO_COMMA, WORDS], "kwargs": [{}]}, "kwargs", "1 entries for 2 instructions"),
    ({"instruction_id_list": [WORDS, WORDS], "kwargs": [{"num_words": 5, "relation": "less than"},
                                                        {"num_words": 50, "relation": "at least"}]},
     "instruction_id_list", "cannot all be satisfied"),
    ({"instruction_id_list": [], "kwargs": []}, "instruction_id_list", "non-empty"),
])
def test_task_problem_names_the_field_before_any_model_loads(inputs, field, words):
    problem = verifiable.task_problem("constraints", "", None, inputs)
    assert problem is not None and problem[0] == field and words in problem[1]
    prompt = Prompt(prompt_id="bad", instruction="Write.", source="t", answer="", verifier="constraints",
                    inputs=inputs)
    with pytest.raises(StageError, match='task prompt "bad": field "' + field):
        rewards.task_problems([prompt])


def test_null_kwargs_as_hf_writes_them_are_fine():
    inputs = {"instruction_id_list": [NO_COMMA, WORDS],
              "kwargs": [{"num_words": None, "relation": None}, {"num_words": 5, "relation": "less than",
                                                                 "keywords": None}]}
    assert verifiable.task_problem("constraints", "", None, inputs) is None


# ------------------------------------------------------------------------------------------------ evaluate
def constraint_task(tid, ids, kwargs):
    return Task(task_id=tid, family="constraints", prompt=f"Describe the sea ({tid}).", answer="",
                verifier="constraints", inputs={"instruction_id_list": ids, "kwargs": kwargs})


TASKS = [constraint_task("t1", [NO_COMMA], [{}]),
         constraint_task("t2", [NO_COMMA, LOWER], [{}, {}]),
         constraint_task("t3", [WORDS], [{"num_words": 3, "relation": "less than"}])]


def test_evaluate_step_measures_every_model_on_the_constraint_instructions():
    answers = {"dA": {"t1": "the sea is calm and blue", "t2": "the sea is calm and blue", "t3": "Calm sea."},
               "dB": {"t1": "Calm, blue.", "t2": "*the sea is calm*", "t3": "The sea is calm today."}}

    def open_engine(d):
        return ScriptedEngine(lambda prompt, i: next(text for tid, text in answers[d].items() if f"({tid})" in prompt))

    cfg = EvaluateConfig(judge_accuracy=False, max_prompts=0, constraint_tasks=None)
    out = evaluation.evaluate(open_engine, None, 4, {"current": "dA", "previous": "dB", "M0": "dB"}, "current", [],
                              [], cfg, JudgeConfig(), SampleConfig(thoughts="none"), constraint_tasks=TASKS)
    models = out.metrics["constraints"]["models"]
    assert out.metrics["constraints"]["prompts"] == 3 and set(models) == {"current", "previous", "M0"}
    cur, prev = models["current"], models["previous"]
    assert models["M0"] == prev  # the same model directory answers once
    # current follows all three instructions; previous: t1 has a comma, t2 holds, t3 has 5 words (not < 3)
    assert cur["prompt_strict"] == 1.0 and prev["prompt_strict"] == pytest.approx(1 / 3)
    assert prev["instruction_strict"] == pytest.approx(2 / 4)
    assert prev["by_type"][NO_COMMA]["strict"]["mean"] == 0.5  # t1 failed it, t2 held it
    assert cur["mean_words"] == pytest.approx((6 + 6 + 2) / 3) and cur["truncated"] == 0
    assert [(r["model"], r["task_id"], r["followed"]) for r in out.constraints] == [
        ("current", "t1", True), ("current", "t2", True), ("current", "t3", True),
        ("previous", "t1", False), ("previous", "t2", True), ("previous", "t3", False)]
    failed = out.constraints[3]["constraints"][0]
    assert failed["instruction_id"] == NO_COMMA and not failed["strict"] and failed["detail"]
    block = summary.iteration_summary({"eval": out.metrics})["eval"]
    assert block["constraints_current"]["prompt_strict"] == 1.0
    assert block["constraints_previous"]["instruction_strict"] == 0.5


def test_list_and_trace_show_which_constraint_failed(tmp_path):
    cfg = EvaluateConfig(judge_accuracy=False, max_prompts=0, constraint_tasks=None)
    out = evaluation.evaluate(lambda d: ScriptedEngine(lambda prompt, i: "Calm, blue."), None, 4,
                              {"current": "dA"}, "current", [], [], cfg, JudgeConfig(), SampleConfig(thoughts="none"),
                              constraint_tasks=TASKS[:1])
    folder = tmp_path / "data" / "M1"
    folder.mkdir(parents=True)
    (folder / "eval_constraints.jsonl").write_text("".join(json.dumps({**r, "model_dir": "dA"}) + "\n"
                                                            for r in out.constraints))
    it = inspection.load_iteration("M1", tmp_path, evaluation=True)
    (row,) = inspection.table_rows(it, "eval_constraints")
    assert (row["followed"], row["failed"], row["constraints"]) == (False, NO_COMMA, 1)
    assert row["detail"] and row["words"] == 2
    t = inspection.trace(it, "t1")
    assert t["constraint_task"]["id"] == "t1"
    (m,) = t["models"]
    assert m["constraints"][0]["instruction_id"] == NO_COMMA and not m["constraints"][0]["strict"]
    code, text, err = cli("--root", str(tmp_path), "trace", "t1", "-i", "M1")
    assert code == 0, err
    assert f"constraint {NO_COMMA}: failed — " in " ".join(text.split())
    code, text, err = cli("--root", str(tmp_path), "list", "eval_constraints", "-i", "M1", "--format", "jsonl")
    assert code == 0, err
    assert json.loads(text.splitlines()[0])["failed"] == NO_COMMA


def test_verifications_table_names_the_failed_constraints(tmp_path):
    prompts = [constraint_prompt()]
    rows, _ = rewards.verify_responses(prompts, [reply("c1", i, t) for i, t in enumerate(TEXTS)], VerifyConfig(),
                                       MADE_BY)
    folder = tmp_path / "data" / "M1"
    folder.mkdir(parents=True)
    (folder / "verifications.jsonl").write_text("".join(json.dumps(v.to_dict()) + "\n" for v in rows))
    it = inspection.load_iteration("M1", tmp_path)
    table = {r["response_id"]: r["failed"] for r in inspection.table_rows(it, "verifications")}
    assert table == {"c1-r0": None, "c1-r1": NO_COMMA, "c1-r2": f"{NO_COMMA}, {WORDS}"}
    responses = [reply("c1", i, t) for i, t in enumerate(TEXTS)]
    (folder / "responses.jsonl").write_text("".join(json.dumps(r.to_dict()) + "\n" for r in responses))
    (folder / "prompts.jsonl").write_text(json.dumps(prompts[0].to_dict()) + "\n")
    code, text, err = cli("--root", str(tmp_path), "trace", "c1-r2", "-i", "M1")
    assert code == 0, err
    flat = " ".join(text.split())
    assert f"constraint {NO_COMMA}: failed" in flat and f"constraint {WORDS}: failed" in flat


def cli(*args):
    """The `selfreward` command in-process: (exit code, stdout, stderr)."""
    import contextlib
    import io

    from selfreward.cli import main
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(list(args))
    return code, out.getvalue(), err.getvalue()
