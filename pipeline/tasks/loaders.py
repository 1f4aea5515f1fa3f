"""Tasks from users' files: :func:`load_tasks`.

A JSONL, JSON, CSV, parquet file or a folder saved by ``datasets``' ``save_to_disk``, read with a ``fields``
mapping (nested paths like ``turns[0].content``); GSM8K (``#### 1,234`` → ``1234``), MBPP, HumanEval and
Countdown rows are recognized by their columns. Every task is checked when it is read (an answer its verifier
could never accept, code that does not parse, tests that call no function) and every bad row is one line:
``path:N: reason``. The file readers and paths are :mod:`pipeline.sources`', shared with the other data files;
the instructions made for MBPP and HumanEval rows, and the format line added to a prompt that asks for none,
are templates under ``prompts/tasks/``.
"""

from __future__ import annotations

import difflib
import json
import math
import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from pipeline import verifiable
from pipeline.errors import RecordError
from pipeline.records import stable_id
from pipeline.sources import MISSING, check_fields, kind_of, lookup, open_rows
from pipeline.tasks.base import VERIFIER_NAMES, Task, final_answer_line, is_int, render
from pipeline.tasks.families import countdown_prompt

# What a ``fields`` mapping may set: the Task's own fields, and the inputs some verifiers need.
MAPPABLE = ("prompt", "answer", "verifier", "tests", "task_id", "family", "entry_point", "numbers", "target",
            "prefix", "setup")
# Where the code formats keep each field, for messages about them.
_CODE_COLUMNS = {"humaneval": {"prompt": "prompt", "answer": "canonical_solution", "tests": "test",
                               "prefix": "prompt", "entry_point": "entry_point"},
                 "mbpp": {"prompt": "text", "answer": "code", "tests": "test_list", "setup": "test_setup_code"}}


def _detect(keys: Iterable[str]) -> str:
    keys = set(keys)
    if {"prompt", "canonical_solution", "test"} <= keys:  # entry_point missing: said by the reader
        return "humaneval"
    if {"text", "code", "test_list"} <= keys:
        return "mbpp"
    if "target" in keys and ({"nums", "numbers"} & keys) and "prompt" not in keys:
        return "countdown"
    if {"question", "answer"} <= keys and "prompt" not in keys:
        return "gsm8k"
    return "generic"


class _Row:
    """One source row, with the mapping that reads Task fields out of it and the errors it raises."""

    def __init__(self, where: str, raw: dict[str, Any], mapping: dict[str, str]):
        self.where, self.raw, self.mapping = where, raw, mapping

    def fail(self, reason: str) -> RecordError:
        return RecordError(f"{self.where}{reason}")

    def get(self, target: str, path: str | None = None, required: bool = True) -> Any:
        """The value at ``path`` (by default the one mapped to ``target``); ``MISSING`` if absent and optional."""
        path = path or self.mapping.get(target, target)
        value, why = lookup(self.raw, path)
        if value is MISSING:
            if why == "" and target not in self.mapping:  # read by its default name: say how to point elsewhere
                why = (f'name its column with fields, e.g. {{"{target}": "<column>"}}; the row has '
                       + ", ".join(map(str, self.raw)))
            return self._absent(path, target, required, why or "")
        if value is None or (isinstance(value, float) and math.isnan(value)) or (isinstance(value, str)
                                                                                  and not value.strip()):
            if required:
                raise self.fail(f'field "{path}" (mapped to {target}) is empty')
            return MISSING
        return value

    def _absent(self, path: str, target: str, required: bool, why: str) -> Any:
        if required:
            raise self.fail(f'field "{path}" (mapped to {target}) missing' + (f" — {why}" if why else ""))
        return MISSING

    def text(self, target: str, path: str | None = None) -> str:
        value = self.get(target, path)
        if not isinstance(value, str):
            raise self.fail(f'field "{path or self.mapping.get(target, target)}" (mapped to {target}) must be '
                            f"text, got {json.dumps(value, default=str)[:40]}")
        return value


_BARE_ANSWER = re.compile(r"[-+]?\$?\d[\d,]*(?:\.\d+)?%?")


def _answer_text(row: _Row, value: Any, path: str, gsm8k: bool = False) -> str:
    if isinstance(value, bool) or not isinstance(value, (str, int, float)) or (isinstance(value, float)
                                                                               and not math.isfinite(value)):
        raise row.fail(f'field "{path}" (mapped to answer) must be text or a number, got '
                       f"{json.dumps(value, default=str)[:40]}")
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    text = str(value).strip()
    if "####" in text:  # GSM8K: the worked solution, then "#### 1,234"
        text = text.rsplit("####", 1)[1].strip().replace(",", "")
        if not text:
            raise row.fail(f'field "{path}" (mapped to answer) has "####" but no answer after it')
    elif gsm8k and not _BARE_ANSWER.fullmatch(text):
        raise row.fail(f'field "{path}" (mapped to answer) has no "#### <answer>" line — a GSM8K answer is the '
                       "worked solution, then \"#### 1,234\"; without it the whole solution would be the answer")
    return text


