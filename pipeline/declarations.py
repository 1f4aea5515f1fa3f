"""A judge is data: beside each judging template, a small declaration of its verdict and how it is read.

``prompts/judge.j2`` ends with ``Score: <total points>``; ``prompts/judge.verdict.yaml`` says so::

    label: Score              # the verdict's last line is "Score: <value>"
    values: 0-5               # what the verdict can be: a range of integers, or a list ([A, B, tie])
    out_of: true              # integers: "4/5" and "4 out of 5" read as 4
    strict: {brackets: "<>"}  # the strict reading: the whole last line, "Score: <4>" allowed
    flexible: [score_mention, out_of]   # tried in order when the last line is not the verdict
    forced_prefix: "Score: "  # what a forced verdict continues after the model's own text

A template ``X.j2`` is read by ``X.verdict.yaml`` beside it. A template without one is read by its role's
default declaration, ``prompts/<role>.verdict.yaml`` (``judge``, ``meta_judge``, ``compare``,
``pairwise_judge``), provided the template asks for that format (it mentions the default's forced prefix);
otherwise the error names the file to write. The declaration is a file of its own, outside the template, so a
template's hash (row provenance) is its text and includes alone.

Every reading is built from the declaration: the strict one by :func:`pipeline.verdicts.strict_line` (the one
builder of every strict-line parser), the flexible ones by the named readings of :data:`READINGS`, the way
alpaca_eval names a completion parser in a judge's YAML. :func:`load` validates a declaration field by field
before any model loads and gives one line per problem (``prompts/my.verdict.yaml: values: [] — ...``);
:func:`for_template` finds and checks the one that reads a template; :meth:`Declaration.chain` is the
:class:`pipeline.verdicts.Chain` a step parses and forces with.

A role reads one kind of verdict (:data:`ROLES`): ``score`` (integers; the judge) or ``choice`` (A or B, and
maybe ``tie``, for the first or the second item shown: the meta-judge, the evaluator, and a pairwise judge).
"""

from __future__ import annotations

import difflib
import functools
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pipeline.errors import ConfigError
from pipeline.knobs import build_section, knob
from pipeline.verdicts import Chain, Parser, last_match, literal, on_last_line, strict_line

SUFFIX = ".verdict.yaml"
Kind = Literal["score", "choice"]
ROLES: dict[str, Kind] = {"judge": "score", "meta_judge": "choice", "compare": "choice",
                          "pairwise_judge": "choice"}
CHOICES = ("A", "B")  # what a choice verdict's forced options are: the first or the second item shown


# ------------------------------------------------------------------------------------------ readings
@dataclass(frozen=True)
class Reading:
    """A named flexible reading: a pattern built from a declaration (and the options an entry may give)."""
    name: str
    help: str
    build: Callable[[Declaration, Mapping[str, str]], re.Pattern[str]]
    needs: Literal["integers", "names"] | None = None
    options: Mapping[str, str] | None = None  # option -> its default


def _alternatives(values: tuple[str, ...]) -> str:
    """The values as alternatives, longest first ("10" is tried before "1")."""
    return "|".join(re.escape(v) for v in sorted(values, key=len, reverse=True))


def _names(decl: Declaration) -> str:
    return "(?:" + "|".join(literal(n) for n in decl.names) + ")"


def _highest(decl: Declaration) -> str:
    return str(max(int(v) for v in decl.values))


def _over(decl: Declaration) -> str:
    return r"(?:\s*(?:/|out of)\s*" + _highest(decl) + ")?" if decl.out_of else ""


def _class(chars: str) -> str:
    return "[" + "".join(re.escape(c) for c in chars) + "]*"


def _score_mention(decl: Declaration, opts: Mapping[str, str]) -> re.Pattern[str]:
    """The last mention of the label with a value: ``score of 3``, ``Score: "4"``, ``score is 4/5``.

    >>> bool(_score_mention(_example("Rating", "1-10"), {"quotes": "*"}).search("My rating is 10 overall"))
    True
    """
    return re.compile(literal(decl.label) + r"\s*(?:is|of|=|:)?\s*" + _class(opts["quotes"]) + r"\s*("
                      + _alternatives(decl.values) + r")(?![\d.])" + _over(decl), re.IGNORECASE)


