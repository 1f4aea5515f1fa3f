"""The built-in ``constraints`` family: an open instruction plus one to three checkable constraints (IFEval's types).

A task is a base instruction (read from a list of open instructions, the ``instructions`` knob) followed by one
sentence per constraint, each written by its own template (``prompts/tasks/constraints/<type>.j2``, in several
wordings) from the arguments the checker needs. The task carries those arguments as IFEval does:
``inputs = {"instruction_id_list": [...], "kwargs": [...]}``, checked by the ``constraints`` verifier
(:mod:`pipeline.constraints`). There is no known answer: any response that satisfies the constraints passes.

Like every family, :func:`constraints` is a pure function ``(rng, difficulty) -> Task``: every draw is made here,
in a fixed order, and the templates only write out what was drawn. The one input beside the generator is the
instruction file the difficulty names, read once and cached; the train split reads ``data/seed/instructions.jsonl``
and the held-out split ``data/eval/prompts.jsonl`` (``data/tasks/constraints/spec.yaml``: one group each), so a
held-out prompt never shares its base instruction with a training one. A path in the difficulty (rather than an
argument of the family) keeps the family's signature that of every other family and records the source in
each task's ``difficulty``.

What is never drawn, so that every task can be satisfied and reads as one request:

- two constraints that cannot both hold, or that pull against each other: the same type twice, JSON with
  anything outside or around it (quotes, a title, bullets, a postscript, an end phrase), all lowercase with a
  capitalized phrase required elsewhere, a forbidden word another constraint asks for, fewer than 40 words with
  5 paragraphs, and so on (:func:`clash`);
- a constraint that contradicts the instruction's own words: an instruction that already fixes a length, a
  count or a layout ("under 120 words", "in three sentences", "as a bulleted list", "return JSON") gets no
  length or layout constraint, one that names a case ("an acrostic of RIVER") gets no case constraint, one that
  asks for a comma-separated list never gets "no commas", and so on (:func:`touches`); a keyword to use or avoid
  never appears in the instruction; "answer with My answer is yes/no/maybe" goes only with a yes/no question;
- instructions that ask for code (a Python function, a SQL query) are skipped: case, comma and word constraints
  fight the code itself.

Three types are selectable but off by default (``types``), as unfit for the 135M model this project trains:
``language:response_language`` (it writes no usable text outside English), ``combination:repeat_prompt`` (it
cannot copy a long request word for word, and the copy collides with most other constraints), and
``combination:two_responses`` (two different answers split by ``******`` is a format it never produces, and it
rules out paragraph counts, quotes, JSON and repeats).
"""

from __future__ import annotations

import difflib
import functools
import json
import random
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pipeline import records
from pipeline.constraints import spec
from pipeline.errors import ConfigError, RecordError
from pipeline.tasks.base import Knob, Task, check_knobs, is_int, make_task, render

# ------------------------------------------------------------------------------------------- the 25 types
EXISTENCE = "keywords:existence"
FREQUENCY = "keywords:frequency"
FORBIDDEN = "keywords:forbidden_words"
LETTER = "keywords:letter_frequency"
LANGUAGE = "language:response_language"
SENTENCES = "length_constraints:number_sentences"
PARAGRAPHS = "length_constraints:number_paragraphs"
WORDS = "length_constraints:number_words"
NTH = "length_constraints:nth_paragraph_first_word"
PLACEHOLDERS = "detectable_content:number_placeholders"
POSTSCRIPT = "detectable_content:postscript"
BULLETS = "detectable_format:number_bullet_lists"
CONSTRAINED = "detectable_format:constrained_response"
HIGHLIGHTS = "detectable_format:number_highlighted_sections"
SECTIONS = "detectable_format:multiple_sections"
JSON = "detectable_format:json_format"
TITLE = "detectable_format:title"
TWO = "combination:two_responses"
REPEAT = "combination:repeat_prompt"
END = "startend:end_checker"
CAPITAL_WORDS = "change_case:capital_word_frequency"
UPPER = "change_case:english_capital"
LOWER = "change_case:english_lowercase"
NO_COMMA = "punctuation:no_comma"
QUOTATION = "startend:quotation"

