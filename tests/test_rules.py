"""Every rule of the papers, pinned with exact numbers."""

import math

import numpy as np
import pytest

from pipeline import elo, forcing, judging, meta_judging, pairs, sampling, self_instruct, verdicts
from tests.fakes import FakeEngine

COMPACT = meta_judging.chain_for("meta_judge_compact.j2")  # forced verdicts continue "Winner: Judgment "


# ----------------------------------------------------------------------------------------- self-instruct
def test_parse_task():
    assert self_instruct.parse_task("Write a limerick about cats.", stopped_at="</task>") == "Write a limerick about cats."
    assert self_instruct.parse_task("Write a limerick.", stopped_at="<task>") == "Write a limerick."
    assert self_instruct.parse_task("<task> Do  X\n now</task> extra") == "Do X now"
    assert self_instruct.parse_task("Do X.\n<task>Do Y.") == "Do X."
    assert self_instruct.parse_task("Name a river.\n\nThe Nile is long and") == "Name a river."
    assert self_instruct.parse_task("Write a limerick about cats and") is None  # cut off, never ended
    assert self_instruct.parse_task("   ", stopped_at="</task>") is None


def test_instruction_filters_in_order_and_counted():
    f = self_instruct.InstructionFilter(seed=["Write a poem about the sea in four lines."],
                                        held_out=["Explain how vaccines train the immune system."],
                                        min_words=3, max_words=20, rouge_threshold=0.7)
    offers = [
        (None, False), ("Hi there", False), (" ".join(["word"] * 21), False),
        ("Describe the image below in detail please.", False), ("Summarize the attached file for me.", False),
        ("Write a poem about the sea in four lines", False),
        ("List three ways to save water at home.", True), ("list three ways to save water at home", False),
        ("List three ways to save water at your home.", False),
        ("Explain how vaccines train the immune system quickly.", False),
        ("Give me a recipe for a quick vegetarian lunch.", True),
    ]
    for task, ok in offers:
        assert f.offer(task) is ok, task
    assert dict(f.counts) == {"unparseable": 1, "too_short": 1, "too_long": 1, "not_text_only": 2,
                              "similar_to_seed": 1, "accepted": 2, "duplicate": 1, "similar_to_accepted": 1,
                              "similar_to_eval": 1}
    assert f.accepted == ["List three ways to save water at home.", "Give me a recipe for a quick vegetarian lunch."]
    assert f.rouge_l("List three ways to save water at home.", "List three ways to save water at your home.") == \
        pytest.approx(16 / 17)  # LCS 8 of 8 and 9 tokens


def test_request_shows_num_examples_seed_instructions():
    import random

    seeds = [f"Task number {i}." for i in range(20)]
    text = self_instruct.build_request(seeds, 8, random.Random(0))
    assert text.count("<task>") == 9  # 8 examples + the instruction's own mention
    # the examples are the seed's draw without replacement from the given rng, in the order drawn
    shown = [line[len("<task>"):-len("</task>")] for line in text.splitlines() if line.startswith("<task>")]
    assert shown == random.Random(0).sample(seeds, 8)
    assert shown == ["Task number 12.", "Task number 13.", "Task number 1.", "Task number 8.", "Task number 15.",
                     "Task number 6.", "Task number 19.", "Task number 4."]


# ----------------------------------------------------------------------------------------- thoughts
def test_split_generic_specific_none():
    s = sampling.split_thought("Here is my thought process:\nPlan it.\n\nHere is my response:\nThe answer.", "generic")
    assert s == sampling.Split("Plan it.", "The answer.", True)
    s = sampling.split_thought("I think a lot.", "generic")
    assert s == sampling.Split("I think a lot.", "", False)
    s = sampling.split_thought("Here is my response:   ", "generic")
    assert s.parse_ok is False
    s = sampling.split_thought("Draft: hi. Evaluation: too short.\n<R> Hello, how can I help?", "specific")
    assert s == sampling.Split("Draft: hi. Evaluation: too short.", "Hello, how can I help?", True)
    assert sampling.split_thought(" Plain answer. ", "none") == sampling.Split("", "Plain answer.", True)


