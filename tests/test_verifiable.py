"""Verifiable rewards: answer extraction, verifiers, pass@k and maj@k, IRPO and RRR pairs, the judge vs the truth."""

import math

import pytest

from pipeline import verifiable as v


@pytest.mark.parametrize("text, answer, method", [
    ("3 + 4 = 7.\nFinal answer: 7", "7", "strict"),
    ("Adding them gives 12.\n**Final answer: 12.**", "12", "strict"),
    ("final answer: -3", "-3", "strict"),
    ("Final answer: 1,234", "1,234", "strict"),
    ("The sum is \\boxed{15}, as computed.", "15", "flexible"),
    ("\\boxed{3} then \\boxed{\\frac{1}{2}}", "\\frac{1}{2}", "flexible"),
    ("First 4, then 9, so the answer is 13.", "13", "flexible"),
    ("Final answer: 7\nI hope that helps with 8 things", "8", "flexible"),  # strict wants the last line
    ("It costs 3.5 dollars", "3.5", "flexible"),
    ("No numbers here.", None, "none"),
    ("Final answer:", None, "none"),
    ("", None, "none"),
])
def test_answer_extraction_chain(text, answer, method):
    assert v.extract_answer(text) == v.Extracted(answer, method)


def test_verifiers():
    assert v.numeric("1,234", "1234") and v.numeric("$7.00", "7") and v.numeric("7 apples", "7")
    assert v.numeric("0.3333333", "0.33333333", tolerance=1e-6)
    assert not v.numeric("8", "7") and not v.numeric("seven", "7") and not v.numeric("0.34", "0.33")
    assert v.exact("  Paris ", "Paris") and v.exact("New  York", "New York") and not v.exact("paris", "Paris")
    assert v.regex("Answer: B", r"Answer: [AB]") and not v.regex("Answer: C", r"Answer: [AB]")
    assert v.symbolic("\\frac{1}{2}", "0.5") and v.symbolic("2x+2", "2(x+1)") and not v.symbolic("1/3", "0.5")
    assert set(v.VERIFIERS) == {"numeric", "exact", "math", "regex"}


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
