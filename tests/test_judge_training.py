"""The judge learns from the truth: correctness rules, judge-training pairs, accuracy and format, with exact
numbers computed by hand."""

import math
import random

import pytest

from pipeline import judge_training as jt
from pipeline.judge_training import Decision, Format, JudgedItem


# ------------------------------------------------------------------------------------------ correctness
@pytest.mark.parametrize("shown, verdict, right", [
    ("A", "A", True), ("B", "B", True), ("A", "B", False), ("B", "A", False),
    ("A", "tie", False), ("B", "tie", False), ("A", None, False), ("B", None, False)])
def test_pairwise_correct(shown, verdict, right):
    assert jt.pairwise_correct(shown, verdict) is right


@pytest.mark.parametrize("shown, verdict", [("A", "C"), ("A", "a"), ("tie", "A"), (None, None)])
def test_pairwise_correct_refuses_what_no_chain_yields(shown, verdict):
    with pytest.raises(ValueError):
        jt.pairwise_correct(shown, verdict)


@pytest.mark.parametrize("side, score, others, right", [
    ("better", 4.0, [3.0, None, 4.0], True),  # mean of the readable 3, 4: 3.5 < 4
    ("better", 3.5, [3.0, None, 4.0], False),  # equal to the mean: does not separate the sides
    ("better", 3.0, [3.0, None, 4.0], False),
    ("better", 4.0, [5.0, 2.0], True),  # mean 3.5: right, though below the other side's best
    ("worse", 3.0, [5.0, 2.0], True),  # mean 3.5: right, though above the other side's worst
    ("worse", 3.0, [3.5, 4.0, None], True),  # mean 3.75
    ("worse", 3.75, [3.5, 4.0, None], False),
    ("worse", 4.0, [3.5, 4.0, None], False),
    ("better", None, [1.0], False),  # unreadable score
    ("worse", None, [5.0], False),
    ("better", 5.0, [None, None], False),  # the other side has no readable score
    ("worse", 0.0, [], False),
    ("better", math.nan, [1.0], False),  # NaN reads as unreadable
    ("better", 4.0, [math.nan, 3.0], True),  # ... and is left out of the mean
])
def test_pointwise_correct(side, score, others, right):
    assert jt.pointwise_correct(side, score, others) is right


def test_pointwise_correct_refuses_unknown_side():
    with pytest.raises(ValueError):
        jt.pointwise_correct("A", 4.0, [3.0])


# ------------------------------------------------------------------------------------------ training pairs
def test_judged_item_counts_its_text_unless_told():
    assert JudgedItem("j", "abcd", True, "g").chars == 4
    assert JudgedItem("j", "abcd", True, "g", chars=10).chars == 10
    assert JudgedItem("j", "", True, "g").chars == 0
    with pytest.raises(ValueError):
        JudgedItem("j", "abcd", True, "g", chars=-2)


def _item(id_: str, correct: bool, group: str, chars: int = 5) -> JudgedItem:
    return JudgedItem(id_, "x" * chars, correct, group)


ITEMS = [
    # g1: three correct, two incorrect, all short
    _item("g1c1", True, "g1"), _item("g1c2", True, "g1"), _item("g1c3", True, "g1"),
    _item("g1w1", False, "g1"), _item("g1w2", False, "g1"),
    _item("g2c1", True, "g2"), _item("g2c2", True, "g2"),  # all correct
    _item("g3w1", False, "g3"),  # all incorrect
    _item("g4c1", True, "g4", chars=10), _item("g4w1", False, "g4", chars=11),  # the incorrect one is too long
    # g5: the long correct one takes no side; the one at exactly the cap does
    _item("g5c1", True, "g5", chars=40), _item("g5c2", True, "g5", chars=10), _item("g5w1", False, "g5", chars=3),
]


