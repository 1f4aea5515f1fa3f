"""Each step's whole work in-process, with a scripted engine: the rows it builds and the metrics it reports."""

import math

import pytest

from pipeline import evaluation, judging, meta_judging, pairs, sampling, self_instruct
from pipeline.config import (
    EvaluateConfig,
    JudgeConfig,
    MetaJudgeConfig,
    PairsConfig,
    SampleConfig,
    SelfInstructConfig,
)
from pipeline.errors import StageError
from pipeline.generation import Generation
from pipeline.records import EvalPrompt, LabelledPair, Prompt, Rating, stable_id
from tests.fakes import ScriptedEngine
from tests.helpers import MADE_BY, judgment, meta_setup, response


# ----------------------------------------------------------------------------------------------- judge
def judge_reply(prompt, i):
    if "good" in prompt:
        return ["Fine.\nScore: 4", "I give it a score of 5 overall."][i]
    return "no score here"


def digit_choice(context, options):
    return [-1.0 if o == "1" else -3.0 for o in options]  # forced: the digit 1


def test_judge_step_rows_and_metrics():
    responses = [response("r1", "p1", "good"), response("r2", "p1", "bad"), response("r3", "p2", "good"),
                 response("r4", "p2", "unsplit", parse_ok=False)]
    engine = ScriptedEngine(judge_reply, digit_choice)
    cfg = JudgeConfig(k=2)
    rows, metrics = judging.judge_responses(Generation(engine), responses, cfg, MADE_BY)
    assert [(j.response_id, j.judge_index, j.score, j.method) for j in rows] == [
        ("r1", 0, 4.0, "strict"), ("r1", 1, 5.0, "flexible"), ("r2", 0, 1.0, "forced"), ("r2", 1, 1.0, "forced"),
        ("r3", 0, 4.0, "strict"), ("r3", 1, 5.0, "flexible")]
    assert rows[0].judgment_id == stable_id("j", "r1", 0, "Fine.\nScore: 4")
    assert rows[2].digit_probs == pytest.approx([e / (5 * math.exp(-3) + math.exp(-1)) for e in
                                                 [math.exp(-3), math.exp(-1)] + [math.exp(-3)] * 4])
    assert rows[0].token_ids == [ord(c) for c in "Fine.\nScore: 4"] and rows[0].logprob == -0.5 * 14
    assert rows[0].provenance == {**MADE_BY, "template_sha": rows[0].provenance["template_sha"], "scoring": "parsed",
                                  "sampling": {"n": 2, "temperature": 0.7, "top_p": 0.9, "max_new_tokens": 200,
                                               "stop": [], "seed": 0}}
    judge_prompt = judging.judge_conversation("Question p1?", "bad")[0]["content"]
    assert engine.contexts == [f"<user>{judge_prompt}<assistant>no score here\nScore: "] * 2
    assert {k: metrics[k] for k in ("judgments", "strict", "flexible", "forced", "responses", "sequences")} == {
        "judgments": 6, "strict": 2, "flexible": 2, "forced": 2, "responses": 3, "sequences": 6}
    assert metrics["parse_rate"] == 4 / 6 and metrics["strict_rate"] == 2 / 6
    assert metrics["score_histogram"] == {"0": 0, "1": 2, "2": 0, "3": 0, "4": 2, "5": 2}
    assert metrics["mean_score"] == pytest.approx(10 / 3) and metrics["score_std"] == pytest.approx(math.sqrt(49 / 18))


def test_judge_step_stops_below_the_parse_rate_floor():
    responses = [response("r2", "p1", "bad")]
    with pytest.raises(StageError, match=r"judge M1: only 0% of 1 judgments gave a parseable score"):
        judging.judge_responses(Generation(ScriptedEngine(judge_reply, digit_choice)), responses,
                                JudgeConfig(k=1, min_parse_rate=0.5), MADE_BY)
    with pytest.raises(StageError, match="no response has a parsed final response"):
        judging.judge_responses(Generation(ScriptedEngine(judge_reply)), [response("r", "p", "x", parse_ok=False)],
                                JudgeConfig(), MADE_BY)