# Every type, in the order draws index them: IFEval's registry order, as pipeline.constraints.spec lists them.
TYPES: tuple[str, ...] = (EXISTENCE, FREQUENCY, FORBIDDEN, LETTER, LANGUAGE, SENTENCES, PARAGRAPHS, WORDS, NTH,
                          PLACEHOLDERS, POSTSCRIPT, BULLETS, CONSTRAINED, HIGHLIGHTS, SECTIONS, JSON, TITLE, TWO,
                          REPEAT, END, CAPITAL_WORDS, UPPER, LOWER, NO_COMMA, QUOTATION)
UNFIT: tuple[str, ...] = (LANGUAGE, REPEAT, TWO)  # selectable, off by default: see the module's docstring
DEFAULT_TYPES: tuple[str, ...] = tuple(t for t in TYPES if t not in UNFIT)


# The template that writes each type's sentence, ``tasks/constraints/<the id after the colon>.j2``; spelled out so
# that the DVC deps (pipeline/stage_deps.py reads string literals) see every one.
TEMPLATES: dict[str, str] = {
    EXISTENCE: "tasks/constraints/existence.j2", FREQUENCY: "tasks/constraints/frequency.j2",
    FORBIDDEN: "tasks/constraints/forbidden_words.j2", LETTER: "tasks/constraints/letter_frequency.j2",
    LANGUAGE: "tasks/constraints/response_language.j2", SENTENCES: "tasks/constraints/number_sentences.j2",
    PARAGRAPHS: "tasks/constraints/number_paragraphs.j2", WORDS: "tasks/constraints/number_words.j2",
    NTH: "tasks/constraints/nth_paragraph_first_word.j2", PLACEHOLDERS: "tasks/constraints/number_placeholders.j2",
    POSTSCRIPT: "tasks/constraints/postscript.j2", BULLETS: "tasks/constraints/number_bullet_lists.j2",
    CONSTRAINED: "tasks/constraints/constrained_response.j2",
    HIGHLIGHTS: "tasks/constraints/number_highlighted_sections.j2",
    SECTIONS: "tasks/constraints/multiple_sections.j2", JSON: "tasks/constraints/json_format.j2",
    TITLE: "tasks/constraints/title.j2", TWO: "tasks/constraints/two_responses.j2",
    REPEAT: "tasks/constraints/repeat_prompt.j2", END: "tasks/constraints/end_checker.j2",
    CAPITAL_WORDS: "tasks/constraints/capital_word_frequency.j2", UPPER: "tasks/constraints/english_capital.j2",
    LOWER: "tasks/constraints/english_lowercase.j2", NO_COMMA: "tasks/constraints/no_comma.j2",
    QUOTATION: "tasks/constraints/quotation.j2",
}


# How many wordings each type's template has (its ``style`` 0 .. n-1); the golden files show every one.
WORDINGS: dict[str, int] = {t: 2 for t in TYPES}

# ------------------------------------------------------------------------------------------- word pools
# Words to use: nouns that fit an answer on any topic without being likely there by chance. No word is part of
# another (IFEval counts a keyword as a substring), and the pools are disjoint.
KEYWORDS = ("balance", "journey", "window", "promise", "garden", "signal", "harbor", "lantern", "puzzle", "rhythm",
            "compass", "bridge", "season", "memory", "ladder", "mirror", "candle", "orbit", "meadow", "ticket",
            "whistle", "anchor", "canvas", "thunder", "pepper", "velvet", "island", "secret", "engine", "festival")
# Words to avoid: fillers an answer reaches for without thinking, so avoiding one is a real constraint.
FORBIDDEN_WORDS = ("very", "really", "just", "also", "thing", "good", "great", "nice", "basically", "actually",
                   "definitely", "quite", "simply", "important", "many", "always")
FIRST_WORDS = ("first", "today", "however", "finally", "imagine", "meanwhile", "next", "overall", "honestly",
               "sometimes", "remember", "above")
END_PHRASES = ("Is there anything else I can help with?", "Let me know what you think.", "Thanks for reading.",
               "That is all for today.", "Hope this helps.", "Any other questions?")
SECTION_WORDS = ("Section", "SECTION", "Part", "PART")
POSTSCRIPT_MARKERS = ("P.S.", "P.P.S")
LANGUAGES: dict[str, str] = {"es": "Spanish", "fr": "French", "de": "German", "it": "Italian", "pt": "Portuguese"}
COMMON_LETTERS = "etaoinsrh"  # asked for "at least N times"
RARE_LETTERS = "zqxj"  # asked for "fewer than N times": avoidable in any answer
CONSTRAINED_PHRASE = "My answer is"  # the common start of "My answer is yes." / "no." / "maybe."
RELATIONS = spec.RELATIONS  # ("less than", "at least")