def test_thought_prompt_wraps_the_instruction():
    assert sampling.response_prompt("What is 2+2?", "none") == "What is 2+2?"
    text = sampling.response_prompt("What is 2+2?", "generic")
    assert "Here is my thought process:" in text and "Here is my response:" in text
    assert text.endswith("User query: What is 2+2?")
    assert "<R>" in sampling.response_prompt("What is 2+2?", "specific")


# ----------------------------------------------------------------------------------------- judge
@pytest.mark.parametrize("text, score, method", [
    ("Relevance: yes - on topic\nScore: 4", 4, "strict"),
    ("Relevance: yes\nScore: 0  \n", 0, "strict"),
    ("Score: 4\nThank you.", 4, "flexible"),
    ("Score: 2 at first, but the final score is \u201c3\u201d.", 3, "flexible"),
    ("My score: '5'", 5, "flexible"),
    ("I would give it 2/5.", 2, "flexible"),
    ("It earns 3 out of 5 points.", 3, "flexible"),
])
def test_score_parsing(text, score, method):
    parsed = judging.parse_score(text)
    assert (parsed.value, parsed.method) == (str(score), method)
    assert text[parsed.start] == str(score)


@pytest.mark.parametrize("text", ["", "Score: 7", "Score: 4.5", "Great answer!", "It is 6/5"])
def test_score_parsing_fails(text):
    assert judging.parse_score(text) is None


def test_forced_and_expected_score_from_logprobs():
    logprobs = [math.log(w) for w in (1, 1, 2, 4, 1, 1)]
    probs = judging.digit_distribution(logprobs)
    assert probs == pytest.approx([0.1, 0.1, 0.2, 0.4, 0.1, 0.1])
    assert judging.forced_score(probs) == 3
    assert judging.expected_score(probs) == pytest.approx(2.6)
    assert judging.forced_score([0.3, 0.3, 0.1, 0.1, 0.1, 0.1]) == 0  # exact tie: the lower digit


def test_judge_verdicts_force_only_what_does_not_parse():
    engine = FakeEngine({str(d): math.log(w) for d, w in zip(range(6), (1, 1, 2, 4, 1, 1))})
    conv = [{"role": "user", "content": "Q"}]
    texts = ["Fine.\nScore: 5", "No score here"]
    v = judging.judge_verdicts(engine, [conv, conv], texts, "parsed")
    assert [(x.score, x.method) for x in v] == [(5.0, "strict"), (3.0, "forced")]
    assert engine.contexts == ["<user>Q<assistant>No score here\nScore: "]
    engine.contexts.clear()
    v = judging.judge_verdicts(engine, [conv, conv], texts, "expected")
    assert [(x.score, x.method) for x in v] == [(pytest.approx(2.6), "strict"), (pytest.approx(2.6), "forced")]
    assert engine.contexts[0] == "<user>Q<assistant>Fine.\nScore: "  # the written score's own position


def test_response_score_and_variance():
    assert judging.response_score([4.0, None, 2.0]) == 3.0
    assert judging.response_score([None]) is None
    assert judging.score_variance([1.0, 5.0, 3.0]) == pytest.approx(8 / 3)
    assert judging.score_variance([4.0]) == 0.0


# ----------------------------------------------------------------------------------------- meta-judge
def test_highest_variance_selection():
    scores = {"r1": [3, 3, 3], "r2": [1, 5, 3], "r3": [0, 5, 5]}
    assert meta_judging.select_for_meta_judging(scores, ["r1", "r2", "r3"]) == "r3"
    assert meta_judging.select_for_meta_judging({"a": [1, 3], "b": [3, 1]}, ["a", "b"]) == "a"


def test_ordered_pairs_both_orders():
    assert meta_judging.ordered_pairs(3) == [(0, 1), (0, 2), (1, 0), (1, 2), (2, 0), (2, 1)]
    assert len(meta_judging.ordered_pairs(11)) == 110


