"""Known-preference pairs (pipeline.known_pairs): which responses pair for a given seed, what is left out and
counted, the labelled and Self-Taught Evaluator conversions, and the checks on a user's rows."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys

import pytest

from pipeline import known_pairs as kp
from pipeline.errors import RecordError, StageError
from pipeline.records import KnownPair, LabelledPair, Verification, stable_id
from tests.helpers import REPO, response


def answer(rid, pid, index, text, thought="Let me work it out."):
    """A sampled response whose final text is ``text``, its thought apart."""
    return dataclasses.replace(response(rid, pid, text, index=index), thought=thought,
                               output=f"{thought}\nResponse: {text}")


def cut(r):
    return dataclasses.replace(r, finish_reason="length")


def check(r, correct, *, level=None, verifier="numeric", extracted=None, detail=None, constraints=None):
    return Verification(response_id=r.response_id, prompt_id=r.prompt_id, verifier=verifier,
                        extracted=extracted if extracted is not None else ("4" if correct else "5"),
                        method="strict", correct=correct, level=(2 if correct else 0) if level is None else level,
                        detail=("" if correct else "wrong answer") if detail is None else detail,
                        constraints=constraints)


def ids(pairs):
    return [(p.better_id, p.worse_id) for p in pairs]


# ------------------------------------------------------------------------------------ from verifications
def five_answers():
    """p1: r0, r2, r4 right (r2 only read flexibly: level 1), r1 and r3 wrong."""
    rs = [answer(f"r{i}", "p1", i, f"answer number {i}") for i in range(5)]
    vs = [check(rs[0], True), check(rs[1], False), check(rs[2], True, level=1), check(rs[3], False),
          check(rs[4], True)]
    return rs, vs


def test_the_pairs_of_a_seed_are_fixed_and_no_response_takes_two_sides():
    # Random("7:p1") shuffles [r0, r2, r4] to [r0, r2, r4] and then [r1, r3] to [r3, r1]: walked in step that is
    # (r0, r3), (r2, r1), and r4 has no partner left. Random("9:p1") gives [r2, r0, r4] and [r3, r1].
    rs, vs = five_answers()
    pairs, counts = kp.from_verifications(rs, vs, split="train", per_prompt=5, seed=7, iteration="M1")
    assert ids(pairs) == [("r0", "r3"), ("r2", "r1")]
    assert counts == {"prompts": 1, "prompts_with_pairs": 1, "pairs": {"verified": 2, "constraints": 0},
                      "skipped": {"truncated": 0, "no_final_response": 0, "identical_text": 0, "no_right": 0,
                                  "no_wrong": 0}}
    assert ids(kp.from_verifications(rs, vs, split="train", per_prompt=5, seed=9)[0]) == [("r2", "r3"), ("r0", "r1")]
    # the input's order does not matter: each side is put in sample order before it is shuffled
    again, _ = kp.from_verifications(rs[::-1], vs[::-1], split="train", per_prompt=5, seed=7, iteration="M1")
    assert again == pairs


def test_per_prompt_caps_the_pairs_of_a_prompt():
    rs, vs = five_answers()
    pairs, counts = kp.from_verifications(rs, vs, split="train", per_prompt=1, seed=7)
    assert ids(pairs) == [("r0", "r3")] and counts["pairs"]["verified"] == 1
    assert kp.from_verifications(rs, vs, split="train", per_prompt=0, seed=7)[0] == []


def test_a_verified_pair_row_holds_the_final_texts_and_where_they_came_from():
    rs, vs = five_answers()
    first = kp.from_verifications(rs, vs, split="heldout", per_prompt=1, seed=7, iteration="M2")[0][0]
    assert first == KnownPair(
        known_id=stable_id("kp", "verified", "p1", "r0", "r3"), prompt_id="p1", instruction="Question p1?",
        better="answer number 0", worse="answer number 3", source="verified", split="heldout", better_id="r0",
        worse_id="r3", reason="wrong answer: 5 against 4",
        provenance={"iteration": "M2", "verifier": "numeric", "seed": 7, "better_level": 2, "worse_level": 0,
                    "better_method": "strict", "worse_method": "strict", "better_sample_index": 0,
                    "worse_sample_index": 3})
    assert KnownPair.from_dict(json.loads(json.dumps(first.to_dict()))) == first  # it reads back as written


def test_a_right_answer_read_only_flexibly_is_a_better_side_never_a_worse_one():
    rs = [answer("a", "p1", 0, "right, strictly"), answer("b", "p1", 1, "right, loosely")]
    pairs, counts = kp.from_verifications(rs, [check(rs[0], True), check(rs[1], True, level=1)], split="train",
                                          per_prompt=3, seed=7)
    assert pairs == [] and counts["skipped"]["no_wrong"] == 1


def constraint_responses():
    """p2, a constraint instruction: s0 and s1 meet both constraints, s2 and s4 break one, s3 both."""
    rs = [answer(f"s{i}", "p2", i, f"reply {i}") for i in range(5)]

    def outcome(*held):
        return [{"instruction_id": name, "strict": ok, "loose": ok, "detail": ""}
                for name, ok in zip(("punctuation:no_comma", "length_constraints:number_words"), held)]

    held = [(True, True), (True, True), (False, True), (False, False), (True, False)]
    vs = [check(r, all(h), level=2 if all(h) else 1 if any(h) else 0, verifier="constraints", extracted="",
                detail="" if all(h) else "a constraint fails", constraints=outcome(*h)) for r, h in zip(rs, held)]
    return rs, vs


def test_constraint_pairs_are_their_own_source_and_name_what_the_worse_side_breaks():
    # Random("7:p2") shuffles [s0, s1] to [s1, s0] and [s2, s3, s4] to [s2, s3, s4]: (s1, s2), (s0, s3)
    rs, vs = constraint_responses()
    answers, checks = five_answers()
    pairs, counts = kp.from_verifications([*answers, *rs], [*checks, *vs], split="train", per_prompt=2, seed=7)
    assert ids(pairs) == [("r0", "r3"), ("r2", "r1"), ("s1", "s2"), ("s0", "s3")]
    assert [p.source for p in pairs] == ["verified", "verified", "constraints", "constraints"]
    assert pairs[2].known_id == stable_id("kp", "constraints", "p2", "s1", "s2")
    assert pairs[2].reason == "worse breaks punctuation:no_comma"
    assert pairs[3].reason == "worse breaks punctuation:no_comma, length_constraints:number_words"
    assert (pairs[3].provenance["better_level"], pairs[3].provenance["worse_level"]) == (2, 0)
    assert counts["pairs"] == {"verified": 2, "constraints": 2} and counts["prompts_with_pairs"] == 2


def test_every_verifier_but_constraints_gives_verified_pairs():
    rs = [answer("c0", "p5", 0, "def f(): return 1"), answer("c1", "p5", 1, "def f(): return 2")]
    vs = [check(rs[0], True, verifier="python_tests", extracted="def f(): return 1"),
          check(rs[1], False, verifier="python_tests", extracted="def f(): return 2", detail="AssertionError")]
    (pair,), _ = kp.from_verifications(rs, vs, split="train", per_prompt=1, seed=0)
    assert (pair.source, pair.reason) == ("verified", "AssertionError")  # code is not quoted in the reason


def test_a_truncated_response_takes_no_side_unless_kept():
    rs = [answer("t0", "p3", 0, "Final answer: 4"), cut(answer("t1", "p3", 1, "Let me thin"))]
    vs = [check(rs[0], True), check(rs[1], False)]
    pairs, counts = kp.from_verifications(rs, vs, split="train", per_prompt=2, seed=7)
    assert pairs == [] and counts["skipped"]["truncated"] == 1 and counts["skipped"]["no_wrong"] == 1
    assert counts["prompts_with_pairs"] == 0
    pairs, counts = kp.from_verifications(rs, vs, split="train", per_prompt=2, seed=7, keep_truncated=True)
    assert ids(pairs) == [("t0", "t1")] and pairs[0].provenance["truncated"] == ["worse"]
    assert counts["skipped"]["truncated"] == 0


def test_identical_final_texts_are_skipped_without_using_up_the_cap():
    # Random("7:p4") shuffles [u0, u2] to [u2, u0] and [u1, u3] to [u1, u3]: the first step (u2, u1) has the same
    # final text on both sides (the verifier read the thoughts apart), so it is skipped and (u0, u3) is taken.
    rs = [answer("u0", "p4", 0, "It is four."), answer("u1", "p4", 1, "  The answer is 42.\n", thought="six"),
          answer("u2", "p4", 2, "The answer is 42.", thought="forty-two"), answer("u3", "p4", 3, "Seven.")]
    vs = [check(rs[0], True), check(rs[1], False), check(rs[2], True), check(rs[3], False)]
    pairs, counts = kp.from_verifications(rs, vs, split="train", per_prompt=1, seed=7)
    assert ids(pairs) == [("u0", "u3")] and counts["skipped"]["identical_text"] == 1


def test_prompts_without_a_right_or_a_wrong_answer_and_empty_responses_are_counted():
    rs = [answer("w0", "pw", 0, "five"), answer("w1", "pw", 1, "six"),  # both wrong
          answer("k0", "pk", 0, "four"), dataclasses.replace(answer("k1", "pk", 1, ""), parse_ok=False),
          answer("j0", "pj", 0, "a judged answer")]  # no verification: the judge's, not a known pair
    vs = [check(rs[0], False), check(rs[1], False), check(rs[2], True), check(rs[3], False)]
    pairs, counts = kp.from_verifications(rs, vs, split="train", per_prompt=2, seed=7)
    assert pairs == []
    assert counts == {"prompts": 2, "prompts_with_pairs": 0, "pairs": {"verified": 0, "constraints": 0},
                      "skipped": {"truncated": 0, "no_final_response": 1, "identical_text": 0, "no_right": 1,
                                  "no_wrong": 1}}


# ------------------------------------------------------------------------------------------- labelled
def labelled(pid, preferred, reason="clearer"):
    return LabelledPair(id=pid, category="writing", instruction=f"Write about {pid}.", response_a=f"A on {pid}",
                        response_b=f"B on {pid}", preferred=preferred, reason=reason)


def test_labelled_pairs_take_the_preferred_side_as_better_either_way():
    a, b = kp.from_labelled([labelled("l1", "A"), labelled("l2", "B", reason="")])
    assert (a.better, a.worse, a.prompt_id, a.reason) == ("A on l1", "B on l1", "l1", "clearer")
    assert (b.better, b.worse, b.prompt_id, b.reason) == ("B on l2", "A on l2", "l2", "")
    assert {a.source, b.source} == {"labelled"} and {a.split, b.split} == {"heldout"}
    assert a.provenance == {"labelled_id": "l1", "preferred": "A", "category": "writing"}
    assert b.provenance["labelled_id"] == "l2" and a.known_id != b.known_id


# ----------------------------------------------------------------------------------------- self-taught
def test_self_taught_prefers_the_answer_to_the_instruction_itself():
    pair = kp.from_self_taught("p9", "Name a red fruit.", "A strawberry.", "A banana.",
                               similar_instruction="Name a yellow fruit.", split="train", better_id="r1",
                               worse_id="r2", provenance={"iteration": "M1"})
    assert pair is not None
    assert (pair.better, pair.worse, pair.source, pair.split) == ("A strawberry.", "A banana.", "self_taught", "train")
    assert (pair.better_id, pair.worse_id, pair.instruction) == ("r1", "r2", "Name a red fruit.")
    assert pair.reason == "worse answers another instruction: Name a yellow fruit."
    assert pair.provenance == {"iteration": "M1", "similar_instruction": "Name a yellow fruit."}
    other = kp.from_self_taught("p9", "Name a red fruit.", "A strawberry.", "A banana.",
                                similar_instruction="Name a green fruit.", split="train", better_id="r1",
                                worse_id="r2")
    assert other is not None and other.known_id != pair.known_id  # another x' is another pair


@pytest.mark.parametrize("x_prime, to_x, to_x_prime", [
    ("  name A RED   fruit. ", "A strawberry.", "A banana."),  # x' is x, but for spaces and case
    ("Name a yellow fruit.", "A banana.", " a  BANANA. "),  # the two answers are the same text
    ("   ", "A strawberry.", "A banana."),  # no x' at all
    ("Name a yellow fruit.", "A strawberry.", ""),  # nothing answered x'
])
def test_self_taught_gives_no_pair_when_there_is_nothing_to_prefer(x_prime, to_x, to_x_prime):
    assert kp.from_self_taught("p9", "Name a red fruit.", to_x, to_x_prime, similar_instruction=x_prime,
                               split="train") is None


# ------------------------------------------------------------------------------------- rows and checks
def row(known_id, prompt_id, split="train", better="good", worse="bad", instruction=None):
    return KnownPair(known_id=known_id, prompt_id=prompt_id, instruction=instruction or f"Do {prompt_id}.",
                     better=better, worse=worse, source="verified", split=split)


def test_from_dict_refuses_identical_sides_in_one_line():
    raw = {**row("kp-1", "p1").to_dict(), "better": "same text ", "worse": "  same text"}
    with pytest.raises(RecordError) as e:
        KnownPair.from_dict(raw, "known.jsonl:3: ")
    assert str(e.value) == "known.jsonl:3: better and worse are the same text: nothing to prefer"


def test_problems_name_each_bad_row_and_check_rows_stops_on_the_first():
    rows = [row("kp-1", "p1"), row("kp-1", "p2"), row("kp-3", "p3", better=" same", worse="same "),
            row("kp-4", "p4")]
    assert kp.problems(rows, "known.jsonl") == [
        'known.jsonl: row 2 (known_id "kp-1"): duplicate known_id (first in row 1)',
        'known.jsonl: row 3 (known_id "kp-3"): better and worse are the same text: nothing to prefer']
    assert kp.problems([row("kp-1", "p1"), row("kp-2", "p2")]) == []
    with pytest.raises(RecordError, match=r"^known.jsonl: row 2 \(known_id \"kp-1\"\): duplicate known_id "
                                          r"\(first in row 1\) \(and 1 more problems\)$"):
        kp.check_rows(rows, "known.jsonl")
    kp.check_rows(rows[:1])


def test_problems_find_a_prompt_in_both_splits():
    rows = [row("kp-1", "p1"), row("kp-2", "p1", split="heldout"), row("kp-3", "p3")]
    assert kp.problems(rows) == ['known pairs: prompt "p1" has train pairs and shares its prompt with heldout pairs']


def test_train_pairs_must_share_no_prompt_with_heldout_ones():
    train = [row("kp-1", "p1"), row("kp-2", "p2", instruction="Sort  the LIST."), row("kp-3", "p3")]
    heldout = [row("kp-4", "p1", split="heldout"), row("kp-5", "h5", split="heldout", instruction="sort the list.")]
    assert kp.shared_prompts(train, heldout) == ["p1", "p2"]  # the same id; the same instruction under another id
    assert kp.shared_prompts(train[2:], heldout) == []
    with pytest.raises(StageError, match=r"^known pairs: 2 training prompts are also held out: p1, p2 — "):
        kp.check_heldout_disjoint(train, heldout)
    kp.check_heldout_disjoint(train[2:], heldout)


def test_counts_by_source_and_split_name_every_source():
    rows = [row("kp-1", "p1"), row("kp-2", "p2"), dataclasses.replace(row("kp-3", "p3", split="heldout"),
                                                                      source="labelled")]
    assert kp.counts(rows) == {
        "pairs": 3, "by_source": {"verified": 2, "self_taught": 0, "constraints": 0, "labelled": 1},
        "by_split": {"train": 2, "heldout": 1},
        "by_source_split": {"verified": {"train": 2, "heldout": 0}, "self_taught": {"train": 0, "heldout": 0},
                            "constraints": {"train": 0, "heldout": 0}, "labelled": {"train": 0, "heldout": 1}}}


def test_the_module_imports_no_engine():
    code = ("import sys, pipeline.known_pairs; "
            "print([m for m in sys.modules if m.split('.')[0] in ('torch', 'transformers', 'vllm') "
            "or m.startswith('pipeline.engines')])")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, check=True)
    assert proc.stdout.strip() == "[]"
