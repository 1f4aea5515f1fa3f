"""Verifiable rewards in the pipeline: checks per verifier, reward levels, IRPO and reflection pairs, held-out
figures, task prompts, the judge against the truth, and Reflect-Retry-Reward's step. Exact values throughout."""

import pytest

from pipeline import judging, pairs, reflection, rewards, self_instruct, verifiable
from pipeline.config import PairsConfig, ReflectConfig, VerifyConfig
from pipeline.evaluation import heldout_summary
from pipeline.generation import Generation
from pipeline.records import Judgment, Prompt, Reflection, Response, Verification, stable_id
from pipeline.tasks import Task
from tests.fakes import ScriptedEngine

CFG = VerifyConfig()


def task(verifier="numeric", answer="12", **kw):
    return Prompt(prompt_id="t1", instruction="What is 5 + 7?", source="task:test", answer=answer, verifier=verifier,
                  **kw)


@pytest.mark.parametrize("text, prompt, expected", [
    ("5 + 7 = 12\nFinal answer: 12", task(), ("12", "strict", True)),
    ("It is 12 apples.", task(), ("12", "flexible", True)),
    ("Final answer: 13", task(), ("13", "strict", False)),
    ("no idea", task(), (None, "none", False)),
    ("Final answer: 12.0000001", task(), ("12.0000001", "strict", True)),  # numeric: within 1e-6 relative
    ("Final answer: 1/2", task("math", "0.5"), ("1/2", "strict", True)),
    ("Final answer: Paris", task("exact", "Paris"), ("Paris", "strict", True)),
    ("Final answer: paris", task("exact", "Paris"), ("paris", "strict", False)),
    ("Final answer: 2024-01-05", task("regex", r"\d{4}-\d{2}-\d{2}"), ("2024-01-05", "strict", True)),
    ("Final answer: 3 * (3 + 2)", task("countdown", "", inputs={"numbers": [3, 3, 2], "target": 15}),
     ("3 * (3 + 2)", "strict", True)),
    ("Final answer: 3 * 5", task("countdown", "", inputs={"numbers": [3, 3, 2], "target": 15}),
     ("3 * 5", "strict", False)),  # 5 is not one of the numbers
])
def test_check_reads_and_verifies(text, prompt, expected):
    got = rewards.check(text, prompt, CFG)
    assert (got.extracted, got.method, got.correct) == expected


def test_check_runs_code_against_tests_in_the_sandbox():
    prompt = task("python_tests", "", tests=["assert add(2, 3) == 5", "assert add(-1, 1) == 0"])
    good = rewards.check("Here:\n```python\ndef add(a, b):\n    return a + b\n```", prompt, CFG)
    assert (good.method, good.correct) == ("strict", True)
    bad = rewards.check("```python\ndef add(a, b):\n    return a - b\n```", prompt, CFG)
    assert not bad.correct and "AssertionError" in bad.detail
    hung = rewards.check("```python\nwhile True:\n    pass\n```", prompt, VerifyConfig(timeout_s=1.0))
    assert not hung.correct
    assert rewards.check("I cannot write code.", prompt, CFG).method == "none"


def test_extract_code_prefers_the_last_fenced_block():
    assert rewards.extract_code("```\nx = 1\n```\nthen\n```python\ny = 2\n```").answer == "y = 2"
    assert rewards.extract_code("def f():\n    return 1").method == "flexible"
    assert rewards.extract_code("not python (").method == "none"
    body = "    return x + 1\n"  # a HumanEval completion: it parses only after the prompt it continues
    assert rewards.extract_code(body).method == "none"
    assert rewards.extract_code(body, "def f(x):\n").reading == "whole_text"