def test_meta_verdict_parsing_and_forcing():
    assert meta_judging.parse_verdict_strict("A is vague.\nWinner: Judgment B") == ("B", 29)
    assert meta_judging.parse_verdict_strict("Winner: Judgment A.") == ("A", 17)
    assert meta_judging.parse_verdict_strict("Winner: Judgment B\nok") is None
    assert meta_judging.parse_verdict_flexible("The winner is Judgment A because it is precise.") == ("A", 23)
    assert meta_judging.parse_verdict_flexible("judgment b is more accurate.") == ("B", 9)
    P = verdicts.PairVerdict
    assert verdicts.forced_pair_verdict(0.5, 0.05) == P("A", "forced", 0.5)
    assert verdicts.forced_pair_verdict(-0.25, 0.05) == P("B", "forced", -0.25)
    assert verdicts.forced_pair_verdict(0.03125, 0.05) == P("tie", "tie", 0.03125)
    engine = FakeEngine({"A": -0.5, "B": -2.0})
    conv = [{"role": "user", "content": "Q"}]
    got, offset = forcing.pairwise_verdicts(COMPACT, engine, [conv, conv], ["Winner: Judgment B", "hmm"], 0.05)
    assert got == [P("B", "strict"), P("A", "forced", 1.5)]
    assert offset == 0.0
    assert engine.contexts == ["<user>Q<assistant>hmm\nWinner: Judgment "]


def test_meta_verdicts_use_forced_logprobs_from_generation():
    engine = FakeEngine({"A": -0.5, "B": -2.0})
    conv = [{"role": "user", "content": "Q"}]
    got, _ = forcing.pairwise_verdicts(COMPACT, engine, [conv, conv, conv], ["x", "Winner: Judgment A", "y"],
                                       0.05, known=[[-3.0, -1.0], None, None])
    P = verdicts.PairVerdict
    assert got == [P("B", "forced", -2.0), P("A", "strict"), P("A", "forced", 1.5)]
    assert engine.contexts == ["<user>Q<assistant>y\nWinner: Judgment "]  # only the one without cached values


def test_forced_verdict_calibration_hand_worked():
    """A model that always prefers A: all margins > 0. The median (1.03) is subtracted before deciding."""
    margins = [2.0, 0.9, 0.5, 1.03, 3.0]
    assert verdicts.calibration_offset(margins) == 1.03
    assert verdicts.calibration_offset([2.0, 1.0, 0.5, 3.0]) == 1.5
    assert verdicts.calibration_offset([]) == 0.0
    offset, plain = verdicts.forced_pair_verdicts(margins, 0.05, calibrate=False)
    assert offset == 0.0 and [v.letter for v in plain] == ["A"] * 5
    offset, calibrated = verdicts.forced_pair_verdicts(margins, 0.05, calibrate=True)
    assert offset == 1.03
    assert [v.letter for v in calibrated] == ["A", "B", "B", "tie", "A"]
    assert [v.method for v in calibrated] == ["forced", "forced", "forced", "tie", "forced"]
    assert [v.margin for v in calibrated] == pytest.approx([0.97, -0.13, -0.53, 0.0, 1.97], abs=1e-12)
    # Uncalibrated, the position weights zero every battle (all Elo equal); calibrated, they do not.
    plain_results = [meta_judging.VERDICT_VALUE[v.letter] for v in plain]
    calibrated_results = [meta_judging.VERDICT_VALUE[v.letter] for v in calibrated]
    assert elo.position_weights(plain_results) == (0.0, 1.0)
    assert elo.position_weights(calibrated_results) == (0.5, 0.5)


def test_calibrated_pairwise_verdicts_through_an_engine():
    """calibrate=True end to end: margins 2.0, 1.0, 3.0 (median 2.0) become A-vs-B decisions around 2.0."""
    engine = FakeEngine({"A": -0.5, "B": -2.0})  # fallback for texts without known log-probs: margin 1.5
    conv = [{"role": "user", "content": "Q"}]
    known = [[-1.0, -3.0], [-1.5, -2.5], None, None]
    got, offset = forcing.pairwise_verdicts(COMPACT, engine, [conv] * 4, ["a", "b", "c", "Winner: Judgment B"],
                                            0.05, calibrate=True, known=known)
    assert offset == 1.5  # median of 2.0, 1.0, 1.5
    P = verdicts.PairVerdict
    assert got == [P("A", "forced", 0.5), P("B", "forced", -0.5), P("tie", "tie", 0.0), P("B", "strict")]