# ------------------------------------------------------------------------------------------- knobs
# The number ranges, by the kwargs name they fill: (default range, the widest range allowed, what it counts).
RANGES: dict[str, tuple[tuple[int, int], tuple[int, int], str]] = {
    "num_words": ((20, 300), (5, 5000), "words (number_words)"),
    "num_sentences": ((2, 10), (2, 100), "sentences (number_sentences)"),
    "num_paragraphs": ((2, 5), (2, 20), "paragraphs (number_paragraphs, nth_paragraph_first_word)"),
    "num_bullets": ((2, 6), (1, 30), "bullet points (number_bullet_lists)"),
    "num_sections": ((2, 4), (2, 20), "sections (multiple_sections)"),
    "num_highlights": ((1, 4), (1, 20), "highlighted parts (number_highlighted_sections)"),
    "num_placeholders": ((1, 4), (1, 20), "[placeholders] (number_placeholders)"),
    "frequency": ((1, 3), (1, 20), "uses of a keyword (keywords:frequency)"),
    "let_frequency": ((3, 12), (1, 100), "occurrences of a letter (letter_frequency)"),
    "capital_frequency": ((2, 10), (1, 100), "words in capitals (capital_word_frequency)"),
}


def _int_range(lo: int, hi: int) -> Callable[[Any], str | None]:
    """A knob check: ``[min, max]``, two integers with ``lo <= min <= max <= hi``."""
    def check(v: Any) -> str | None:
        ok = isinstance(v, list) and len(v) == 2 and all(is_int(x) for x in v) and lo <= v[0] <= v[1] <= hi
        return None if ok else f"must be [min, max], two integers with {lo} <= min <= max <= {hi}"

    return check


def _types(v: Any) -> str | None:
    """A knob check: a non-empty list of distinct instruction ids (an unknown one with a did-you-mean)."""
    if not isinstance(v, list) or not v or not all(isinstance(x, str) for x in v):
        return "must be a non-empty list of instruction ids, e.g. [\"punctuation:no_comma\"]"
    for x in v:
        if x not in TYPES:
            near = difflib.get_close_matches(x, TYPES, n=1)
            return f'names an unknown instruction id "{x}" — ' + (f'did you mean "{near[0]}"?' if near else
                                                                 "known: " + ", ".join(TYPES))
    if len(set(v)) < len(v):
        return "names an instruction id twice"
    return None


def _path(v: Any) -> str | None:
    return None if isinstance(v, str) and v.strip() else "must be the path of a JSONL file with an instruction field"


KNOBS: dict[str, dict[str, Knob]] = {"constraints": {
    "count": Knob([1, 3], "[min, max] constraints per task", _int_range(1, 3)),
    "types": Knob(list(DEFAULT_TYPES), "instruction ids to draw from (default: all but "
                  + ", ".join(UNFIT) + ")", _types),
    "instructions": Knob("data/seed/instructions.jsonl", "JSONL file of open instructions (field instruction, "
                         "optional input), relative to the repository root", _path),
    **{name: Knob(list(default), f"[min, max] {what}", _int_range(*widest))
       for name, (default, widest, what) in RANGES.items()},
}}

REPO = Path(__file__).resolve().parents[2]


def resolve_difficulty(family: str, difficulty: Mapping[str, Any] | None) -> dict[str, Any]:
    """``constraints``' ``difficulty`` over its defaults, every value checked (one-line ConfigError); the
    instruction file is read here (once: it is cached), so a missing or bad file fails before any draw."""
    out = check_knobs(family, KNOBS[family], difficulty)
    if out["count"][1] > len(out["types"]):
        raise ConfigError(f'{family} difficulty "count": at most {len(out["types"])} constraints from '
                          f"{len(out['types'])} types, got {json.dumps(out['count'])}")
    instructions(out["instructions"])
    return out


# ------------------------------------------------------------------------------------------- instructions
@dataclass(frozen=True)
class Base:
    """One open instruction and what its own words already fix (:func:`touches`)."""

    text: str
    touches: frozenset[str]
    yes_no: bool  # it asks a yes/no question, so "My answer is yes/no/maybe" fits it


_NUMBER_WORDS = ("two|three|four|five|six|seven|eight|nine|ten|eleven|twelve|fifteen|twenty|thirty|forty|fifty|"
                 "hundred|dozen")
