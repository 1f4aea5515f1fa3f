"""Verifiable rewards: answer extraction, verifiers, pass@k and maj@k, IRPO and RRR pairs, the judge vs the truth."""

import math

import pytest

from pipeline import verifiable as v


@pytest.mark.parametrize("text, answer, reading", [
    ("3 + 4 = 7.\nFinal answer: 7", "7", "final_last_line"),
    ("Adding them gives 12.\n**Final answer: 12.**", "12", "final_last_line"),
    ("final answer: -3", "-3", "final_last_line"),
    ("Final answer: 1,234", "1,234", "final_last_line"),
    ("The sum is \\boxed{15}, as computed.", "15", "boxed"),
    ("\\boxed{3} then \\boxed{\\frac{1}{2}}", "\\frac{1}{2}", "boxed"),
    ("First 4, then 9, so the answer is 13.", "13", "last_number"),
    # the model's own final-answer line wins wherever it stands (issue 22, item 12)
    ("Final answer: 7\nI hope that helps with 8 things", "7", "final_line"),
    ("So it is 0.8.\nFinal answer: 0.8.\nYour answer is 8", "0.8", "final_line"),
    ("Final answer: 3\nwait\n**Final answer: 5**\nthat is \\boxed{6}", "5", "final_line"),  # the last such line
    ("Final answer: 2\n\\boxed{9} and 10", "2", "final_line"),  # before \boxed{} and the last number
    ("Final answer:\nthe answer is \\boxed{4}", "4", "boxed"),  # an empty final line reads nothing
    ("It costs 3.5 dollars", "3.5", "last_number"),
    ("No numbers here.", None, "none"),
    ("Final answer:", None, "none"),
    ("", None, "none"),
])
def test_answer_extraction_chain(text, answer, reading):
    method = "none" if answer is None else "strict" if reading == "final_last_line" else "flexible"
    assert v.extract_answer(text) == v.Extracted(answer, method, reading)


def test_every_reading_has_a_name_the_metrics_count():
    assert [name for name, _ in v.ANSWER_CHAIN.parsers] == ["final_last_line", "final_line", "boxed", "last_number"]
    assert set(v.STRICT_READINGS) <= set(v.READINGS) and {n for n, _ in v.ANSWER_CHAIN.parsers} <= set(v.READINGS)


def test_verifiers():
    assert v.numeric("1,234", "1234") and v.numeric("$7.00", "7") and v.numeric("7 apples", "7")
    assert v.numeric("0.3333333", "0.33333333", tolerance=1e-6)
    assert not v.numeric("8", "7") and not v.numeric("seven", "7") and not v.numeric("0.34", "0.33")
    assert v.exact("  Paris ", "Paris") and v.exact("New  York", "New York") and not v.exact("paris", "Paris")
    assert v.regex("Answer: B", r"Answer: [AB]") and not v.regex("Answer: C", r"Answer: [AB]")
    assert v.symbolic("\\frac{1}{2}", "0.5") and v.symbolic("2x+2", "2(x+1)") and not v.symbolic("1/3", "0.5")
    assert set(v.VERIFIERS) == {"numeric", "exact", "math", "regex"}


def test_math_answers_are_read_as_expressions():
    # math-verify's plain reading finds no expression in x^2 and only the 2 of 2(x+1): read as inline LaTeX first
    assert v.symbolic("x^{2}", "x^2") and not v.symbolic("2", "x^2")
    assert not v.symbolic("2", "2(x+1)") and v.symbolic("2*x + 2", "2(x+1)")
    assert v.parse_math("x^^2") is None and v.parse_math("((") is None and v.parse_math("\\sqrt{2}") is not None


