"""IFEval's 25 instruction types as data: their ids, the arguments each takes, and what makes a set of them unusable.

Everything here is read before any model loads (a task file's rows, a family's draws), so a row that could never be
checked as meant stops with one line instead of scoring zero forever:

- :data:`INSTRUCTION_IDS`: the 25 ids, spelled as in IFEval's registry (Zhou et al., 2023, arXiv 2311.07911);
- :data:`KWARGS`: per id, each argument's name and expected type, the names IFEval's rows use;
- :func:`clean_kwargs`: HF's copy of IFEval stores every argument of every type in each kwargs object, null where
  unused; those nulls mean "not given" and are dropped (IFEval's own runner drops every falsy value, so a 0 there
  means "draw one at random"; here a 0 is kept and checked like any other count);
- :func:`kwargs_problem`: why one instruction's arguments are unusable (unknown id or argument, a missing or
  mistyped one, a count no response can meet on its own), in one short line;
- :func:`conflict`: why a set of instructions cannot all hold for one response.

:func:`conflict` refuses only what is provably impossible under IFEval's strict rules (:mod:`.checkers`), each rule
below with its reason; it is not exhaustive (some exotic impossible sets pass, e.g. JSON whose first paragraph must
start with a given word). Two cases rest on a convention rather than on logic: two different response languages,
or English case rules with another language, can only both "hold" for a text langdetect cannot read at all (no
letters), which IFEval counts as followed; no real answer does that, so they are refused too.
"""

from __future__ import annotations

import difflib
import itertools
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

# --------------------------------------------------------------------------------------------- ids and kwargs
RELATIONS: tuple[str, ...] = ("less than", "at least")  # "less than": measured < n; "at least": measured >= n

# The languages langdetect 1.0.9 has profiles for (its ISO 639-1 codes, plus zh-cn / zh-tw, which it returns for
# Chinese); IFEval's 30 languages are all among them. tests/test_constraints.py checks the list against the package.
LANGUAGES: tuple[str, ...] = (
    "af", "ar", "bg", "bn", "ca", "cs", "cy", "da", "de", "el", "en", "es", "et", "fa", "fi", "fr", "gu", "he",
    "hi", "hr", "hu", "id", "it", "ja", "kn", "ko", "lt", "lv", "mk", "ml", "mr", "ne", "nl", "no", "pa", "pl",
    "pt", "ro", "ru", "sk", "sl", "so", "sq", "sv", "sw", "ta", "te", "th", "tl", "tr", "uk", "ur", "vi", "zh-cn",
    "zh-tw")

# The three answers detectable_format:constrained_response accepts (the response must contain one of them).
CONSTRAINED_ANSWERS: tuple[str, ...] = ("My answer is yes.", "My answer is no.", "My answer is maybe.")

