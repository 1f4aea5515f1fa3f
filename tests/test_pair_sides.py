"""Who may take a side in a pair: responses cut by max_new_tokens (pairs.truncated_response) and judgments
without a score (judge.on_unparsed: drop) in the meta-judge and in judgment pairs."""

from __future__ import annotations

import dataclasses

import pytest

from pipeline import meta_judging, pairs
from pipeline.config import JudgeConfig, MetaJudgeConfig, PairsConfig
from pipeline.errors import StageError
from pipeline.generation import Generation
from pipeline.records import Rating, Verification
from tests.fakes import ScriptedEngine
from tests.helpers import MADE_BY, judgment, response


def cut(r):
    return dataclasses.replace(r, finish_reason="length")


def prompt_with_a_cut_response():
    # r3 is cut at the limit: the longest, scored lowest. Under the band rule it would be the rejected side.
    responses = [response("r1", "p1", "short good", index=0), response("r2", "p1", "a middling answer", index=1),
                 cut(response("r3", "p1", "an answer that goes on and on until it is cut", index=2))]
    judgments = [judgment("a", "r1", "p1", 0, "Score: 5", 5.0), judgment("b", "r2", "p1", 0, "Score: 2", 2.0),
                 judgment("c", "r3", "p1", 0, "Score: 1", 1.0)]
    return responses, judgments


def test_a_cut_response_takes_no_side_by_default():
    responses, judgments = prompt_with_a_cut_response()
    rp, _, m = pairs.build_pairs(responses, judgments, [], None, PairsConfig(), "M1")
    assert [(p.chosen_id, p.rejected_id) for p in rp] == [("r1", "r2")]
    assert (m["truncated_responses"], m["truncated_dropped"], m["truncated_chosen"], m["truncated_rejected"]) == \
        (1, 1, 0, 0)


def test_keep_pairs_a_cut_response_and_counts_it():
    responses, judgments = prompt_with_a_cut_response()
    rp, _, m = pairs.build_pairs(responses, judgments, [], None, PairsConfig(truncated_response="keep"), "M1")
    assert [(p.chosen_id, p.rejected_id) for p in rp] == [("r1", "r3")]
    assert (m["truncated_responses"], m["truncated_dropped"], m["truncated_rejected"]) == (1, 0, 1)


def verification(rid, pid, correct):
    return Verification(response_id=rid, prompt_id=pid, verifier="numeric", extracted="4" if correct
                        else "5", method="strict", correct=correct, level=2 if correct else 0)


def test_verified_pairs_leave_cut_answers_out_and_say_why_none_formed():
    responses = [response("r1", "p1", "Final answer: 4", index=0), cut(response("r2", "p1", "Let me thin", index=1))]
    verifications = [verification("r1", "p1", True), verification("r2", "p1", False)]
    cfg = PairsConfig(min_pairs=0)
    rp, _, m = pairs.build_pairs(responses, [], [], None, cfg, "M1", verifications=verifications)
    assert rp == [] and m["verified_too_few_untruncated"] == 1 and m["verified_all_correct"] == 0
    rp, _, m = pairs.build_pairs(responses, [], [], None, PairsConfig(truncated_response="keep"), "M1",
                                 verifications=verifications)
    assert [(p.chosen_id, p.rejected_id) for p in rp] == [("r1", "r2")] and m["truncated_rejected"] == 1
    with pytest.raises(StageError, match=r"1 of 2 responses were cut by sample.max_new_tokens and left out"):
        pairs.build_pairs(responses, [], [], None, PairsConfig(), "M1", verifications=verifications)


def test_a_judgment_without_a_score_is_never_the_chosen_judgment():
    responses = [response("r1", "p1", "alpha")]
    judgments = [judgment("j0", "r1", "p1", 0, "I like it a lot.", None),  # unscored, yet rated highest
                 judgment("j1", "r1", "p1", 1, "Score: 4", 4.0), judgment("j2", "r1", "p1", 2, "Score: 1", 1.0)]
    ratings = [Rating("j0", "r1", "p1", 1200.0, 2.0, 0.0), Rating("j1", "r1", "p1", 1000.0, 1.0, 1.0),
               Rating("j2", "r1", "p1", 800.0, 0.0, 2.0)]
    _, jp, _ = pairs.build_pairs(responses, judgments, [], ratings, PairsConfig(min_pairs=0), "M1")
    assert [(p.chosen_id, p.rejected_id) for p in jp] == [("j1", "j2")]
    assert pairs.select_judgment_pair([pairs.RatedJudgment("a", 1.0, 5, scored=False),
                                       pairs.RatedJudgment("b", 0.0, 5)]) is None


def test_the_meta_judge_compares_only_scored_judgments():
    responses = [response("r1", "p1", "alpha")]
    judgments = [judgment("j0", "r1", "p1", 0, "no score written", None),
                 judgment("j1", "r1", "p1", 1, "q4\nScore: 4", 4.0), judgment("j2", "r1", "p1", 2, "q1\nScore: 1", 1.0)]
    seen = []

    def reply(prompt, i):
        seen.append(prompt)
        return "Winner: Judgment A"

    out = meta_judging.meta_judge(Generation(ScriptedEngine(reply)), responses, judgments,
                                  MetaJudgeConfig(num_judgments=2, on_unparsed="no_win"),
                                  JudgeConfig(on_unparsed="drop"), MADE_BY)
    assert len(out.meta) == 2 and {(m.first_id, m.second_id) for m in out.meta} == {("j1", "j2"), ("j2", "j1")}
    assert not any("no score written" in p for p in seen)
    assert {r.judgment_id for r in out.ratings} == {"j1", "j2"}
    assert out.metrics["unscored_judgments_left_out"] == 1 and out.extra == []


def test_a_response_left_with_fewer_than_two_scored_judgments_has_no_battle_and_no_rating():
    """Meta-Rewarding's judge drops judgments without a score; when even the extra judgments write none, the
    selected response has nothing to compare (CI once crashed here on an empty Bradley-Terry matrix)."""
    responses = [response("r1", "p1", "alpha"), response("r2", "p2", "beta")]
    judgments = [judgment("j0", "r1", "p1", 0, "no score", None), judgment("j1", "r1", "p1", 1, "Score: 4", 4.0),
                 judgment("j2", "r2", "p2", 0, "q4\nScore: 4", 4.0), judgment("j3", "r2", "p2", 1, "q1\nScore: 1", 1.0)]

    def reply(prompt, i):
        return "Winner: Judgment A" if "Judgment A:" in prompt else "still no score"

    out = meta_judging.meta_judge(Generation(ScriptedEngine(reply)), responses, judgments,
                                  MetaJudgeConfig(num_judgments=2, on_unparsed="no_win"),
                                  JudgeConfig(on_unparsed="drop"), MADE_BY)
    assert [(j.response_id, j.score) for j in out.extra] == [("r1", None)]  # asked for, and unscored again
    assert {m.response_id for m in out.meta} == {"r2"} and {r.judgment_id for r in out.ratings} == {"j2", "j3"}
    assert out.metrics["responses_meta_judged"] == 1
    assert out.metrics["responses_with_fewer_than_two_scored_judgments"] == 1