def test_position_weights_and_battle_matrix_hand_worked():
    assert elo.position_weights([1, 1, 1, -1, 0]) == (0.25, 0.75)
    assert elo.position_weights([0, 0]) == (0.5, 0.5)
    assert elo.position_bias([1, 1, 1, -1, 0]) == 0.75
    verdicts = {(0, 1): 1, (1, 0): -1, (0, 2): 1, (2, 0): 1, (1, 2): 0, (2, 1): -1}
    assert elo.position_weights(verdicts.values()) == (0.4, 0.6)
    b = elo.battle_matrix(verdicts, 3, 0.25, 0.75)
    np.testing.assert_allclose(b, [[0.0, 1.0, 0.25], [0.0, 0.0, 0.75], [0.25, 0.0, 0.0]])


def test_bradley_terry_two_players_closed_form():
    eps = elo.bradley_terry(np.array([[0.0, 3.0], [1.0, 0.0]]), l2=0.0)
    np.testing.assert_allclose(eps, [math.log(3) / 2, -math.log(3) / 2], atol=1e-9)
    np.testing.assert_allclose(elo.to_elo(eps), [1000 + 200 * math.log10(3), 1000 - 200 * math.log10(3)], atol=1e-6)
    assert 1000 + 200 * math.log10(3) == pytest.approx(1095.424251, abs=1e-6)


def test_bradley_terry_three_players_is_the_penalized_optimum():
    b = np.array([[0.0, 2.0, 3.0], [1.0, 0.0, 2.0], [0.5, 1.0, 0.0]])
    eps = elo.bradley_terry(b, l2=0.01)
    p = 1 / (1 + np.exp(-(eps[:, None] - eps[None, :])))
    grad = (b * (1 - p)).sum(1) - (b.T * (1 - p.T)).sum(1) - 0.01 * eps
    np.testing.assert_allclose(grad, 0, atol=1e-9)
    assert abs(eps.sum()) < 1e-9 and eps[0] > eps[1] > eps[2]
    np.testing.assert_allclose(elo.bradley_terry(np.ones((3, 3)) - np.eye(3)), 0, atol=1e-12)


# ----------------------------------------------------------------------------------------- pairs
C = pairs.Candidate
CANDS = [C("a", 5, 100), C("b", 5, 50), C("c", 1, 80), C("d", 1, 200), C("e", 3, 10), C("f", 5, 50)]


def ids(picked):
    return None if picked is None else (picked[0].id, picked[1].id)


def test_response_pair_best_vs_worst_with_ties():
    assert ids(pairs.select_response_pair(CANDS, 0.0)) == ("b", "d")  # shortest 5 (b before f), longest 1


def test_response_pair_length_control():
    assert ids(pairs.select_response_pair(CANDS, 0.25)) == ("b", "d")  # bands [4, 5] and [1, 2]
    assert ids(pairs.select_response_pair(CANDS, 0.5)) == ("e", "d")  # bands [3, 5] and [1, 3]: e is shortest
    three = [C("x", 4, 300), C("y", 3, 40), C("z", 1, 20)]
    assert ids(pairs.select_response_pair(three, 0.0)) == ("x", "z")
    assert ids(pairs.select_response_pair(three, 0.4)) == ("y", "z")  # chosen band [2.8, 4]


def test_response_pair_none_when_scores_equal():
    assert pairs.select_response_pair([C("a", 3, 1), C("b", 3, 2)]) is None
    assert pairs.select_response_pair([C("a", 3, 1)]) is None
    assert pairs.select_response_pair([C("a", 3, 5), C("b", 3.5, 5)], 0.5) == (C("b", 3.5, 5), C("a", 3, 5))


def test_unparsed_responses_can_only_be_rejected():
    cands = [C("good", 2, 10), C("ok", 2, 30), C("bad", pairs.UNPARSED_SCORE, 5)]
    assert ids(pairs.select_response_pair(cands)) == ("good", "bad")


