"""The families by name (:data:`FAMILIES`) and the splits drawn from them.

:func:`generate_split` draws ``n`` tasks with distinct prompts; :func:`train_and_heldout` keeps a held-out split
fixed by its own seed and never repeats one of its prompts in the training split.
"""

from __future__ import annotations

import dataclasses
import difflib
import json
import random
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from pipeline.errors import ConfigError
from pipeline.records import stable_id
from pipeline.tasks import code, constraints, families
from pipeline.tasks.base import Knob, Task, is_int

# Every built-in family's difficulty knobs, by family.
KNOBS: dict[str, dict[str, Knob]] = {**families.KNOBS, **code.KNOBS, **constraints.KNOBS}


@dataclass(frozen=True)
class Family:
    """A task family: called as ``family(rng, difficulty)``; ``description`` is one line, ``knobs`` its knobs."""

    name: str
    make: Callable[[random.Random, Mapping[str, Any] | None], Task]
    description: str
    resolve: Callable[[str, Mapping[str, Any] | None], dict[str, Any]]  # difficulty over the defaults, checked

    @property
    def knobs(self) -> dict[str, Knob]:
        return KNOBS[self.name]

    def __call__(self, rng: random.Random, difficulty: Mapping[str, Any] | None = None) -> Task:
        return self.make(rng, difficulty)


_numeric = families.resolve_difficulty
FAMILIES: dict[str, Family] = {f.name: f for f in (
    Family("arithmetic", families.arithmetic,
           "a op b with one- or two-digit operands; the answer is the exact integer", _numeric),
    Family("multi_step", families.multi_step, "a short word problem with 2-3 steps (buys, gives away, doubles)",
           _numeric),
    Family("comparison", families.comparison, "the larger or smaller of two or three numbers", _numeric),
    Family("counting", families.counting, "occurrences of a letter in a word or of an item in a list", _numeric),
    Family("countdown", families.countdown,
           "reach a target with given numbers and + - *; the answer is an expression", _numeric),
    Family("python_function", code.python_function, "a small Python function checked by assert tests",
           code.resolve_difficulty),
    Family("constraints", constraints.constraints,
           "an open instruction plus 1-3 checkable constraints (IFEval's types); any response meeting them passes",
           constraints.resolve_difficulty),
)}


def get_family(name: str) -> Family:
    """The family called ``name``; an unknown name is a one-line ConfigError with a did-you-mean."""
    if name not in FAMILIES:
        near = difflib.get_close_matches(str(name), list(FAMILIES), n=1)
        hint = f'did you mean "{near[0]}"?' if near else "known: " + ", ".join(FAMILIES)
        raise ConfigError(f'unknown task family "{name}" — {hint}')
    return FAMILIES[name]


def resolve_difficulty(family: str, difficulty: Mapping[str, Any] | None) -> dict[str, Any]:
    """``difficulty`` over the family's defaults, every value checked; a bad one is a one-line ConfigError."""
    return FAMILIES[family].resolve(family, difficulty)


def generate_split(family: str, n: int, seed: int, difficulty: Mapping[str, Any] | None = None,
                   exclude: Iterable[str] = ()) -> list[Task]:
    """``n`` tasks of a family with distinct prompts, none of them in ``exclude`` (prompt texts).

    Draw ``k`` uses its own generator (seeded by family, seed and k), so a split of 100 is the first 100 of a
    split of 200 with the same seed. Ids come from family, seed, index and the resolved difficulty.
    """
    fam = get_family(family)
    d = resolve_difficulty(fam.name, difficulty)
    if not is_int(n) or n < 0:
        raise ConfigError(f"{fam.name}: the number of tasks must be an integer >= 0, got {n!r}")
    blocked = set(exclude)
    out: list[Task] = []
    attempts = max(1000, 20 * n)
    for k in range(attempts):
        if len(out) == n:
            break
        task = fam(random.Random(f"{fam.name}:{seed}:{k}"), d)
        if task.prompt in blocked:
            continue
        blocked.add(task.prompt)
        out.append(dataclasses.replace(task, task_id=stable_id(fam.name, seed, len(out), d)))
    if len(out) < n:
        raise ConfigError(f"{fam.name}: only {len(out)} distinct prompts in {attempts} draws with difficulty "
                          f"{json.dumps(d, sort_keys=True)}; ask for at most {len(out)} or raise the difficulty")
    return out


HELDOUT_SEED = 1_000_003


def train_and_heldout(family: str, n_train: int, n_heldout: int, seed: int,
                      difficulty: Mapping[str, Any] | None = None, heldout_seed: int = HELDOUT_SEED
                      ) -> tuple[list[Task], list[Task]]:
    """A training split drawn with ``seed`` and a held-out split fixed by ``heldout_seed`` (changing the
    training seed leaves it as it is, so evaluations stay comparable); no held-out prompt is trained on."""
    heldout = generate_split(family, n_heldout, heldout_seed, difficulty)
    train = generate_split(family, n_train, seed, difficulty, exclude={t.prompt for t in heldout})
    return train, heldout
