"""IFEval's 25 rules (pipeline.constraints.checkers), strict and loose, and the argument and combination checks
(pipeline.constraints.spec). Each rule's table row holds responses that follow it and responses that do not,
chosen at the edges the rule defines (a count one short, a marker one character off)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from pipeline.constraints import checkers, scoring, spec

EXISTENCE, FREQUENCY = "keywords:existence", "keywords:frequency"
FORBIDDEN, LETTER = "keywords:forbidden_words", "keywords:letter_frequency"
LANGUAGE = "language:response_language"
SENTENCES, PARAGRAPHS = "length_constraints:number_sentences", "length_constraints:number_paragraphs"
WORDS, NTH = "length_constraints:number_words", "length_constraints:nth_paragraph_first_word"
PLACEHOLDERS, POSTSCRIPT = "detectable_content:number_placeholders", "detectable_content:postscript"
BULLETS, CONSTRAINED = "detectable_format:number_bullet_lists", "detectable_format:constrained_response"
HIGHLIGHTS, SECTIONS = "detectable_format:number_highlighted_sections", "detectable_format:multiple_sections"
JSON, TITLE = "detectable_format:json_format", "detectable_format:title"
TWO, REPEAT = "combination:two_responses", "combination:repeat_prompt"
END, QUOTATION = "startend:end_checker", "startend:quotation"
CAPITAL_WORDS = "change_case:capital_word_frequency"
UPPER, LOWER = "change_case:english_capital", "change_case:english_lowercase"
NO_COMMA = "punctuation:no_comma"

# id -> (kwargs, responses that follow, responses that do not)
TABLE: dict[str, tuple[dict, list[str], list[str]]] = {
    EXISTENCE: ({"keywords": ["harbour", "gull"]},
                ["The harbour was full of gulls.", "GULL over the HARBOUR", "harbourgull"],
                ["The harbour was quiet.", "A gull flew by.", "The port was full of birds."]),
    FREQUENCY: ({"keyword": "tide", "frequency": 3, "relation": "at least"},
                ["tide, tide and TIDE", "The tide, the tides, the riptide.", "tidetidetide"],
                ["tide and tide", "The ebb came in.", "ti de ti de ti de"]),
    FORBIDDEN: ({"forbidden_words": ["storm", "wind"]},
                ["The sea was calm.", "Stormy weather and windy days.", "A windmill turned."],
                ["A storm came.", "The WIND rose.", "wind-swept"]),
    LETTER: ({"letter": "z", "let_frequency": 2, "let_relation": "less than"},
             ["The sea was calm.", "A zebra.", "Lazy day."],
             ["Pizza.", "Zigzag.", "Zoo zone."]),
    LANGUAGE: ({"language": "es"},
               ["El mar estaba tranquilo esta mañana y los pescadores salieron temprano.",
                "Hoy hace buen tiempo y vamos a la playa con mis amigos.",
                "12345 !!!"],  # nothing langdetect can read: followed, as in IFEval
               ["The sea was calm this morning and the fishermen went out early.",
                "La mer était calme ce matin et les pêcheurs sont partis tôt.",
                "Das Meer war heute Morgen ruhig und die Fischer fuhren früh hinaus."]),
    SENTENCES: ({"num_sentences": 3, "relation": "less than"},
                ["One sentence.", "One. Two!", "Mr. Smith met Dr. Jones. They talked."],
                ["One. Two. Three.", "Is it? Yes! Fine.", "It rained. It poured. It stopped. Sun came."]),
    PARAGRAPHS: ({"num_paragraphs": 3},
                 ["One.\n***\nTwo.\n***\nThree.", "One. *** Two. *** Three.", "***\nOne.\n***\nTwo.\n***\nThree.\n***"],
                 ["One.\n***\nTwo.", "One.\n\nTwo.\n\nThree.", "One.\n***\n***\nTwo.\n***\nThree."]),
    WORDS: ({"num_words": 5, "relation": "at least"},
            ["one two three four five", "Don't stop the sea.", "a-b-c-d-e"],
            ["one two three four", "Calm sea.", "..."]),
    NTH: ({"num_paragraphs": 3, "nth_paragraph": 2, "first_word": "Moreover"},
          ["First.\n\nMoreover, more.\n\nLast.", 'First.\n\n"Moreover" it was.\n\nLast.',
           "First.\n\nmoreover! it was.\n\nLast."],
          ["First.\n\nMoreover more.", "First.\n\nFurthermore, more.\n\nLast.", "First.\nMoreover.\nLast."]),
    PLACEHOLDERS: ({"num_placeholders": 2},
                   ["Dear [name], at [address].", "[a][b]", "[ ] and [x y]"],
                   ["Dear [name].", "Dear name, at address.", "[unclosed and ]"]),
    POSTSCRIPT: ({"postscript_marker": "P.S."},
                 ["Body.\n\nP.S. More.", "Body.\np.s. more", "Body. P. S. more"],
                 ["Body only.", "Body.\nPS more", "Body.\nP.P.S more"]),
    BULLETS: ({"num_bullets": 2},
              ["* one\n* two", "- one\n- two\nno bullet", "Intro:\n  * one\n- two\n**bold** line"],
              ["* one", "* one\n* two\n* three", "**one**\n**two**"]),
    CONSTRAINED: ({}, ["My answer is yes.", "My answer is maybe. Because.", "  My answer is no.  "],
                  ["my answer is yes.", "My answer is yes", "Yes."]),
    HIGHLIGHTS: ({"num_highlights": 2},
                 ["*one* and *two*", "**bold** and *it*", "*a*\n*b*"],
                 ["*one* only", "**bold** only", "* *and**"]),
    SECTIONS: ({"section_spliter": "Section", "num_sections": 2},
               ["Section 1\nA\nSection 2\nB", "Section 1 A Section 2 B Section 3 C", "Section1 A Section22 B"],
               ["Section 1\nA", "SECTION 1 A SECTION 2 B", "Section A\nSection B"]),
    JSON: ({}, ['{"a": 1}', '```json\n{"a": [1, 2]}\n```', "  [1, 2]  "],
           ['Here: {"a": 1}', "{a: 1}", '```json\n{"a": 1}\n``` done']),
    TITLE: ({}, ["<<The Sea>>\nText.", "Text <<poem of joy>> text", "<< Sea >>"],
            ["The Sea\nText.", "<<>> text", "<<The\nSea>>"]),
    TWO: ({}, ["First.\n******\nSecond.", "******\nFirst.\n******\nSecond.\n******", "A******B"],
          ["First only.", "Same.\n******\nSame.", "A\n******\n\n******\nB"]),
    REPEAT: ({"prompt_to_repeat": "Describe the sea."},
             ["Describe the sea. It is blue.", "describe the sea. it is blue.", "  DESCRIBE THE SEA. Blue."],
             ["The sea is blue.", "Sure! Describe the sea. Blue.", "Describe the sea"]),
    END: ({"end_phrase": "Any other questions?"},
          ["The sea. Any other questions?", '"The sea. any other questions?"', "Any other questions?  \n"],
          ["Any other questions? Bye.", "The sea.\nAny other\nquestions?", "Any other questions"]),
    CAPITAL_WORDS: ({"capital_frequency": 2, "capital_relation": "at least"},
                    ["NASA and ESA", "I SAW IT", "The U.S. and the UK."],
                    ["Nasa and Esa", "I saw it", "ONE word"]),
    UPPER: ({}, ["THE SEA WAS CALM THIS MORNING AND THE BOATS WENT OUT EARLY.",
                 "I WENT TO THE MARKET TO BUY SOME BREAD AND MILK.", "HELLO THERE, MY FRIEND! HOW ARE YOU TODAY?"],
            ["THE SEA WAS CALM THIS MORNINg.", "The sea was calm this morning.",
             "12345 !!!"]),
    LOWER: ({}, ["the sea was calm this morning and the boats went out early.",
                 "i went to the market to buy some bread and milk.", "hello there, my friend! how are you today?"],
            ["the sea was calm this morning and The boats went out.", "THE SEA WAS CALM.",
             "el mar estaba tranquilo esta mañana y los pescadores salieron temprano."]),
    NO_COMMA: ({}, ["The sea was calm.", "One; two: three.", "Calm sea"],
               ["The sea, calm.", "a,b", "One, two, three"]),
    QUOTATION: ({}, ['"The sea was calm."', '  "Calm"  ', '""'],
                ["The sea was calm.", '"Unclosed', '"'])
}


def test_the_table_covers_every_instruction():
    assert list(TABLE) == list(spec.INSTRUCTION_IDS) and len(spec.INSTRUCTION_IDS) == 25
    assert all(len(good) >= 3 and len(bad) >= 3 for _, good, bad in TABLE.values())


@pytest.mark.parametrize("instruction_id", spec.INSTRUCTION_IDS)
def test_each_rule_passes_and_fails_its_table_rows(instruction_id):
    kwargs, good, bad = TABLE[instruction_id]
    for response in good:
        assert checkers.follows(instruction_id, kwargs, response), (response, checkers.explain(instruction_id,
                                                                                            kwargs, response))
    for response in bad:
        assert not checkers.follows(instruction_id, kwargs, response), (response, checkers.explain(
            instruction_id, kwargs, response))
    for response in good + bad:
        why = checkers.explain(instruction_id, kwargs, response)
        assert why and "\n" not in why and len(why) <= 120


@pytest.mark.parametrize("instruction_id", spec.INSTRUCTION_IDS)
def test_a_blank_response_follows_nothing(instruction_id):
    kwargs = TABLE[instruction_id][0]
    for blank in ("", "  \n\t"):
        assert not checkers.follows(instruction_id, kwargs, blank)
        assert checkers.explain(instruction_id, kwargs, blank) == "empty response"


# ------------------------------------------------------------------------------------------- the rules' edges
@pytest.mark.parametrize(("response", "why"), [
    ("One.\n***\nTwo.\n***", "2 paragraphs (split on ***), needs exactly 2"),  # a trailing divider is no paragraph
    ("***\nOne.\n***\nTwo.", "2 paragraphs (split on ***), needs exactly 2"),
    ("One.\n***\n \n***\nTwo.", "empty paragraph 2 between two *** dividers"),
    ("One.\n\nTwo.", "1 paragraphs (split on ***), needs exactly 2"),  # blank lines are not dividers here
    ("One.\n******\nTwo.", "empty paragraph 2 between two *** dividers"),
])
def test_number_paragraphs_splits_on_dividers_and_refuses_an_empty_middle(response, why):
    assert checkers.explain(PARAGRAPHS, {"num_paragraphs": 2}, response) == why


def test_nth_paragraph_counts_blank_line_paragraphs_and_indexes_them_as_ifeval_does():
    kw = {"num_paragraphs": 2, "nth_paragraph": 2, "first_word": "then"}
    assert checkers.follows(NTH, kw, "First.\n\nThen more.")
    assert checkers.follows(NTH, kw, "First.\n\n\nThen more.")  # three newlines: the second piece starts "\n"
    # four newlines leave an empty piece: it is not counted, but paragraph 2 is still the second piece
    assert checkers.explain(NTH, kw, "First.\n\n\n\nThen more.") == "paragraph 2 is empty"
    assert checkers.explain(NTH, kw, "First.\n\nthen\n\nLast.") == ('3 paragraphs (split on blank lines), needs '
                                                                   'exactly 2; paragraph 2 starts with "then"')
    assert checkers.explain(NTH, kw, "First.\n\n'Then' more.") == ('2 paragraphs (split on blank lines), needs '
                                                                  'exactly 2; paragraph 2 starts with "then"')


def test_bullets_are_lines_starting_with_one_star_or_a_dash_not_bold():
    text = "Intro\n* one\n  - two\n**Bold heading**\n*italic line*\n-three"
    assert checkers.explain(BULLETS, {"num_bullets": 4}, text) == "4 bullet points, needs exactly 4"


def test_highlights_count_single_and_double_stars_on_one_line():
    text = "*one* and **two** but * * and ** ** and *across\nlines."
    assert checkers.explain(HIGHLIGHTS, {"num_highlights": 2}, text) == "2 highlighted sections, needs at least 2"


@pytest.mark.parametrize("response", ['```json\n{"a": 1}\n```', '```JSON\n[1]\n```', '```Json {"a": 1}```',
                                      '```\n{"a": 1}\n```', '  ```json\n"text"\n```  '])
def test_json_may_sit_in_a_fence(response):
    assert checkers.follows(JSON, {}, response)


def test_json_explains_the_parse_error():
    assert checkers.explain(JSON, {}, "Sure: {}") == "not JSON: Expecting value"
    assert checkers.explain(JSON, {}, '{"a": 1}') == "valid JSON"


def test_keywords_are_searched_as_regular_expressions_as_in_ifeval():
    assert checkers.follows(EXISTENCE, {"keywords": ["colou?r"]}, "A bright color.")
    assert checkers.explain(FREQUENCY, {"keyword": "a.c", "frequency": 2, "relation": "at least"},
                            "abc aXc") == '"a.c" appears 2 times, needs at least 2'


def test_explanations_give_the_measured_quantity():
    assert checkers.explain(WORDS, {"num_words": 300, "relation": "less than"}, "w " * 312) == (
        "312 words, needs less than 300")
    assert checkers.explain(NO_COMMA, {}, "a, b") == "found a comma"
    assert checkers.explain(NO_COMMA, {}, "a, b, c") == "found 2 commas"
    assert checkers.explain(LETTER, {"letter": "Z", "let_frequency": 2, "let_relation": "less than"},
                            "Pizza") == '"z" appears 2 times, needs less than 2'
    assert checkers.explain(LANGUAGE, {"language": "es"}, "The sea was calm this morning and the fishermen went "
                            "out early.") == 'detected "en", needs "es"'
    assert checkers.explain(UPPER, {}, "THE SEa") == "not all capital: 1 lowercase letters"
    assert checkers.explain(END, {"end_phrase": "Bye."}, "Hello there.") == 'ends with "...Hello there.", needs "Bye."'
    assert checkers.explain(SECTIONS, {"section_spliter": "SECTION", "num_sections": 3},
                            "SECTION 1 a SECTION 2 b") == '2 "SECTION N" sections, needs at least 3'


def test_language_detection_is_seeded():
    mixed = "Hola, the sea. Bonjour la mer, ciao il mare, hallo das Meer."
    first = checkers.language(mixed)
    assert all(checkers.language(mixed) == first for _ in range(5))
    assert checkers._languages().seed == 0  # unseeded, langdetect's answer on such a text changes between runs
    assert checkers.language("12345 ...") is None


def test_importing_the_package_loads_neither_nltk_nor_langdetect():
    import subprocess
    import sys

    code = ("import sys, pipeline.constraints.checkers, pipeline.constraints.scoring; "
            "print(sorted(m for m in ('nltk', 'langdetect') if m in sys.modules))")
    root = Path(__file__).resolve().parents[1]
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=root).stdout
    assert out.strip() == "[]"


def test_sentence_counts_know_common_titles():
    assert len(checkers.sentences("Mr. Smith met Dr. Jones in the U.S. today. They talked.")) == 2
    assert len(checkers.sentences("It rained. Then it stopped! Did it? Yes.")) == 4


def test_capital_words_are_counted_on_nltk_tokens():
    assert checkers.tokens("I'M HAPPY, OK?") == ["I", "'M", "HAPPY", ",", "OK", "?"]
    assert checkers.explain(CAPITAL_WORDS, {"capital_frequency": 4, "capital_relation": "less than"},
                            "I'M HAPPY, OK?") == "4 all-capital words, needs less than 4"


def test_hf_rows_nulls_are_dropped_and_bad_kwargs_raise():
    assert checkers.follows(WORDS, {"num_words": 2, "relation": "at least", "keywords": None, "language": None},
                            "two words")
    with pytest.raises(ValueError, match=r'^length_constraints:number_words: needs "relation"$'):
        checkers.follows(WORDS, {"num_words": 2}, "two words")
    with pytest.raises(ValueError, match='unknown instruction id "punctuation:no_comas"'):
        checkers.explain("punctuation:no_comas", {}, "text")


# ------------------------------------------------------------------------------------------- strict and loose
@pytest.mark.parametrize(("instruction_id", "kwargs", "response", "held"), [
    (REPEAT, {"prompt_to_repeat": "Describe the sea."}, "Sure, here it is:\nDescribe the sea. It is blue.",
     "without the first line"),
    (QUOTATION, {}, 'Here you go:\n"The sea was calm."', "without the first line"),
    (JSON, {}, '{"sea": "calm"}\nHope this helps!', "without the last line"),
    (JSON, {}, 'Sure:\n{"sea": "calm"}\nHope this helps!', "without the first and last lines"),
    (END, {"end_phrase": "Any other questions?"}, "The sea. *Any other questions?*", "without *"),
    (WORDS, {"num_words": 5, "relation": "less than"}, "Here is my answer for you:\nCalm sea.",
     "without the first line"),
    (CAPITAL_WORDS, {"capital_frequency": 1, "capital_relation": "less than"}, "**NOTE**\nThe sea was calm.",
     "without the first line"),
    (TITLE, {}, "Intro\n*<<The Sea>>*", "as written"),  # strict already: loose is strict's superset
])
def test_loose_forgives_a_first_or_last_line_and_emphasis(instruction_id, kwargs, response, held):
    (outcome,) = scoring.check_response(response, [instruction_id], [kwargs])
    assert outcome.loose
    if held == "as written":
        assert outcome.strict and "loose" not in outcome.detail
    else:
        assert not outcome.strict
        assert outcome.detail == checkers.explain(instruction_id, kwargs, response) + f"; loose: holds {held}"


def test_loose_still_fails_what_no_variant_fixes():
    (outcome,) = scoring.check_response("One, two.\nThree, four.\nFive, six.", [NO_COMMA], [{}])
    assert outcome == scoring.Outcome(NO_COMMA, False, False, "found 3 commas")


def test_loose_variants_are_ifevals_eight():
    text = "*a*\nb\n*c*"
    assert scoring.loose_variants(text) == [text, "a\nb\nc", "b\n*c*", "*a*\nb", "b", "b\nc", "a\nb", "b"]
    assert len(scoring.LOOSE_VARIANTS) == 8


def test_check_response_checks_its_inputs_and_round_trips_as_a_dict():
    outcomes = scoring.check_response("calm sea", [NO_COMMA, WORDS], [{}, {"num_words": 3, "relation": "at least"}])
    assert [(o.strict, o.loose) for o in outcomes] == [(True, True), (False, False)]
    assert [scoring.Outcome(**dataclasses.asdict(o)) for o in outcomes] == outcomes
    with pytest.raises(ValueError, match="1 kwargs objects for 2 instructions"):
        scoring.check_response("x", [NO_COMMA, WORDS], [{}])
    with pytest.raises(ValueError, match=r'^instruction 2 \(length_constraints:number_words: needs "num_words"\)$'):
        scoring.check_response("x", [NO_COMMA, WORDS], [{}, {"relation": "at least"}])


# ------------------------------------------------------------------------------------------- spec
def test_ids_and_kwargs_table():
    assert len(set(spec.INSTRUCTION_IDS)) == 25 and tuple(spec.KWARGS) == spec.INSTRUCTION_IDS
    assert set(spec.INSTRUCTION_IDS) == set(checkers.RULES)
    assert spec.KWARGS[NTH] == {"num_paragraphs": int, "nth_paragraph": int, "first_word": str}
    assert spec.KWARGS[WORDS]["relation"] == ("less than", "at least")


def test_languages_are_langdetects_profiles():
    import os

    from langdetect.detector_factory import PROFILES_DIRECTORY

    assert spec.LANGUAGES == tuple(sorted(os.listdir(PROFILES_DIRECTORY)))


def test_clean_kwargs_drops_only_nulls():
    assert spec.clean_kwargs({"num_words": 0, "relation": None, "keywords": None, "end_phrase": ""}) == {
        "num_words": 0, "end_phrase": ""}
    assert spec.clean_kwargs(None) == {}


@pytest.mark.parametrize(("instruction_id", "kwargs", "problem"), [
    ("punctuation:no_comas", {}, 'unknown instruction id "punctuation:no_comas" — did you mean "punctuation:no_comma"?'),
    ("number_words", {}, 'unknown instruction id "number_words" — did you mean "length_constraints:number_words"?'),
    (WORDS, {"num_words": "fifty", "relation": "at least"}, "\"num_words\" must be int, got 'fifty'"),
    (WORDS, {"num_words": True, "relation": "at least"}, '"num_words" must be int, got True'),  # bool is no int
    (WORDS, {"num_words": 5.0, "relation": "at least"}, '"num_words" must be int, got 5.0'),
    (WORDS, {"relation": "at least"}, 'needs "num_words"'),
    (FREQUENCY, {}, 'needs "keyword" and "frequency" and "relation"'),
    (WORDS, {"num_words": 5, "relation": "at most"}, "\"relation\" must be \"less than\" or \"at least\", got 'at most'"),
    (WORDS, {"num_word": 5, "relation": "at least"},
     ('unknown argument "num_word" — did you mean "num_words"? (length_constraints:number_words takes num_words, '
     "relation)")),
    (NO_COMMA, {"num_words": 5}, 'takes no arguments, got "num_words"'),
    (PLACEHOLDERS, {"num_placeholders": -1}, '"num_placeholders" must be at least 0, got -1'),
    (WORDS, {"num_words": 0, "relation": "less than"}, ('"num_words": "less than 0" is impossible — a count is never '
     "below 0")),
    (SENTENCES, {"num_sentences": 1, "relation": "less than"},
     '"num_sentences": "less than 1" is impossible — a non-empty response has a sentence'),
    (NTH, {"num_paragraphs": 2, "nth_paragraph": 3, "first_word": "so"}, '"nth_paragraph" 3 is past "num_paragraphs" 2'),
    (NTH, {"num_paragraphs": 2, "nth_paragraph": 0, "first_word": "so"},
     '"nth_paragraph" must be at least 1 (paragraphs count from 1), got 0'),
    (NTH, {"num_paragraphs": 2, "nth_paragraph": 1, "first_word": "so,"},
     "\"first_word\" 'so,' can never match: IFEval reads a first word up to a space or one of . , ? ! ' \""),
    (EXISTENCE, {"keywords": []}, '"keywords" is empty — give at least one'),
    (EXISTENCE, {"keywords": ["sea", " "]}, '"keywords" item 2 is empty'),
    (EXISTENCE, {"keywords": "sea"}, "\"keywords\" must be a list of words, got 'sea'"),
    (EXISTENCE, {"keywords": ["(sea"]}, ("\"keywords\" '(sea' is not a valid regular expression (IFEval searches it as "
     "one): missing ), unterminated subpattern at position 0")),
    (FREQUENCY, {"keyword": "", "frequency": 2, "relation": "at least"}, '"keyword" is empty'),
    (LETTER, {"letter": "ab", "let_frequency": 2, "let_relation": "at least"}, "\"letter\" must be one letter a-z, got 'ab'"),
    (LETTER, {"letter": "é", "let_frequency": 2, "let_relation": "at least"}, "\"letter\" must be one letter a-z, got 'é'"),
    (LANGUAGE, {"language": "EN"}, ("\"language\" must be a language code langdetect knows (en, fr, zh-cn, ...), got "
     "'EN', did you mean 'en'?")),
    (LANGUAGE, {"language": "zh"}, ("\"language\" must be a language code langdetect knows (en, fr, zh-cn, ...), got "
     "'zh', did you mean 'zh-cn' or 'zh-tw'?")),
    (REPEAT, {"prompt_to_repeat": "  "}, '"prompt_to_repeat" is empty'),
    (END, {"end_phrase": 'He said "bye"'}, ('"end_phrase" ending with a double quote can never match: IFEval strips '
                                            "quotes off the end of the response first")),
])
def test_kwargs_problem_says_what_is_wrong_in_one_line(instruction_id, kwargs, problem):
    assert spec.kwargs_problem(instruction_id, kwargs) == problem


@pytest.mark.parametrize("instruction_id", spec.INSTRUCTION_IDS)
def test_the_table_kwargs_are_fine(instruction_id):
    assert spec.kwargs_problem(instruction_id, TABLE[instruction_id][0]) is None


def _lt(n: int) -> dict:
    return {"num_words": n, "relation": "less than"}


def _ge(n: int) -> dict:
    return {"num_words": n, "relation": "at least"}


IMPOSSIBLE = [
    ([WORDS, WORDS], [_lt(5), _ge(50)], "at least 50 words and at most 4"),
    ([WORDS, NO_COMMA, WORDS], [_ge(5), {}, _lt(5)], "at least 5 words and at most 4"),
    ([FREQUENCY, FREQUENCY], [{"keyword": "Sea", "frequency": 3, "relation": "at least"},
                              {"keyword": "sea", "frequency": 2, "relation": "less than"}],
     'at least 3 "sea" and at most 1'),
    ([UPPER, LOWER], [{}, {}], "all capital letters and all lowercase letters at once"),
    ([LANGUAGE, LANGUAGE], [{"language": "fr"}, {"language": "es"}], 'a response in "es" and in "fr"'),
    ([LOWER, LANGUAGE], [{}, {"language": "de"}], 'all lowercase letters in English, and a response in "de"'),
    ([CONSTRAINED, LOWER], [{}, {}],
     'all lowercase letters, and one of the fixed answers ("My answer is yes." ...), which mix cases'),
    ([LOWER, CAPITAL_WORDS], [{}, {"capital_frequency": 2, "capital_relation": "at least"}],
     "all lowercase letters leave no all-capital word, but at least 2 are asked"),
    ([LOWER, SECTIONS], [{}, {"section_spliter": "SECTION", "num_sections": 2}],
     'all lowercase letters, and the section marker "SECTION", which is not'),
    ([PARAGRAPHS, PARAGRAPHS], [{"num_paragraphs": 3}, {"num_paragraphs": 4}],
     "exactly 3 paragraphs (split on ***) and exactly 4"),
    ([NTH, NTH], [{"num_paragraphs": 3, "nth_paragraph": 1, "first_word": "so"},
                  {"num_paragraphs": 3, "nth_paragraph": 1, "first_word": "then"}],
     'paragraph 1 must start with "so" and with "then"'),
    ([END, END], [{"end_phrase": "Bye."}, {"end_phrase": "See you."}], 'ending with "bye." and with "see you."'),
    ([TWO, PARAGRAPHS], [{}, {"num_paragraphs": 2}],
     ("two responses need ****** between them, which the paragraph count reads as an empty paragraph between two "
     "*** dividers")),
    ([REPEAT, QUOTATION], [{"prompt_to_repeat": "Describe the sea."}, {}],
     "wrapped in double quotes, but starting with the prompt to repeat, which does not start with one"),
    ([REPEAT, JSON], [{"prompt_to_repeat": "Describe the sea."}, {}],
     "a JSON text, but starting with the prompt to repeat, which no JSON text starts with"),
    ([REPEAT, NO_COMMA], [{"prompt_to_repeat": "Describe the sea, briefly."}, {}],
     "the prompt to repeat must appear, and it breaks the no-comma rule"),
    ([END, FORBIDDEN], [{"end_phrase": "Any other questions?"}, {"forbidden_words": ["other"]}],
     'the end phrase "Any other questions?" must appear, and it breaks the ban on "other"'),
    ([CONSTRAINED, WORDS], [{}, _lt(4)], ('each fixed answer ("My answer is yes." ...) breaks the limit of fewer than '
     "4 words")),
    ([CONSTRAINED, LETTER], [{}, {"letter": "a", "let_frequency": 1, "let_relation": "less than"}],
     'each fixed answer ("My answer is yes." ...) breaks the limit of fewer than 1 "a"'),
    ([CONSTRAINED, FORBIDDEN], [{}, {"forbidden_words": ["yes", "no", "maybe"]}],
     ('no fixed answer is allowed: "My answer is yes." breaks the ban on "yes", "My answer is no." breaks the ban on '
     '"no", "My answer is maybe." breaks the ban on "maybe"')),
    ([EXISTENCE, FREQUENCY], [{"keywords": ["harbour"]}, {"keyword": "harbour", "frequency": 1, "relation": "less than"}],
     'the keyword "harbour" must appear, and it breaks the limit of "harbour" fewer than 1 times'),
]


@pytest.mark.parametrize(("ids", "kwargs", "reason"), IMPOSSIBLE, ids=[r[2][:40] for r in IMPOSSIBLE])
def test_conflict_refuses_what_no_response_can_satisfy(ids, kwargs, reason):
    assert all(spec.kwargs_problem(i, k) is None for i, k in zip(ids, kwargs))
    assert spec.conflict(ids, kwargs) == reason


# Combinations that look contradictory but are not: each with a response that satisfies all of them.
POSSIBLE = [
    ([JSON, QUOTATION], [{}, {}], '"The sea was calm."'),  # a JSON string is quoted
    ([CONSTRAINED, WORDS], [{}, _ge(20)], "My answer is yes. " + "The sea was calm this morning. " * 3),
    ([NTH, PARAGRAPHS], [{"num_paragraphs": 2, "nth_paragraph": 1, "first_word": "so"}, {"num_paragraphs": 3}],
     "So one *** two *** three.\n\nLast."),  # different separators: any two counts can hold together
    ([NTH, PARAGRAPHS], [{"num_paragraphs": 3, "nth_paragraph": 3, "first_word": "end"}, {"num_paragraphs": 1}],
     "One.\n\nTwo.\n\nEnd."),
    ([EXISTENCE, FORBIDDEN], [{"keywords": ["cat"]}, {"forbidden_words": ["cat"]}], "Two cats."),  # \b vs substring
    ([CONSTRAINED, FORBIDDEN], [{}, {"forbidden_words": ["my"]}], "XMy answer is yes."),
    ([UPPER, CAPITAL_WORDS], [{}, {"capital_frequency": 2, "capital_relation": "less than"}],
     "HELLO-THERE-MY-FRIEND-HOW-ARE-YOU-TODAY"),  # one token
    ([REPEAT, LOWER], [{"prompt_to_repeat": "Describe the Sea."}, {}],
     "describe the sea. the sea was calm this morning and the boats went out early."),
    ([END, END], [{"end_phrase": "questions?"}, {"end_phrase": "Any other questions?"}], "Well. Any other questions?"),
    ([REPEAT, QUOTATION], [{"prompt_to_repeat": '"Hi" is a word.'}, {}], '"Hi" is a word. Yes "it is"'),
    ([TWO, JSON], [{}, {}], '{"a": "one ****** two"}'),
    ([FORBIDDEN, REPEAT], [{"forbidden_words": ["sea"]}, {"prompt_to_repeat": "Describe the sea"}],
     "Describe the seashore."),  # the word at the prompt's end can run on into a longer one
    ([WORDS, WORDS, NO_COMMA], [_ge(3), _lt(5), {}], "one two three four"),
]


@pytest.mark.parametrize(("ids", "kwargs", "witness"), POSSIBLE)
def test_conflict_leaves_what_some_response_satisfies(ids, kwargs, witness):
    assert spec.conflict(ids, kwargs) is None
    assert all(checkers.follows(i, k, witness) for i, k in zip(ids, kwargs)), [
        checkers.explain(i, k, witness) for i, k in zip(ids, kwargs)]


def test_two_responses_really_break_a_paragraph_count():
    """The reason behind one refusal: whatever surrounds ******, the *** split leaves an empty middle piece."""
    for text in ("A\n******\nB", "A******B", "A ****** B", "A\n*******\nB", "A *** ****** B"):
        assert checkers.follows(TWO, {}, text)
        assert not any(checkers.follows(PARAGRAPHS, {"num_paragraphs": n}, text) for n in range(6))