# Per id, argument name -> what its value must be:
#   int    a whole number (True/False are not numbers), never negative;
#   str    non-empty text;
#   list   a non-empty list of non-empty texts (a tuple is taken too);
#   tuple  one of the values listed (RELATIONS, LANGUAGES).
# Every argument is required: IFEval draws a missing one at random, which would make the check change per run.
# keywords, keyword, forbidden_words, postscript_marker (other than P.S. / P.P.S) and section_spliter are read as
# regular expressions, as IFEval does, so they must compile.
KWARGS: dict[str, dict[str, type | tuple]] = {
    "keywords:existence": {"keywords": list},
    "keywords:frequency": {"keyword": str, "frequency": int, "relation": RELATIONS},
    "keywords:forbidden_words": {"forbidden_words": list},
    "keywords:letter_frequency": {"letter": str, "let_frequency": int, "let_relation": RELATIONS},
    "language:response_language": {"language": LANGUAGES},
    "length_constraints:number_sentences": {"num_sentences": int, "relation": RELATIONS},
    "length_constraints:number_paragraphs": {"num_paragraphs": int},
    "length_constraints:number_words": {"num_words": int, "relation": RELATIONS},
    "length_constraints:nth_paragraph_first_word": {"num_paragraphs": int, "nth_paragraph": int, "first_word": str},
    "detectable_content:number_placeholders": {"num_placeholders": int},
    "detectable_content:postscript": {"postscript_marker": str},
    "detectable_format:number_bullet_lists": {"num_bullets": int},
    "detectable_format:constrained_response": {},
    "detectable_format:number_highlighted_sections": {"num_highlights": int},
    "detectable_format:multiple_sections": {"section_spliter": str, "num_sections": int},
    "detectable_format:json_format": {},
    "detectable_format:title": {},
    "combination:two_responses": {},
    "combination:repeat_prompt": {"prompt_to_repeat": str},
    "startend:end_checker": {"end_phrase": str},
    "change_case:capital_word_frequency": {"capital_frequency": int, "capital_relation": RELATIONS},
    "change_case:english_capital": {},
    "change_case:english_lowercase": {},
    "punctuation:no_comma": {},
    "startend:quotation": {},
}
INSTRUCTION_IDS: tuple[str, ...] = tuple(KWARGS)  # IFEval's registry order

# The argument that states a relation, per counted argument (for the "less than 0" checks and the bounds).
_RELATION_OF = {"frequency": "relation", "let_frequency": "let_relation", "num_sentences": "relation",
                "num_words": "relation", "capital_frequency": "capital_relation"}
_REGEX_ARGS = {"keywords", "keyword", "forbidden_words", "section_spliter"}
_STANDARD_MARKERS = ("P.S.", "P.P.S")  # IFEval's two markers with a pattern of their own (spaces allowed)
_FIRST_WORD_STOPS = set(".,?!'\"")  # where IFEval's first word of a paragraph ends, besides whitespace


def clean_kwargs(kwargs: Mapping[str, Any] | None) -> dict[str, Any]:
    """``kwargs`` without its None values (HF's IFEval rows carry every argument name, null where unused)."""
    return {str(k): v for k, v in (kwargs or {}).items() if v is not None}


def _near(name: str, known: Sequence[str]) -> str | None:
    """The known name closest to ``name`` (also when only the part after ``:`` is close), or None."""
    near = difflib.get_close_matches(name, known, n=1)
    if not near:
        tails = {k.split(":", 1)[-1]: k for k in known}
        near = [tails[t] for t in difflib.get_close_matches(name.split(":", 1)[-1], list(tails), n=1)]
    return near[0] if near else None


def _type_problem(name: str, want: type | tuple, value: Any) -> str | None:
    if isinstance(want, tuple):
        if isinstance(value, str) and value in want:
            return None
        if want is LANGUAGES:
            near = [c for c in LANGUAGES if isinstance(value, str) and c.split("-")[0] == value.strip().lower()]
            hint = f', did you mean {" or ".join(repr(c) for c in near)}?' if near else ""
            return f'"{name}" must be a language code langdetect knows (en, fr, zh-cn, ...), got {value!r}{hint}'
        return f'"{name}" must be ' + " or ".join(f'"{w}"' for w in want) + f", got {value!r}"
    if want is int:
        if isinstance(value, bool) or not isinstance(value, int):
            return f'"{name}" must be int, got {value!r}'
        return None if value >= 0 else f'"{name}" must be at least 0, got {value}'
    if want is str:
        if not isinstance(value, str):
            return f'"{name}" must be str, got {value!r}'
        return None if value.strip() else f'"{name}" is empty'
    if not isinstance(value, (list, tuple)) or not all(isinstance(v, str) for v in value):
        return f'"{name}" must be a list of words, got {value!r}'
    if not value:
        return f'"{name}" is empty — give at least one'
    blank = next((i for i, v in enumerate(value, start=1) if not v.strip()), None)
    return None if blank is None else f'"{name}" item {blank} is empty'


