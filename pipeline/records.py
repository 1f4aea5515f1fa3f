"""Row types and JSONL I/O.

Every row a stage writes is one of the dataclasses below. Reading validates each line and fails with
``path:line: what is wrong`` (invalid JSON, non-UTF-8 bytes, missing/empty fields, wrong types, duplicate
ids, over-long text). Every write is atomic: a temporary file in the same folder, fsync, then rename, so a
crash never leaves a half-written file under the final name.
"""

from __future__ import annotations

import contextlib
import dataclasses
import difflib
import functools
import hashlib
import json
import os
import tempfile
import typing
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Literal, TypeVar

from pipeline.errors import OutputError, RecordError
from pipeline.knobs import NOT, coerce, type_name

Message = dict[str, str]


def stable_id(prefix: str, *parts: Any) -> str:
    """A short id derived from content and position, identical on every run."""
    digest = hashlib.sha256(json.dumps(parts, sort_keys=True, ensure_ascii=False).encode()).hexdigest()
    return f"{prefix}-{digest[:12]}"


def digest(*parts: Any) -> str:
    """A 16-hex content key (caches, checkpoints): any JSON-able parts, non-JSON values by their ``str``."""
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str, ensure_ascii=False).encode()).hexdigest()[:16]


def user_query(instruction: str, input: str = "") -> str:
    """What the model is asked: the instruction, then its input (Self-Instruct / Alpaca rows keep the two apart,
    so that few-shot examples and the similarity filter see instructions only)."""
    return f"{instruction}\n\n{input}" if input.strip() else instruction