def test_expected_scoring_reads_the_written_digit_position():
    engine = ScriptedEngine(judge_reply, lambda ctx, opts: [-2.0, -2.0, -2.0, -2.0, -1.0, -1.0])
    rows, _ = judging.judge_responses(Generation(engine), [response("r1", "p1", "good")],
                                      JudgeConfig(k=1, scoring="expected"), MADE_BY)
    # weights e^-2 on digits 0-3 and e^-1 on 4-5: ((0+1+2+3) e^-2 + (4+5) e^-1) / (4 e^-2 + 2 e^-1)
    assert rows[0].method == "strict" and rows[0].score == pytest.approx((6 + 9 * math.e) / (4 + 2 * math.e))
    assert engine.contexts[0].endswith("<assistant>Fine.\nScore: ")


# ----------------------------------------------------------------------------------------------- meta-judge
def three_player_elo_gap():
    """Total order over 3 judgments, every battle won by the better one in both orders (weights 0.5 each):
    B = [[0,1,1],[0,0,1],[0,0,0]], and by symmetry ε = (a, 0, -a) with (1-σ(a)) + (1-σ(2a)) = l2·a."""
    sig = lambda x: 1 / (1 + math.exp(-x))  # noqa: E731
    lo, hi = 0.0, 20.0
    for _ in range(200):  # bisection: the left side falls, the right side rises in a
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if (1 - sig(mid)) + (1 - sig(2 * mid)) > 0.01 * mid else (lo, mid)
    return 400 * lo / math.log(10)


def test_meta_judge_step_selection_battles_and_ratings():
    responses, judgments, engine = meta_setup()
    out = meta_judging.meta_judge(Generation(engine), responses, judgments, MetaJudgeConfig(num_judgments=3),
                                  JudgeConfig(), MADE_BY)
    # p1: r1 (scores 2, 4) varies more than r2 (3, 3); p2: r3. One extra judgment each, numbered 2.
    assert [(j.response_id, j.judge_index, j.score, j.provenance["extra"]) for j in out.extra] == [
        ("r1", 2, 3.0, True), ("r3", 2, 3.0, True)]
    assert out.extra[0].provenance["sampling"]["seed"] == 1  # judge.seed + 1
    assert len(out.meta) == 12 and {m.response_id for m in out.meta} == {"r1", "r3"}
    first = out.meta[0]
    assert (first.first_id, first.second_id, first.verdict, first.method) == ("j10", "j11", -1, "strict")
    assert first.meta_id == stable_id("mj", "j10", "j11", "Winner: Judgment B")
    forced = [m for m in out.meta if m.response_id == "r3"]
    assert [(m.provenance["first_index"], m.provenance["second_index"], m.verdict, m.method, m.forced_margin)
            for m in forced] == [(0, 1, 1, "forced", 6.0), (0, 2, 1, "forced", 3.0), (1, 0, -1, "forced", -6.0),
                                 (1, 2, -1, "forced", -3.0), (2, 0, -1, "forced", -3.0), (2, 1, 1, "forced", 3.0)]
    assert engine.contexts == []  # every forced verdict came with its completion
    gap = three_player_elo_gap()
    elo = {r.judgment_id: r.elo for r in out.ratings}
    extra1, extra3 = out.extra[0].judgment_id, out.extra[1].judgment_id
    assert elo["j11"] == pytest.approx(1000 + gap, abs=1e-4) and elo[extra1] == pytest.approx(1000, abs=1e-4)
    assert elo["j10"] == pytest.approx(1000 - gap, abs=1e-4)
    assert elo["j30"] == pytest.approx(1000 + gap, abs=1e-4) and elo[extra3] == pytest.approx(1000, abs=1e-4)
    assert round(gap, 4) == 588.2874  # a = 3.387: (1-σ(a)) + (1-σ(2a)) = 0.0339 = 0.01·a
    wins = {r.judgment_id: (r.wins, r.losses) for r in out.ratings}
    assert wins["j11"] == (2.0, 0.0) and wins[extra1] == (1.0, 1.0) and wins["j10"] == (0.0, 2.0)
    m = out.metrics
    assert (m["responses_meta_judged"], m["comparisons"], m["extra_judgments"], m["strict"], m["forced"],
            m["ties"]) == (2, 12, 2, 6, 6, 0)
    assert (m["position_bias"], m["omega_1"], m["omega_2"], m["calibration_offset"]) == (0.5, 0.5, 0.5, 0.0)
    assert m["elo_spread_mean"] == pytest.approx(2 * gap, abs=1e-4)


