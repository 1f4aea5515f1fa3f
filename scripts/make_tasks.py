"""Write a built-in task set (train and held-out splits) from a spec file, so both are fixed before any run.

    python scripts/make_tasks.py data/tasks/arithmetic/spec.yaml      # -> train.jsonl, heldout.jsonl beside it
    python scripts/make_tasks.py --list                               # families and their difficulty knobs

A spec names groups, each a family with its difficulty knobs and split sizes::

    seed: 0
    groups:
      - {name: arithmetic-1digit, family: arithmetic, difficulty: {digits: 1}, train: 80, heldout: 64}

The held-out split of a group is drawn with a fixed seed (pipeline.tasks.HELDOUT_SEED) and never overlaps
its training split; the group's name becomes each task's ``family``, so evaluation reports it apart. The
files are what params `data.train_tasks` / `data.heldout_tasks` point at.

The instructions are the templates under prompts/tasks/ (one per family); the families' draws are in
pipeline/tasks/ (families.py, code.py). After an intended edit to either, run this again on each spec and
review `git diff data/tasks`: the committed splits are the prompts the models see.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from pipeline import records, tasks
from pipeline.errors import PipelineError


def task_row(task: tasks.Task, name: str) -> dict[str, Any]:
    """A task as a file row that pipeline.tasks.load_tasks reads back unchanged (inputs as top-level columns)."""
    row: dict[str, Any] = {"task_id": task.task_id, "family": name, "prompt": task.prompt, "answer": task.answer,
                           "verifier": task.verifier}
    if task.tests:
        row["tests"] = task.tests
    row.update(task.inputs)
    return row


def build(spec: dict[str, Any], where: str) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    train: list[dict[str, Any]] = []
    heldout: list[dict[str, Any]] = []
    seed = spec.get("seed", 0)
    for i, group in enumerate(spec.get("groups") or []):
        unknown = set(group) - {"name", "family", "difficulty", "train", "heldout"}
        if unknown:
            raise PipelineError(f"{where}: groups[{i}]: unknown key {min(unknown)!r} — known: name, family, "
                                "difficulty, train, heldout")
        name = group.get("name") or group["family"]
        tr, ho = tasks.train_and_heldout(group["family"], group.get("train", 0), group.get("heldout", 0), seed,
                                         group.get("difficulty"))
        train += [task_row(t, name) for t in tr]
        heldout += [task_row(t, name) for t in ho]
    if not train and not heldout:
        raise PipelineError(f"{where}: no groups with tasks")
    return train, heldout


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    parser.add_argument("spec", nargs="?", help="a spec YAML file; outputs are written beside it")
    parser.add_argument("--list", action="store_true", help="list the families and their knobs")
    args = parser.parse_args()
    if args.list or not args.spec:
        for fam in tasks.FAMILIES.values():
            print(f"{fam.name}: {fam.description}")
            for knob, k in fam.knobs.items():
                print(f"    {knob} (default {k.default!r}): {k.help}")
        return 0
    spec_path = Path(args.spec)
    try:
        train, heldout = build(yaml.safe_load(spec_path.read_text(encoding="utf-8")) or {}, str(spec_path))
    except (PipelineError, KeyError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    for name, rows in (("train.jsonl", train), ("heldout.jsonl", heldout)):
        records.write_jsonl(spec_path.parent / name, rows)
        print(f"{spec_path.parent / name}: {len(rows)} tasks")
    return 0


if __name__ == "__main__":
    sys.exit(main())