# ------------------------------------------------------------------------------------------ code as its harness runs it
# Rows written for these tests in the datasets' formats (not taken from them).
HUMANEVAL_ROW = {
    "task_id": "Ours/7",
    "prompt": 'from typing import List\n\n\ndef _clip(v: int) -> int:\n    return max(v, 0)\n\n\n'
              'def clipped_total(xs: List[int]) -> int:\n    """Sum of the numbers in xs, negatives counted as 0.\n'
              '    >>> clipped_total([2, -1, 3])\n    5\n    """\n',
    "canonical_solution": "    return sum(_clip(v) for v in xs)\n",
    "test": "METADATA = {}\n\n\ndef check(candidate):\n    assert candidate([2, -1, 3]) == 5\n"
            "    assert candidate([]) == 0\n    assert candidate([-4]) == 0\n",
    "entry_point": "clipped_total",
}
MBPP_ROW = {"task_id": 901, "text": "Write a function that returns the area of a circle of radius r, rounded to 2 places.",
            "code": "def circle_area(r):\n    return round(math.pi * r * r, 2)",
            "test_list": ["assert circle_area(1) == 3.14", "assert circle_area(2) == 12.57"],
            "test_setup_code": "import math", "challenge_test_list": []}


def _loaded(tmp_path, row, name):
    import json

    from pipeline.tasks import load_tasks

    path = tmp_path / f"{name}.jsonl"
    path.write_text(json.dumps(row) + "\n")
    (t,) = load_tasks(path)
    return Prompt(prompt_id=t.task_id, instruction=t.prompt, source=t.family, answer=t.answer, verifier=t.verifier,
                  tests=t.tests, inputs=dict(t.inputs))


def fenced(code):
    return f"Here it is:\n```python\n{code}```\n"


FULL = ("def clipped_total(xs: List[int]) -> int:\n    total = 0\n    for v in xs:\n        total += _clip(v)\n"
        "    return total\n")


@pytest.mark.parametrize("answer, reading", [
    (fenced(FULL), "code_block"),  # the function written out again, with the prompt's List and helper
    (fenced("    return sum(max(v, 0) for v in xs)\n"), "code_block"),  # a body, as HumanEval completions are
    ("    return sum(_clip(v) for v in xs)\n", "whole_text"),  # the same, unfenced
    (fenced("from typing import List\n\n\ndef clipped_total(xs: List[int]) -> int:\n    return sum(x for x in xs "
            "if x > 0)\n"), "code_block"),  # with its own imports
])
def test_humaneval_answers_run_after_the_prompt(tmp_path, answer, reading):
    """The harness runs prompt + completion + test + check(entry_point): the prompt's imports are defined."""
    prompt = _loaded(tmp_path, HUMANEVAL_ROW, "he")
    got = rewards.check(answer, prompt, CFG)
    assert (got.correct, got.reading, got.detail) == (True, reading, "")


def test_humaneval_reference_solution_and_a_wrong_answer(tmp_path):
    prompt = _loaded(tmp_path, HUMANEVAL_ROW, "he")
    assert rewards.check(fenced(prompt.answer), prompt, CFG).correct  # the prompt + canonical solution
    wrong = rewards.check(fenced("def clipped_total(xs: List[int]) -> int:\n    return sum(xs)\n"), prompt, CFG)
    assert not wrong.correct and "AssertionError" in wrong.detail


def test_code_program_joins_prefix_and_answer_as_the_harness_does():
    sig = "import math\n\ndef f(x):\n"  # a prefix whose last function has no body
    assert rewards.code_program(sig, "    return x\n") == sig + "    return x\n"
    assert rewards.code_program(sig, "def f(x):\n    return math.floor(x)\n") == \
        "import math\n\n\ndef f(x):\n    return math.floor(x)\n"
    doc = 'def f(x):\n    """Doc."""\n'
    assert rewards.code_program(doc, "def f(x):\n    return 1\n") == doc + "\n\ndef f(x):\n    return 1\n"
    assert rewards.code_program("", "x = 1") == "x = 1"
    prompt = task("python_tests", "", tests=["assert f(2.5) == 2"], inputs={"prefix": sig})
    assert rewards.check(fenced("def f(x):\n    return math.floor(x)\n"), prompt, CFG).correct