def test_training_pairs_correct_against_incorrect_of_one_group_capped():
    pairs, counts = jt.select_training_pairs(ITEMS, max_chars=10, per_group=5, seed=0)
    got = {(c.group, c.id, r.id) for c, r in pairs}
    assert {(g, c) for g, c, _ in got} >= {("g5", "g5c2")}
    assert [g for g, _, _ in sorted(got)] == ["g1", "g1", "g5"]
    assert all(c.correct and not r.correct and c.group == r.group for c, r in pairs)
    assert all(c.chars <= 10 and r.chars <= 10 for c, r in pairs)
    used = [j.id for pair in pairs for j in pair]
    assert len(used) == len(set(used))  # no judgment used twice
    assert counts == jt.SelectionCounts(groups=5, groups_with_both=3, groups_all_correct=1, groups_all_incorrect=1,
                                        judgments_too_long=2, groups_lost_to_length=1, pairs=3)
    assert counts.as_dict() == {"groups": 5, "groups_with_both": 3, "groups_all_correct": 1,
                                "groups_all_incorrect": 1, "judgments_too_long": 2, "groups_lost_to_length": 1,
                                "pairs": 3}


def test_training_pairs_per_group_and_no_cap():
    pairs, counts = jt.select_training_pairs(ITEMS, max_chars=None, per_group=1, seed=0)
    assert [c.group for c, _ in pairs] == ["g1", "g4", "g5"]  # one each; g4's long one is allowed now
    assert counts.judgments_too_long == 0 and counts.groups_lost_to_length == 0 and counts.pairs == 3
    pairs, _ = jt.select_training_pairs(ITEMS, max_chars=None, per_group=2, seed=0)
    assert [c.group for c, _ in pairs] == ["g1", "g1", "g4", "g5"]  # g5 has one incorrect judgment only


def _ids(pairs):
    return [(c.id, r.id) for c, r in pairs]


def test_training_pairs_are_deterministic_and_independent_of_input_order():
    first = _ids(jt.select_training_pairs(ITEMS, max_chars=10, per_group=1, seed=7)[0])
    shuffled = list(ITEMS)
    random.Random(1).shuffle(shuffled)
    assert _ids(jt.select_training_pairs(shuffled, max_chars=10, per_group=1, seed=7)[0]) == first
    assert _ids(jt.select_training_pairs(ITEMS, max_chars=10, per_group=1, seed=7)[0]) == first
    both = _ids(jt.select_training_pairs(ITEMS, max_chars=10, per_group=2, seed=7)[0])
    for s in range(5):
        random.Random(s).shuffle(shuffled)
        assert _ids(jt.select_training_pairs(shuffled, max_chars=10, per_group=2, seed=7)[0]) == both
    assert _ids(jt.select_training_pairs(ITEMS[::-1], max_chars=10, per_group=2, seed=7)[0]) == both
    # the seed matters: g1 offers 3 x 2 = 6 pairs, and not every seed picks the same one
    assert len({_ids(jt.select_training_pairs(ITEMS, max_chars=10, per_group=1, seed=s)[0])[0]
                for s in range(20)}) > 1
    # adding a group changes no other group's pairs
    more = [*ITEMS, _item("g0c1", True, "g0"), _item("g0w1", False, "g0")]
    again = _ids(jt.select_training_pairs(more, max_chars=10, per_group=1, seed=7)[0])
    assert again == [("g0c1", "g0w1"), *first]


def test_training_pairs_refuse_bad_input():
    with pytest.raises(ValueError, match="given twice"):
        jt.select_training_pairs([_item("a", True, "g"), _item("a", False, "h")], max_chars=10, per_group=1, seed=0)
    with pytest.raises(ValueError, match="per_group"):
        jt.select_training_pairs(ITEMS, max_chars=10, per_group=0, seed=0)
    with pytest.raises(ValueError, match="max_chars"):
        jt.select_training_pairs(ITEMS, max_chars=0, per_group=1, seed=0)
    assert jt.select_training_pairs([], max_chars=10, per_group=1, seed=0) == ([], jt.SelectionCounts())


# ------------------------------------------------------------------------------------------ clustered SE
def test_clustered_se_by_hand_three_prompts_of_one_two_and_three_pairs():
    # P1: [1]; P2: [1, 1]; P3: [0, 0, 0]. n = 6, mean = 3/6 = 0.5.
    # Per prompt, the sum of deviations from the mean: P1 0.5; P2 0.5 + 0.5 = 1.0; P3 3 x -0.5 = -1.5.
    # Var = (0.25 + 1.0 + 2.25) / 6^2 = 3.5 / 36, SE = sqrt(3.5) / 6 = 0.311805 (unclustered: sqrt(.25/6) = .2041)
    mean, se = jt.clustered_mean([1, 1, 1, 0, 0, 0], ["P1", "P2", "P2", "P3", "P3", "P3"])
    assert mean == 0.5
    assert se == pytest.approx(math.sqrt(3.5) / 6) and se == pytest.approx(0.311805, abs=1e-6)