def test_judgment_pair_highest_vs_lowest_elo_and_length_cap():
    R = pairs.RatedJudgment
    js = [R("j1", 1100, 500), R("j2", 1200, 1200), R("j3", 900, 300), R("j4", 900, 100)]
    assert ids(pairs.select_judgment_pair(js, 1100)) == ("j1", "j3")
    assert ids(pairs.select_judgment_pair(js, 2000)) == ("j2", "j3")
    assert pairs.select_judgment_pair([R("a", 1000, 10), R("b", 1000, 10)]) is None
    assert pairs.select_judgment_pair([R("a", 1100, 10), R("b", 900, 5000)], 1100) is None


# ----------------------------------------------------------------------------------------- seed SFT
def test_sft_examples_teach_the_thought_format_and_the_judge_format():
    from pipeline import sft
    from pipeline.records import JudgeExample, SeedInstruction

    seed = SeedInstruction(id="s", category="c", instruction="Name a prime.", reference="7 is prime.")
    plain = sft.ift_example(seed, "none")
    assert plain == {"prompt": [{"role": "user", "content": "Name a prime."}],
                     "completion": [{"role": "assistant", "content": "7 is prime."}]}
    generic = sft.ift_example(seed, "generic")
    assert generic["prompt"][0]["content"] == sampling.response_prompt("Name a prime.", "generic")
    target = generic["completion"][0]["content"]
    split = sampling.split_thought(target, "generic")
    assert split.parse_ok and split.response == "7 is prime." and split.thought.startswith("The user asks: Name a prime.")
    assert sampling.split_thought(sft.ift_example(seed, "specific")["completion"][0]["content"], "specific").response == "7 is prime."
    eft = JudgeExample(id="e", category="c", instruction="Q", response="R", justification="Relevance: yes - ok", score=1)
    rows = sft.sft_examples([seed], [eft], "both", thoughts="none")
    assert rows[1]["completion"][0]["content"] == "Relevance: yes - ok\nScore: 1"
    assert judging.parse_score_strict(rows[1]["completion"][0]["content"]) == ("1", 27)
    assert len(sft.sft_examples([seed] * 5, [eft] * 5, "ift", max_examples=2)) == 2


def test_response_pair_normalized_length_control_hand_worked():
    """TPO §2.2: s = z(score) - ρ·z(length). Scores 5, 4, 1 (mean 10/3, sd √(42)/3); lengths 300, 100, 200."""
    cands = [C("long5", 5, 300), C("short4", 4, 100), C("mid1", 1, 200)]
    assert ids(pairs.select_response_pair_normalized(cands, 0.0)) == ("long5", "mid1")
    # ρ = 0.5: z(score) = (5/3, 2/3, -7/3)/(√42/3) = (0.7715, 0.3086, -1.0801); z(len) = (1.2247, -1.2247, 0)
    # s = (0.1591, 0.9209, -1.0801): the shorter 4 beats the longer 5
    assert ids(pairs.select_response_pair_normalized(cands, 0.5)) == ("short4", "mid1")
    assert pairs.select_response_pair_normalized([C("a", 3, 10), C("b", 3, 90)], 0.5) is None
    # a lower score can never be chosen over a higher one it is paired with
    assert pairs.select_response_pair_normalized([C("a", 2, 10), C("b", 3, 1000)], 0.5) == (C("b", 3, 1000), C("a", 2, 10))


def test_self_instruct_request_mixes_seed_and_generated_examples():
    import random

    seeds = [f"Seed {i}." for i in range(10)]
    text = self_instruct.build_request(seeds, 8, random.Random(0), generated=["Made A.", "Made B.", "Made C."],
                                       num_generated=2)
    shown = [line[len("<task>"):-len("</task>")] for line in text.splitlines() if line.startswith("<task>")]
    assert len(shown) == 8 and sum(s.startswith("Seed") for s in shown) == 6
    assert sum(s.startswith("Made") for s in shown) == 2
    # Until enough are accepted, seeds fill in; with none, the draw is exactly the seed-only one
    empty = self_instruct.build_request(seeds, 8, random.Random(0), generated=[], num_generated=2)
    assert [line[len("<task>"):-len("</task>")] for line in empty.splitlines() if line.startswith("<task>")] == \
        random.Random(0).sample(seeds, 8)