def _tests(row: _Row, value: Any, path: str) -> list[str]:
    if isinstance(value, str) and value.lstrip().startswith("["):
        try:
            value = json.loads(value)
        except json.JSONDecodeError:
            pass
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, (list, tuple)) or not value or not all(isinstance(t, str) and t.strip() for t in value):
        raise row.fail(f'field "{path}" (mapped to tests) must be a non-empty list of test strings')
    return list(value)


def _check_verifier(name: Any, where: str, what: str) -> str:
    if name not in VERIFIER_NAMES:
        near = difflib.get_close_matches(str(name), VERIFIER_NAMES, n=1)
        hint = f'did you mean "{near[0]}"?' if near else "known: " + ", ".join(VERIFIER_NAMES)
        raise RecordError(f'{where}unknown verifier "{name}"{what} — {hint}')
    return name


def _paths(row: _Row, fmt: str) -> dict[str, str]:
    """Where each Task field is read from in this row: the format's columns, overridden by ``fields``."""
    raw = row.raw
    paths: dict[str, str] = {}
    if fmt == "generic":
        paths = {"prompt": "prompt", "answer": "answer"}
        paths.update({k: k for k in MAPPABLE if k in raw and k not in paths})
    elif fmt == "gsm8k":
        paths = {"prompt": "question", "answer": "answer"}
    elif fmt == "countdown":
        paths = {"numbers": "nums" if "nums" in raw else "numbers", "target": "target"}
        paths.update({k: k for k in ("prompt", "answer", "task_id") if k in raw})
    return {**paths, **row.mapping}


def _code_format(row: _Row, fmt: str) -> dict[str, Any]:
    """MBPP's and HumanEval's tasks, built from several columns each."""
    if fmt == "humaneval":
        entry = row.text("entry_point")
        code = row.text("prompt", "prompt")
        # The harness runs prompt + completion + test + check(entry_point): the prompt's imports and helpers
        # are part of the program (rewards.code_program), not only of the question.
        out = {"prompt": render("tasks/humaneval.j2", code=code.rstrip()),
               "answer": code + row.text("answer", "canonical_solution"), "verifier": "python_tests",
               "tests": [row.text("tests", "test") + f"\ncheck({entry})"], "family": "humaneval",
               "inputs": {"entry_point": entry, "prefix": code}}
        task_id = row.get("task_id", "task_id", required=False)
    else:
        asserts = _tests(row, row.get("tests", "test_list"), "test_list")
        setup = row.get("setup", "test_setup_code", required=False)
        code = row.text("answer", "code")
        # The function to write is the one the solution defines and the tests call.
        defined = re.findall(r"^def\s+(\w+)\s*\(", code, re.MULTILINE)
        called = [name for name in defined if any(re.search(rf"\b{name}\s*\(", t) for t in asserts)]
        inputs: dict[str, Any] = {"entry_point": called[0]} if called else {}
        if setup is not MISSING:
            if not isinstance(setup, str):
                raise row.fail('field "test_setup_code" (mapped to setup) must be text')
            inputs["setup"] = setup  # run after the code, before the tests, as MBPP's harness does
        out = {"prompt": render("tasks/mbpp.j2", text=row.text("prompt", "text"), tests=asserts),
               "answer": code, "verifier": "python_tests", "family": "mbpp", "tests": asserts, "inputs": inputs}
        task_id = row.get("task_id", "task_id", required=False)
        task_id = task_id if task_id is MISSING else f"mbpp-{task_id}"
    if task_id is not MISSING:
        out["task_id"] = str(task_id)
    return out