def test_clustered_se_reduces_to_binomial_with_one_pair_per_prompt():
    # p = 3/4, SE = sqrt(p (1 - p) / n) = sqrt(0.1875 / 4) = 0.216506
    mean, se = jt.clustered_mean([1, 0, 1, 1], ["a", "b", "c", "d"])
    assert mean == 0.75
    assert se == pytest.approx(math.sqrt(0.75 * 0.25 / 4)) and se == pytest.approx(0.216506, abs=1e-6)


def test_clustered_se_needs_two_prompts_and_values():
    assert jt.clustered_mean([], []) == (None, None)
    assert jt.clustered_mean([1, 0, 1], ["p", "p", "p"]) == (pytest.approx(2 / 3), None)
    with pytest.raises(ValueError):
        jt.clustered_mean([1, 0], ["p"])


# ------------------------------------------------------------------------------------------ accuracy
def pw(known, prompt, first, correct, *, source="verified", tie=False, readable=True, better=10, worse=5,
       fm=False):
    return Decision(known_id=known, prompt_id=prompt, source=source, mode="pairwise", correct=correct, tie=tie,
                    better_chars=better, worse_chars=worse, format_matched=fm, better_shown_first=first,
                    readable=readable)


def pt(known, prompt, correct, *, source="verified", tie=False, readable=True, better=10, worse=5, fm=False):
    return Decision(known_id=known, prompt_id=prompt, source=source, mode="pointwise", correct=correct, tie=tie,
                    better_chars=better, worse_chars=worse, format_matched=fm, readable=readable)


DECISIONS = [
    # K1: right in both orders; the better side longer; formats match
    pw("K1", "P1", True, True, better=20, worse=10, fm=True), pw("K1", "P1", False, True, better=20, worse=10, fm=True),
    # K2: right with the better first, wrong with it second (chose the first); the better side shorter
    pw("K2", "P2", True, True, better=5, worse=10), pw("K2", "P2", False, False, better=5, worse=10),
    # K3: a tie, then no verdict; equal lengths; formats match
    pw("K3", "P2", True, False, source="self_taught", tie=True, better=10, worse=10, fm=True),
    pw("K3", "P2", False, False, source="self_taught", readable=False, better=10, worse=10, fm=True),
    # pointwise: K1's two sides, both right
    pt("K1", "P1", True, better=20, worse=10, fm=True), pt("K1", "P1", True, better=20, worse=10, fm=True),
]


def test_pairwise_accuracy_by_hand():
    # Pair values: K1 (1 + 1) / 2 = 1, K2 (1 + 0) / 2 = 0.5, K3 0; mean 0.5.
    # Clustered: P1 holds K1 (deviation 0.5), P2 holds K2 and K3 (0 + -0.5): SE = sqrt(0.25 + 0.25) / 3.
    s = jt.accuracy(DECISIONS)["pairwise"]["overall"]
    assert s["n"] == 3 and s["prompts"] == 2 and s["decisions"] == 6
    assert s["accuracy"] == 0.5
    assert s["accuracy_se"] == pytest.approx(math.sqrt(0.5) / 3)
    assert s["both_right"] == pytest.approx(1 / 3)  # K1 only
    assert s["tie_rate"] == pytest.approx(1 / 6) and s["unreadable_rate"] == pytest.approx(1 / 6)
    # Decided verdicts: K1 chose A then B, K2 chose A then A: 3 of 4 chose the side shown first.
    assert s["decided"] == 4 and s["position_bias"] == 0.75
    # format matched: K1 (1) and K3 (0) on two prompts: 0.5, SE sqrt(0.25 + 0.25) / 2 = sqrt(p (1 - p) / 2)
    assert s["format_matched"] == {"n": 2, "prompts": 2, "accuracy": 0.5,
                                   "accuracy_se": pytest.approx(math.sqrt(0.25 / 2))}
    assert s["better_longer"] == {"n": 1, "prompts": 1, "accuracy": 1.0, "accuracy_se": None}  # K1
    assert s["better_shorter"] == {"n": 1, "prompts": 1, "accuracy": 0.5, "accuracy_se": None}  # K2; K3 in neither