def test_meta_judge_forced_verdicts_from_text_when_the_engine_cannot_cache_them():
    responses, judgments, engine = meta_setup()
    engine.cache_choices = False
    out = meta_judging.meta_judge(Generation(engine), responses, judgments, MetaJudgeConfig(num_judgments=3),
                                  JudgeConfig(), MADE_BY)
    assert len(engine.contexts) == 6 and all(c.endswith("hmm\nWinner: Judgement ") for c in engine.contexts)
    assert [m.verdict for m in out.meta if m.response_id == "r3"] == [1, 1, -1, -1, -1, 1]


# ----------------------------------------------------------------------------------------------- pairs
def pairs_setup():
    responses = [response("r1", "p1", "short", index=0), response("r2", "p1", "a much longer answer", index=1),
                 response("r3", "p1", "mid length", index=2), response("r4", "p2", "same"),
                 response("r5", "p2", "same too", index=1)]
    judgments = [judgment("a", "r1", "p1", 0, "Score: 5", 5.0), judgment("b", "r2", "p1", 0, "Score: 1", 1.0),
                 judgment("c", "r3", "p1", 0, "Score: 3", 3.0), judgment("d", "r4", "p2", 0, "Score: 2", 2.0),
                 judgment("e", "r5", "p2", 0, "Score: 2", 2.0)]
    extra = [judgment("x", "r1", "p1", 1, "A longer extra judgment.\nScore: 4", 4.0)]
    ratings = [Rating("a", "r1", "p1", 1100.0, 2.0, 0.0), Rating("x", "r1", "p1", 900.0, 0.0, 2.0)]
    return responses, judgments, extra, ratings


def test_pairs_step_with_judgment_pairs():
    responses, judgments, extra, ratings = pairs_setup()
    rp, jp, metrics = pairs.build_pairs(responses, judgments, extra, ratings, PairsConfig(), "M1")
    assert [(p.pair_id, p.chosen_id, p.rejected_id, p.chosen_score, p.rejected_score) for p in rp] == [
        (stable_id("rp", "r1", "r2"), "r1", "r2", 5.0, 1.0)]
    assert rp[0].chosen == [{"role": "assistant", "content": "short"}]
    assert rp[0].prompt == [{"role": "user", "content": "Question p1?"}]
    assert rp[0].provenance == {"length_rho": 0.0, "unparsed_response": "drop", "chosen_chars": 5, "rejected_chars": 20}
    assert rp[0].generated == {"model_sha256": "abc", "chosen": {"token_ids": [1, 2], "logprob": -1.0, "stop_logprob": -0.5},
                               "rejected": {"token_ids": [1, 2], "logprob": -1.0, "stop_logprob": -0.5}}
    assert [(p.pair_id, p.chosen_id, p.rejected_id, p.chosen_score, p.rejected_score) for p in jp] == [
        (stable_id("jp", "a", "x"), "a", "x", 1100.0, 900.0)]
    assert jp[0].prompt == judging.judge_conversation("Question p1?", "short")
    assert jp[0].rejected[0]["content"] == "A longer extra judgment.\nScore: 4"
    assert metrics == {"prompts": 2, "response_pairs": 1, "dropped_equal_scores": 1, "dropped_chosen_too_long": 0,
                       "verified_prompts": 0, "verified_all_correct": 0, "verified_all_wrong": 0,
                       "verified_one_level": 0, "verified_too_few_untruncated": 0, "verified_pairs": 0,
                       "truncated_responses": 0, "truncated_dropped": 0, "truncated_chosen": 0,
                       "truncated_rejected": 0, "judgment_pairs": 1,
                       "judgments_too_long": 0, "length_rho": 0.0, "response_chosen_chars": 5.0,
                       "response_rejected_chars": 20.0, "judgment_chosen_chars": 8.0,
                       "judgment_rejected_chars": 33.0, "score_margin_mean": 4.0}


def test_pairs_step_without_judgment_pairs_and_with_length_control():
    responses, judgments, extra, _ = pairs_setup()
    rp, jp, metrics = pairs.build_pairs(responses, judgments, extra, None, PairsConfig(length_rho=0.5), "M1")
    # ρ = 0.5: chosen band [3, 5] (r1 "short" is shortest), rejected band [1, 3]: r2 is the longest
    assert [(p.chosen_id, p.rejected_id) for p in rp] == [("r1", "r2")] and jp == []
    assert metrics["judgment_pairs"] == 0 and metrics["judgment_chosen_chars"] == 0.0
    with pytest.raises(StageError, match=r"pairs M1: 1 response pairs, fewer than pairs.min_pairs=2: 1 of 2 prompts"):
        pairs.build_pairs(responses, judgments, extra, None, PairsConfig(min_pairs=2), "M1")
    # Meta-Rewarding's first iteration: a pair whose chosen response is too long is dropped (r1 has 5 characters)
    rp, _, metrics = pairs.build_pairs(responses, judgments, extra, None, PairsConfig(max_chosen_chars=4, min_pairs=0),
                                       "M1")
    assert rp == [] and (metrics["dropped_equal_scores"], metrics["dropped_chosen_too_long"]) == (1, 1)
    assert metrics["score_margin_mean"] is None