# What an instruction's words may already fix, each a case-insensitive pattern (but for the words in capitals that
# "case" looks for); see _BLOCKED_BY for what each rules out. Broad on purpose: a base that loses a constraint it
# could have taken costs nothing, a contradiction costs a task no response can satisfy as its reader means it.
_TOUCH_PATTERNS: dict[str, str] = {
    "count": (rf"\b(\d+[- ]?(words?|sentences?|lines?|paragraphs?)|{_NUMBER_WORDS}|words?|sentences?|"
              r"paragraphs?|lines?|stanzas?|verses?|brief(ly)?|short|concise|summar\w*|limerick|haiku|sonnet|"
              r"clerihew|acrostic|poem|tweet|six-word)\b"),
    "layout": (r"\b(list|lists|listing|bullet(s|ed)?|numbered|tables?|json|csv|columns?|sections?|label(l)?ed|"
               r"step by step|steps|outline|headings?|one line each|comma-separated|format(ted)?|poem|limerick|"
               r"haiku|sonnet|clerihew|acrostic|email|letter|notice|speech|dialogue|log entry|obituary)\b"),
    "case": r"(?i:\bacrostic\b|capital|upper[- ]?case|lower[- ]?case|all caps)|\b[A-Z]{3,}\b",
    "comma": r"comma",
    "language": (r"\b(spanish|french|german|italian|portuguese|english|chinese|japanese|latin|language|"
                 r"translat\w*)\b"),
    "ending": r"\b(final line|last line|end with|ends with|ending|sign[- ]off|closing|conclude with)\b",
    "start": r"\b(begin|begins|beginning|start|starts|opening|first line|first word)\b",
    "title": r"\b(title|titled|headline|heading)\b",
}
_CASE_SENSITIVE_TOUCHES = ("case",)
_CODE = re.compile(r"\b(python|javascript|java|sql|rust|c\+\+|git|code|function|regular expression|regex|decorator|"
                   r"list comprehension|class called)\b", re.IGNORECASE)
_YES_NO = re.compile(r"(^|[.!?:]\s+)(is|are|does|do|did|can|could|should|will|would|has|have|was|were)\b[^?.!]*\?",
                     re.IGNORECASE)

# The types an instruction's touch rules out (CONSTRAINED needs a yes/no question besides).
_BLOCKED_BY: dict[str, tuple[str, ...]] = {
    WORDS: ("count",), SENTENCES: ("count", "layout"), PARAGRAPHS: ("count", "layout"),
    NTH: ("count", "layout", "start"), BULLETS: ("count", "layout"), SECTIONS: ("count", "layout"),
    JSON: ("count", "layout"), TWO: ("count", "layout"), QUOTATION: ("layout",), TITLE: ("title",),
    END: ("ending",), POSTSCRIPT: ("ending",), NO_COMMA: ("comma",), UPPER: ("case",), LOWER: ("case",),
    CAPITAL_WORDS: ("case",), LANGUAGE: ("language",), REPEAT: ("start",),
}


def touches(text: str) -> frozenset[str]:
    """What an instruction's own words already fix: ``count`` (a length or a number of things), ``layout`` (a
    list, a table, JSON, a form such as a poem or a letter), ``case``, ``comma``, ``language``, ``ending``,
    ``start``, ``title``. A constraint on something the instruction fixes is never drawn for it."""
    return frozenset(name for name, pattern in _TOUCH_PATTERNS.items()
                     if re.search(pattern, text, 0 if name in _CASE_SENSITIVE_TOUCHES else re.IGNORECASE))


def fits(instruction_id: str, base: Base) -> bool:
    """Whether a type may be drawn for this instruction at all (before its arguments are drawn)."""
    if instruction_id == CONSTRAINED and not base.yes_no:
        return False
    return not any(t in base.touches for t in _BLOCKED_BY.get(instruction_id, ()))