def test_mbpp_setup_runs_after_the_code_and_before_the_tests(tmp_path):
    prompt = _loaded(tmp_path, MBPP_ROW, "mbpp")
    assert prompt.inputs == {"entry_point": "circle_area", "setup": "import math"} and prompt.tests == \
        MBPP_ROW["test_list"]
    assert rewards.check(fenced(MBPP_ROW["code"] + "\n"), prompt, CFG).correct
    no_setup = Prompt(**{**prompt.to_dict(), "inputs": {"entry_point": "circle_area"}})
    assert "NameError" in rewards.check(fenced(MBPP_ROW["code"] + "\n"), no_setup, CFG).detail


def test_reward_levels():
    assert [rewards.reward_level(c, m, True) for c, m in
            [(True, "strict"), (True, "flexible"), (False, "strict"), (False, "none")]] == [2, 1, 0, 0]
    assert [rewards.reward_level(c, m, False) for c, m in [(True, "strict"), (True, "flexible"), (False, "strict")]] \
        == [1, 1, 0]


def response(pid, i, output, model="abc"):
    return Response(response_id=f"{pid}-r{i}", prompt_id=pid, sample_index=i, instruction="q", prompt_text=f"Q {pid}",
                    output=output, thought="", response=output, parse_ok=True, num_tokens=len(output),
                    finish_reason="stop", token_ids=[1, 2], logprob=-1.0, stop_logprob=-0.5,
                    provenance={"model_sha256": model})


def test_verify_responses_leaves_judged_prompts_alone_and_counts():
    prompts = [task(), Prompt(prompt_id="open", instruction="Write a poem.", source="self_instruct")]
    outs = ["Final answer: 12", "12", "Final answer: 11", "Final answer: 12"]
    responses = [response("t1", i, o) for i, o in enumerate(outs)] + [response("open", 0, "A poem.")]
    rows, m = rewards.verify_responses(prompts, responses, CFG, {"iteration": "M1"})
    assert [(v.response_id, v.method, v.correct, v.level) for v in rows] == [
        ("t1-r0", "strict", True, 2), ("t1-r1", "flexible", True, 1), ("t1-r2", "strict", False, 0),
        ("t1-r3", "strict", True, 2)]
    assert (m["verified"], m["judged"], m["correct"], m["accuracy"], m["strict_rate"]) == (4, 1, 3, 0.75, 0.75)
    assert m["level_histogram"] == {"0": 1, "1": 1, "2": 2} and m["prompts_all_same_level"] == 0
    assert m["readings"] == {"final_last_line": 3, "final_line": 0, "boxed": 0, "last_number": 1, "code_block": 0,
                             "whole_text": 0, "none": 0}


def test_verify_counts_each_reading_and_prefers_the_models_final_line():
    outs = ["Final answer: 12", "Final answer: 12.\nYour answer is 8", "\\boxed{12} or 8", "12 I think", "hmm",
            "Final answer: 0.8.\nYour answer is 12"]  # the declared 0.8 is the answer, not the 12 after it
    rows, m = rewards.verify_responses([task()], [response("t1", i, o) for i, o in enumerate(outs)], CFG, {})
    assert [(v.extracted, v.method, v.correct) for v in rows] == [
        ("12", "strict", True), ("12", "flexible", True), ("12", "flexible", True), ("12", "flexible", True),
        (None, "none", False), ("0.8", "flexible", False)]
    assert m["readings"] == {"final_last_line": 1, "final_line": 2, "boxed": 1, "last_number": 1, "code_block": 0,
                             "whole_text": 0, "none": 1}