def _out_of(decl: Declaration, opts: Mapping[str, str]) -> re.Pattern[str]:
    """The last ``N/MAX`` or ``N out of MAX`` (MAX, the highest value): ``Total: 2 out of 5``."""
    return re.compile(r"(?<![\d.])(" + _alternatives(decl.values) + r")\s*(?:/|out of)\s*" + _highest(decl)
                      + r"\b", re.IGNORECASE)


def _choice_mention(decl: Declaration, opts: Mapping[str, str]) -> re.Pattern[str]:
    """The last mention of the label with a choice: ``the winner is Judgment A``, ``Winner - B``."""
    names = "(?:" + _names(decl) + r"\s*)?" if decl.names else ""
    return re.compile(literal(decl.label) + r"\W{0,3}\s*(?:is\s*)?" + names + _class(opts["quotes"]) + r"\s*("
                      + _alternatives(decl.values) + r")\b", re.IGNORECASE)


def _choice_is_better(decl: Declaration, opts: Mapping[str, str]) -> re.Pattern[str]:
    """The last ``<name> A is more accurate``, ``... was better``, ``... is the winner``."""
    return re.compile(_names(decl) + r"\s+(" + _alternatives(decl.values)
                      + r")\s+(?:is|was)\s+(?:more accurate|better|the winner)", re.IGNORECASE)


READINGS: dict[str, Reading] = {r.name: r for r in (
    Reading("score_mention", "the last mention of the label with a value ('score of 3', 'Score: \"4\"')",
            _score_mention, "integers", {"quotes": "\"'\u201c\u201d\u2018\u2019*"}),
    Reading("out_of", "the last 'N/MAX' or 'N out of MAX'", _out_of, "integers"),
    Reading("choice_mention", "the last mention of the label with a value ('the winner is Judgment A')",
            _choice_mention, None, {"quotes": "\"'\u201c\u201d*"}),
    Reading("choice_is_better", "the last '<name> A is more accurate / better / the winner'", _choice_is_better,
            "names"),
)}


# -------------------------------------------------------------------------------------- the file format
def _brackets_check(v: str) -> str | None:
    return None if len(v) == 2 and not v.isspace() else "must be two characters, the opening and the closing " \
                                                         "bracket, e.g. '<>' or '[]'"


def _label_check(v: str) -> str | None:
    if not v.strip() or v != v.strip():
        return "must be a word or two, without surrounding spaces"
    return "must not hold a colon or a line break: the verdict line is 'label: value'" if ":" in v or "\n" in v \
        else None


def _names_check(v: list[str]) -> str | None:
    return "every name must be a word or two, without surrounding spaces" if any(
        not n.strip() or n != n.strip() or "\n" in n for n in v) else None


def _prefix_check(v: str) -> str | None:
    if not v.strip():
        return "must hold the verdict's label, e.g. 'Score: '"
    return "must be one line: the verdict's own" if "\n" in v else None


@dataclass(frozen=True)
class StrictReading:
    brackets: str | None = knob(None, "Brackets allowed around the value: '<>' reads 'Score: <4>', '[]' "
                                "'Winner: [A]'. None: no brackets.", _brackets_check)
    names_required: bool = knob(False, "A value must follow one of `names` ('Winner: Judgment A'); false: a "
                                "name may stand there ('Winner: Response B' or 'Winner: B').")
    case_sensitive: bool = knob(False, "The label, the names and the value only as written (the Meta-Rewarding "
                                "verdict 'Winner: Judgement A'); false: in any case.")