def _regex_problem(name: str, pattern: str) -> str | None:
    try:
        re.compile(pattern)
    except re.error as e:
        return f'"{name}" {pattern!r} is not a valid regular expression (IFEval searches it as one): {e}'
    return None


def kwargs_problem(instruction_id: str, kwargs: Mapping[str, Any]) -> str | None:
    """Why one instruction's (cleaned) arguments are unusable, in one short line, or None when they are fine."""
    if instruction_id not in KWARGS:
        near = _near(instruction_id, INSTRUCTION_IDS)
        hint = f'did you mean "{near}"?' if near else "known: " + ", ".join(INSTRUCTION_IDS)
        return f'unknown instruction id "{instruction_id}" — {hint}'
    takes = KWARGS[instruction_id]
    for name in kwargs:
        if name not in takes:
            if not takes:
                return f'takes no arguments, got "{name}"'
            near = _near(name, list(takes))
            hint = f' — did you mean "{near}"?' if near else ""
            return f'unknown argument "{name}"{hint} ({instruction_id} takes {", ".join(takes)})'
    missing = [n for n in takes if n not in kwargs]
    if missing:
        return "needs " + " and ".join(f'"{n}"' for n in missing)
    for name, want in takes.items():
        problem = _type_problem(name, want, kwargs[name])
        if problem:
            return problem
    return _value_problem(instruction_id, kwargs)


def _value_problem(instruction_id: str, kw: Mapping[str, Any]) -> str | None:
    """What no response can meet for this one instruction alone, or a pattern that does not compile."""
    for name in _REGEX_ARGS & set(kw):
        patterns = kw[name] if isinstance(kw[name], (list, tuple)) else [kw[name]]
        for p in patterns:
            problem = _regex_problem(name, rf"\b{p}\b" if name == "forbidden_words" else p)
            if problem:
                return problem
    marker = kw.get("postscript_marker")
    if marker is not None and marker.strip() not in _STANDARD_MARKERS:
        problem = _regex_problem("postscript_marker", marker.strip().lower())
        if problem:
            return problem
    for count, relation in _RELATION_OF.items():
        if count in kw and kw[relation] == "less than":
            if kw[count] == 0:
                return f'"{count}": "less than 0" is impossible — a count is never below 0'
            if count == "num_sentences" and kw[count] == 1:
                return '"num_sentences": "less than 1" is impossible — a non-empty response has a sentence'
    letter = kw.get("letter")
    if letter is not None and not (len(letter) == 1 and letter.isascii() and letter.isalpha()):
        return f'"letter" must be one letter a-z, got {letter!r}'
    if instruction_id == "startend:end_checker" and kw["end_phrase"].strip().endswith('"'):
        return ('"end_phrase" ending with a double quote can never match: IFEval strips quotes off the end of the '
                "response first")
    if instruction_id == "length_constraints:nth_paragraph_first_word":
        if kw["nth_paragraph"] < 1:
            return f'"nth_paragraph" must be at least 1 (paragraphs count from 1), got {kw["nth_paragraph"]}'
        if kw["nth_paragraph"] > kw["num_paragraphs"]:
            return f'"nth_paragraph" {kw["nth_paragraph"]} is past "num_paragraphs" {kw["num_paragraphs"]}'
        word = kw["first_word"].strip()
        if any(c.isspace() or c in _FIRST_WORD_STOPS for c in word):
            return (f'"first_word" {word!r} can never match: IFEval reads a first word up to a space or one of '
                    ". , ? ! ' \"")
    return None


# --------------------------------------------------------------------------------------------- conflicts
@dataclass(frozen=True)
class _Need:
    """A text every passing response contains (case aside, unless ``exact_case``): where it comes from, and
    whether it sits at the start (after blanks) or the end (before blanks and quotes) of the response."""

    text: str
    source: str
    at_start: bool = False
    at_end: bool = False
    exact_case: bool = False