@functools.lru_cache(maxsize=8)
def _read_instructions(path: str) -> tuple[Base, ...]:
    where = Path(path)
    if not where.is_file():
        raise ConfigError(f'constraints difficulty "instructions": {path} not found')
    bases: list[Base] = []
    seen: set[str] = set()
    with where.open("rb") as fh:
        for lineno, row in records.json_lines(fh, path):
            at = f"{path}:{lineno}: "
            if not isinstance(row, dict):
                raise RecordError(f"{at}expected a JSON object, got {type(row).__name__}")
            if "instruction" not in row:
                raise RecordError(f'{at}missing field "instruction"')
            text, extra = row["instruction"], row.get("input", "")
            if not isinstance(text, str) or not text.strip():
                raise RecordError(f'{at}field "instruction" must be non-empty text')
            if not isinstance(extra, str):
                raise RecordError(f'{at}field "input" must be text')
            text = records.user_query(text.strip(), extra.strip())
            if _CODE.search(text) or text in seen:
                continue
            seen.add(text)
            bases.append(Base(text, touches(text), bool(_YES_NO.search(text))))
    if not bases:
        raise ConfigError(f'constraints difficulty "instructions": {path} has no instruction to use (code '
                          "instructions are skipped)")
    return tuple(bases)


def instructions(path: str) -> tuple[Base, ...]:
    """The usable open instructions of a JSONL file (``instruction``, optional ``input`` joined as the model
    sees it), in file order, duplicates and code instructions dropped; relative paths are from the repository
    root. Read once per path: the family calls this on every draw."""
    p = Path(path)
    return _read_instructions(str(p if p.is_absolute() else REPO / p))


# ------------------------------------------------------------------------------------------- one constraint
@dataclass(frozen=True)
class Constraint:
    """A drawn constraint: its instruction id and the checker's kwargs (no None values)."""

    id: str
    kwargs: dict[str, Any]

    def get(self, key: str) -> Any:
        """One of the kwargs, or None where this type takes no such argument."""
        return self.kwargs.get(key)


def _count(rng: random.Random, d: Mapping[str, Any], knob: str, lo: int | None = None) -> int:
    """A number from the knob's range (raised to ``lo`` when given); word counts are rounded to tens when the
    range allows, so the sentence reads like a request a person would make."""
    a, b = d[knob]
    a = min(max(a, lo) if lo is not None else a, b)
    n = rng.randint(a, b)
    if knob == "num_words" and b - a >= 10 and a <= round(n, -1) <= b:
        n = round(n, -1)
    return n


def _relation(rng: random.Random, d: Mapping[str, Any], knob: str) -> tuple[str, int]:
    """A relation and its number; "less than" only from 2 up, so that some count always satisfies it."""
    relation = rng.choice(RELATIONS)
    if relation == "less than" and d[knob][1] < 2:
        relation = "at least"
    return relation, _count(rng, d, knob, 2 if relation == "less than" else None)


def _words_in(text: str) -> set[str]:
    return set(re.findall(r"[a-z]+", text.lower()))


def _fresh(rng: random.Random, pool: tuple[str, ...], base: Base, drawn: list[Constraint], k: int) -> list[str]:
    """``k`` words of ``pool`` that neither the instruction nor another drawn constraint uses (fewer if the pool
    runs out)."""
    used = _words_in(base.text)
    for c in drawn:
        for v in c.kwargs.values():
            for x in (v if isinstance(v, list) else [v]):
                if isinstance(x, str):
                    used |= _words_in(x)
    free = [w for w in pool if w not in used]
    return rng.sample(free, min(k, len(free)))


