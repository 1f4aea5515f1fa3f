"""IFEval's four accuracies and the per-type table (pipeline.constraints.scoring.accuracy) on a hand-made set,
every mean and SE worked out by hand below."""

from __future__ import annotations

import math

import pytest

from pipeline.constraints import scoring, spec
from pipeline.constraints.scoring import Outcome

NO_COMMA, WORDS, TITLE = "punctuation:no_comma", "length_constraints:number_words", "detectable_format:title"


def o(instruction_id: str, strict: bool, loose: bool) -> Outcome:
    return Outcome(instruction_id, strict, loose, "")


# Four prompts, seven instructions (strict, loose):
#   P1  no_comma (T, T), words (F, T)                 m=2  strict 1 followed, loose 2
#   P2  no_comma (T, T)                               m=1  strict 1, loose 1
#   P3  title (F, F), words (F, F), no_comma (T, T)   m=3  strict 1, loose 1
#   P4  words (F, T)                                  m=1  strict 0, loose 1
SET = [[o(NO_COMMA, True, True), o(WORDS, False, True)],
       [o(NO_COMMA, True, True)],
       [o(TITLE, False, False), o(WORDS, False, False), o(NO_COMMA, True, True)],
       [o(WORDS, False, True)]]


def test_the_four_accuracies_by_hand():
    got = scoring.accuracy(SET)
    # prompt strict: all followed in P2 only -> [0, 1, 0, 0], mean 1/4; deviations -1/4, 3/4, -1/4, -1/4, squares
    # sum to 3/4, sample variance 3/4 / 3 = 1/4, SD 1/2, SE = 1/2 / sqrt(4) = 1/4
    assert got["prompt_strict"] == {"mean": 0.25, "se": 0.25, "n": 4}
    # prompt loose: P1, P2, P4 -> [1, 1, 0, 1], mean 3/4, the mirror image: SE 1/4
    assert got["prompt_loose"] == {"mean": 0.75, "se": 0.25, "n": 4}
    # instruction strict: y = (1, 1, 1, 0) of m = (2, 1, 3, 1), r = 3/7. Residuals y - r m = 1/7, 4/7, -2/7, -3/7,
    # squares sum to 30/49; over c (c - 1) = 12: 30/588 = 5/98; SE = sqrt(5/98) / mean(m) = sqrt(5/98) / (7/4)
    strict = got["instruction_strict"]
    assert strict["mean"] == pytest.approx(3 / 7) and strict["n"] == 7
    assert strict["se"] == pytest.approx(math.sqrt(5 / 98) * 4 / 7)  # 0.12908
    # instruction loose: y = (2, 1, 1, 1), r = 5/7. Residuals 4/7, 2/7, -8/7, 2/7, squares 88/49; / 12 = 22/147;
    # SE = sqrt(22/147) * 4/7
    loose = got["instruction_loose"]
    assert loose["mean"] == pytest.approx(5 / 7) and loose["n"] == 7
    assert loose["se"] == pytest.approx(math.sqrt(22 / 147) * 4 / 7)  # 0.22107


def test_the_per_type_table_by_hand():
    by_type = scoring.accuracy(SET)["by_type"]
    assert list(by_type) == [WORDS, TITLE, NO_COMMA]  # IFEval's order, not the order met
    # no_comma: followed in all three prompts that have it -> mean 1, every residual 0, SE 0
    assert by_type[NO_COMMA] == {"strict": {"mean": 1.0, "se": 0.0, "n": 3}, "loose": {"mean": 1.0, "se": 0.0, "n": 3}}
    # words strict: 0 of 3 -> mean 0, SE 0. Loose: P1 1, P3 0, P4 1 -> mean 2/3; residuals 1/3, -2/3, 1/3, squares
    # 6/9, / (3 * 2) = 1/9, SE = 1/3 (one per prompt: the plain SE over the three prompts)
    assert by_type[WORDS]["strict"] == {"mean": 0.0, "se": 0.0, "n": 3}
    assert by_type[WORDS]["loose"]["mean"] == pytest.approx(2 / 3)
    assert by_type[WORDS]["loose"]["se"] == pytest.approx(1 / 3)
    # title: one prompt, no SE
    assert by_type[TITLE]["strict"]["mean"] == 0.0 and math.isnan(by_type[TITLE]["strict"]["se"])


def test_with_one_instruction_per_prompt_the_cluster_se_is_the_plain_se():
    per_prompt = [[o(NO_COMMA, s, s)] for s in (True, False, True, True, False)]
    got = scoring.accuracy(per_prompt)
    assert got["instruction_strict"]["mean"] == got["prompt_strict"]["mean"] == 0.6
    assert got["instruction_strict"]["se"] == pytest.approx(got["prompt_strict"]["se"])
    assert got["prompt_strict"]["se"] == pytest.approx(math.sqrt(0.3 / 5))  # sample variance 0.3


def test_the_cluster_se_is_wider_than_a_naive_one_when_a_prompts_instructions_move_together():
    # two prompts all followed, two all missed, three instructions each: a plain SE over 12 instructions would
    # be sqrt(0.25 * 12 / 11 / 12) = 0.151; the prompts are what vary, so the SE is that of 4 values: 0.289
    per_prompt = [[o(NO_COMMA, s, s), o(WORDS, s, s), o(TITLE, s, s)] for s in (True, True, False, False)]
    se = scoring.accuracy(per_prompt)["instruction_strict"]["se"]
    assert se == pytest.approx(math.sqrt(1 / 3 / 4)) and se > math.sqrt(0.25 / 11)


def test_small_and_empty_sets():
    one = scoring.accuracy([[o(NO_COMMA, True, True)]])
    assert one["prompt_strict"]["mean"] == 1.0 and math.isnan(one["prompt_strict"]["se"])
    none = scoring.accuracy([])
    assert none["prompt_strict"]["n"] == 0 and math.isnan(none["prompt_strict"]["mean"]) and none["by_type"] == {}
    with pytest.raises(ValueError, match="prompt 2 has no instruction to score"):
        scoring.accuracy([[o(NO_COMMA, True, True)], []])


def test_accuracy_of_checked_responses():
    responses = [("The sea was calm.", [NO_COMMA, WORDS], [{}, {"num_words": 3, "relation": "at least"}]),
                 ("Sure:\n<<Sea>>", [TITLE], [{}]),
                 ("Calm, sea.", [NO_COMMA], [{}])]
    got = scoring.accuracy([scoring.check_response(r, ids, kw) for r, ids, kw in responses])
    assert got["prompt_strict"]["mean"] == pytest.approx(2 / 3)
    assert got["instruction_strict"]["mean"] == pytest.approx(3 / 4)
    assert set(got["by_type"]) <= set(spec.INSTRUCTION_IDS)