@dataclass
class DeclarationFile:
    """What a ``.verdict.yaml`` file may say; every key is checked, an unknown one gets a did-you-mean."""
    label: str | None = knob(None, "The word(s) that introduce the verdict: 'Score' in 'Score: 4'. Required.",
                             _label_check)
    values: Any = knob(None, "What the verdict can be: a range of integers ('0-5', '1-10') or a list "
                       "([A, B, tie]). Required. A score (the judge) is an integer; a choice (meta-judge, "
                       "evaluator) is A or B, for the first or the second item shown, and may be tie.")
    names: list[str] = knob([], "Words that may stand between the label and the value: 'Judgment' in 'Winner: "
                            "Judgment A'. List every spelling ([Judgment, Judgement]).", _names_check)
    out_of: bool = knob(False, "Integer values: 'N/MAX' and 'N out of MAX' (MAX, the highest value) read as N.")
    strict: StrictReading = knob(StrictReading(), "The strict reading: the whole last non-blank line is "
                                 "'label: value' (markdown emphasis and a trailing period allowed).")
    flexible: list[Any] = knob([], "Readings tried in order when the strict one fails: names of "
                               f"{', '.join(READINGS)}, or one-key mappings of a name to its options "
                               "({choice_mention: {quotes: \"*[\"}}). [] reads strictly only.")
    forced_prefix: str | None = knob(None, "What a forced verdict continues after the model's own text (and a "
                                     "line break), e.g. 'Score: '; the template must ask for it. None: "
                                     "'<label>: '.", _prefix_check)
    forced_options: Any = knob(None, "The values a forced verdict chooses among, by next-token probability "
                               "(None: every value; a choice: always [A, B]).")


# ------------------------------------------------------------------------------------------ the declaration
@dataclass(frozen=True)
class Declaration:
    """A validated declaration: the verdict's format, and the readings and the forced choice built from it."""
    path: str  # where it was read, as errors name it
    kind: Kind
    label: str
    values: tuple[str, ...]
    names: tuple[str, ...]
    out_of: bool
    strict: StrictReading
    flexible: tuple[tuple[str, tuple[tuple[str, str], ...]], ...]  # (reading, its options)
    forced_prefix: str
    forced_options: tuple[str, ...]

    def strict_pattern(self) -> re.Pattern[str]:
        before = ""
        if self.names:
            before = _names(self) + r"\s+" if self.strict.names_required else "(?:" + _names(self) + r"\s+)?"
        return strict_line(self.label, _alternatives(self.values), before=before, brackets=self.strict.brackets,
                           after=_over(self), case_sensitive=self.strict.case_sensitive)

    def flexible_patterns(self) -> list[re.Pattern[str]]:
        return [READINGS[name].build(self, {**(READINGS[name].options or {}), **dict(opts)})
                for name, opts in self.flexible]

    def canonical(self, found: tuple[str, int] | None) -> tuple[str, int] | None:
        """A value as read (any case) as the declaration spells it."""
        if found is None:
            return None
        spelled = {v.lower(): v for v in self.values}
        return spelled[found[0].lower()], found[1]

    def parsers(self) -> tuple[tuple[str, Parser], ...]:
        strict = self.strict_pattern()
        out: list[tuple[str, Parser]] = [("strict", lambda text: self.canonical(on_last_line(strict, text)))]
        flexible = self.flexible_patterns()
        if flexible:  # one parser: the last match of the first reading that matches anywhere
            out.append(("flexible", lambda text: self.canonical(last_match(text, *flexible))))
        return tuple(out)

    def chain(self, name: str, on_unparsed: Literal["force", "drop", "no_win"] = "force") -> Chain:
        return Chain(name, self.parsers(), prefix=self.forced_prefix, options=self.forced_options,
                     on_unparsed=on_unparsed)

    @property
    def scale(self) -> tuple[int, ...]:
        """A score's values as integers, in order (the bins of the score histogram)."""
        return tuple(int(v) for v in self.values)

    @property
    def numbers(self) -> tuple[int, ...]:
        """A score's forced options as integers, in order (what an expected score weighs)."""
        return tuple(int(v) for v in self.forced_options)


def _example(label: str, values: str) -> Declaration:  # for the doctests
    vals = _values(values)
    return Declaration("example", "score", label, vals, (), False, StrictReading(), (), f"{label}: ", vals)


_RANGE = re.compile(r"^\s*(-?\d+)\s*-\s*(-?\d+)\s*$")