_PLAIN = re.compile(r"[^.^$*+?{}\[\]\\|()]+")  # a pattern with no regex syntax: it matches itself only
_JSON_STARTS = set('{["-0123456789`')  # a JSON text's first character, or a ``` fence's
_JSON_WORDS = ("true", "false", "null", "nan", "infinity")  # json.loads' bare values (any case: the prompt is
# compared lowercased)


def _plain(pattern: str) -> bool:
    return bool(_PLAIN.fullmatch(pattern))


def _items(instruction_ids: Sequence[str], kwargs: Sequence[Mapping[str, Any]]) -> list[tuple[str, dict]]:
    return [(i, clean_kwargs(k)) for i, k in zip(instruction_ids, kwargs)]


def _of(items: list[tuple[str, dict]], instruction_id: str) -> list[dict]:
    return [kw for i, kw in items if i == instruction_id]


def _needs(items: list[tuple[str, dict]]) -> Iterator[_Need]:
    """The texts each instruction forces into every passing response (only where the pattern is plain text)."""
    for i, kw in items:
        if i == "keywords:existence":
            yield from (_Need(k, f'keyword "{k}"') for k in kw["keywords"] if _plain(k))  # searched unstripped
        elif i == "keywords:frequency" and kw["relation"] == "at least" and kw["frequency"] >= 1:
            if _plain(kw["keyword"].strip()):
                yield _Need(kw["keyword"].strip(), f'keyword "{kw["keyword"].strip()}"')
        elif i == "startend:end_checker":
            yield _Need(kw["end_phrase"].strip(), f'end phrase "{kw["end_phrase"].strip()}"', at_end=True)
        elif i == "combination:repeat_prompt":
            yield _Need(kw["prompt_to_repeat"].strip(), "prompt to repeat", at_start=True)
        elif i == "detectable_format:multiple_sections" and kw["num_sections"] >= 1:
            if _plain(kw["section_spliter"].strip()):
                yield _Need(kw["section_spliter"].strip(), f'section marker "{kw["section_spliter"].strip()}"',
                            exact_case=True)
        elif i == "detectable_content:postscript":
            marker = kw["postscript_marker"].strip()
            if marker not in _STANDARD_MARKERS and _plain(marker):
                yield _Need(marker, f'postscript marker "{marker}"')


def _bans(items: list[tuple[str, dict]]) -> Iterator[tuple[str, Any]]:
    """What each instruction rules out of a passing response, as (why, test of a needed text -> True if hit)."""
    for i, kw in items:
        if i == "punctuation:no_comma":
            yield "the no-comma rule", lambda n: "," in n.text
        elif i == "keywords:forbidden_words":
            for w in kw["forbidden_words"]:
                if _plain(w) and re.fullmatch(r"\w(.*\w)?", w, re.DOTALL):
                    yield f'the ban on "{w}"', lambda n, w=w: _surely_contains_word(n, w)
        elif i == "keywords:letter_frequency" and kw["let_relation"] == "less than":
            letter, n_max = kw["letter"].lower(), kw["let_frequency"]
            yield (f'the limit of fewer than {n_max} "{letter}"',
                   lambda n, letter=letter, n_max=n_max: n.text.lower().count(letter) >= n_max)
        elif i == "length_constraints:number_words" and kw["relation"] == "less than":
            n_max = kw["num_words"]
            yield f"the limit of fewer than {n_max} words", lambda n, n_max=n_max: len(re.findall(r"\w+", n.text)) >= n_max
        elif i == "keywords:frequency" and kw["relation"] == "less than" and _plain(kw["keyword"].strip()):
            k, n_max = kw["keyword"].strip(), kw["frequency"]
            yield (f'the limit of "{k}" fewer than {n_max} times',
                   lambda n, k=k, n_max=n_max: len(re.findall(k, n.text, flags=re.IGNORECASE)) >= n_max)


