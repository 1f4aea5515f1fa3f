"""What every task shares: the :class:`Task` row, difficulty knobs and their checks, and the instruction text.

A task's instruction is a jinja template under ``prompts/tasks/`` (``tasks/arithmetic.j2``), rendered by
:func:`render` through :mod:`pipeline.templates`' environment (``StrictUndefined``: a missing variable is an
error). The draws stay in Python: a template only writes out what the generator drew, so the same seed gives
the same task whatever the template says.
"""

from __future__ import annotations

import dataclasses
import difflib
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from pipeline import templates, verifiable
from pipeline.errors import ConfigError
from pipeline.records import stable_id

# The verifiers a task may name (pipeline.verifiable's answer checks, countdown and python_tests).
VERIFIER_NAMES: tuple[str, ...] = verifiable.VERIFIER_NAMES


@dataclass(frozen=True)
class Task:
    """One problem with a known answer.

    ``inputs`` holds what a verifier needs besides the answer: ``numbers`` and ``target`` (countdown),
    ``entry_point``, ``prefix`` (code run before the answer: HumanEval's prompt) and ``setup`` (code run after it,
    before the tests: MBPP's ``test_setup_code``). ``source`` says where it came from: ``builtin`` or
    ``path:line``.
    """

    task_id: str
    family: str
    prompt: str
    answer: str
    verifier: str
    tests: list[str] = field(default_factory=list)
    difficulty: dict[str, Any] = field(default_factory=dict)
    inputs: dict[str, Any] = field(default_factory=dict)
    source: str = "builtin"

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def render(name: str, /, **variables: Any) -> str:
    """The instruction ``prompts/<name>`` (``tasks/arithmetic.j2``) writes with ``variables``, exactly as written.

    Unlike :func:`pipeline.templates.render`, outer whitespace is kept: a user's text at either end of an
    instruction (MBPP's question) stays as the user wrote it.
    """
    return templates.environment().get_template(name).render(**variables)


def final_answer_line(what: str) -> str:
    """The line that asks for the answer format: ``End your reply with a line of the form "Final answer: <what>".``"""
    return render("tasks/final_answer.j2", what=what)


def make_task(family: str, prompt: str, answer: Any, verifier: str, difficulty: dict[str, Any], *,
              tests: list[str] | None = None, inputs: dict[str, Any] | None = None) -> Task:
    """A built-in task, its id derived from family, prompt and answer (:func:`generate_split` renumbers it)."""
    return Task(task_id=stable_id(family, prompt, str(answer)), family=family, prompt=prompt, answer=str(answer),
                verifier=verifier, tests=list(tests or []), difficulty=dict(difficulty), inputs=dict(inputs or {}))


# --------------------------------------------------------------------------------------------- knobs
@dataclass(frozen=True)
class Knob:
    """One difficulty knob of a family: its default, one line of help, and a check that says what is wrong."""

    default: Any
    help: str
    check: Callable[[Any], str | None]


def is_int(v: Any) -> bool:
    """An int that is not a bool (JSON and YAML ``true`` must not pass as 1)."""
    return isinstance(v, int) and not isinstance(v, bool)


def int_in(lo: int, hi: int) -> Callable[[Any], str | None]:
    """A knob check: an integer from ``lo`` to ``hi``."""
    return lambda v: None if is_int(v) and lo <= v <= hi else f"must be an integer from {lo} to {hi}"


def boolean(v: Any) -> str | None:
    """A knob check: true or false."""
    return None if isinstance(v, bool) else "must be true or false"


def subset(allowed: tuple[str, ...]) -> Callable[[Any], str | None]:
    """A knob check: a non-empty list drawn from ``allowed``."""
    def check(v: Any) -> str | None:
        if not isinstance(v, list) or not v or any(x not in allowed for x in v):
            return "must be a non-empty list of " + ", ".join(json.dumps(a) for a in allowed)
        return None

    return check


def check_knobs(family: str, knobs: Mapping[str, Knob], difficulty: Mapping[str, Any] | None) -> dict[str, Any]:
    """``difficulty`` over the knobs' defaults, every value checked; a bad one is a one-line ConfigError (an
    unknown knob with a did-you-mean). Checks between knobs are the family's own (its ``resolve_difficulty``)."""
    difficulty = dict(difficulty or {})
    for key in difficulty:
        if key not in knobs:
            near = difflib.get_close_matches(str(key), list(knobs), n=1)
            hint = f'did you mean "{near[0]}"?' if near else "known: " + ", ".join(knobs)
            raise ConfigError(f'{family} difficulty: unknown knob "{key}" — {hint}')
    out = {k: knob.default for k, knob in knobs.items()}
    out.update(difficulty)
    for key, knob in knobs.items():
        problem = knob.check(out[key])
        if problem:
            raise ConfigError(f'{family} difficulty "{key}": {problem}, got {json.dumps(out[key])}')
    return out