def _values(raw: Any) -> tuple[str, ...]:
    """The values as strings; raises ValueError with what is wrong."""
    if isinstance(raw, str) and (m := _RANGE.match(raw)):
        low, high = int(m.group(1)), int(m.group(2))
        if high <= low:
            raise ValueError(f"the range must rise: {low} to {high} holds fewer than two values")
        if high - low > 100:
            raise ValueError("more than 101 values: a forced verdict scores every one of them")
        return tuple(str(v) for v in range(low, high + 1))
    if not isinstance(raw, list) or isinstance(raw, bool):
        raise ValueError("must be a range of integers ('1-10') or a list of values ([A, B, tie])")
    out = []
    for v in raw:
        if isinstance(v, bool) or not isinstance(v, (int, str)):
            raise ValueError(f"{v!r} is not a value: each is an integer or a word")
        text = str(v)
        if not text.strip() or text != text.strip() or any(c.isspace() for c in text):
            raise ValueError(f"{text!r} is not a value: each is one word, without spaces")
        out.append(text)
    if len(out) < 2:
        raise ValueError("must hold at least two values, or no verdict could tell responses apart")
    lowered = [v.lower() for v in out]
    if len(set(lowered)) < len(out):
        twice = next(v for v in out if lowered.count(v.lower()) > 1)
        raise ValueError(f"{twice!r} is given twice (the readings ignore case)")
    return tuple(out)


def _integer(v: str) -> bool:
    return re.fullmatch(r"-?\d+", v) is not None


def _flexible(entries: list[Any], where: str) -> tuple[tuple[str, tuple[tuple[str, str], ...]], ...]:
    out = []
    for entry in entries:
        if isinstance(entry, Mapping) and len(entry) == 1:
            name, opts = next(iter(entry.items()))
        elif isinstance(entry, str):
            name, opts = entry, {}
        else:
            raise ConfigError(f"{where}flexible: {entry!r} — each reading is a name ({', '.join(READINGS)}) or a "
                              "one-key mapping of a name to its options")
        if name not in READINGS:
            near = difflib.get_close_matches(str(name), list(READINGS), n=1)
            hint = f"did you mean {near[0]!r}?" if near else f"known: {', '.join(READINGS)}"
            raise ConfigError(f"{where}flexible: {name!r} — not a reading; {hint}")
        reading = READINGS[name]
        if opts is None:
            opts = {}
        if not isinstance(opts, Mapping):
            raise ConfigError(f"{where}flexible.{name}: {opts!r} — must be a mapping of options")
        for key, value in opts.items():
            if key not in (reading.options or {}):
                known = ", ".join(reading.options or {}) or "none"
                raise ConfigError(f"{where}flexible.{name}.{key}: unknown option — {name} takes: {known}")
            if not isinstance(value, str) or not value:
                raise ConfigError(f"{where}flexible.{name}.{key}: {value!r} — must be a non-empty string")
        out.append((name, tuple(sorted((str(k), str(v)) for k, v in opts.items()))))
    return tuple(out)


def validate(raw: Any, path: str, role: str) -> Declaration:
    """A declaration from its parsed YAML ``raw``, checked for ``role``; :class:`ConfigError` names what is wrong.

    >>> validate({"label": "Rating", "values": "1-10"}, "my.verdict.yaml", "judge").chain("judge").parse(
    ...     "Fine.\\nRating: 10").value
    '10'
    >>> validate({"label": "Rating", "values": []}, "my.verdict.yaml", "judge")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    pipeline.errors.ConfigError: my.verdict.yaml: values: [] — must hold at least two values, or no verdict ...
    """
    where = f"{path}: "
    kind = ROLES[role]
    if not isinstance(raw, Mapping):
        raise ConfigError(f"{path}: {raw!r} — a declaration is a mapping of keys (label, values, ...) to values")
    spec = build_section(DeclarationFile, raw, where)
    for key in ("label", "values"):
        if getattr(spec, key) is None:
            raise ConfigError(f"{where}{key}: missing — required (e.g. label: Score, values: 0-5)")
    try:
        values = _values(spec.values)
    except ValueError as e:
        raise ConfigError(f"{where}values: {spec.values!r} — {e}") from None
    if kind == "score" and not all(_integer(v) for v in values):
        raise ConfigError(f"{where}values: {spec.values!r} — the {role} role reads a score: integers, e.g. 0-5")
    if kind == "choice" and (not set(CHOICES) <= set(values) or not set(values) <= {*CHOICES, "tie"}):
        raise ConfigError(f"{where}values: {spec.values!r} — the {role} role reads a choice: A and B (the first or "
                          "the second shown), and maybe tie")
    if spec.out_of and not all(_integer(v) for v in values):
        raise ConfigError(f"{where}out_of: true — 'N out of MAX' needs integer values")
    if spec.strict.names_required and not spec.names:
        raise ConfigError(f"{where}strict.names_required: true — no names are declared (names: [Judgment])")
    flexible = _flexible(spec.flexible, where)
    for name, _ in flexible:
        needs = READINGS[name].needs
        if needs == "integers" and not all(_integer(v) for v in values):
            raise ConfigError(f"{where}flexible: {name!r} — reads integers, and the values are not")
        if needs == "names" and not spec.names:
            raise ConfigError(f"{where}flexible: {name!r} — needs names (names: [Judgment])")
    if spec.forced_options is None:
        forced = CHOICES if kind == "choice" else values
    else:
        try:
            forced = _values(spec.forced_options)
        except ValueError as e:
            raise ConfigError(f"{where}forced_options: {spec.forced_options!r} — {e}") from None
        unknown = [v for v in forced if v not in values]
        if unknown:
            raise ConfigError(f"{where}forced_options: {spec.forced_options!r} — {unknown[0]!r} is not one of the "
                              f"values ({', '.join(values)})")
        if kind == "choice" and tuple(forced) != CHOICES:
            raise ConfigError(f"{where}forced_options: {spec.forced_options!r} — a choice is forced between A and "
                              "B: write [A, B] or leave it out")
    prefix = spec.forced_prefix if spec.forced_prefix is not None else f"{spec.label}: "
    return Declaration(path, kind, spec.label, values, tuple(spec.names), spec.out_of, spec.strict, flexible,
                       prefix, tuple(forced))