# ----------------------------------------------------------------------------------------------- evaluate
PROMPTS = [EvalPrompt(id=f"e{i}", category="c", instruction=f"Task {i}.") for i in range(1, 4)]
MINE = {"e1": {"response": "mine one"}, "e2": {"response": "mine two!"}, "e3": {"response": "mine 3"}}
THEIRS = {"e1": {"response": "theirs one"}, "e2": {"response": "theirs two"}, "e3": {"response": "theirs 3"}}


def evaluator_reply(prompt, i):
    if "Task 1." in prompt:
        return "Winner: A"  # always the first shown: the two orders disagree
    if "Task 3." in prompt:
        return "Both fine.\nWinner: tie"
    return "I cannot decide."


def evaluator_choice(context, options):
    mine_first = context.index("Response A:\nmine") >= 0 if "Response A:\nmine" in context else False
    return [-0.1, -2.0] if mine_first else [-2.0, -0.1]  # forced: always the model's answer


def test_compare_with_parsed_and_forced_verdicts():
    cfg = EvaluateConfig(tie_margin=0.05)
    engine = ScriptedEngine(evaluator_reply, evaluator_choice)
    rows = evaluation.compare(Generation(engine), PROMPTS, MINE, THEIRS, "M0", cfg)
    assert [(r["prompt_id"], r["model_is_a"], r["letter"], r["method"], r["verdict"]) for r in rows] == [
        ("e1", True, "A", "strict", 1), ("e1", False, "A", "strict", -1),
        ("e2", True, "A", "forced", 1), ("e2", False, "B", "forced", 1),
        ("e3", True, "tie", "strict", 0), ("e3", False, "tie", "strict", 0)]
    assert len(engine.contexts) == 2 and engine.contexts[0].endswith("I cannot decide.\nWinner: ")
    s = evaluation.baseline_summary(rows, PROMPTS, MINE, THEIRS, cfg)
    assert (s["wins"], s["ties"], s["losses"], s["n"]) == (1, 2, 0, 3)
    assert s["win_rate"] == pytest.approx(2 / 3) and s["win_rate_se"] == pytest.approx(1 / 6)
    assert s["evaluator_position_bias"] == 0.75 and s["order_inconsistent_share"] == pytest.approx(1 / 3)
    assert s["verdicts"] == {"strict": 4, "forced": 2}


def test_compare_with_an_evaluator_without_logprobs():
    engine = ScriptedEngine(evaluator_reply, choice=None)
    rows = evaluation.compare(Generation(engine), PROMPTS, MINE, THEIRS, "M0", EvaluateConfig())
    assert [(r["letter"], r["method"]) for r in rows if r["prompt_id"] == "e2"] == [("tie", "unparsed")] * 2
    s = evaluation.baseline_summary(rows, PROMPTS, MINE, THEIRS, EvaluateConfig())
    assert (s["wins"], s["ties"], s["losses"]) == (0, 3, 0) and s["verdicts"] == {"strict": 4, "unparsed": 2}


