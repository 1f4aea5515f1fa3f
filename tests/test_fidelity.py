"""Each paper rule a default template must carry, checked where the fidelity table in the README says it lives.

The prompts are this project's own words; what must match the papers is the rule, the limit and the output
format. Each row: (rule, template, phrases that state it).
"""

import pytest

from pipeline import judging, meta_judging, sampling, templates

JUDGE = judging.judge_conversation("Q?", "R.")[0]["content"]
META = meta_judging.meta_judge_conversation("Q?", "R.", "JA", "JB")[0]["content"]
GENERIC = sampling.response_prompt("Q?", "generic")
SPECIFIC = sampling.response_prompt("Q?", "specific")

RULES = [
    # Self-Rewarding LMs, Figure 2: the additive 5-point judge
    ("points accumulate, 0-5", JUDGE, ["additive 5-point system", "start from 0", "points accumulate"]),
    ("point 1: relevant, some information, even if incomplete or partly irrelevant", JUDGE,
     ["Add 1 point", "relevant to the user's question", "some information related to it",
      "even when it is incomplete or includes some irrelevant material"]),
    ("point 2: a substantial part, not fully resolved", JUDGE,
     ["Add a 2nd point", "substantial part of the question", "does not fully resolve the question or give a direct answer"]),
    ("point 3: basic elements, useful, whatever it reads like", JUDGE,
     ["Add a 3rd point", "basic elements of the question in a useful way",
      "whether or not it reads as if an AI assistant wrote it", "blog post or of search results"]),
    ("point 4: AI assistant's perspective, direct, comprehensive, organized, helpful", JUDGE,
     ["Add a 4th point", "clearly written from an AI assistant's perspective", "directly and comprehensively",
      "well organized and helpful", "clarity, conciseness or focus could be slightly better"]),
    ("point 5: impeccably tailored, no extraneous information, expert, engaging, insightful", JUDGE,
     ["Add a 5th point", "impeccably tailored to the question by an AI assistant", "no extraneous information",
      "expert knowledge", "high-quality, engaging and insightful"]),
    ("justification of at most 100 words before the score", JUDGE, ["justify your total score", "at most 100 words"]),
    ("output format Score: <total points>, last", JUDGE, ['last line', '"Score: <total points>"']),
    ("judge from an AI assistant's perspective, with web-search-level knowledge", JUDGE,
     ["perspective of an AI assistant", "web-search-level knowledge"]),
    ("the judge sees the instruction and the response, nothing else", JUDGE, ["User: Q?", "<response>R.</response>"]),
    # Meta-Rewarding LMs, Figure 2: the meta-judge
    ("same rubric", META, ["additive 5-point system", "Add a 5th point"]),
    ("which judgment is more accurate according to the rubric", META,
     ["which judgment is more accurate according to the rubric"]),
    ("factors: rubric adherence, accuracy of the assessment, consistency", META,
     ["how closely each follows the rubric", "how correctly it assesses the response",
      "how consistently it applies the conditions"]),
    ("explain, then Winner: [Judgement A | Judgement B]", META,
     ["Explain which judgment is more accurate and why", '"Winner: Judgement A"', '"Winner: Judgement B"']),
    # Thinking LLMs (TPO), §2.1: the thought prompts
    ("generic: comprehensive and detailed, optional thoughts, two markers", GENERIC,
     ["comprehensive and detailed way", "You may write down your thought process",
      '"Here is my thought process:"', '"Here is my response:"', "User query: Q?"]),
    ("specific: internal thoughts with a draft and its evaluation, then <R>", SPECIFIC,
     ["comprehensive and detailed way", "internal thoughts", "a draft response and an evaluation of that draft",
      'final response after "<R>"']),
]


@pytest.mark.parametrize("rule, text, phrases", RULES, ids=[r[0] for r in RULES])
def test_default_template_states_the_rule(rule, text, phrases):
    for phrase in phrases:
        assert phrase in text, f"{rule}: missing {phrase!r}"


def test_markers_the_parsers_split_on_are_the_ones_the_prompts_ask_for():
    assert sampling.THOUGHT_HEADER in GENERIC and sampling.RESPONSE_MARKERS["generic"] in GENERIC
    assert sampling.RESPONSE_MARKERS["specific"] in SPECIFIC
    assert meta_judging.chain_for(None).prefix.strip() in META  # a forced verdict continues the asked format


def test_the_compact_variants_are_named_alternatives():
    assert templates.check_template("judge_compact.j2", frozenset({"instruction", "response"}),
                                    frozenset({"instruction", "response"})) is None
    compact = judging.judge_conversation("Q?", "R.", "judge_compact.j2")[0]["content"]
    assert "Relevance (1 point)" in compact and "100 words" not in compact
    assert set(judging.VARIANTS) == {"judge.j2", "judge_compact.j2"}
    assert set(meta_judging.VARIANTS) == {"meta_judge.j2", "meta_judge_compact.j2"}