def test_position_bias_counts_the_side_shown_first_not_the_right_one():
    # A judge that always answers "A": right when the better is shown first, wrong when it is shown second.
    always_a = [d for k in ("K1", "K2") for d in (pw(k, k, True, True), pw(k, k, False, False))]
    s = jt.accuracy(always_a)["pairwise"]["overall"]
    assert s["accuracy"] == 0.5 and s["both_right"] == 0.0 and s["position_bias"] == 1.0
    # ... and one that always answers "B"
    always_b = [d for k in ("K1", "K2") for d in (pw(k, k, True, False), pw(k, k, False, True))]
    assert jt.accuracy(always_b)["pairwise"]["overall"]["position_bias"] == 0.0


def test_accuracy_per_source_and_pointwise():
    out = jt.accuracy(DECISIONS)
    verified = out["pairwise"]["by_source"]["verified"]
    # K1 (1) on P1, K2 (0.5) on P2: mean 0.75, deviations 0.25 and -0.25: SE sqrt(0.125) / 2
    assert verified["n"] == 2 and verified["accuracy"] == 0.75
    assert verified["accuracy_se"] == pytest.approx(math.sqrt(0.125) / 2)
    assert verified["both_right"] == 0.5 and verified["position_bias"] == 0.75 and verified["tie_rate"] == 0.0
    taught = out["pairwise"]["by_source"]["self_taught"]
    assert taught["n"] == 1 and taught["accuracy"] == 0.0 and taught["accuracy_se"] is None
    assert taught["tie_rate"] == 0.5 and taught["unreadable_rate"] == 0.5
    assert taught["decided"] == 0 and taught["position_bias"] is None  # no decided verdict: no bias to report
    point = out["pointwise"]["overall"]
    assert point["n"] == 1 and point["accuracy"] == 1.0 and point["both_right"] == 1.0 and point["decisions"] == 2
    assert "position_bias" not in point  # a pointwise judge sees no order
    # every source under each mode: self_taught was never judged pointwise
    assert set(out["pointwise"]["by_source"]) == {"verified", "self_taught"}
    assert out["pointwise"]["by_source"]["self_taught"]["n"] == 0
    assert out["pointwise"]["by_source"]["self_taught"]["accuracy"] is None


def test_accuracy_clustered_se_three_prompts_of_one_two_and_three_pairs():
    # Pair values P1: [1]; P2: [0.5, 1]; P3: [0, 0.5, 0]; n = 6, mean 3 / 6 = 0.5.
    # Per prompt, the sum of deviations: P1 0.5; P2 0 + 0.5 = 0.5; P3 -0.5 + 0 - 0.5 = -1.
    # SE = sqrt(0.25 + 0.25 + 1) / 6 = sqrt(1.5) / 6 = 0.204124 (unclustered: sqrt(1.0) / 6 = 0.166667).
    orders = {1.0: (True, True), 0.5: (True, False), 0.0: (False, False)}
    values = {"P1": [1.0], "P2": [0.5, 1.0], "P3": [0.0, 0.5, 0.0]}
    ds = [pw(f"{p}-{i}", p, first, ok) for p, vs in values.items() for i, v in enumerate(vs)
          for first, ok in zip((True, False), orders[v])]
    s = jt.accuracy(ds)["pairwise"]["overall"]
    assert s["n"] == 6 and s["prompts"] == 3 and s["accuracy"] == 0.5
    assert s["accuracy_se"] == pytest.approx(math.sqrt(1.5) / 6) and s["accuracy_se"] == pytest.approx(0.204124,
                                                                                                      abs=1e-6)
    assert s["both_right"] == pytest.approx(2 / 6)


def test_accuracy_subsets_without_items_report_none():
    out = jt.accuracy([pw("K", "P", True, True, better=7, worse=7), pw("K", "P", False, True, better=7, worse=7)])
    s = out["pairwise"]["overall"]
    empty = {"n": 0, "prompts": 0, "accuracy": None, "accuracy_se": None}
    assert s["format_matched"] == empty and s["better_longer"] == empty and s["better_shorter"] == empty
    assert s["accuracy"] == 1.0 and s["accuracy_se"] is None  # one prompt: no spread to measure
    nothing = jt.accuracy([])
    for mode in ("pairwise", "pointwise"):
        o = nothing[mode]["overall"]
        assert o["n"] == 0 and o["decisions"] == 0 and nothing[mode]["by_source"] == {}
        assert o["accuracy"] is None and o["accuracy_se"] is None and o["both_right"] is None
        assert o["tie_rate"] is None and o["unreadable_rate"] is None and o["format_matched"] == empty
    assert nothing["pairwise"]["overall"]["position_bias"] is None