@pytest.mark.parametrize("prompt, message", [
    (task("regex", "([1-9][0-9", provenance={"task_source": "my_tasks.jsonl:3"}),
     ('verify: my_tasks.jsonl:3: task prompt "t1": field "answer" is not a valid regular expression (unterminated '
     "character set at position 6) — the regex verifier matches answers against it")),
    (task("python_tests", "", tests=["assert f(1) == 1", "assert f(("]),
     ('verify: task prompt "t1": field "tests" has a test that does not compile — test 2, line 1: \'(\' was never '
     "closed")),
    (task("python_tests", "", tests=[]),
     'verify: task prompt "t1": field "tests" is empty — the python_tests verifier needs at least one test'),
    (task("numerik", "4"), ('verify: task prompt "t1": field "verifier" names an unknown verifier "numerik" — known: '
     "numeric, exact, math, regex, countdown, python_tests, constraints")),
])
def test_verify_stops_on_a_task_it_could_never_check(prompt, message):
    from pipeline.errors import StageError

    with pytest.raises(StageError) as e:
        rewards.verify_responses([prompt], [response("t1", 0, "Final answer: 4")], CFG, {})
    assert str(e.value) == message


def levels(*values):
    return [(f"r{i}", v) for i, v in enumerate(values)]


def test_select_verified_pairs_best_level_against_the_rest_wrong_first():
    # winners r0, r3 (level 2); losers lowest level first: r2 (0), r4 (0), then r1 (1)
    assert pairs.select_verified_pairs(levels(2, 1, 0, 2, 0), 3) == [("r0", "r2"), ("r3", "r4"), ("r0", "r4")]
    assert pairs.select_verified_pairs(levels(2, 1, 0, 2, 0), 10) == [
        ("r0", "r2"), ("r3", "r4"), ("r0", "r4"), ("r3", "r1"), ("r0", "r1"), ("r3", "r2")]
    assert pairs.select_verified_pairs(levels(1, 0, 0), 2) == [("r0", "r1"), ("r0", "r2")]  # right only flexibly
    assert pairs.select_verified_pairs(levels(0, 0), 2) == [] and pairs.select_verified_pairs(levels(2, 2), 2) == []


def check_row(r, level, correct=None):
    return Verification(response_id=r.response_id, prompt_id=r.prompt_id, verifier="numeric", extracted="x",
                        method="strict" if level == 2 else "flexible", correct=level > 0 if correct is None else correct,
                        level=level)


def test_verified_pairs_rows_and_counts():
    rs = {pid: [response(pid, i, f"{pid} answer {i}") for i in range(3)] for pid in ("a", "b", "c")}
    checks = [check_row(r, lv) for pid, lvs in (("a", (2, 0, 1)), ("b", (1, 1, 1)), ("c", (0, 0, 0)))
              for r, lv in zip(rs[pid], lvs)]
    out, counts = pairs.verified_pairs([r for v in rs.values() for r in v], checks, PairsConfig(verified_per_prompt=2),
                                       "M1")
    assert [(p.chosen_id, p.rejected_id, p.chosen_score, p.rejected_score) for p in out] == [
        ("a-r0", "a-r1", 2.0, 0.0), ("a-r0", "a-r2", 2.0, 1.0)]
    assert out[0].pair_id == stable_id("vp", "a-r0", "a-r1") and out[0].kind == "response"
    assert out[0].prompt == [{"role": "user", "content": "Q a"}]
    assert out[0].chosen == [{"role": "assistant", "content": "a answer 0"}]
    assert out[0].provenance["reward"] == "verifier:numeric" and out[0].generated["model_sha256"] == "abc"
    assert counts == {"verified_prompts": 3, "verified_all_correct": 1, "verified_all_wrong": 1,
                      "verified_one_level": 0, "verified_too_few_untruncated": 0, "verified_pairs": 2}


def test_build_pairs_pairs_verified_responses_by_reward_even_when_judged():
    rs = [response("a", i, f"answer {i}") for i in range(2)]
    checks = [check_row(rs[0], 0), check_row(rs[1], 2)]
    judged = [Judgment(judgment_id=f"j{i}", response_id=r.response_id, prompt_id="a", judge_index=0, text="",
                       score=float(5 - 5 * i), method="strict") for i, r in enumerate(rs)]  # the judge disagrees
    rp, _, m = pairs.build_pairs(rs, judged, [], None, PairsConfig(), "M1", verifications=checks)
    assert [(p.chosen_id, p.rejected_id) for p in rp] == [("a-r1", "a-r0")] and m["response_pairs"] == 1
    off, _, m = pairs.build_pairs(rs, judged, [], None, PairsConfig(verified=False, min_pairs=0), "M1",
                                  verifications=checks)
    assert off == [] and m["verified_pairs"] == 0