def draw_kwargs(instruction_id: str, rng: random.Random, d: Mapping[str, Any], base: Base,
                drawn: list[Constraint]) -> dict[str, Any] | None:
    """One draw of the kwargs a type's checker takes (IFEval's names), or None when its pool has run dry."""
    t = instruction_id
    if t == EXISTENCE:
        words = _fresh(rng, KEYWORDS, base, drawn, rng.randint(1, 2))
        return {"keywords": words} if words else None
    if t == FREQUENCY:
        words = _fresh(rng, KEYWORDS, base, drawn, 1)
        relation, n = _relation(rng, d, "frequency")
        return {"keyword": words[0], "frequency": n, "relation": relation} if words else None
    if t == FORBIDDEN:
        words = _fresh(rng, FORBIDDEN_WORDS, base, drawn, rng.randint(1, 3))
        return {"forbidden_words": words} if words else None
    if t == LETTER:
        relation, n = _relation(rng, d, "let_frequency")
        letter = rng.choice(RARE_LETTERS if relation == "less than" else COMMON_LETTERS)
        return {"letter": letter, "let_frequency": n, "let_relation": relation}
    if t == LANGUAGE:
        return {"language": rng.choice(sorted(LANGUAGES))}
    if t == SENTENCES:
        relation, n = _relation(rng, d, "num_sentences")
        return {"num_sentences": n, "relation": relation}
    if t == PARAGRAPHS:
        return {"num_paragraphs": _count(rng, d, "num_paragraphs")}
    if t == WORDS:
        relation, n = _relation(rng, d, "num_words")
        return {"num_words": n, "relation": relation}
    if t == NTH:
        n = _count(rng, d, "num_paragraphs")
        words = _fresh(rng, FIRST_WORDS, base, drawn, 1)
        return {"num_paragraphs": n, "nth_paragraph": rng.randint(1, n), "first_word": words[0]} if words else None
    if t == PLACEHOLDERS:
        return {"num_placeholders": _count(rng, d, "num_placeholders")}
    if t == POSTSCRIPT:
        return {"postscript_marker": rng.choice(POSTSCRIPT_MARKERS)}
    if t == BULLETS:
        return {"num_bullets": _count(rng, d, "num_bullets")}
    if t == HIGHLIGHTS:
        return {"num_highlights": _count(rng, d, "num_highlights")}
    if t == SECTIONS:
        return {"section_spliter": rng.choice(SECTION_WORDS), "num_sections": _count(rng, d, "num_sections")}
    if t == REPEAT:
        return {"prompt_to_repeat": base.text}
    if t == END:
        return {"end_phrase": rng.choice(END_PHRASES)}
    if t == CAPITAL_WORDS:
        relation, n = _relation(rng, d, "capital_frequency")
        return {"capital_frequency": n, "capital_relation": relation}
    return {}  # constrained_response, json_format, title, two_responses, english_*, no_comma, quotation


# ------------------------------------------------------------------------------------------- clashes
# Pairs that never go together: one rules the other out, or both claim the same place (the start, the end, the
# whole reply) or define paragraphs in two ways.
_CLASHING_PAIRS: frozenset[frozenset[str]] = frozenset(frozenset(p) for p in (
    (JSON, QUOTATION), (JSON, TITLE), (JSON, BULLETS), (JSON, SECTIONS), (JSON, PARAGRAPHS), (JSON, NTH),
    (JSON, POSTSCRIPT), (JSON, END), (JSON, CONSTRAINED), (JSON, TWO), (JSON, REPEAT),
    (UPPER, LOWER), (LANGUAGE, UPPER), (LANGUAGE, LOWER), (LANGUAGE, EXISTENCE), (LANGUAGE, FREQUENCY),
    (LANGUAGE, END), (LANGUAGE, CONSTRAINED), (LANGUAGE, NTH), (LANGUAGE, REPEAT), (LANGUAGE, FORBIDDEN),
    (PARAGRAPHS, NTH), (PARAGRAPHS, TWO),
    (TWO, QUOTATION), (TWO, REPEAT), (TWO, CONSTRAINED), (TWO, NTH), (TWO, END), (TWO, POSTSCRIPT),
    (REPEAT, QUOTATION), (REPEAT, CONSTRAINED), (REPEAT, NTH), (REPEAT, TITLE),
    (CONSTRAINED, BULLETS), (CONSTRAINED, SECTIONS), (CONSTRAINED, PARAGRAPHS), (CONSTRAINED, NTH),
    (END, POSTSCRIPT), (TITLE, NTH), (QUOTATION, NTH), (SECTIONS, NTH),
))


def _parts(c: Constraint) -> int:
    """How many separate pieces (paragraphs, bullets, sections, answers) a constraint asks for."""
    return {PARAGRAPHS: c.get("num_paragraphs"), NTH: c.get("num_paragraphs"), BULLETS: c.get("num_bullets"),
            SECTIONS: c.get("num_sections"), TWO: 2}.get(c.id) or 0


def _min_words(c: Constraint) -> int:
    """A floor on the words any response satisfying ``c`` needs (generous: a reply written to it, not a trick)."""
    kw = c.kwargs
    floor = 10 * _parts(c)
    if c.id == SENTENCES and kw["relation"] == "at least":
        floor = max(floor, 8 * kw["num_sentences"])
    elif c.id == FREQUENCY and kw["relation"] == "at least":
        floor = 3 * kw["frequency"]
    elif c.id == LETTER and kw["let_relation"] == "at least":
        floor = 4 * kw["let_frequency"]
    elif c.id == CAPITAL_WORDS and kw["capital_relation"] == "at least":
        floor = 2 * kw["capital_frequency"]
    elif c.id == EXISTENCE:
        floor = 3 * len(kw["keywords"])
    elif c.id in (HIGHLIGHTS, PLACEHOLDERS):
        floor = 3 * kw.get("num_highlights", kw.get("num_placeholders", 0))
    elif c.id in (END, REPEAT):
        floor = len(str(kw.get("end_phrase", kw.get("prompt_to_repeat", ""))).split()) + 5
    elif c.id in (CONSTRAINED, POSTSCRIPT, TITLE):
        floor = 6
    return floor