def test_decisions_refuse_inconsistency():
    with pytest.raises(ValueError, match="better_shown_first"):
        Decision("K", "P", "verified", "pairwise", True, False, 1, 2, False)
    with pytest.raises(ValueError, match="better_shown_first"):
        Decision("K", "P", "verified", "pointwise", True, False, 1, 2, False, better_shown_first=True)
    with pytest.raises(ValueError, match="tie is not correct"):
        pw("K", "P", True, True, tie=True)
    with pytest.raises(ValueError, match="unreadable"):
        pw("K", "P", True, True, readable=False)
    with pytest.raises(ValueError, match="unreadable"):
        pt("K", "P", False, tie=True, readable=False)
    with pytest.raises(ValueError, match="mode"):
        Decision("K", "P", "verified", "listwise", True, False, 1, 2, False)
    with pytest.raises(ValueError, match="as often in each order"):
        jt.accuracy([pw("K", "P", True, True), pw("K", "P", True, False)])
    with pytest.raises(ValueError, match="as often in each order"):
        jt.accuracy([pw("K", "P", True, True)])
    with pytest.raises(ValueError, match="as often in each order"):
        jt.accuracy([pw("K", "P", True, True), pw("K", "P", True, True), pw("K", "P", False, True)])
    with pytest.raises(ValueError, match="disagree"):
        jt.accuracy([pw("K", "P", True, True, better=3), pw("K", "P", False, True, better=4)])


def test_pairwise_accuracy_with_k_judgments_per_order():
    """K = 2 sampled judgments in each order: the pair's value is the share of its 4 judgments that are right."""
    got = jt.accuracy([pw("K", "P", True, True), pw("K", "P", True, False), pw("K", "P", False, True),
                       pw("K", "P", False, True)])["pairwise"]["overall"]
    assert (got["n"], got["decisions"], got["accuracy"], got["both_right"]) == (1, 4, 0.75, 0.0)


# ------------------------------------------------------------------------------------------ format
@pytest.mark.parametrize("text, expected", [
    ("The sum is 4.\n\nFinal answer: 4", Format(True, False, False, False, "several")),
    ("**Final Answer:** 4", Format(True, False, False, False, "one")),
    ("We add them.\nfinal answer : 4\n", Format(True, False, False, False, "one")),
    ("The final answer is 4.", Format(False, False, False, False, "one")),
    ("Here:\n```python\n# a comment\n- x = 1\nFinal answer: 3\n```\nDone.", Format(False, True, False, False, "one")),
    ("# Title\n\n- a\n- b\n\n1. c\n2) d", Format(False, False, True, True, "several")),
    ("* one\n+ two", Format(False, False, True, False, "one")),
    ("3.5 apples\n*emphasis* here\n#hashtag", Format(False, False, False, False, "one")),
    ("```\n# unclosed: all code", Format(False, True, False, False, "one")),
    ("```\n~~~\n# still code: ~~~ does not close ```", Format(False, True, False, False, "one")),
    ("```\ncode\n```\n\n## After", Format(False, True, False, True, "several")),
    ("", Format(False, False, False, False, "none")),
    ("  \n\n \n", Format(False, False, False, False, "none")),
])
def test_format_signature(text, expected):
    assert jt.format_signature(text) == expected
    assert isinstance(jt.format_signature(text), tuple)


def test_format_matched():
    assert jt.format_matched("A cat.\n\nFinal answer: 3", "Two dogs, then.\n\nFinal answer: 7")
    assert not jt.format_matched("A cat.\n\nFinal answer: 3", "Final answer: 3")  # one paragraph against two
    assert not jt.format_matched("- a", "a")
    assert not jt.format_matched("```\nx\n```", "x")
    assert jt.format_matched("Plain words.", "Other plain words, longer ones.")