def test_sample_metrics_hand_computed():
    def s(task_id, i, correct, method, answer, tokens=10):
        return {"task_id": task_id, "family": "f", "sample_index": i, "correct": correct, "method": method,
                "extracted": answer, "num_tokens": tokens}
    rows = [s("a", 0, True, "strict", "4"), s("a", 1, False, "strict", "5"), s("a", 2, True, "flexible", "4"),
            s("a", 3, False, "none", None),
            s("b", 0, False, "strict", "1"), s("b", 1, False, "strict", "2", 30), s("b", 2, True, "strict", "3"),
            s("b", 3, False, "strict", "1", 30)]
    m = verifiable.sample_metrics(rows, 4)
    assert (m["tasks"], m["samples"], m["k"], m["k_asked"]) == (2, 8, 4, 4)
    assert m["pass@1"] == pytest.approx((2 / 4 + 1 / 4) / 2)
    assert m["pass@1_strict"] == pytest.approx((1 / 4 + 1 / 4) / 2)
    assert m["pass@4"] == 1.0
    # a: votes 4,4,5 -> 4 right; b: votes 1,2,3,1 -> 1 wrong
    assert m["maj@4"] == 0.5 and m["maj@4_se"] == pytest.approx(0.5)
    assert m["format_rate"] == pytest.approx((2 / 4 + 4 / 4) / 2) and m["mean_tokens"] == pytest.approx(15.0)
    assert m["pass@1_se"] == pytest.approx(0.125)  # sd of (0.5, 0.25) = 0.1768 / sqrt 2
    by = heldout_summary([{**r, "family": "x" if r["task_id"] == "a" else "y"} for r in rows], 4)
    assert set(by) == {"all", "x", "y"} and by["x"]["pass@1"] == 0.5 and by["y"]["maj@4"] == 0.0


def test_the_summary_names_held_out_figures_by_the_k_they_used():
    from pipeline.summary import iteration_summary

    rows = [{"task_id": t, "family": "f", "sample_index": i, "correct": i == 0, "method": "strict",
             "extracted": str(i), "num_tokens": 3} for t in ("a", "b") for i in range(2)]
    ev = {"baselines": {}, "heldout": {"tasks": 2, "k": 4, "models": {"current": heldout_summary(rows, 4)}}}
    got = iteration_summary({"eval": ev})["eval"]["heldout_current"]
    assert got["pass@2"] == 1.0 and got["maj@2"] == 0.5 and "pass@4" not in got and "maj@4" not in got


def test_task_prompts_draw_per_iteration_and_keep_held_out_tasks_out():
    train = [Task(f"t{i}", "arith", f"What is {i} + 1?", str(i + 1), "numeric") for i in range(10)]
    held = [Task("h", "arith", "What is 3 + 1?", "4", "numeric")]
    rows, m = self_instruct.task_prompts(train, 4, 0, held, {"iteration": "M1"})
    again, _ = self_instruct.task_prompts(train, 4, 0, held, {"iteration": "M1"})
    other, _ = self_instruct.task_prompts(train, 4, 0, held, {"iteration": "M2"})
    assert [p.prompt_id for p in rows] == [p.prompt_id for p in again]
    assert [p.prompt_id for p in rows] != [p.prompt_id for p in other]
    assert all(p.instruction != "What is 3 + 1?" for p in rows + other)
    assert (m["tasks"], m["tasks_available"], m["heldout_overlap"]) == (4, 9, 1)
    assert rows[0].answer == str(int(rows[0].instruction.split()[2]) + 1) and rows[0].verifier == "numeric"
    minus = [Task("m", "arith", "What is 3 - 1?", "2", "numeric")]  # differs from a held-out task by its operator
    assert self_instruct.task_prompts(minus, 1, 0, held, {"iteration": "M1"})[1]["heldout_overlap"] == 0
    everything, m = self_instruct.task_prompts(train, 50, 0, held, {"iteration": "M1"})
    assert len(everything) == 9


