"""Tasks from users' files: :func:`load_tasks`.

A JSONL, JSON, CSV, parquet file or a folder saved by ``datasets``' ``save_to_disk``, read with a ``fields``
mapping (nested paths like ``turns[0].content``); GSM8K (``#### 1,234`` → ``1234``), MBPP, HumanEval,
Countdown and IFEval (``instruction_id_list``, ``kwargs``: the constraints verifier) rows are recognized by their
columns. Every task is checked when it is read (an answer its verifier could never accept, code that does not
parse, tests that call no function, constraints no response can satisfy) and every bad row is one line:
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

# IFEval's own columns beside ``prompt`` (google/IFEval, IFBench, and users' files in that format): the instruction
# ids, one kwargs object per id, and the row's ``key``.
CONSTRAINT_COLUMNS = ("instruction_id_list", "kwargs", "key")
# What a ``fields`` mapping may set: the Task's own fields, and the inputs some verifiers need.
MAPPABLE = ("prompt", "answer", "verifier", "tests", "task_id", "family", "entry_point", "numbers", "target",
            "prefix", "setup", *CONSTRAINT_COLUMNS)
# The family of IFEval-format rows without a family column, like "gsm8k" or "mbpp": the format, not the file name
# (HF's copy is train-00000-of-00001.parquet, the paper's input_data.jsonl).
CONSTRAINT_FAMILY = "ifeval"
# Where the code formats keep each field, for messages about them.
_CODE_COLUMNS = {"humaneval": {"prompt": "prompt", "answer": "canonical_solution", "tests": "test",
                               "prefix": "prompt", "entry_point": "entry_point"},
                 "mbpp": {"prompt": "text", "answer": "code", "tests": "test_list", "setup": "test_setup_code"}}


def _detect(keys: Iterable[str], mapping: Mapping[str, str]) -> str:
    keys = set(keys)
    if "instruction_id_list" in keys or set(CONSTRAINT_COLUMNS) & set(mapping):
        return "ifeval"
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
        paths.update({k: k for k in MAPPABLE if k in raw and k not in paths and k not in CONSTRAINT_COLUMNS})
    elif fmt == "ifeval":
        paths = {"prompt": "prompt", "instruction_id_list": "instruction_id_list", "kwargs": "kwargs"}
        paths.update({k: k for k in ("key", "task_id", "family", "verifier") if k in raw})
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


# --------------------------------------------------------------------------------------------- IFEval's format
_IDS_EXAMPLE = '["punctuation:no_comma", "length_constraints:number_words"]'
_KWARGS_EXAMPLE = '[{}, {"num_words": 50, "relation": "at least"}]'


def _field(target: str, paths: Mapping[str, str]) -> str:
    """How messages name a field: ``field "<column>" (mapped to <target>)``, as the other formats do."""
    return f'field "{paths.get(target, target)}" (mapped to {target})'


def _listed(row: _Row, target: str, paths: Mapping[str, str], example: str) -> Any:
    """The list in a field; text holding a JSON array (a CSV cell, a file that stores it as a string) is parsed."""
    value = row.get(target, paths[target])
    if isinstance(value, str) and value.lstrip()[:1] in ("[", "{"):
        try:
            value = json.loads(value)
        except json.JSONDecodeError as e:
            raise row.fail(f"{_field(target, paths)} is not valid JSON — {e.msg} (character {e.pos + 1}); "
                           f"write it as a JSON array, e.g. {example}") from None
    if isinstance(value, tuple):
        value = list(value)
    return value


def _plain(value: Any) -> Any:
    """A kwargs value as IFEval's checkers take it: NaN (pandas' missing number) is None, and 3.0 is 3 (a column
    of integers with gaps that went through floats)."""
    if isinstance(value, float):
        return None if math.isnan(value) else int(value) if value.is_integer() else value
    return value


def _constraint_task(row: _Row, paths: Mapping[str, str]) -> dict[str, Any]:
    """An IFEval-format row (``prompt``, ``instruction_id_list``, ``kwargs``, optional ``key``): an open instruction
    checked by the constraints verifier against each instruction and its arguments.

    Every kwargs object is cleaned (:func:`pipeline.constraints.spec.clean_kwargs`: HF's rows carry every argument
    of every type, most null) and checked against its instruction, and the instructions against each other, so a
    row no response could satisfy stops here, before any model loads. The task id is ``<family>-<key>`` when the
    row has a key (the same in every format the file is read from), else derived from position and prompt.
    """
    from pipeline.constraints import spec

    out: dict[str, Any] = {"family": CONSTRAINT_FAMILY, "answer": "", "verifier": "constraints", "tests": []}
    if "verifier" in paths:
        named = row.get("verifier", paths["verifier"], required=False)
        if named is not MISSING and named != "constraints":
            raise row.fail(f"{_field('verifier', paths)} is {json.dumps(named, default=str)[:40]}, but a row "
                           'with instruction_id_list is checked against its constraints — set it to "constraints" '
                           "or drop the column")
    out["prompt"] = row.text("prompt", paths["prompt"])
    ids = _listed(row, "instruction_id_list", paths, _IDS_EXAMPLE)
    if not isinstance(ids, list) or not ids or not all(isinstance(i, str) and i.strip() for i in ids):
        raise row.fail(f"{_field('instruction_id_list', paths)} must be a non-empty list of instruction ids, "
                       f"e.g. {_IDS_EXAMPLE}; got {json.dumps(ids, default=str)[:60]}")
    for n, name in enumerate(ids, start=1):
        if name not in spec.INSTRUCTION_IDS:  # its arguments aside, the spec says so with the nearest id
            raise row.fail(f"{_field('instruction_id_list', paths)} item {n}: {spec.kwargs_problem(name, {})}")
    given = _listed(row, "kwargs", paths, _KWARGS_EXAMPLE)
    if not isinstance(given, list):
        raise row.fail(f"{_field('kwargs', paths)} must be a list of objects, one per instruction ({{}} where one "
                       f"takes no arguments), e.g. {_KWARGS_EXAMPLE}; got {json.dumps(given, default=str)[:60]}")
    if len(given) != len(ids):
        raise row.fail(f"{_field('kwargs', paths)} has {len(given)} object{'s' * (len(given) != 1)} for "
                       f"{len(ids)} instruction{'s' * (len(ids) != 1)} in {paths['instruction_id_list']} — give one "
                       "per instruction, in the same order, {} where one takes no arguments")
    kwargs: list[dict[str, Any]] = []
    for n, (name, k) in enumerate(zip(ids, given), start=1):
        if k is None:  # a null struct: the instruction takes no arguments
            k = {}
        if not isinstance(k, dict):
            raise row.fail(f"{_field('kwargs', paths)} item {n} ({name}) must be an object of its arguments "
                           f"({{}} for none), got {json.dumps(k, default=str)[:40]}")
        cleaned = spec.clean_kwargs({str(key): _plain(v) for key, v in k.items()})
        problem = spec.kwargs_problem(name, cleaned)
        if problem:
            raise row.fail(f"{_field('kwargs', paths)} item {n} ({name}): {problem}")
        kwargs.append(cleaned)
    problem = spec.conflict(ids, kwargs)
    if problem:
        raise row.fail(f"{_field('instruction_id_list', paths)} cannot all be satisfied by one response: "
                       f"{problem}")
    out["inputs"] = {"instruction_id_list": list(ids), "kwargs": kwargs}
    problem = verifiable.task_problem("constraints", "", [], out["inputs"])  # the verify stage's own check
    if problem is not None:
        raise row.fail(f"{_field(problem[0], paths)} {problem[1]}")
    for target in ("family", "task_id"):
        if target in paths:
            value = row.get(target, paths[target], required=False)
            if value is not MISSING:
                out[target] = _name(row, value, target, paths[target])
    key = row.get("key", paths["key"], required=False) if "key" in paths else MISSING
    if key is not MISSING:
        key = _plain(key)
        if isinstance(key, bool) or not isinstance(key, (int, str)):
            raise row.fail(f"{_field('key', paths)} must be an integer or text, got "
                           f"{json.dumps(key, default=str)[:40]}")
        out["key"] = str(key).strip()
        out.setdefault("task_id", f"{out['family']}-{out['key']}")
    return out


def _name(row: _Row, value: Any, target: str, path: str) -> str:
    """A task id or family: text or an integer (written as text)."""
    if not isinstance(value, (str, int)) or isinstance(value, bool):
        raise row.fail(f'field "{path}" (mapped to {target}) must be text or an integer')
    return str(value)


def _build(row: _Row, fmt: str, family_name: str, default_verifier: str, format_line: bool) -> dict[str, Any]:
    """The Task fields of one row: the format's own reading, then whatever ``fields`` maps explicitly."""
    if fmt == "ifeval":
        return _constraint_task(row, _paths(row, fmt))
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
            out[target] = _name(row, value, target, path)
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

    IFEval's format (google/IFEval, IFBench, a user's own file: ``prompt``, ``instruction_id_list``, ``kwargs``
    aligned with the ids, optional ``key``; recognized by ``instruction_id_list``, or by a mapping of any of
    :data:`CONSTRAINT_COLUMNS`) gives tasks for the ``constraints`` verifier: ``answer`` "", ``inputs``
    ``{"instruction_id_list": [...], "kwargs": [...]}`` with each kwargs object's nulls dropped (HF's rows carry
    every argument, most null), family ``ifeval`` (a ``family`` column overrides it) and task id
    ``ifeval-<key>``; in a CSV file both lists are JSON text. An unknown id (with a did-you-mean), kwargs of the
    wrong type or missing an argument, lists of different lengths, instructions no response can satisfy
    together, an empty prompt and a duplicate key are each one line naming the row.

    Non-code prompts get the ``Final answer:`` line the built-in families ask for, unless they mention one or
    ``format_line`` is False (an IFEval prompt is kept exactly as written). Every bad row fails with one line,
    ``path:N: reason``.
    """
    path = Path(path)
    _check_verifier(default_verifier, f"{path}: ", " (default_verifier)")
    mapping = check_fields(path, fields, MAPPABLE, "task field")
    rows = open_rows(path, item="task")
    family_name = path.stem if not path.is_dir() else path.name
    tasks: list[Task] = []
    seen: dict[str, int] = {}
    keys: dict[str, int] = {}  # IFEval's key of each row that has one
    fmt: str | None = None
    for number, raw in rows.rows:
        where = f"{path}:{number}: "
        if not isinstance(raw, dict):
            raise RecordError(f"{where}expected an object (a mapping of fields), got {kind_of(raw)}")
        fmt = fmt or _detect(raw, mapping)
        row = _Row(where, raw, mapping)
        built = _build(row, fmt, family_name, default_verifier, format_line)
        if "key" in built:
            if built["key"] in keys:
                raise RecordError(f'{where}duplicate key "{built["key"]}" (first at {rows.unit} {keys[built["key"]]})')
            keys[built["key"]] = number
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