@pytest.mark.parametrize("verifier, answer, tests, inputs, field, reason", [
    ("numeric", "four", None, {}, "answer", ('is not a number ("four") — the numeric verifier compares numbers; '
     'for text, use verifier "exact"')),
    ("numeric", "", None, {}, "answer", "is empty — the numeric verifier compares each answer with it"),
    ("regex", "([1-9][0-9", None, {}, "answer", ("is not a valid regular expression (unterminated character set at "
     "position 6) — the regex verifier matches answers against it")),
    ("regex", None, None, {}, "answer", "is empty — the regex verifier compares each answer with it"),
    ("math", "x^^2", None, {}, "answer", ('is not a mathematical expression math-verify can read ("x^^2") — no '
     "answer could ever equal it")),
    ("python_tests", "", ["assert f(1) == 2", "assert f(2) == (3"], {}, "tests",
     "has a test that does not compile — test 2, line 1: '(' was never closed"),
    ("python_tests", "", [], {}, "tests", "is empty — the python_tests verifier needs at least one test"),
    ("python_tests", "", ["assert f(1) == 2"], {"setup": "import"}, "setup", "does not compile — line 1: invalid syntax"),
    ("countdown", "", None, {"numbers": [], "target": 3}, "numbers", "must be a non-empty list of integers, got []"),
    ("countdown", "", None, {"numbers": [1, "2"], "target": 3}, "numbers",
     'must be a non-empty list of integers, got [1, "2"]'),
    ("countdown", "", None, {"numbers": [1, 2], "target": "3"}, "target", 'must be an integer, got "3"'),
    ("numerc", "4", None, {}, "verifier", ('names an unknown verifier "numerc" — known: numeric, exact, math, regex, '
     "countdown, python_tests, constraints")),
])
def test_task_problems_are_named(verifier, answer, tests, inputs, field, reason):
    assert v.task_problem(verifier, answer, tests, inputs) == (field, reason)


@pytest.mark.parametrize("verifier, answer, tests, inputs", [
    ("numeric", "1,234", None, {}), ("numeric", "$5", None, {}), ("exact", "Paris", None, {}),
    ("regex", r"\d{4}-\d{2}", None, {}), ("math", "x^2", None, {}), ("math", "\\frac{1}{2}", None, {}),
    ("python_tests", "", ["assert f(1) == 2"], {"setup": "import math", "prefix": "def f(x):\n"}),
    ("countdown", "", None, {"numbers": [3, 5], "target": 8}),
])
def test_good_tasks_have_no_problem(verifier, answer, tests, inputs):
    assert v.task_problem(verifier, answer, tests, inputs) is None


def test_vote_keys_are_the_verifiers_reading():
    assert {v.vote_key(a, "numeric") for a in ("8", "8.0", "8.00", " 8 ", "8.")} == {"8"}
    assert v.vote_key("$1,234", "numeric") == "1234" and v.vote_key("0.5", "numeric") == "0.5"
    assert v.vote_key("8", None) == v.vote_key("8.0", None) == "8"  # a plain number, verifier unknown
    assert v.vote_key("x = 8", None) == "x = 8" and v.vote_key("New  York", "exact") == "New York"
    assert v.vote_key("0.5", "math") == v.vote_key("\\frac{1}{2}", "math")


def test_pass_at_k_against_hand_computed_values():
    assert v.pass_at_k(5, 2, 1) == pytest.approx(0.4)  # c / n
    assert v.pass_at_k(5, 2, 3) == pytest.approx(1 - math.comb(3, 3) / math.comb(5, 3))  # 1 - 1/10 = 0.9
    assert v.pass_at_k(4, 1, 2) == pytest.approx(0.5)  # 1 - C(3,2)/C(4,2) = 1 - 3/6
    assert v.pass_at_k(4, 0, 4) == 0.0 and v.pass_at_k(4, 3, 2) == 1.0  # n - c < k: every k-subset has a hit
    with pytest.raises(ValueError):
        v.pass_at_k(3, 1, 4)


def test_majority_at_k_with_ties():
    assert v.majority_at_k(["7", "8", "7", None], [True, False, True, False], 4) == 1.0
    assert v.majority_at_k(["7", "8"], [True, False], 2) == 0.5  # a two-way tie with the right one in it
    assert v.majority_at_k(["7", "8", "9"], [False, False, False], 3) == 0.0
    assert v.majority_at_k(["7", "8", "8", "7"], [True, False, False, True], 3) == 0.0  # only the first 3 vote
    assert v.majority_at_k([None, None], [False, False], 2) == 0.0


def test_estimate_standard_error():
    e = v.estimate([1.0, 0.0, 1.0, 1.0])
    assert (e.mean, e.n) == (0.75, 4) and e.se == pytest.approx(0.5 / 2)  # sd 0.5 over sqrt(4)
    assert math.isnan(v.estimate([1.0]).se)