def _surely_contains_word(need: _Need, word: str) -> bool:
    """Whether a response containing ``need`` surely matches IFEval's ``\\bword\\b`` (case aside): a match inside
    ``need`` whose word boundaries do not depend on what stands next to it in the response."""
    for m in re.finditer(rf"\b{word}\b", need.text, flags=re.IGNORECASE):
        if (m.start() > 0 or need.at_start) and (m.end() < len(need.text) or need.at_end):
            return True
    return False


def _bounds(items: list[tuple[str, dict]]) -> str | None:
    """Two bounds on one measured count that leave no value: at least ``lo`` and less than ``hi <= lo``."""
    quantities: dict[tuple, tuple[str, list[int], list[int]]] = {}

    def add(key: tuple, unit: str, relation: str, n: int) -> None:
        _, lows, highs = quantities.setdefault(key, (unit, [], []))
        (lows if relation == "at least" else highs).append(n)

    for i, kw in items:
        if i == "length_constraints:number_words":
            add(("words",), "words", kw["relation"], kw["num_words"])
        elif i == "length_constraints:number_sentences":
            add(("sentences",), "sentences", kw["relation"], kw["num_sentences"])
        elif i == "change_case:capital_word_frequency":
            add(("capitals",), "all-capital words", kw["capital_relation"], kw["capital_frequency"])
        elif i == "keywords:letter_frequency":
            letter = kw["letter"].lower()
            add(("letter", letter), f'"{letter}" letters', kw["let_relation"], kw["let_frequency"])
        elif i == "keywords:frequency" and _plain(kw["keyword"].strip()):
            k = kw["keyword"].strip().lower()
            add(("keyword", k), f'"{k}"', kw["relation"], kw["frequency"])
    for unit, lows, highs in quantities.values():
        if lows and highs and max(lows) >= min(highs):
            return f"at least {max(lows)} {unit} and at most {min(highs) - 1}"
    return None


def _exactly(items: list[tuple[str, dict]]) -> str | None:
    """The same instruction twice with values no single response can meet both of."""
    for instruction_id, arg, what in (("length_constraints:number_paragraphs", "num_paragraphs",
                                       "paragraphs (split on ***)"),
                                      ("length_constraints:nth_paragraph_first_word", "num_paragraphs",
                                       "paragraphs (split on blank lines)"),
                                      ("detectable_format:number_bullet_lists", "num_bullets", "bullet points")):
        values = sorted({kw[arg] for kw in _of(items, instruction_id)})
        if len(values) > 1:
            return f"exactly {values[0]} {what} and exactly {values[1]}"
    firsts: dict[int, set[str]] = {}
    for kw in _of(items, "length_constraints:nth_paragraph_first_word"):
        firsts.setdefault(kw["nth_paragraph"], set()).add(kw["first_word"].strip().lower())
    for nth, words in sorted(firsts.items()):
        if len(words) > 1:
            a, b = sorted(words)[:2]
            return f'paragraph {nth} must start with "{a}" and with "{b}"'
    languages = sorted({kw["language"] for kw in _of(items, "language:response_language")})
    if len(languages) > 1:
        return f'a response in "{languages[0]}" and in "{languages[1]}"'
    ends = sorted({kw["end_phrase"].strip().lower() for kw in _of(items, "startend:end_checker")}, key=len)
    for short, long in itertools.pairwise(ends):
        if not long.endswith(short):
            return f'ending with "{short}" and with "{long}"'
    starts = sorted({kw["prompt_to_repeat"].strip().lower() for kw in _of(items, "combination:repeat_prompt")},
                    key=len)
    for short, long in itertools.pairwise(starts):
        if not long.startswith(short):
            return "starting with two different prompts to repeat"
    return None


