"""IFEval's 25 instruction rules, each a pure function of the response and the instruction's arguments.

Each rule follows IFEval's published definition (Zhou et al., 2023, arXiv 2311.07911; the reference checkers of
google-research's ``instruction_following_eval``, as lm-eval ships them), quirks included, so that our figures
compare with published ones: keywords and section markers are regular expressions searched case-insensitively
(keywords) or as written (section markers); ``number_paragraphs`` splits on ``***`` and fails on an empty paragraph
between two dividers, while ``nth_paragraph_first_word`` splits on blank lines; a bullet is a line starting with
``*`` (not ``**``) or ``-``; a highlight is ``*x*`` or ``**x**`` on one line; a placeholder is ``[...]``; JSON may sit
in a ```` ```json ```` fence; a response whose language cannot be detected counts as following the language and
case rules. A blank response follows nothing (IFEval's strict rule).

The maintained implementations download NLTK's ``punkt`` model when imported, which cannot happen here (no
network), hence these. Where our counts may differ from the punkt-based original:

- ``length_constraints:number_sentences`` splits with NLTK's Punkt algorithm untrained
  (``PunktSentenceTokenizer()``), knowing only the few abbreviations in :data:`ABBREVIATIONS`; the trained English
  model knows many more ("approx.", "Fig.", "Jan.") and has learned which words start sentences, so a text full of
  abbreviations or initials can count a sentence or two more here;
- ``change_case:capital_word_frequency`` tokenizes words as ``nltk.word_tokenize`` does (Treebank rules within
  each sentence), on those sentences; a different sentence split only moves a final period, which is never an
  all-capital word, so these counts agree but for rare abbreviations;
- ``language:response_language`` (and the English case rules) use langdetect seeded with 0 and loaded once, so
  a text is judged the same on every run; IFEval leaves langdetect unseeded, so its own verdict on a short or
  mixed-language text can change from run to run.

:func:`follows` says whether a response follows one instruction (IFEval's strict rule); :func:`explain` says why,
with the measured quantity ("312 words, needs less than 300"). The loose rule (the response also tried without
markdown emphasis and without its first or last line) is in :mod:`.scoring`, over these.
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from pipeline.constraints import spec

# Abbreviations the untrained sentence splitter is told about (Punkt's form: lowercase, no final period); the
# trained English model knows these and many more. Only titles and a few Latin ones: each also hides a real
# sentence end when a sentence ends with it, so the list stays short.
ABBREVIATIONS: frozenset[str] = frozenset({"mr", "mrs", "ms", "dr", "prof", "jr", "sr", "st", "vs", "e.g", "i.e",
                                           "u.s"})


@dataclass(frozen=True)
class Verdict:
    """Whether a response follows one instruction, and why, with what was measured."""

    ok: bool
    why: str


# --------------------------------------------------------------------------------------------- measures
@functools.cache
def _sentence_splitter() -> Any:
    from nltk.tokenize.punkt import PunktParameters, PunktSentenceTokenizer

    params = PunktParameters()
    params.abbrev_types = set(ABBREVIATIONS)
    return PunktSentenceTokenizer(params)


@functools.cache
def _word_splitter() -> Any:
    from nltk.tokenize import NLTKWordTokenizer

    return NLTKWordTokenizer()


def sentences(text: str) -> list[str]:
    """The sentences of ``text`` as Punkt splits them (see the module's note on the untrained model)."""
    return _sentence_splitter().tokenize(text)


def words(text: str) -> list[str]:
    """IFEval's words for the length rule: every run of word characters (``\\w+``), so "don't" is two."""
    return re.findall(r"\w+", text)


def tokens(text: str) -> list[str]:
    """``nltk.word_tokenize``'s tokens: Treebank word rules applied within each sentence."""
    splitter = _word_splitter()
    return [t for s in sentences(text) for t in splitter.tokenize(s)]


@functools.cache
def _languages() -> Any:
    from langdetect.detector_factory import PROFILES_DIRECTORY, DetectorFactory

    factory = DetectorFactory()
    factory.load_profile(PROFILES_DIRECTORY)
    factory.set_seed(0)
    return factory


def language(text: str) -> str | None:
    """The language langdetect finds in ``text`` (seeded, so always the same answer), or None when it finds no
    feature to go on (no letters)."""
    from langdetect.lang_detect_exception import LangDetectException

    try:
        detector = _languages().create()
        detector.append(text)
        return detector.detect()
    except LangDetectException:
        return None


def _compare(measured: int, relation: str, n: int) -> bool:
    return measured < n if relation == "less than" else measured >= n


def _times(n: int) -> str:
    return "once" if n == 1 else f"{n} times"


def _counted(measured: int, unit: str, relation: str, n: int) -> Verdict:
    return Verdict(_compare(measured, relation, n), f"{measured} {unit}, needs {relation} {n}")


def _clip(text: str, width: int = 40) -> str:
    text = " ".join(text.split())
    return text if len(text) <= width else text[:width - 3] + "..."


# --------------------------------------------------------------------------------------------- the rules
def _existence(kw: Mapping[str, Any], text: str) -> Verdict:
    missing = [k for k in kw["keywords"] if not re.search(k, text, flags=re.IGNORECASE)]
    if missing:
        more = f" (+{len(missing) - 1} more)" if len(missing) > 1 else ""
        return Verdict(False, f'missing keyword "{missing[0]}"{more}')
    return Verdict(True, f"has all {len(kw['keywords'])} keywords")


def _frequency(kw: Mapping[str, Any], text: str) -> Verdict:
    keyword = kw["keyword"].strip()
    found = len(re.findall(keyword, text, flags=re.IGNORECASE))
    return Verdict(_compare(found, kw["relation"], kw["frequency"]),
                   f'"{keyword}" appears {_times(found)}, needs {kw["relation"]} {kw["frequency"]}')


def _forbidden(kw: Mapping[str, Any], text: str) -> Verdict:
    for word in sorted(set(kw["forbidden_words"])):
        if re.search(rf"\b{word}\b", text, flags=re.IGNORECASE):
            return Verdict(False, f'uses forbidden word "{word}"')
    return Verdict(True, f"uses none of {len(set(kw['forbidden_words']))} forbidden words")


def _letters(kw: Mapping[str, Any], text: str) -> Verdict:
    letter = kw["letter"].strip().lower()
    found = text.lower().count(letter)
    return Verdict(_compare(found, kw["let_relation"], kw["let_frequency"]),
                   f'"{letter}" appears {_times(found)}, needs {kw["let_relation"]} {kw["let_frequency"]}')


def _language(kw: Mapping[str, Any], text: str) -> Verdict:
    found = language(text)
    if found is None:
        return Verdict(True, "language not detectable: counted as followed, as in IFEval")
    return Verdict(found == kw["language"], f'detected "{found}", needs "{kw["language"]}"')


def _sentences(kw: Mapping[str, Any], text: str) -> Verdict:
    return _counted(len(sentences(text)), "sentences", kw["relation"], kw["num_sentences"])


def _paragraphs(kw: Mapping[str, Any], text: str) -> Verdict:
    parts = re.split(r"\s?\*\*\*\s?", text)
    for k, part in enumerate(parts[1:-1], start=2):
        if not part.strip():
            return Verdict(False, f"empty paragraph {k} between two *** dividers")
    found = sum(1 for part in parts if part.strip())
    return Verdict(found == kw["num_paragraphs"],
                   f"{found} paragraphs (split on ***), needs exactly {kw['num_paragraphs']}")


def _first_word(paragraph: str) -> str:
    """IFEval's first word of a paragraph: its first whitespace-separated token, without leading quotes, up to
    the first . , ? ! ' or ", lowercased."""
    word = paragraph.split()[0].lstrip("'").lstrip('"')
    stop = next((k for k, c in enumerate(word) if c in ".,?!'\""), len(word))
    return word[:stop].lower()


def _nth_first_word(kw: Mapping[str, Any], text: str) -> Verdict:
    parts = text.split("\n\n")
    found = sum(1 for part in parts if part.strip())
    nth, want = kw["nth_paragraph"], kw["first_word"].strip().lower()
    if nth > found:
        return Verdict(False, f"{found} paragraphs (split on blank lines), none is number {nth}")
    paragraph = parts[nth - 1].strip()  # counted among all pieces, blank ones too, as IFEval does
    if not paragraph:
        return Verdict(False, f"paragraph {nth} is empty")
    first = _first_word(paragraph)
    if first != want:
        return Verdict(False, f'paragraph {nth} starts with "{first}", needs "{want}"')
    return Verdict(found == kw["num_paragraphs"], f'{found} paragraphs (split on blank lines), needs exactly '
                   f'{kw["num_paragraphs"]}; paragraph {nth} starts with "{first}"')


def _placeholders(kw: Mapping[str, Any], text: str) -> Verdict:
    return _counted(len(re.findall(r"\[.*?\]", text)), "[placeholders]", "at least", kw["num_placeholders"])


def _postscript_pattern(marker: str) -> str:
    """IFEval's pattern for a postscript marker, matched in the lowercased response, anywhere in a line."""
    if marker == "P.P.S":
        return r"\s*p\.\s?p\.\s?s.*$"
    if marker == "P.S.":
        return r"\s*p\.\s?s\..*$"
    return r"\s*" + marker.lower() + r".*$"


def _postscript(kw: Mapping[str, Any], text: str) -> Verdict:
    marker = kw["postscript_marker"].strip()
    if re.search(_postscript_pattern(marker), text.lower(), flags=re.MULTILINE):
        return Verdict(True, f'has a postscript starting "{marker}"')
    return Verdict(False, f'no postscript starting "{marker}"')


def _bullets(kw: Mapping[str, Any], text: str) -> Verdict:
    found = (len(re.findall(r"^\s*\*[^*].*$", text, flags=re.MULTILINE))
             + len(re.findall(r"^\s*-.*$", text, flags=re.MULTILINE)))
    return Verdict(found == kw["num_bullets"], f"{found} bullet points, needs exactly {kw['num_bullets']}")


def _constrained(kw: Mapping[str, Any], text: str) -> Verdict:
    stripped = text.strip()
    for answer in spec.CONSTRAINED_ANSWERS:
        if answer in stripped:
            return Verdict(True, f'contains "{answer}"')
    return Verdict(False, 'contains none of "My answer is yes.", "My answer is no.", "My answer is maybe."')


def _highlights(kw: Mapping[str, Any], text: str) -> Verdict:
    single = [h for h in re.findall(r"\*[^\n*]*\*", text) if h.strip("*").strip()]
    double = [h for h in re.findall(r"\*\*[^\n*]*\*\*", text) if h[2:-2].strip()]
    return _counted(len(single) + len(double), "highlighted sections", "at least", kw["num_highlights"])


def _sections(kw: Mapping[str, Any], text: str) -> Verdict:
    marker = kw["section_spliter"].strip()
    found = len(re.split(r"\s?" + marker + r"\s?\d+\s?", text)) - 1
    return _counted(found, f'"{marker} N" sections', "at least", kw["num_sections"])


def _json(kw: Mapping[str, Any], text: str) -> Verdict:
    body = text.strip()
    for fence in ("```json", "```Json", "```JSON", "```"):  # one after another, as IFEval strips them
        body = body.removeprefix(fence)
    body = body.removesuffix("```").strip()
    try:
        json.loads(body)
    except ValueError as e:
        return Verdict(False, f"not JSON: {str(e).split(':')[0]}")
    return Verdict(True, "valid JSON")


def _title(kw: Mapping[str, Any], text: str) -> Verdict:
    titles = [t for t in re.findall(r"<<[^\n]+>>", text) if t.lstrip("<").rstrip(">").strip()]
    return Verdict(True, f'title "{_clip(titles[0])}"') if titles else Verdict(False, "no <<title>>")


def _two_responses(kw: Mapping[str, Any], text: str) -> Verdict:
    parts = text.split("******")
    for k, part in enumerate(parts[1:-1], start=2):
        if not part.strip():
            return Verdict(False, f"empty response {k} between two ****** separators")
    answers = [p for p in parts if p.strip()]
    if len(answers) != 2:
        return Verdict(False, f"{len(answers)} responses separated by ******, needs 2")
    if answers[0].strip() == answers[1].strip():
        return Verdict(False, "the two responses are the same")
    return Verdict(True, "two different responses separated by ******")


def _repeat(kw: Mapping[str, Any], text: str) -> Verdict:
    prompt = kw["prompt_to_repeat"].strip().lower()
    if text.strip().lower().startswith(prompt):
        return Verdict(True, "starts with the prompt")
    return Verdict(False, f'does not start with the prompt "{_clip(kw["prompt_to_repeat"].strip())}"')


def _end(kw: Mapping[str, Any], text: str) -> Verdict:
    phrase = kw["end_phrase"].strip()
    tail = text.strip().strip('"')
    if tail.lower().endswith(phrase.lower()):
        return Verdict(True, f'ends with "{_clip(phrase)}"')
    return Verdict(False, f'ends with "...{_clip(tail[-30:], 30)}", needs "{_clip(phrase)}"')


def _capital_words(kw: Mapping[str, Any], text: str) -> Verdict:
    found = sum(1 for t in tokens(text) if t.isupper())
    return _counted(found, "all-capital words", kw["capital_relation"], kw["capital_frequency"])


def _english_case(upper: bool) -> Callable[[Mapping[str, Any], str], Verdict]:
    case = "capital" if upper else "lowercase"

    def rule(kw: Mapping[str, Any], text: str) -> Verdict:
        if not (text.isupper() if upper else text.islower()):
            wrong = sum(1 for c in text if (c.islower() if upper else c.isupper()))
            return Verdict(False, f"not all {case}: {wrong} {'lowercase' if upper else 'capital'} letters"
                           if wrong else f"not all {case}: no letters with a case")
        found = language(text)
        if found is None:
            return Verdict(True, f"all {case}; language not detectable: counted as followed, as in IFEval")
        return Verdict(found == "en", f'all {case}, detected "{found}", needs "en"')

    return rule


def _no_comma(kw: Mapping[str, Any], text: str) -> Verdict:
    found = text.count(",")
    return Verdict(not found, "no comma" if not found else "found a comma" if found == 1 else f"found {found} commas")


def _quotation(kw: Mapping[str, Any], text: str) -> Verdict:
    stripped = text.strip()
    if len(stripped) > 1 and stripped[0] == '"' and stripped[-1] == '"':
        return Verdict(True, "wrapped in double quotes")
    return Verdict(False, "not wrapped in double quotes")


RULES: dict[str, Callable[[Mapping[str, Any], str], Verdict]] = {
    "keywords:existence": _existence,
    "keywords:frequency": _frequency,
    "keywords:forbidden_words": _forbidden,
    "keywords:letter_frequency": _letters,
    "language:response_language": _language,
    "length_constraints:number_sentences": _sentences,
    "length_constraints:number_paragraphs": _paragraphs,
    "length_constraints:number_words": lambda kw, text: _counted(len(words(text)), "words", kw["relation"],
                                                                 kw["num_words"]),
    "length_constraints:nth_paragraph_first_word": _nth_first_word,
    "detectable_content:number_placeholders": _placeholders,
    "detectable_content:postscript": _postscript,
    "detectable_format:number_bullet_lists": _bullets,
    "detectable_format:constrained_response": _constrained,
    "detectable_format:number_highlighted_sections": _highlights,
    "detectable_format:multiple_sections": _sections,
    "detectable_format:json_format": _json,
    "detectable_format:title": _title,
    "combination:two_responses": _two_responses,
    "combination:repeat_prompt": _repeat,
    "startend:end_checker": _end,
    "change_case:capital_word_frequency": _capital_words,
    "change_case:english_capital": _english_case(upper=True),
    "change_case:english_lowercase": _english_case(upper=False),
    "punctuation:no_comma": _no_comma,
    "startend:quotation": _quotation,
}


# --------------------------------------------------------------------------------------------- entry points
def checked_kwargs(instruction_id: str, kwargs: Mapping[str, Any] | None) -> dict[str, Any]:
    """``kwargs`` cleaned of nulls and checked against the instruction (ValueError with the reason if unusable)."""
    cleaned = spec.clean_kwargs(kwargs)
    problem = spec.kwargs_problem(instruction_id, cleaned)
    if problem:
        raise ValueError(f"{instruction_id}: {problem}")
    return cleaned


def judge(instruction_id: str, kwargs: Mapping[str, Any], text: str) -> Verdict:
    """The rule on ``text`` with arguments already checked (:func:`checked_kwargs`): a blank text follows nothing."""
    if not text.strip():
        return Verdict(False, "empty response")
    return RULES[instruction_id](kwargs, text)


def follows(instruction_id: str, kwargs: Mapping[str, Any], response: str) -> bool:
    """Whether ``response`` follows the instruction by IFEval's strict rule (non-empty, and the rule holds)."""
    return judge(instruction_id, checked_kwargs(instruction_id, kwargs), response).ok


def explain(instruction_id: str, kwargs: Mapping[str, Any], response: str) -> str:
    """One short line on why ``response`` follows the instruction or not, with what was measured."""
    return judge(instruction_id, checked_kwargs(instruction_id, kwargs), response).why