def test_split_verified_and_the_judge_against_the_truth():
    rs = [response(pid, i, "x") for pid in ("a", "b", "open") for i in range(2)]
    checks = [check_row(r, lv) for r, lv in zip(rs[:4], (2, 0, 0, 1))]
    rewarded, probe = judging.split_verified(rs, checks, 1)
    assert [r.response_id for r in rewarded] == ["open-r0", "open-r1"]
    assert [r.response_id for r in probe] == ["a-r0", "a-r1"]
    assert len(judging.split_verified(rs, checks, None)[1]) == 4 and judging.split_verified(rs, checks, 0)[1] == []
    judged = [Judgment(judgment_id=f"j{r.response_id}", response_id=r.response_id, prompt_id=r.prompt_id,
                       judge_index=0, text="", score=s, method="strict")
              for r, s in zip(rs[:4], (4.0, 1.0, 3.0, 3.0))]
    truth = judging.against_truth(judged, checks)
    # prompt a: the right answer scores higher (1 of 1); prompt b: a tie (1/2); AUC over all four: (1 + 1 + .5 + 1)/4
    assert (truth["pairs"], truth["pairwise_accuracy"], truth["auc"]) == (2, 0.75, 0.875)


def reflection_row(attempt, i, ok):
    return Reflection(reflection_id=f"{attempt}-f{i}", response_id=attempt, prompt_id="p", reflection_index=i,
                      prompt_text="reflect please", text=f"note {i}", retry="r", retry_extracted="1",
                      retry_method="strict", retry_correct=ok, token_ids=[1], logprob=-1.0, stop_logprob=None,
                      provenance={"model_sha256": "abc"})


def test_reflection_pairs_train_the_reflection_only():
    rows = [reflection_row("x", i, ok) for i, ok in enumerate((False, True, False, True))]
    rows += [reflection_row("y", i, False) for i in range(3)]
    out, agreed = pairs.reflection_pairs(rows, 3, "M1")
    assert [(p.chosen_id, p.rejected_id) for p in out] == [("x-f1", "x-f0"), ("x-f3", "x-f2"), ("x-f1", "x-f2")]
    assert agreed == 1 and out[0].kind == "reflection"
    assert out[0].prompt == [{"role": "user", "content": "reflect please"}]
    assert out[0].chosen == [{"role": "assistant", "content": "note 1"}]


def test_failed_attempts_spread_over_prompts_first():
    rs = [response(pid, i, "x") for pid in ("a", "b") for i in range(3)]
    checks = [check_row(r, 0) for r in rs]
    assert [r.response_id for r in reflection.failed_attempts(rs, checks, 3)] == ["a-r0", "b-r0", "a-r1"]


def test_reflect_and_retry_step_with_a_scripted_model():
    prompts = [task()]
    rs = [response("t1", 0, "Final answer: 11")]
    checks = rewards.verify_responses(prompts, rs, CFG, {})[0]

    def reply(prompt, i):
        if "A note on that attempt" in prompt:  # the retry succeeds after note 0 and 2
            return "Final answer: 12" if "note 0" in prompt or "note 2" in prompt else "Final answer: 10"
        return f"note {i}"

    rows, m = reflection.reflect_and_retry(Generation(ScriptedEngine(reply)), prompts, rs, checks,
                                           ReflectConfig(enabled=True, reflections=4), CFG, {"iteration": "M1"})
    assert [(r.text, r.retry_correct) for r in rows] == [("note 0", True), ("note 1", False), ("note 2", True),
                                                         ("note 3", False)]
    assert rows[0].prompt_text.startswith("Here is a task and an attempt at it.") and "Final answer: 11" in \
        rows[0].prompt_text
    assert (m["failed_attempts"], m["first_try_accuracy"], m["retry_success_rate"], m["second_try_accuracy"]) == (
        1, 0.0, 0.5, 0.5)