def _required(c: Constraint) -> list[tuple[str, bool]]:
    """Text any response satisfying ``c`` contains, each with whether its case is part of the request."""
    if c.id == EXISTENCE:
        return [(w, False) for w in c.kwargs["keywords"]]
    if c.id == FREQUENCY and c.kwargs["relation"] == "at least":
        return [(c.kwargs["keyword"], False)] * c.kwargs["frequency"]
    if c.id == NTH:
        return [(c.kwargs["first_word"], False)]
    if c.id == SECTIONS:
        return [(f"{c.kwargs['section_spliter']} {i}", True) for i in range(1, c.kwargs["num_sections"] + 1)]
    key = {END: "end_phrase", POSTSCRIPT: "postscript_marker", REPEAT: "prompt_to_repeat"}.get(c.id)
    if key:
        return [(c.kwargs[key], True)]
    return [(CONSTRAINED_PHRASE, True)] if c.id == CONSTRAINED else []


def _pair_problem(a: Constraint, b: Constraint) -> str | None:
    """Why two constraints cannot go together in one task, or None."""
    if a.id == b.id:
        return f"{a.id} twice"
    if frozenset((a.id, b.id)) in _CLASHING_PAIRS:
        return f"{a.id} with {b.id}"
    for x, y in ((a, b), (b, a)):
        if x.id == LOWER and y.id == CAPITAL_WORDS and y.kwargs["capital_relation"] == "at least":
            return f"{LOWER} with at least {y.kwargs['capital_frequency']} capitalized words"
        if x.id == UPPER and y.id == CAPITAL_WORDS and y.kwargs["capital_relation"] == "less than":
            return f"{UPPER} with fewer than {y.kwargs['capital_frequency']} capitalized words"
        if x.id == REPEAT and y.id in (WORDS, SENTENCES) and y.kwargs["relation"] == "less than":
            return f"{REPEAT} with an upper bound from {y.id}"
        if x.id == WORDS and x.kwargs["relation"] == "less than" and x.kwargs["num_words"] <= _min_words(y):
            return f"fewer than {x.kwargs['num_words']} words for {y.id}"
        if x.id == SENTENCES and x.kwargs["relation"] == "less than":
            room = x.kwargs["num_sentences"] - 1
            if _parts(y) > room:
                return f"fewer than {x.kwargs['num_sentences']} sentences for {_parts(y)} parts of {y.id}"
            if y.id == WORDS and y.kwargs["relation"] == "at least" and y.kwargs["num_words"] > 30 * room:
                return f"at least {y.kwargs['num_words']} words in fewer than {x.kwargs['num_sentences']} sentences"
    return None


def _text_problem(c: Constraint, others: list[Constraint]) -> str | None:
    """Why what the other constraints require of a response rules ``c`` out (a forbidden word another one asks
    for, a comma in a phrase to end with, a capitalized phrase under all lowercase ...), or None."""
    required = [r for o in others for r in _required(o)]
    texts = [t for t, _ in required]
    cased = [t for t, is_cased in required if is_cased]
    if c.id == FORBIDDEN:
        for w in c.kwargs["forbidden_words"]:
            if any(re.search(rf"\b{re.escape(w)}\b", t, re.IGNORECASE) for t in texts):
                return f'"{w}" is forbidden and required'
    if c.id == FREQUENCY and c.kwargs["relation"] == "less than":
        k = c.kwargs["keyword"].lower()
        if sum(t.lower().count(k) for t in texts) >= c.kwargs["frequency"]:
            return f'"{k}" is required at least {c.kwargs["frequency"]} times'
    if (c.id == LETTER and c.kwargs["let_relation"] == "less than"
            and sum(t.lower().count(c.kwargs["letter"]) for t in texts) >= c.kwargs["let_frequency"]):
        return f'the letter "{c.kwargs["letter"]}" is required at least {c.kwargs["let_frequency"]} times'
    if (c.id == CAPITAL_WORDS and c.kwargs["capital_relation"] == "less than"
            and sum(1 for t in cased for w in t.split() if w.isupper()) >= c.kwargs["capital_frequency"]):
        return f"capitalized words are required at least {c.kwargs['capital_frequency']} times"
    if c.id == NO_COMMA and any("," in t for t in texts):
        return "a required phrase has a comma"
    if c.id == LOWER and any(t != t.lower() for t in cased):
        return "a required phrase has capitals"
    if c.id == UPPER and any(t != t.upper() for t in cased):
        return "a required phrase has lowercase letters"
    return None