def _cases(items: list[tuple[str, dict]]) -> str | None:
    """All capitals or all lowercase against what forces the other case, or another language."""
    ids = {i for i, _ in items}
    upper, lower = "change_case:english_capital" in ids, "change_case:english_lowercase" in ids
    if upper and lower:
        return "all capital letters and all lowercase letters at once"
    if not (upper or lower):
        return None
    case = "all capital letters" if upper else "all lowercase letters"
    for kw in _of(items, "language:response_language"):
        if kw["language"] != "en":
            return f'{case} in English, and a response in "{kw["language"]}"'
    if "detectable_format:constrained_response" in ids:
        return f'{case}, and one of the fixed answers ("My answer is yes." ...), which mix cases'
    for kw in _of(items, "change_case:capital_word_frequency"):
        if lower and kw["capital_relation"] == "at least" and kw["capital_frequency"] >= 1:
            return f"all lowercase letters leave no all-capital word, but at least {kw['capital_frequency']} are asked"
        if upper and kw["capital_relation"] == "less than" and kw["capital_frequency"] <= 1:
            return "all capital letters make every word all-capital, but no all-capital word is allowed"
    for need in _needs(items):
        if need.exact_case and (lower and any(c.isupper() for c in need.text)
                                or upper and any(c.islower() for c in need.text)):
            return f"{case}, and the {need.source}, which is not"
    return None


def _layouts(items: list[tuple[str, dict]]) -> str | None:
    """Formats whose own markers break another instruction's rule."""
    ids = {i for i, _ in items}
    if "combination:two_responses" in ids and "length_constraints:number_paragraphs" in ids:
        return ("two responses need ****** between them, which the paragraph count reads as an empty paragraph "
                "between two *** dividers")
    for kw in _of(items, "length_constraints:nth_paragraph_first_word"):
        for p in _of(items, "length_constraints:number_paragraphs"):
            if p["num_paragraphs"] == 0 and set(kw["first_word"].strip()) != {"*"}:
                return (f'0 paragraphs split on *** leave only the divider itself, so no paragraph can start with '
                        f'"{kw["first_word"].strip().lower()}"')
    for kw in _of(items, "combination:repeat_prompt"):
        prompt = kw["prompt_to_repeat"].strip()
        if "startend:quotation" in ids and not prompt.startswith('"'):
            return "wrapped in double quotes, but starting with the prompt to repeat, which does not start with one"
        if "detectable_format:json_format" in ids and prompt[0] not in _JSON_STARTS and not any(
                w.startswith(prompt.lower()) for w in _JSON_WORDS):
            return "a JSON text, but starting with the prompt to repeat, which no JSON text starts with"
    return None


def _contents(items: list[tuple[str, dict]]) -> str | None:
    """A text one instruction forces in that another one rules out (for the fixed answers: all three of them)."""
    needs, bans = list(_needs(items)), list(_bans(items))
    for why, hit in bans:
        for need in needs:
            if hit(need):
                return f"the {need.source} must appear, and it breaks {why}"
    if any(i == "detectable_format:constrained_response" for i, _ in items):
        broken = [next((why for why, hit in bans if hit(_Need(a, "fixed answer"))), None) for a in CONSTRAINED_ANSWERS]
        if all(broken) and len(set(broken)) == 1:
            return f'each fixed answer ("My answer is yes." ...) breaks {broken[0]}'
        if all(broken):
            return "no fixed answer is allowed: " + ", ".join(f'"{a}" breaks {why}'
                                                              for a, why in zip(CONSTRAINED_ANSWERS, broken))
    return None


def conflict(instruction_ids: Sequence[str], kwargs: Sequence[Mapping[str, Any]]) -> str | None:
    """Why no single response can satisfy all of these instructions (checked arguments assumed: see
    :func:`kwargs_problem`), in one short line, or None. Only what IFEval's strict rules make impossible."""
    if len(instruction_ids) != len(kwargs):
        return f"{len(kwargs)} kwargs objects for {len(instruction_ids)} instructions"
    items = _items(instruction_ids, kwargs)
    for rule in (_bounds, _exactly, _cases, _layouts, _contents):
        reason = rule(items)
        if reason:
            return reason
    return None