def _build(row: _Row, fmt: str, family_name: str, default_verifier: str, format_line: bool) -> dict[str, Any]:
    """The Task fields of one row: the format's own reading, then whatever ``fields`` maps explicitly."""
    out: dict[str, Any] = {"family": family_name, "tests": [], "inputs": {}}
    if fmt in ("mbpp", "humaneval"):
        out.update(_code_format(row, fmt))
    elif fmt in ("countdown", "gsm8k"):
        out.update(family=fmt, **({"verifier": "countdown"} if fmt == "countdown" else {}))
    paths = _paths(row, fmt)
    if "verifier" in paths:
        out["verifier"] = _check_verifier(row.get("verifier", paths["verifier"]), row.where, "")
    verifier = out.setdefault("verifier", default_verifier)
    for target, path in paths.items():
        if target == "verifier":
            continue
        if (verifier == "countdown" and target in ("prompt", "answer") and target not in row.mapping
                and row.get(target, path, required=False) is MISSING):
            continue  # the prompt is built from the numbers and target; any expression reaching it will do
        if target in ("prefix", "setup") and target not in row.mapping and verifier != "python_tests":
            continue  # a column of that name in a file of other tasks is not code
        value = row.get(target, path)
        if target == "prompt":
            out["prompt"] = row.text(target, path)
        elif target == "answer":
            gsm8k = fmt == "gsm8k" and "answer" not in row.mapping and verifier == "numeric"
            out["answer"] = _answer_text(row, value, path, gsm8k=gsm8k)
        elif target in ("prefix", "setup"):
            out["inputs"][target] = row.text(target, path)
        elif target == "tests":
            out["tests"] = _tests(row, value, path)
        elif target in ("task_id", "family"):
            if not isinstance(value, (str, int)) or isinstance(value, bool):
                raise row.fail(f'field "{path}" (mapped to {target}) must be text or an integer')
            out[target] = str(value)
        elif target == "entry_point":
            out["inputs"]["entry_point"] = row.text(target, path)
        elif target == "numbers":
            if not isinstance(value, (list, tuple)) or not value or not all(is_int(v) for v in value):
                raise row.fail(f'field "{path}" (mapped to numbers) must be a non-empty list of integers, got '
                               f"{json.dumps(value, default=str)[:40]}")
            out["inputs"]["numbers"] = list(value)
        elif target == "target":
            if not is_int(value):
                raise row.fail(f'field "{path}" (mapped to target) must be an integer, got '
                               f"{json.dumps(value, default=str)[:40]}")
            out["inputs"]["target"] = value
    if verifier == "countdown":
        for need in ("numbers", "target"):
            if need not in out["inputs"]:
                raise row.fail(f'verifier "countdown" needs {need} — map them with fields: '
                               "{numbers: <column>, target: <column>}")
        out.setdefault("prompt", countdown_prompt(out["inputs"]["numbers"], out["inputs"]["target"]))
        out.setdefault("answer", "")
    if verifier == "python_tests" and not out["tests"]:
        raise row.fail('verifier "python_tests" needs tests — map them with fields: {tests: <column>}')
    problem = verifiable.task_problem(verifier, out.get("answer"), out["tests"], out["inputs"])
    if problem is not None:
        target, reason = problem
        path = {**_CODE_COLUMNS.get(fmt, {}), **paths}.get(target, target)
        raise row.fail(f'field "{path}" (mapped to {target}) {reason}')
    if format_line and verifier != "python_tests" and "final answer" not in out["prompt"].lower():
        line = final_answer_line({"countdown": "expression", "numeric": "number"}.get(verifier, "answer"))
        out["prompt"] = f"{out['prompt'].rstrip()}\n{line}"
    return out


def load_tasks(path: str | Path, fields: Mapping[str, str] | None = None, default_verifier: str = "numeric",
               format_line: bool = True) -> list[Task]:
    """Tasks from a user's JSONL, JSON (an array of objects), CSV, parquet file or ``save_to_disk`` folder.

    ``fields`` maps a Task field (:data:`MAPPABLE`) to where it is in a row: ``{"prompt": "question"}``,
    ``{"answer": "meta.answer"}``, ``{"prompt": "turns[0].content"}``. Without a mapping, ``prompt`` and
    ``answer`` are read from columns of those names, and these formats are recognized by their columns:
    GSM8K (``question``, ``answer`` ending in ``#### N``: the answer is N without commas), MBPP (``text``,
    ``code``, ``test_list``), HumanEval (``prompt``, ``canonical_solution``, ``test``, ``entry_point``) and
    Countdown (``nums``/``numbers``, ``target``). A mapping overrides the format's reading field by field.
    Non-code prompts get the ``Final answer:`` line the built-in families ask for, unless they mention one or
    ``format_line`` is False. Every bad row fails with one line, ``path:N: reason``.
    """
    path = Path(path)
    _check_verifier(default_verifier, f"{path}: ", " (default_verifier)")
    mapping = check_fields(path, fields, MAPPABLE, "task field")
    rows = open_rows(path, item="task")
    family_name = path.stem if not path.is_dir() else path.name
    tasks: list[Task] = []
    seen: dict[str, int] = {}
    fmt: str | None = None
    for number, raw in rows.rows:
        where = f"{path}:{number}: "
        if not isinstance(raw, dict):
            raise RecordError(f"{where}expected an object (a mapping of fields), got {kind_of(raw)}")
        fmt = fmt or _detect(raw)
        row = _Row(where, raw, mapping)
        built = _build(row, fmt, family_name, default_verifier, format_line)
        task_id = built.get("task_id") or stable_id(built["family"], number, built["prompt"])
        if task_id in seen:
            raise RecordError(f'{where}duplicate task_id "{task_id}" (first at {rows.unit} {seen[task_id]})')
        seen[task_id] = number
        tasks.append(Task(task_id=task_id, family=built["family"], prompt=built["prompt"], answer=built["answer"],
                          verifier=built["verifier"], tests=built["tests"], inputs=built["inputs"],
                          source=f"{path}:{number}"))
    if not tasks:
        raise RecordError(f"{path}: no rows")
    return tasks