def clash(drawn: list[Constraint]) -> str | None:
    """Why these constraints cannot be asked of one response together, or None: a clashing pair
    (:data:`_CLASHING_PAIRS`, counts that leave no room), text one of them requires that another rules out, or
    what the checker's own :func:`pipeline.constraints.spec.conflict` refuses (only the provably impossible: a
    subset of the rest, asked too, so that no draw is ever one the verify stage's checks would stop). The family
    never draws a set for which this says anything."""
    for i, a in enumerate(drawn):
        for b in drawn[i + 1:]:
            problem = _pair_problem(a, b)
            if problem:
                return problem
    for i, c in enumerate(drawn):
        problem = _text_problem(c, drawn[:i] + drawn[i + 1:])
        if problem:
            return problem
    return spec.conflict([c.id for c in drawn], [c.kwargs for c in drawn])


# ------------------------------------------------------------------------------------------- the family
def constraint_sentence(instruction_id: str, kwargs: Mapping[str, Any], style: int = 0) -> str:
    """The sentence that asks for one constraint (``prompts/tasks/constraints/<type>.j2``, wording ``style``)."""
    extra = {"language_name": LANGUAGES.get(kwargs.get("language", ""), kwargs.get("language", ""))} \
        if instruction_id == LANGUAGE else {}
    return render(TEMPLATES[instruction_id], style=style, **kwargs, **extra).strip()


def constraints_prompt(instruction: str, sentences: list[str]) -> str:
    """An instruction followed by its constraint sentences (``prompts/tasks/constraints.j2``)."""
    return render("tasks/constraints.j2", instruction=instruction, constraints=list(sentences))


_ATTEMPTS = 200


def _draw(rng: random.Random, d: Mapping[str, Any], bases: tuple[Base, ...]) -> tuple[Base, list[Constraint]] | None:
    """One try: the number of constraints, the first type, an instruction that admits it, then the other types
    among those it admits. The first type is drawn before the instruction so that a type few instructions admit
    (a yes/no answer, JSON) is as common as any other."""
    k = rng.randint(*d["count"])
    first = rng.choice(d["types"])
    admitting = [b for b in bases if fits(first, b)]
    if not admitting:
        return None
    base = rng.choice(admitting)
    drawn: list[Constraint] = []
    options = [first]
    while len(drawn) < k:
        if not options:
            return None
        t = rng.choice(options)
        kwargs = draw_kwargs(t, rng, d, base, drawn)
        if kwargs is not None and clash([*drawn, Constraint(t, kwargs)]) is None:
            drawn.append(Constraint(t, kwargs))
            options = [x for x in d["types"] if fits(x, base) and x not in {c.id for c in drawn}]
        else:
            options.remove(t)
    return base, drawn


def constraints(rng: random.Random, difficulty: Mapping[str, Any] | None = None) -> Task:
    """An open instruction of ``instructions`` with ``count`` constraints of ``types``, none clashing with another
    or with the instruction's own words; each sentence in one of its type's wordings. The task's inputs are
    IFEval's ``instruction_id_list`` and ``kwargs``; its verifier is ``constraints``; it has no answer."""
    d = resolve_difficulty("constraints", difficulty)
    bases = instructions(d["instructions"])
    for _ in range(_ATTEMPTS):
        got = _draw(rng, d, bases)
        if got is not None:
            break
    else:
        raise ConfigError(f"constraints: no task with {d['count'][0]}-{d['count'][1]} compatible constraints of "
                          f"{json.dumps(d['types'])} in {_ATTEMPTS} tries; allow more types or fewer constraints")
    base, drawn = got
    sentences = [constraint_sentence(c.id, c.kwargs, rng.randrange(WORDINGS[c.id])) for c in drawn]
    inputs = {"instruction_id_list": [c.id for c in drawn], "kwargs": [dict(c.kwargs) for c in drawn]}
    return make_task("constraints", constraints_prompt(base.text, sentences), "", "constraints", d, inputs=inputs)
