"""Bad-input corpus rows for users' data files and the data: section (sources, task files, field mappings).

Each row of CASES is a tests.corpus_kit.Case; tests/test_bad_input_corpus.py runs them all. The stage of a row is
the first to read that role: self_instruct (seed instructions; train tasks with self_instruct.tasks), sft (seed
judgments), evaluate (eval prompts, labelled pairs; held-out tasks with evaluate.heldout_tasks).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from tests.corpus_kit import EFT, EVAL, GOOD, PAIRS, SEED, Case, P, Setup, chain, jsonl, params, write

SI, EV, SFT = "self_instruct@M1", "evaluate@M1", "sft"
TRAIN = "data/tasks/arithmetic/train.jsonl"
ALREADY = "seed-writing-001"  # the first id of data/seed/instructions.jsonl
EXAMPLE = {"id": "u1", "category": "c", "instruction": "Name a prime.", "reference": "Seven."}


def data(**roles: Any) -> Setup:
    """params with these data: roles (and nothing else changed)."""
    return params({"data": roles})


def tasks(*roles: Any, num_prompts: int = 0) -> Setup:
    """data.train_tasks: ``roles`` (one mapping, or several as a list), drawn by self_instruct (2 tasks)."""
    value = roles[0] if len(roles) == 1 else list(roles)
    return params({"data": {"train_tasks": value}, "self_instruct": {"num_prompts": num_prompts, "tasks": 2}})


def heldout(role: Any) -> Setup:
    """data.heldout_tasks: ``role``, measured by evaluate (2 tasks)."""
    return params({"data": {"heldout_tasks": role}, "evaluate": {"heldout_tasks": 2}})


def parquet(rel: str, rows: list[dict[str, Any]], keep: int | None = None) -> Setup:
    """A parquet file of ``rows`` at ``rel``, cut to ``keep`` bytes if given."""
    def setup(wd: Path, ctx: dict[str, Any]) -> None:
        import pyarrow as pa
        import pyarrow.parquet as pq

        (wd / rel).parent.mkdir(parents=True, exist_ok=True)
        pq.write_table(pa.Table.from_pylist(rows), wd / rel)
        if keep is not None:
            data = (wd / rel).read_bytes()
            (wd / rel).write_bytes(data[:keep])
    return setup


def saved(rel: str, rows: list[dict[str, Any]], drop: str = "", splits: tuple[str, ...] = ()) -> Setup:
    """A save_to_disk folder of ``rows`` at ``rel`` (a DatasetDict with ``splits``), without the file ``drop``
    (``*.arrow``: its data file)."""
    def setup(wd: Path, ctx: dict[str, Any]) -> None:
        import datasets

        ds = datasets.Dataset.from_list(rows)
        target = datasets.DatasetDict({s: ds for s in splits}) if splits else ds
        target.save_to_disk(str(wd / rel))
        for f in (wd / rel).glob(drop) if drop else []:
            f.unlink()
    return setup


def src(path: str, **fields: str) -> dict[str, Any]:
    return {"path": path, "fields": fields} if fields else {"path": path}


TASK = {"task_id": "t1", "prompt": "What is 2 + 2?", "answer": "4"}
ROLE_SHAPE = "— must be a mapping like {path: file.jsonl} (with optional fields), or a list of them"
NO_PATH = "— must name a file or a folder saved with datasets' save_to_disk"
HEADERLESS = ("the first line reads as data, not as column names", "add one, e.g. ")
UNCLOSED = ('a quoted cell in the row starting here is never closed — the rest of the file would read as one cell; '
            'close the quote (a quote inside a quoted cell is written "")')
NOT_ARRAY = ('expected a JSON array of objects (one per {item}), got an object with keys {keys} — hold the rows in '
             'an array: [{{...}}, {{...}}], or under one key: {{"data": [...]}}')
SAVE_AGAIN = "— copy the whole folder, or save it again with save_to_disk"

CASES: list[Case] = [
    # ------------------------------------------------------------ a role as a list of sources (defect 8)
    Case("list-second-file-missing", SI, data(seed_instructions=[src(SEED), src("data/user/more.jsonl")]),
         "data/user/more.jsonl: not found"),
    Case("tasks-list-second-file-missing", SI, tasks(src(TRAIN), src("data/user/gsm8k.jsonl")),
         "data/user/gsm8k.jsonl: not found"),
    Case("duplicate-id-across-two-files", SI,
         chain(jsonl("data/user/more.jsonl", {**EXAMPLE, "id": ALREADY}),
               data(seed_instructions=[src(SEED), src("data/user/more.jsonl")])),
         f'data/user/more.jsonl:1: duplicate id "{ALREADY}" (first at {SEED}:1) — ids must be unique across '
         "data.seed_instructions's sources"),
    Case("duplicate-id-across-csv-and-jsonl", EV,
         chain(write("data/user/more.csv", "id,instruction\nu1,Say hi.\neval-002,Say bye.\n"),
               data(eval_prompts=[src(EVAL), src("data/user/more.csv")])),
         f'data/user/more.csv:3: duplicate id "eval-002" (first at {EVAL}:2) — ids must be unique across '
         "data.eval_prompts's sources"),
    Case("duplicate-task-id-across-two-files", SI,
         chain(jsonl("data/user/a.jsonl", TASK), jsonl("data/user/b.jsonl", {**TASK, "task_id": "t2"}, TASK),
               tasks(src("data/user/a.jsonl"), src("data/user/b.jsonl"))),
         'data/user/b.jsonl:2: duplicate task_id "t1" (first at data/user/a.jsonl:1) — task ids must be unique '
         "across data.train_tasks's sources"),
    Case("labelled-pairs-second-file-bad", EV,
         chain(jsonl("data/user/pairs.jsonl", {**GOOD[PAIRS], "id": "u1", "preferred": "C"}),
               data(labelled_pairs=[src(PAIRS), src("data/user/pairs.jsonl")])),
         "data/user/pairs.jsonl:1: field \"preferred\" must be 'A' | 'B', got \"C\""),
    Case("judgments-second-file-bad-score", SFT,
         chain(write("data/user/j.csv", "id,instruction,response,justification,score\nu1,Q,R,J,7\n"),
               data(seed_judgments=[src(EFT), src("data/user/j.csv")])),
         'data/user/j.csv:2: field "score" must be between 0 and 5, got 7'),
    Case("list-empty", SI, tasks([]),
         P + "data.train_tasks: [] — an empty list names no source; list at least one, e.g. [{path: file.jsonl}]"),
    Case("list-item-not-a-mapping", EV, data(eval_prompts=[EVAL]),
         P + f"data.eval_prompts[0]: '{EVAL}' — each item must be a mapping like {{path: file.jsonl}} (with optional "
         "fields)"),
    Case("list-item-empty-path", SI, data(seed_instructions=[src(SEED), src("")]),
         P + f"data.seed_instructions[1].path: '' {NO_PATH}"),
    Case("list-same-file-twice", SI, data(seed_instructions=[src(SEED), src("./" + SEED)]),
         P + f"data.seed_instructions[1].path: './{SEED}' — already data.seed_instructions[0]; list each file once"),
    Case("list-item-unknown-key", SI, tasks(src(TRAIN), {"path": TRAIN.replace("train", "heldout"), "feilds": {}}),
         P + "data.train_tasks[1].feilds: unknown key — did you mean 'fields'?"),
    # ------------------------------------------------------------ the role's value itself (defect 16)
    Case("role-a-string", SI, tasks(TRAIN), P + f"data.train_tasks: '{TRAIN}' {ROLE_SHAPE}"),
    Case("role-null", EV, data(eval_prompts=None), P + f"data.eval_prompts: None {ROLE_SHAPE}"),
    Case("path-empty", SI, tasks(src("")), P + f"data.train_tasks.path: '' {NO_PATH}"),
    Case("path-blank", EV, data(eval_prompts=src("  ")), P + f"data.eval_prompts.path: '  ' {NO_PATH}"),
    Case("path-a-number", EV, data(labelled_pairs={"path": 7}), P + "data.labelled_pairs.path: 7 — must be a string"),
    Case("fields-a-list", EV, data(eval_prompts={"path": EVAL, "fields": ["instruction"]}),
         P + "data.eval_prompts.fields: ['instruction'] — must be a mapping"),
    # ------------------------------------------------------------ field mappings
    Case("fields-unknown-target", EV, data(eval_prompts=src(EVAL, instrction="instruction")),
         f'{EVAL}: fields: unknown field "instrction" — did you mean "instruction"?'),
    Case("fields-bad-path", EV, data(eval_prompts=src(EVAL, instruction="turns[0")),
         f'{EVAL}: fields: bad path "turns[0" for instruction — write keys with dots and list items as [i], e.g. '
         "turns[0].content"),
    Case("mapping-to-a-missing-column", EV,
         chain(write("data/user/p.csv", "id,prompt\nu1,Say hi.\n"),
               data(eval_prompts=src("data/user/p.csv", instruction="question"))),
         'data/user/p.csv:2: field "question" (mapped to instruction) missing — the row has id, prompt'),
    Case("tasks-mapping-to-a-missing-column", SI,
         chain(jsonl("data/user/t.jsonl", TASK), tasks(src("data/user/t.jsonl", answer="solution"))),
         ('data/user/t.jsonl:1: field "solution" (mapped to answer) missing',)),
    Case("self-instruct-layout-without-instances", SI,
         chain(jsonl("data/user/seed_tasks.jsonl", {"id": "seed_task_0", "name": "hike", "instruction": "Pack.",
                                                    "instances": [], "is_classification": False}),
               data(seed_instructions=src("data/user/seed_tasks.jsonl", category="name", input="instances[0].input",
                                          reference="instances[0].output"))),
         'data/user/seed_tasks.jsonl:1: field "instances[0].output" (mapped to reference) missing — "instances" has '
         "0 items"),
    # ------------------------------------------------------------ CSV (defect 16)
    Case("csv-without-header-row", EV,
         chain(write("data/user/p.csv", "What is the capital of France?,geography\nName a prime.,math\n"),
               data(eval_prompts=src("data/user/p.csv"))),
         ("data/user/p.csv:1: " + HEADERLESS[0], '"What is the capital of France?", "geography"', HEADERLESS[1])),
    Case("tasks-csv-without-header-row", EV,
         chain(write("data/user/t.csv", "What is 2 + 2?,4\nWhat is 3 + 3?,6\n"), heldout(src("data/user/t.csv"))),
         "data/user/t.csv:1: " + HEADERLESS[0] + ' ("What is 2 + 2?", "4") — a CSV file starts with a header row '
         "naming its columns; " + HEADERLESS[1] + "prompt,answer"),
    Case("csv-unclosed-quote", SI,
         chain(write("data/user/s.csv", 'id,category,instruction,reference\nu1,c,"Name a prime.,Seven.\n'
                                        "u2,c,Name a colour.,Blue.\n"),
               data(seed_instructions=src("data/user/s.csv"))),
         "data/user/s.csv:2: " + UNCLOSED),
    Case("tasks-csv-unclosed-quote", SI,
         chain(write("data/user/t.csv", 'prompt,answer\nWhat is 2 + 2?,4\n"What is 3 + 3?,6\n'),
               tasks(src("data/user/t.csv"))),
         "data/user/t.csv:3: " + UNCLOSED),
    Case("csv-empty-file", EV, chain(write("data/user/p.csv", ""), data(eval_prompts=src("data/user/p.csv"))),
         "data/user/p.csv: no rows"),
    Case("csv-header-only", SI, chain(write("data/user/s.csv", "id,category,instruction,reference\n"),
                                      data(seed_instructions=src("data/user/s.csv"))),
         "data/user/s.csv: no rows"),
    Case("csv-too-many-values", EV, chain(write("data/user/p.csv", "id,instruction\nu1,Say hi.,extra\n"),
                                          data(eval_prompts=src("data/user/p.csv"))),
         "data/user/p.csv:2: 3 values, but the header has 2 columns"),
    Case("csv-not-utf8", EV, chain(write("data/user/p.csv", b"id,instruction\nu1,caf\xe9\n"),
                                   data(eval_prompts=src("data/user/p.csv"))),
         "data/user/p.csv:2: not valid UTF-8 (byte 7 of the line)"),
    # ------------------------------------------------------------ JSON
    Case("json-an-object-not-an-array", EV,
         chain(write("data/user/p.json", json.dumps({"instruction": "Say hi.", "id": "u1"})),
               data(eval_prompts=src("data/user/p.json"))),
         "data/user/p.json: " + NOT_ARRAY.format(item="row", keys="instruction, id")),
    Case("tasks-json-an-object", SI,
         chain(write("data/user/t.json", json.dumps(TASK)), tasks(src("data/user/t.json"))),
         "data/user/t.json: " + NOT_ARRAY.format(item="task", keys="task_id, prompt, answer")),
    Case("json-empty-array", SI, chain(write("data/user/s.json", "[]"), data(seed_instructions=src("data/user/s.json"))),
         "data/user/s.json: no rows"),
    Case("json-invalid", EV, chain(write("data/user/p.json", '[{"id": "u1", "instruction": "Say hi."},\n{"id": ]'),
                                   data(eval_prompts=src("data/user/p.json"))),
         "data/user/p.json:2: invalid JSON — Expecting value (column 8)"),
    Case("json-item-not-an-object", EV, chain(write("data/user/p.json", '["Say hi."]'),
                                              data(eval_prompts=src("data/user/p.json"))),
         "data/user/p.json:1: expected an object (a mapping of fields), got text"),
    # ------------------------------------------------------------ parquet (defect 15: read before any model loads)
    Case("tasks-parquet-zero-bytes-before-generation", SI,
         chain(write("data/user/t.parquet", b""), tasks(src("data/user/t.parquet"), num_prompts=2)),
         ("data/user/t.parquet: not a readable parquet file — ",)),
    Case("parquet-garbage", EV, chain(write("data/user/p.parquet", b"PAR1 not really"),
                                      data(eval_prompts=src("data/user/p.parquet"))),
         ("data/user/p.parquet: not a readable parquet file — ",)),
    Case("parquet-truncated", SI,
         chain(parquet("data/user/s.parquet", [EXAMPLE] * 20, keep=100),
               data(seed_instructions=src("data/user/s.parquet"))),
         ("data/user/s.parquet: not a readable parquet file — ",)),
    Case("parquet-missing-column", SI,
         chain(parquet("data/user/s.parquet", [{"id": "u1", "instruction": "Name a prime."}]),
               data(seed_instructions=src("data/user/s.parquet"))),
         'data/user/s.parquet:1: missing field "reference" — map it with fields: {reference: <column>}; the row has '
         "id, instruction"),
    # ------------------------------------------------------------ saved datasets
    Case("folder-not-a-dataset", EV, chain(write("data/user/prompts/readme.txt", "x"),
                                           data(eval_prompts=src("data/user/prompts"))),
         "data/user/prompts: a folder, but not a dataset saved with datasets' save_to_disk (no state.json or "
         "dataset_dict.json)"),
    Case("saved-dataset-without-its-data-file", EV,
         chain(saved("data/user/prompts", [GOOD[EVAL]], drop="*.arrow"), data(eval_prompts=src("data/user/prompts"))),
         f"data/user/prompts: the saved dataset lacks data-00000-of-00001.arrow {SAVE_AGAIN}"),
    Case("saved-dataset-without-its-info", SI,
         chain(saved("data/user/seed", [EXAMPLE], drop="dataset_info.json"),
               data(seed_instructions=src("data/user/seed"))),
         f"data/user/seed: the saved dataset lacks dataset_info.json {SAVE_AGAIN}"),
    Case("saved-dataset-two-splits", SI,
         chain(saved("data/user/tasks", [TASK], splits=("train", "test")), tasks(src("data/user/tasks"))),
         "data/user/tasks: a dataset with splits train, test — point at one, e.g. data/user/tasks/train"),
    # ------------------------------------------------------------ other files
    Case("unknown-extension", EV, chain(write("data/user/p.txt", "Say hi.\n"), data(eval_prompts=src("data/user/p.txt"))),
         'data/user/p.txt: unknown format ".txt" — use .jsonl, .json, .csv, .parquet or a folder saved with datasets\' '
         "save_to_disk"),
    Case("heldout-tasks-missing-file", EV, heldout(src("data/user/test.jsonl")), "data/user/test.jsonl: not found"),
]