def sha256_text(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


# --------------------------------------------------------------------------------------------------- rows
@dataclass
class Row:
    """Base of all rows. ``ID_FIELD`` names the unique id; ``NONEMPTY`` the strings that may not be blank."""

    ID_FIELD: ClassVar[str | None] = None
    NONEMPTY: ClassVar[tuple[str, ...]] = ()
    MAX_CHARS: ClassVar[int] = 20_000

    OMIT_WHEN_NONE: ClassVar[tuple[str, ...]] = ()  # fields left out of the file while None (rows stay as before)

    def to_dict(self) -> dict[str, Any]:
        """The row as its file writes it: the fields in :func:`field_names` order, less those of
        :attr:`OMIT_WHEN_NONE` that are None."""
        data = dataclasses.asdict(self)
        if isinstance(self, Generated):  # the mixin's fields come first in dataclasses.fields(): put them back
            data = {name: data[name] for name in _fields_of(type(self))[1]}
        for name in self.OMIT_WHEN_NONE:
            if data[name] is None:
                del data[name]
        return data

    @classmethod
    def from_dict(cls, raw: dict[str, Any], where: str = "") -> Row:
        if not isinstance(raw, dict):
            raise RecordError(f"{where}expected a JSON object, got {type(raw).__name__}")
        hints, names, fields = _fields_of(cls)
        for key in raw:
            if key not in names:  # a typo beside a valid field would otherwise be silently ignored
                near = difflib.get_close_matches(str(key), names, n=1)
                hint = f"did you mean \"{near[0]}\"?" if near else f"known fields: {', '.join(names)}"
                raise RecordError(f'{where}unknown field "{key}" — {hint}')
        bad = _unencodable(raw)
        if bad is not None:
            raise RecordError(f"{where}{bad}")
        values = {}
        for f in fields:
            has_default = f.default is not dataclasses.MISSING or f.default_factory is not dataclasses.MISSING
            if f.name not in raw:
                if has_default:
                    continue
                raise RecordError(f'{where}missing field "{f.name}"')
            value = coerce(raw[f.name], hints[f.name])
            if value is NOT:
                raise RecordError(f'{where}field "{f.name}" must be {type_name(hints[f.name])}, '
                                  f"got {json.dumps(raw[f.name])[:40]}")
            if f.name in cls.NONEMPTY and isinstance(value, str) and not value.strip():
                raise RecordError(f'{where}field "{f.name}" is empty')
            if isinstance(value, str) and len(value) > cls.MAX_CHARS:
                raise RecordError(f'{where}field "{f.name}" is {len(value)} characters long — at most '
                                  f"{cls.MAX_CHARS} allowed")
            values[f.name] = value
        return cls(**values)


@dataclass(kw_only=True)
class Generated:
    """The fields of a row that holds one generation (:class:`Response`, :class:`Judgment`, :class:`Reflection`):
    what the model wrote as token ids and its raw log-probs, which the dpo stage reuses as reference log-probs
    (``pipeline.reference``; ``PreferencePair.generated`` carries them per side). An engine's
    ``Completion.generated_fields()`` fills them.

    In a row's file they stand just before ``provenance`` (after the row's own fields), where every row type
    wrote them before they were declared here once; :func:`field_names` gives that order.
    """

    token_ids: list[int] | None = None  # what the model generated, without the end-of-sequence token
    logprob: float | None = None  # sum of the generator's raw log-probs of token_ids (DPO reference reuse)
    stop_logprob: float | None = None  # raw log-prob of the end-of-sequence token, when one ended it

    def generation(self) -> dict[str, Any]:
        """The generation fields as a mapping (one side of ``PreferencePair.generated``)."""
        return {name: getattr(self, name) for name in GENERATION_FIELDS}


GENERATION_FIELDS: tuple[str, ...] = tuple(f.name for f in dataclasses.fields(Generated))


@functools.cache
def _fields_of(cls: type[Row]) -> tuple[dict[str, Any], list[str], list[dataclasses.Field[Any]]]:
    """A row type's field types, names and fields, in file order (resolving the hints per row was most of a
    large file's read time)."""
    fields = list(dataclasses.fields(cls))
    if issubclass(cls, Generated):
        own = [f for f in fields if f.name not in GENERATION_FIELDS]
        group = [f for f in fields if f.name in GENERATION_FIELDS]
        at = next((i for i, f in enumerate(own) if f.name == "provenance"), len(own))
        fields = own[:at] + group + own[at:]
    return typing.get_type_hints(cls), [f.name for f in fields], fields


def field_names(cls: type[Row]) -> list[str]:
    """A row type's fields in the order its files write them (:meth:`Row.to_dict`)."""
    return list(_fields_of(cls)[1])


@dataclass
class SeedInstruction(Row):
    """An instruction-following seed example (IFT)."""

    ID_FIELD: ClassVar[str] = "id"
    NONEMPTY: ClassVar[tuple[str, ...]] = ("id", "category", "instruction", "reference")
    id: str
    category: str
    instruction: str
    reference: str
    input: str = ""  # an Alpaca-style input the instruction refers to (user_query joins them)


@dataclass
class JudgeExample(Row):
    """An evaluation seed example (EFT): a response, a rubric justification and its score."""

    ID_FIELD: ClassVar[str] = "id"
    NONEMPTY: ClassVar[tuple[str, ...]] = ("id", "instruction", "response", "justification")
    id: str
    category: str
    instruction: str
    response: str
    justification: str
    score: int

    @classmethod
    def from_dict(cls, raw: dict[str, Any], where: str = "") -> JudgeExample:
        row = super().from_dict(raw, where)
        assert isinstance(row, JudgeExample)
        if not 0 <= row.score <= 5:
            raise RecordError(f'{where}field "score" must be between 0 and 5, got {row.score}')
        return row


@dataclass
class EvalPrompt(Row):
    ID_FIELD: ClassVar[str] = "id"
    NONEMPTY: ClassVar[tuple[str, ...]] = ("id", "instruction")
    id: str
    category: str
    instruction: str
    input: str = ""


def _distinct_sides(a: str, b: str, names: str, where: str) -> None:
    """A pair whose two sides are one text (up to outer whitespace) has nothing to prefer: one line naming them."""
    if a.strip() == b.strip():
        raise RecordError(f"{where}{names} are the same text: nothing to prefer")


@dataclass
class LabelledPair(Row):
    ID_FIELD: ClassVar[str] = "id"
    NONEMPTY: ClassVar[tuple[str, ...]] = ("id", "instruction", "response_a", "response_b")
    id: str
    category: str
    instruction: str
    response_a: str
    response_b: str
    preferred: Literal["A", "B"]
    reason: str = ""
    explanation: str = ""

    @classmethod
    def from_dict(cls, raw: dict[str, Any], where: str = "") -> LabelledPair:
        row = super().from_dict(raw, where)
        assert isinstance(row, LabelledPair)
        _distinct_sides(row.response_a, row.response_b, "response_a and response_b", where)
        return row


KnownSource = Literal["verified", "self_taught", "constraints", "labelled"]


@dataclass
class KnownPair(Row):
    """Two responses to one instruction where which is better is known, not judged (Self-Taught Evaluator,
    EvalPlanner): the truth the judge is trained and measured on.

    ``source`` says where the preference comes from: ``verified`` (a right and a wrong answer to a task with a
    known answer), ``self_taught`` (the answer to the instruction against the answer to a similar but different
    instruction the model wrote, Self-Taught Evaluator §3), ``constraints`` (a response that meets every
    checkable constraint against one that breaks some), ``labelled`` (the user's ``data.labelled_pairs``:
    measurement only). ``split`` is ``train`` (from the iteration's own samples: judge-training pairs are made
    on it) or ``heldout`` (a fixed pool, the same at every iteration: the judge is measured on it).
    ``better_id`` / ``worse_id`` name the rows each side comes from, where it has one; ``reason`` says why the
    better side is better, in a few words."""

    ID_FIELD: ClassVar[str] = "known_id"
    NONEMPTY: ClassVar[tuple[str, ...]] = ("known_id", "prompt_id", "instruction", "better", "worse")
    known_id: str
    prompt_id: str
    instruction: str
    better: str
    worse: str
    source: KnownSource
    split: Literal["train", "heldout"]
    better_id: str | None = None
    worse_id: str | None = None
    reason: str = ""
    provenance: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_dict(cls, raw: dict[str, Any], where: str = "") -> KnownPair:
        row = super().from_dict(raw, where)
        assert isinstance(row, KnownPair)
        _distinct_sides(row.better, row.worse, "better and worse", where)
        return row


@dataclass
class Prompt(Row):
    """An instruction the pipeline trains on (self-instruct output)."""

    ID_FIELD: ClassVar[str] = "prompt_id"
    NONEMPTY: ClassVar[tuple[str, ...]] = ("prompt_id", "instruction")
    prompt_id: str
    instruction: str
    source: str
    provenance: dict[str, Any] = field(default_factory=dict)
    # A task with a known answer (self_instruct.tasks): the verifier that rewards its responses and what it needs
    answer: str | None = None
    verifier: str | None = None
    tests: list[str] | None = None  # python_tests: assert statements
    inputs: dict[str, Any] = field(default_factory=dict)  # countdown: numbers, target; code: entry_point
    input: str = ""  # an Alpaca-style input the instruction refers to (user_query joins them)


@dataclass
class Response(Row, Generated):
    """One sampled output, split into thought and final response (its token ids and log-probs: Generated)."""

    ID_FIELD: ClassVar[str] = "response_id"
    response_id: str
    prompt_id: str
    sample_index: int
    instruction: str
    prompt_text: str  # the user turn that was sent (the thought prompt when thoughts are on)
    output: str  # everything the model wrote
    thought: str
    response: str
    parse_ok: bool
    num_tokens: int
    finish_reason: str
    provenance: dict[str, Any] = field(default_factory=dict)


@dataclass
class Verification(Row):
    """A verifier's check of one response to a prompt with a known answer: its reward, in place of a judge's."""

    ID_FIELD: ClassVar[str] = "response_id"
    response_id: str
    prompt_id: str
    verifier: str
    extracted: str | None  # the answer read from the response (the code, for python_tests)
    method: Literal["strict", "flexible", "none"]  # how it was read (pipeline.verifiable.ANSWER_CHAIN)
    correct: bool
    level: int  # the reward: 2 correct in the asked format, 1 correct read flexibly, 0 wrong (rewards.reward_level)
    detail: str = ""  # why it failed, in a few words (a sandbox's first error line, ...)
    # the constraints verifier: one {instruction_id, strict, loose, detail} per constraint of the prompt (None for
    # every other verifier, and then not written, so their files read as before)
    constraints: list[dict[str, Any]] | None = None
    provenance: dict[str, Any] = field(default_factory=dict)
    OMIT_WHEN_NONE: ClassVar[tuple[str, ...]] = ("constraints",)


@dataclass
class Rollout(Row):
    """One completion GRPO sampled and rewarded (grpo.enabled): the verifier's check, as a Verification reads it,
    and the optimizer step whose update it entered. Made by the policy trained from ``model`` up to that step."""

    ID_FIELD: ClassVar[str] = "rollout_id"
    NONEMPTY: ClassVar[tuple[str, ...]] = ("rollout_id", "prompt_id")
    rollout_id: str
    iteration: str
    step: int  # the optimizer step (from 1) whose batch it was; a resumed run keeps only the steps that trained
    prompt_id: str
    completion: str
    reward: float  # the verify step's level: 2 right in the asked format, 1 right, 0 wrong (grpo_rewards)
    extracted: str | None
    method: Literal["strict", "flexible", "none"]
    correct: bool
    detail: str = ""
    model: str = ""  # the model the iteration's training started from, and its weights' sha256 (16 hex)
    model_sha256: str = ""


@dataclass
class Reflection(Row, Generated):
    """Reflect, Retry, Reward: a reflection on a failed attempt, and the retry made with it in context (the
    generation fields are the reflection's, the text a reflection pair trains on)."""

    ID_FIELD: ClassVar[str] = "reflection_id"
    reflection_id: str
    response_id: str  # the failed attempt
    prompt_id: str
    reflection_index: int
    prompt_text: str  # the request the reflection answers (the pair's prompt)
    text: str  # the reflection
    retry: str  # the second attempt, made with the reflection in context
    retry_extracted: str | None
    retry_method: Literal["strict", "flexible", "none"]
    retry_correct: bool
    num_tokens: int = 0
    provenance: dict[str, Any] = field(default_factory=dict)


@dataclass
class Judgment(Row, Generated):
    """One LLM-as-a-judge verdict on a response (the judge's token ids and log-probs: Generated)."""

    ID_FIELD: ClassVar[str] = "judgment_id"
    judgment_id: str
    response_id: str
    prompt_id: str
    judge_index: int
    text: str
    score: float | None
    method: Literal["strict", "flexible", "forced", "dropped", "none"]
    digit_probs: list[float] | None = None
    num_tokens: int = 0
    provenance: dict[str, Any] = field(default_factory=dict)


@dataclass
class KnownJudgment(Row, Generated):
    """One judgment of a known pair (stage judge_known), and whether it prefers the known-better side.

    ``mode`` pairwise: both responses shown, ``shown`` says which came first (``better_first`` /
    ``worse_first``) and ``verdict`` is the letter read (A, B; None when nothing could be read or forced).
    ``mode`` pointwise: one side judged on the 5-point rubric, ``shown`` is that side (``better`` / ``worse``)
    and ``score`` its score. ``correct`` is :mod:`pipeline.judge_training`'s rule; ``prompt_text`` is the user turn
    the judge answered (the prompt of a judge-training pair)."""

    ID_FIELD: ClassVar[str] = "judgment_id"
    judgment_id: str
    known_id: str
    prompt_id: str
    source: KnownSource
    mode: Literal["pairwise", "pointwise"]
    shown: Literal["better_first", "worse_first", "better", "worse"]
    judge_index: int
    prompt_text: str
    text: str
    verdict: str | None
    score: float | None
    method: Literal["strict", "flexible", "forced", "dropped", "unparsed", "none"]
    correct: bool
    num_tokens: int = 0
    provenance: dict[str, Any] = field(default_factory=dict)


@dataclass
class MetaJudgment(Row):
    """One LLM-as-a-meta-judge comparison of two judgments (first shown as A, second as B)."""

    ID_FIELD: ClassVar[str] = "meta_id"
    meta_id: str
    prompt_id: str
    response_id: str
    first_id: str
    second_id: str
    text: str
    verdict: int  # 1: first wins, -1: second wins, 0: tie or unparseable
    method: Literal["strict", "flexible", "forced", "tie", "no_win", "unparsed"]
    forced_margin: float | None = None  # forced verdicts: log p(A) - log p(B), before calibration
    provenance: dict[str, Any] = field(default_factory=dict)


@dataclass
class Rating(Row):
    """A judgment's Elo rating from the meta-judge battles of its response."""

    ID_FIELD: ClassVar[str] = "judgment_id"
    judgment_id: str
    response_id: str
    prompt_id: str
    elo: float
    wins: float
    losses: float


@dataclass
class PreferencePair(Row):
    """A DPO pair in TRL's conversational format plus provenance."""

    ID_FIELD: ClassVar[str] = "pair_id"
    pair_id: str
    kind: Literal["response", "judgment", "reflection", "judge_training"]
    prompt: list[dict[str, str]]
    chosen: list[dict[str, str]]
    rejected: list[dict[str, str]]
    prompt_id: str
    chosen_id: str
    rejected_id: str
    chosen_score: float
    rejected_score: float
    iteration: str
    provenance: dict[str, Any] = field(default_factory=dict)
    # What the generating model wrote and its raw log-probs, per side: lets dpo reuse them as reference
    # log-probs ({"model_sha256", "chosen": {"token_ids", "logprob", "stop_logprob"}, "rejected": {...}}).
    generated: dict[str, Any] | None = None


# What the evaluate stage writes (data/<key>/eval_*.jsonl); the stage writes them as dicts, readers validate here.
@dataclass
class EvalAnswer(Row):
    """A model's answer to one held-out evaluation prompt (data.eval_prompts), one row per prompt and model."""

    prompt_id: str
    response: str
    parse_ok: bool
    num_tokens: int
    model: str  # current, or the baseline's name (previous, base, M0, ...)
    model_dir: str


@dataclass
class EvalComparison(Row):
    """The evaluator's verdict on one prompt in one order: the current model's answer shown as A or as B."""

    prompt_id: str
    baseline: str
    model_is_a: bool
    text: str
    letter: str  # A, B or tie
    method: str
    verdict: int  # +1 the current model's answer won this order, -1 the baseline's, 0 a tie


@dataclass
class EvalJudgment(Row):
    """The current model as judge on one labelled pair (data.labelled_pairs): its mean score of each side."""

    ID_FIELD: ClassVar[str] = "pair_id"
    pair_id: str
    preferred: Literal["A", "B"]
    score_a: float | None
    score_b: float | None


@dataclass
class HeldoutSample(Row):
    """One sampled answer to a held-out task (data.heldout_tasks), checked by the task's verifier."""

    task_id: str
    family: str
    sample_index: int
    output: str
    extracted: str | None
    method: str
    correct: bool
    num_tokens: int
    finish_reason: str
    model: str
    model_dir: str
    prompt: str = ""  # the task as asked, and its gold answer ("" / None in files written before they were kept)
    answer: str | None = None
    verifier: str | None = None  # how the answer was checked (and how maj@k normalises it)
    constraints: list[dict[str, Any]] | None = None  # the constraints verifier's outcome per constraint (else unwritten)
    OMIT_WHEN_NONE: ClassVar[tuple[str, ...]] = ("constraints",)


@dataclass
class ConstraintAnswer(Row):
    """One answer to a constraint instruction (data.constraint_tasks), checked against each of its constraints by
    IFEval's strict and loose rules (``constraints``: one {instruction_id, strict, loose, detail} each)."""

    task_id: str
    family: str
    prompt: str
    output: str  # everything the model wrote
    response: str  # what was checked: the final response, the thought apart
    num_tokens: int
    finish_reason: str
    followed: bool  # every constraint holds by the strict rule (IFEval's prompt-level strict)
    followed_loose: bool
    constraints: list[dict[str, Any]]
    model: str
    model_dir: str


def _unencodable(value: Any, path: str = "") -> str | None:
    """Where ``value`` holds text that is not valid Unicode (a lone surrogate such as ``\\ud800``, which JSON
    allows as an escape but UTF-8 cannot encode), or None."""
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError as e:
            return (f'field "{path}" holds text that is not valid Unicode (a lone surrogate '
                    f"\\u{ord(value[e.start]):04x} at character {e.start + 1})")
        return None
    if isinstance(value, dict):
        items = value.items()
    elif isinstance(value, list):
        items = enumerate(value)
    else:
        return None
    for k, v in items:
        found = _unencodable(v, f"{path}.{k}" if path else str(k))
        if found is not None:
            return found
    return None


class _DuplicateKey(ValueError):
    pass


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise _DuplicateKey(key)
        out[key] = value
    return out


# --------------------------------------------------------------------------------------------------- I/O
R = TypeVar("R", bound=Row)


def iter_jsonl(path: str | Path, cls: type[R]) -> Iterator[R]:
    """Rows of ``cls`` from a JSONL file, validated line by line."""
    path = Path(path)
    if not path.exists():
        raise RecordError(f"{path}: not found")
    with path.open("rb") as fh:
        yield from iter_jsonl_lines(fh, path, cls)


def json_lines(lines: Iterable[bytes], name: str | Path) -> Iterator[tuple[int, Any]]:
    """(line number, parsed object) of each non-blank line of a JSONL file called ``name`` in messages; a line
    that is not UTF-8, not JSON, or repeats a key fails with ``name:line: reason``."""
    for lineno, raw_line in enumerate(lines, start=1):
        where = f"{name}:{lineno}: "
        try:
            line = raw_line.decode("utf-8")
        except UnicodeDecodeError as e:
            raise RecordError(f"{where}not valid UTF-8 (byte {e.start + 1} of the line)") from None
        if not line.strip():
            continue
        try:
            yield lineno, json.loads(line.rstrip("\r\n"), object_pairs_hook=_unique_keys)
        except json.JSONDecodeError as e:
            raise RecordError(f"{where}invalid JSON — {e.msg} (column {e.colno})") from None
        except _DuplicateKey as e:
            raise RecordError(f'{where}key "{e.args[0]}" appears twice in one object — JSON readers keep only '
                              "one of them; keep one") from None


def iter_jsonl_lines(lines: Iterable[bytes], name: str | Path, cls: type[R], drop: tuple[str, ...] = ()
                     ) -> Iterator[R]:
    """Rows of ``cls`` from the raw lines of a JSONL file called ``name`` in messages (a file on disk, or one
    read from a past git revision through ``dvc.api``). Fields in ``drop`` (optional ones only) are left out
    unread: token ids are most of a large file and a reader that only shows text does not need them."""
    seen: dict[str, int] = {}
    for lineno, raw in json_lines(lines, name):
        where = f"{name}:{lineno}: "
        if drop and isinstance(raw, dict):
            for key in drop:
                raw.pop(key, None)
        row = cls.from_dict(raw, where)
        if cls.ID_FIELD:
            rid = getattr(row, cls.ID_FIELD)
            if rid in seen:
                raise RecordError(f'{where}duplicate {cls.ID_FIELD} "{rid}" (first on line {seen[rid]})')
            seen[rid] = lineno
        yield row  # type: ignore[misc]


def read_jsonl(path: str | Path, cls: type[R]) -> list[R]:
    rows = list(iter_jsonl(path, cls))
    if not rows:
        raise RecordError(f"{path}: no rows")
    return rows


_PENDING: list[tuple[str, Path]] | None = None  # inside together(): written files waiting to be renamed


@contextlib.contextmanager
def together() -> Iterator[None]:
    """The files written inside land together or not at all: each is written and synced to a temporary file
    beside its path, and only when every write has succeeded are they all renamed into place (a stage whose
    metrics folder cannot be written leaves no new data file either)."""
    global _PENDING
    outer, _PENDING = _PENDING, []
    pending = _PENDING
    try:
        yield
    except BaseException:
        for tmp, _ in pending:
            Path(tmp).unlink(missing_ok=True)
        raise
    finally:
        _PENDING = outer
    for tmp, path in pending:
        os.replace(tmp, path)


def check_writable(folder: str | Path) -> None:
    """Fail now, before any work, when files cannot be created in ``folder`` (or, if it does not exist yet, in
    the nearest folder above it); nothing is left behind. Tried for real: permissions, read-only mounts and a
    file in the way all show."""
    target = Path(folder)
    probe = target
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    try:
        if not probe.is_dir():
            raise NotADirectoryError(20, "a file is in the way of the folder", str(probe))
        with tempfile.TemporaryFile(dir=probe):
            pass
    except OSError as e:
        raise OutputError(f"{target}: cannot write there — {e.strerror or e} ({probe}); fix it before the stage "
                          "runs: nothing was done") from None


def _atomic_write(path: Path, write: typing.Callable[[typing.IO[str]], None]) -> None:
    """Write to a temporary file beside ``path``, fsync, rename: ``path`` is either the old file or the new one.

    A failing write (disk full, read-only file system, no permission) leaves no temporary file behind and is
    raised as a one-line :class:`OutputError`. Inside :func:`together` the rename waits for the others.
    """
    tmp: str | None = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            write(fh)
            fh.flush()
            os.fsync(fh.fileno())
        if _PENDING is not None:
            _PENDING.append((tmp, path))
            return
        os.replace(tmp, path)
    except BaseException as e:
        if tmp is not None:
            Path(tmp).unlink(missing_ok=True)
        if isinstance(e, OSError) and not isinstance(e, OutputError):
            raise OutputError.of(path, e) from None
        raise


def write_jsonl(path: str | Path, rows: Iterable[Row | dict[str, Any]]) -> int:
    """Write rows atomically; returns how many."""
    count = 0

    def write(fh: typing.IO[str]) -> None:
        nonlocal count
        for row in rows:
            data = row.to_dict() if isinstance(row, Row) else row
            fh.write(json.dumps(data, ensure_ascii=False) + "\n")
            count += 1

    _atomic_write(Path(path), write)
    return count


def write_json(path: str | Path, obj: Any) -> None:
    _atomic_write(Path(path), lambda fh: fh.write(json.dumps(obj, indent=2, ensure_ascii=False, sort_keys=True) + "\n"))


def read_json(path: str | Path) -> Any:
    return json.loads(Path(path).read_text(encoding="utf-8"))