# ------------------------------------------------------------------------------------------ files
def shown(path: Path) -> str:
    """A path as errors show it: under prompts/ or the working directory, relative; otherwise absolute."""
    from pipeline.templates import PROMPTS_DIR

    path = path.resolve()
    for root, prefix in ((PROMPTS_DIR, "prompts/"), (Path.cwd().resolve(), "")):
        try:
            return prefix + path.relative_to(root).as_posix()
        except ValueError:
            continue
    return str(path)


@functools.lru_cache(maxsize=32)
def _parse(text: str, name: str, role: str) -> Declaration:
    import yaml

    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        line = f":{mark.line + 1}" if mark is not None else ""
        raise ConfigError(f"{name}{line}: not valid YAML — {getattr(e, 'problem', None) or e}") from None
    return validate(raw, name, role)


def load(path: Path, role: str) -> Declaration:
    """The declaration in ``path`` (``.verdict.yaml``) for ``role``, validated (once per content)."""
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise ConfigError(f"{shown(path)}: not UTF-8 text") from None
    return _parse(text, shown(path), role)


def role_default(role: str) -> Path:
    """``prompts/<role>.verdict.yaml``: the declaration of a template that has none of its own."""
    from pipeline.templates import PROMPTS_DIR

    return PROMPTS_DIR / f"{role}{SUFFIX}"


def beside(template_file: Path) -> Path:
    """Where a template's own declaration lives: ``X.j2`` -> ``X.verdict.yaml`` in the same folder."""
    return template_file.with_name(template_file.name.rsplit(".", 1)[0] + SUFFIX)


def for_template(template: str, role: str) -> Declaration:
    """The declaration that reads ``template`` (its own, else the role's default), checked against its text.

    Raises :class:`ConfigError` with one line: a bad declaration, or a template that never asks for the format
    its declaration reads (a forced verdict must continue what the template asked for).
    """
    from pipeline import templates

    file = templates.locate(template)
    own = beside(file)
    decl = load(own if own.is_file() else role_default(role), role)
    mention = decl.forced_prefix.strip()
    if mention not in templates.source_text(template):
        if own.is_file():
            raise ConfigError(f"{decl.path}: forced_prefix: {decl.forced_prefix!r} — {shown(file)} never mentions "
                              f"{mention!r}; a forced verdict must continue the format the template asks for")
        raise ConfigError(f"{shown(file)}: never mentions {mention!r}, the verdict of {decl.path} (the {role} "
                          f"role's default, for a template without a declaration of its own) — write {shown(own)} "
                          "beside it to declare this template's verdict")
    return decl


def template_problem(template: str, role: str) -> str | None:
    """Why the verdict of ``template`` cannot be read for ``role`` (one line), or None: for the params checks."""
    try:
        for_template(template, role)
    except ConfigError as e:
        return str(e)
    except OSError as e:
        return f"its declaration cannot be read — {e.strerror or e}"
    return None

