"""Reading the params ``data`` sources (apart from _common, so that only the stages that read them depend on the
readers), and keeping dvc.yaml's data deps in step with them.

A role (``data.train_tasks``) is one source or a list of them. DVC cannot template a list into ``deps``, so
dvc.yaml names each path by its params key: ``${data.train_tasks.path}`` for a mapping, ``${data.train_tasks[0].path}``,
``${data.train_tasks[1].path}`` ... for a list. Every dep stays exact (an edit to one file re-runs exactly the
stages that read it, ``dvc exp run -S`` still works); only the number of entries follows params.yaml, and this
module writes and checks it:

    python -m stages._data            # how dvc.yaml's data deps differ from params.yaml's data: section
    python -m stages._data --check    # the same, exit 1 on any difference
    python -m stages._data --write    # rewrite them to match (comments and everything else kept)

Under DVC (``DVC_STAGE`` set) a stage also refuses to read a source that its dvc.yaml entry does not declare.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import re
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any, TypeVar

import yaml

from pipeline import models, records, sources, tasks
from pipeline.config import DataSource, DataSources, load_params
from pipeline.errors import PipelineError, RecordError, StageError

R = TypeVar("R", bound=records.Row)

# The columns of the task formats pipeline.tasks recognizes, beside what a mapping may name (for check_header).
TASK_COLUMNS = (*tasks.MAPPABLE, "question", "text", "code", "test_list", "test_setup_code", "canonical_solution",
                "test", "nums")


def _what(role: DataSources) -> str:
    return f"data.{role.role}'s sources" if role.role else "the sources"


def read(role: DataSources, cls: type[R]) -> list[R]:
    """Rows of a params ``data`` role, validated (``path:line: reason``), each source with its own mapping; ids
    unique across the sources."""
    check_declared(role)
    return sources.read_sources([sources.Source(s.path, s.fields) for s in role], cls, _what(role))


def read_tasks(role: DataSources) -> list[tasks.Task]:
    """Tasks with known answers from a params ``data`` role (GSM8K, MBPP, HumanEval recognized file by file);
    task ids unique across the sources."""
    check_declared(role)
    out: list[tasks.Task] = []
    first: dict[str, str] = {}
    for s in role:
        if Path(s.path).suffix.lower() == ".csv" and Path(s.path).is_file():
            known = {*TASK_COLUMNS, *sources.mapped_columns(sources.check_fields(s.path, s.fields, tasks.MAPPABLE,
                                                                                   "task field"))}
            sources.check_header(sources.open_rows(s.path), known, ("prompt", "answer"))
        for task in tasks.load_tasks(s.path, s.fields or None):
            if task.task_id in first:  # load_tasks has checked within one file: this one is in another
                raise RecordError(f'{task.source}: duplicate task_id "{task.task_id}" (first at '
                                  f"{first[task.task_id]}) — task ids must be unique across {_what(role)}")
            first[task.task_id] = task.source
            out.append(task)
    return out


def read_constraint_tasks(role: DataSources) -> list[tasks.Task]:
    """Open instructions with checkable constraints (:func:`read_tasks`; IFEval's format or the built-in
    ``constraints`` family): every row must be a constraints task, else one line names it."""
    out = read_tasks(role)
    for t in out:
        if t.verifier != "constraints":
            raise RecordError(f'{t.source}: task "{t.task_id}" has verifier "{t.verifier}", not constraints — '
                              f"{_what(role)} hold instructions with instruction_id_list and kwargs (IFEval's format)")
    return out


def _digest_one(source: DataSource) -> str:
    path = Path(source.path)
    if not path.is_dir():
        return models.sha256_file(path)
    h = hashlib.sha256()
    for f in sorted(p for p in path.rglob("*") if p.is_file()):
        h.update(f"{f.relative_to(path)}\0{models.sha256_file(f)}\n".encode())
    return h.hexdigest()


def digest(role: DataSources) -> str:
    """sha256 of a role's source file, or of a saved dataset folder's files (names and contents, in order); of
    several sources, the sha256 of their paths and digests in order."""
    if len(role) == 1:
        return _digest_one(role[0])
    return hashlib.sha256("".join(f"{s.path}\0{_digest_one(s)}\n" for s in role).encode()).hexdigest()


# --------------------------------------------------------------------------------------------- dvc.yaml deps
DEP = re.compile(r"\$\{data\.(\w+)(?:\[(\d+)\])?\.path\}")
_DEP_LINE = re.compile(r"^(\s*-\s+)" + DEP.pattern + r"\s*(#.*)?$")


def dvc_deps(role: DataSources) -> list[str]:
    """What dvc.yaml declares for a role: ``${data.<role>.path}``, or one ``${data.<role>[i].path}`` per item."""
    return ["${" + key + ".path}" for key in role.param_keys()]


def _stages(dvc: dict[str, Any]) -> Iterable[tuple[str, dict[str, Any]]]:
    for name, stage in (dvc.get("stages") or {}).items():
        yield name, (stage.get("do") or {}) if "foreach" in stage or "matrix" in stage else stage


def dvc_problems(dvc_text: str, data: Any) -> list[str]:
    """How dvc.yaml's data deps differ from the params ``data`` section (a :class:`pipeline.config.DataConfig`):
    per stage, each role it lists under ``params`` must be declared as :func:`dvc_deps` says, and no other."""
    problems = []
    for name, stage in _stages(yaml.safe_load(dvc_text) or {}):
        deps = [d for d in stage.get("deps") or [] if isinstance(d, str)]
        declared = {m.group(1) for d in deps for m in [DEP.fullmatch(d)] if m}
        listed = {p.split(".", 1)[1] for p in stage.get("params") or [] if isinstance(p, str)
                  and p.startswith("data.")}
        for role in sorted(declared | listed):
            if not hasattr(data, role):
                problems.append(f"{name}: {role} is no data role")
                continue
            want = dvc_deps(getattr(data, role)) if role in listed else []
            have = [d for d in deps if (m := DEP.fullmatch(d)) and m.group(1) == role]
            if have != want:
                problems.append(f"{name}: declares {', '.join(have) or 'nothing'} for data.{role}, which needs "
                                f"{', '.join(want) or 'nothing (not in its params)'}")
    return problems


def write_dvc_deps(dvc_text: str, data: Any) -> str:
    """dvc.yaml's text with each run of a role's data-dep lines replaced by :func:`dvc_deps`; all else kept."""
    out: list[str] = []
    run: str | None = None  # the role whose lines are being replaced
    for line in dvc_text.splitlines(keepends=True):
        m = _DEP_LINE.match(line.rstrip("\n"))
        if not m or not hasattr(data, m.group(2)):
            run = None
            out.append(line)
            continue
        if m.group(2) != run:
            run = m.group(2)
            out += [f"{m.group(1)}{dep}\n" for dep in dvc_deps(getattr(data, run))]
    return "".join(out)


def check_declared(role: DataSources) -> None:
    """Under ``dvc repro`` (DVC sets DVC_STAGE and DVC_ROOT): every source of ``role`` must be a dep of the
    running stage, else an edit to that file would not re-run it. A list that grew past dvc.yaml's entries is the
    case DVC itself cannot see."""
    stage, root = os.environ.get("DVC_STAGE", ""), os.environ.get("DVC_ROOT", "")
    dvc_file = Path(root) / "dvc.yaml"
    if not stage or ":" in stage or not role.role or not dvc_file.is_file():
        return  # run by hand, or a stage of another dvc.yaml
    found = dict(_stages(yaml.safe_load(dvc_file.read_text(encoding="utf-8")) or {})).get(stage.split("@")[0])
    deps = [d for d in (found or {}).get("deps") or [] if isinstance(d, str)]
    for key, dep, source in zip(role.param_keys(), dvc_deps(role), role):
        path = Path(source.path)
        if dep in deps or any(not DEP.search(d) and (path == Path(d) or Path(d) in path.parents) for d in deps):
            continue
        raise StageError(f"dvc.yaml: stage {stage} does not declare {key}.path ({source.path}) as a dep — run "
                         "`python -m stages._data --write` to match dvc.yaml's data deps to params.yaml")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m stages._data", description="dvc.yaml's data deps versus params.")
    ap.add_argument("--params", default="params.yaml", help="The params file whose data: section is the truth.")
    ap.add_argument("--dvc", default="dvc.yaml", help="The dvc.yaml to check or rewrite.")
    ap.add_argument("--write", action="store_true", help="Rewrite the data deps to match.")
    ap.add_argument("--check", action="store_true", help="Exit 1 when they do not match (after --write: again).")
    args = ap.parse_args(argv)
    try:
        data = load_params(args.params).data
        dvc = Path(args.dvc)
        text = dvc.read_text(encoding="utf-8")
        if args.write:
            text = write_dvc_deps(text, data)
            dvc.write_text(text, encoding="utf-8")
    except (PipelineError, OSError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    problems = dvc_problems(text, data)
    for p in problems:
        print(f"{args.dvc}: {p}")
    if not problems:
        print(f"{args.dvc}: data deps match {args.params}")
    return 1 if problems and args.check else 0


if __name__ == "__main__":
    sys.exit(main())