def test_irpo_pairs_walk_in_parallel_without_repeating():
    assert v.irpo_pairs(["w0", "w1"], ["l0", "l1", "l2"], 10) == [
        ("w0", "l0"), ("w1", "l1"), ("w0", "l1"), ("w1", "l2"), ("w0", "l2"), ("w1", "l0")]
    assert v.irpo_pairs(["w0", "w1"], ["l0", "l1", "l2"], 3) == [("w0", "l0"), ("w1", "l1"), ("w0", "l1")]
    assert v.irpo_pairs(["w0", "w1", "w2"], ["l0"], 2) == [("w0", "l0"), ("w1", "l0")]
    assert v.irpo_pairs([], ["l0"], 5) == [] and v.irpo_pairs(["w0"], [], 5) == []  # counted as no pair


def test_rrr_pairs_reflections_whose_retry_succeeded_against_those_that_failed():
    reflections = [("r1", False), ("r2", True), ("r3", False), ("r4", True)]
    assert v.rrr_pairs(reflections, 3) == [("r2", "r1"), ("r4", "r3"), ("r2", "r3")]
    assert v.rrr_pairs([("r1", True), ("r2", True)], 3) == []


def test_judge_vs_truth_hand_worked():
    scored = [("p", 5.0, True), ("p", 3.0, False), ("p", 4.0, False),  # both pairs right
              ("q", 2.0, True), ("q", 2.0, False)]  # a tie: half
    got = v.judge_vs_truth(scored, bootstrap=200, seed=0)
    assert got["pairwise_accuracy"] == pytest.approx(2.5 / 3) and got["pairs"] == 3
    # pooled: correct {5, 2} vs incorrect {3, 4, 2}: 5 beats all three, 2 ties one -> (3 + 0.5) / 6
    assert got["auc"] == pytest.approx(3.5 / 6)
    assert (got["answers"], got["correct"], got["prompts"]) == (5, 2, 2)
    assert got["pairwise_accuracy_se"] > 0 and got["auc_se"] > 0
    assert got == v.judge_vs_truth(scored, bootstrap=200, seed=0)  # seeded


def _sample(task_id, i, correct, answer, method="strict", **extra):
    return {"task_id": task_id, "sample_index": i, "correct": correct, "method": method, "extracted": answer,
            "num_tokens": 5, **extra}


def test_pass_and_maj_are_named_by_the_k_they_used():
    rows = [_sample("a", 0, True, "1"), _sample("a", 1, False, "2"),  # two samples where four were asked
            _sample("b", 0, False, "3"), _sample("b", 1, False, "4"), _sample("b", 2, True, "5")]
    m = v.sample_metrics(rows, 4)
    assert (m["k"], m["k_asked"]) == (2, 4)
    assert "pass@4" not in m and "maj@4" not in m  # never pass@2 under the pass@4 name
    assert m["pass@2"] == pytest.approx((1.0 + (1 - 1 / 3)) / 2)  # b: 1 - C(2,2)/C(3,2)
    assert m["maj@2"] == pytest.approx((0.5 + 0.0) / 2)  # a: a 1-1 tie with the right one; b: 3, 4 both wrong
    full = v.sample_metrics([_sample("a", i, i == 0, str(i)) for i in range(4)], 4)
    assert (full["k"], full["k_asked"], full["pass@4"]) == (4, 4, 1.0)


def test_one_sample_per_task_counts_each_task_once():
    m = v.sample_metrics([_sample("a", 0, True, "1"), _sample("b", 0, False, "2"), _sample("c", 0, False, "3")], 4)
    assert (m["k"], m["pass@1"], m["maj@1"]) == (1, pytest.approx(1 / 3), pytest.approx(1 / 3))
    assert m["pass@1_se"] == pytest.approx(math.sqrt(1 / 3) / math.sqrt(3))  # sd of (1, 0, 0) / sqrt 3


def test_maj_votes_on_normalised_answers():
    # "8" and "8.0" are one answer to the numeric verifier: two votes against one for "9", not a three-way tie
    rows = [_sample("a", 0, True, "8"), _sample("a", 1, True, "8.0"), _sample("a", 2, False, "9")]
    assert v.sample_metrics(rows, 3)["maj@3"] == 1.0
    with_verifier = [{**r, "verifier": "numeric"} for r in rows]
    assert v.sample_metrics(with_verifier, 3)["maj@3"] == 1.0
    # under an exact verifier "8.0" is wrong where "8" is right: they never pool into one right vote
    exact = [_sample("a", 0, True, "8"), _sample("a", 1, False, "8.0"), _sample("a", 2, False, "8.0")]
    assert v.sample_metrics(exact, 3)["maj@3"] == 0.0