def test_evaluate_step_answers_each_model_once_and_measures_the_judge():
    opened = []

    def open_engine(d):
        opened.append(d)
        if d == "judge":
            return ScriptedEngine(evaluator_reply, evaluator_choice)
        # answers: each model writes its own name; as a judge, "current" scores response_a 5 and response_b 1
        return ScriptedEngine(lambda prompt, i: "Score: 5" if "<response>right<" in prompt else
                              "Score: 1" if "<response>wrong<" in prompt else f"{'mine' if d == 'dA' else 'theirs'} {i}")

    labelled = [LabelledPair(id="l1", category="c", instruction="Q", response_a="right", response_b="wrong",
                             preferred="A"),
                LabelledPair(id="l2", category="c", instruction="Q", response_a="right", response_b="wrong",
                             preferred="B")]
    cfg = EvaluateConfig(judge_k=1, bootstrap=10)
    out = evaluation.evaluate(open_engine, None, 4, {"current": "dA", "previous": "dB", "M0": "dB"}, "judge",
                              PROMPTS, labelled, cfg, JudgeConfig(), SampleConfig(thoughts="none"))
    assert opened == ["dA", "dB", "judge"]  # dB (previous and M0) answered once
    assert [(r["model"], r["response"]) for r in out.answers] == [("current", "mine 0")] * 3 + [("previous", "theirs 0")] * 3
    assert out.judge == [{"pair_id": "l1", "preferred": "A", "score_a": 5.0, "score_b": 1.0},
                         {"pair_id": "l2", "preferred": "B", "score_a": 5.0, "score_b": 1.0}]
    assert out.metrics["judge_accuracy"] == {"pairs": 2, "correct": 1, "ties": 0, "accuracy": 0.5, "forced": 0,
                                             "judge_k": 1}
    assert set(out.metrics["baselines"]) == {"previous", "M0"} and out.metrics["evaluator"] == "judge"
    assert len(out.comparisons) == 12 and out.metrics["unparsed_answers"] == {"current": 0, "previous": 0, "M0": 0}


# ----------------------------------------------------------------------------------------------- sample
def test_sample_step_splits_thoughts():
    replies = ["Here is my thought process:\nThink.\n\nHere is my response:\nAnswer A.", "No marker at all."]
    engine = ScriptedEngine(lambda prompt, i: replies[i])
    prompts = [Prompt(prompt_id="p1", instruction="Say something.", source="test")]
    rows, metrics = sampling.sample_responses(Generation(engine), prompts, SampleConfig(n=2), MADE_BY)
    assert [(r.response_id, r.thought, r.response, r.parse_ok) for r in rows] == [
        (stable_id("r", "p1", 0, replies[0]), "Think.", "Answer A.", True),
        (stable_id("r", "p1", 1, replies[1]), "No marker at all.", "", False)]
    assert rows[0].prompt_text == sampling.response_prompt("Say something.", "generic")
    assert rows[0].provenance["template"] == "respond_generic.j2" and rows[0].stop_logprob == -0.25
    assert (metrics["responses"], metrics["parse_ok"], metrics["parse_rate"], metrics["mean_response_chars"],
            metrics["mean_thought_chars"]) == (2, 1, 0.5, 9.0, 6.0)


# ----------------------------------------------------------------------------------------------- self-instruct
def test_self_instruct_step_filters_and_counts():
    replies = iter(["List three uses of salt in cooking.</task>", "Hi</task>", "Describe the photo below.</task>",
                    "list three uses of salt in cooking</task>", "Explain why the sky looks blue at noon.</task>",
                    "never closed and no blank line"])
    engine = ScriptedEngine(lambda prompt, i: next(replies))
    cfg = SelfInstructConfig(num_prompts=2, max_requests=6, shard_size=3)
    seed = [f"Seed task number {i} about gardens." for i in range(10)]
    out = self_instruct.generate_instructions(Generation(engine), seed, [], cfg, MADE_BY)
    prompts, metrics = out.prompts, out.metrics
    assert [p.instruction for p in prompts] == ["List three uses of salt in cooking.",
                                                "Explain why the sky looks blue at noon."]
    assert prompts[0].prompt_id == stable_id("p", "M1", "List three uses of salt in cooking.")
    assert [p.provenance["request"] for p in prompts] == [0, 4]
    assert metrics["requests"] == 6 and metrics["accepted"] == 2  # the second round ran to its end
    assert metrics["rejected"] == {"unparseable": 1, "too_short": 1, "too_long": 0, "echo_of_request": 0,
                                   "not_text_only": 1, "duplicate": 1, "similar_to_seed": 0, "similar_to_accepted": 0,
                                   "similar_to_eval": 0}
    assert [(c.request, c.accepted, c.reason, c.prompt_id) for c in out.candidates] == [
        (0, True, None, prompts[0].prompt_id), (1, False, "too_short", None), (2, False, "not_text_only", None),
        (3, False, "duplicate", None), (4, True, None, prompts[1].prompt_id), (5, False, "unparseable", None)]
    with pytest.raises(StageError, match=r"self_instruct: 0 of 2 requests gave an acceptable instruction"):
        self_instruct.generate_instructions(Generation(ScriptedEngine(lambda p, i: "Hi</task>")), seed, [],
                                            SelfInstructConfig(max_requests=2, shard_size=2), MADE_BY)
