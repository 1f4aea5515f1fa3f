"""IFEval's file format through ``load_tasks`` (``data:`` task files): rows of ``key``, ``prompt``,
``instruction_id_list`` and ``kwargs`` in every format the loader reads, through a field mapping, with HF's
null-filled kwargs, and every bad row as its one exact line.

The project ships no third-party data: every row here is written for these tests, in the formats' shapes.
"""

from __future__ import annotations

import csv
import dataclasses
import json
from pathlib import Path
from typing import Any

import pytest

from pipeline import verifiable
from pipeline.errors import RecordError
from pipeline.records import stable_id
from pipeline.tasks import Task, load_tasks

NO_COMMA = "punctuation:no_comma"
WORDS = "length_constraints:number_words"
REPEAT = "combination:repeat_prompt"
LOWER = "change_case:english_lowercase"

# Two rows as IFEval writes them (our own prompts): kwargs aligned with the ids, {} for one without arguments.
ROWS: list[dict[str, Any]] = [
    {"key": 1000, "prompt": "Describe a lighthouse at night.", "instruction_id_list": [NO_COMMA, WORDS],
     "kwargs": [{}, {"num_words": 60, "relation": "less than"}]},
    {"key": 1001, "prompt": "First repeat the request word for word, then answer it: Name three rivers.",
     "instruction_id_list": [REPEAT, LOWER], "kwargs": [{"prompt_to_repeat": "Name three rivers."}, {}]},
]
# The argument names of HF's google/IFEval rows: every kwargs object carries all of them, most null.
HF_ARGS = ("num_highlights", "relation", "num_words", "num_placeholders", "prompt_to_repeat", "num_paragraphs",
           "first_word", "postscript_marker", "num_sentences", "keyword", "frequency", "num_bullets", "end_phrase",
           "keywords", "nth_paragraph", "section_spliter", "num_sections", "capital_relation", "capital_frequency",
           "forbidden_words", "let_relation", "letter", "let_frequency", "language")


def null_filled(row: dict[str, Any]) -> dict[str, Any]:
    """``row`` as HF's dataset holds it: each kwargs object with every argument, null where it has none."""
    return {**row, "kwargs": [{**{a: None for a in HF_ARGS}, **k} for k in row["kwargs"]]}


def expected(source: str, positions: tuple[int, int]) -> list[Task]:
    """The tasks ROWS give, from ``source`` at ``positions``: prompts as written (no "Final answer" line added),
    kwargs without nulls, ids from the keys."""
    return [Task(task_id="ifeval-1000", family="ifeval", prompt=ROWS[0]["prompt"], answer="", verifier="constraints",
                 inputs={"instruction_id_list": [NO_COMMA, WORDS],
                         "kwargs": [{}, {"num_words": 60, "relation": "less than"}]},
                 source=f"{source}:{positions[0]}"),
            Task(task_id="ifeval-1001", family="ifeval", prompt=ROWS[1]["prompt"], answer="", verifier="constraints",
                 inputs={"instruction_id_list": [REPEAT, LOWER], "kwargs": [{"prompt_to_repeat": "Name three rivers."},
                                                                            {}]},
                 source=f"{source}:{positions[1]}")]


def write_jsonl(path: Path, rows: list[Any]) -> Path:
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows))
    return path


def write_csv(path: Path, rows: list[dict[str, Any]]) -> Path:
    """A CSV file of ``rows``: lists and objects as JSON text in their cells, as a spreadsheet export holds them."""
    with path.open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        for r in rows:
            writer.writerow({k: v if isinstance(v, str) else json.dumps(v) for k, v in r.items()})
    return path


# ------------------------------------------------------------------------------------------ every format
def test_jsonl_rows_become_constraint_tasks(tmp_path):
    path = write_jsonl(tmp_path / "input_data.jsonl", ROWS)
    tasks = load_tasks(path)
    assert tasks == expected(str(path), (1, 2))
    assert all(verifiable.task_problem(t.verifier, t.answer, t.tests, t.inputs) is None for t in tasks)


def test_hf_null_filled_kwargs_in_json_parquet_and_a_saved_dataset(tmp_path):
    import datasets
    import pyarrow as pa
    import pyarrow.parquet as pq

    hf = [null_filled(r) for r in ROWS]
    json_path = tmp_path / "ifeval.json"
    json_path.write_text(json.dumps(hf))
    assert load_tasks(json_path) == expected(str(json_path), (1, 2))
    parquet = tmp_path / "train-00000-of-00001.parquet"
    pq.write_table(pa.Table.from_pylist(hf), parquet)
    assert load_tasks(parquet) == expected(str(parquet), (1, 2))
    saved = tmp_path / "ifeval"
    datasets.Dataset.from_list(hf).save_to_disk(str(saved))
    assert load_tasks(saved) == expected(str(saved), (1, 2))


def test_csv_cells_hold_the_lists_as_json_text(tmp_path):
    path = write_csv(tmp_path / "ifeval.csv", [null_filled(r) for r in ROWS])
    assert '"[""punctuation:no_comma""' in path.read_text()  # the cell is JSON text, quoted as CSV quotes it
    assert load_tasks(path) == expected(str(path), (2, 3))


def test_a_json_text_cell_in_jsonl_is_read_too(tmp_path):
    """Some exports store kwargs as a string of JSON; it is the same task."""
    rows = [{**r, "instruction_id_list": json.dumps(r["instruction_id_list"]), "kwargs": json.dumps(r["kwargs"])}
            for r in ROWS]
    path = write_jsonl(tmp_path / "as_text.jsonl", rows)
    assert load_tasks(path) == expected(str(path), (1, 2))


def test_repeat_prompt_keeps_the_text_to_repeat(tmp_path):
    path = write_jsonl(tmp_path / "r.jsonl", [null_filled(ROWS[1])])
    (task,) = load_tasks(path)
    assert task.inputs["kwargs"][0] == {"prompt_to_repeat": "Name three rivers."}


def test_numbers_that_went_through_floats_are_integers_again(tmp_path):
    """pandas writes an integer column with gaps as floats (60.0, NaN); the checkers count in integers."""
    row = {**ROWS[0], "key": 1000.0, "kwargs": [{"num_words": float("nan")}, {"num_words": 60.0, "relation": "less than"}]}
    path = tmp_path / "floats.jsonl"
    path.write_text(json.dumps(row) + "\n")  # NaN as Python's json writes it
    (task,) = load_tasks(path)
    assert task.task_id == "ifeval-1000" and task.inputs["kwargs"] == [{}, {"num_words": 60, "relation": "less than"}]
    assert type(task.inputs["kwargs"][1]["num_words"]) is int


# ------------------------------------------------------------------------------------------ a user's columns
def test_a_field_mapping_reads_a_users_columns(tmp_path):
    rows = [{"id": 7, "instruction": ROWS[0]["prompt"],
             "constraints": {"ids": ROWS[0]["instruction_id_list"], "args": ROWS[0]["kwargs"]}}]
    path = write_jsonl(tmp_path / "mine.jsonl", rows)
    fields = {"prompt": "instruction", "instruction_id_list": "constraints.ids", "kwargs": "constraints.args",
              "key": "id"}
    (task,) = load_tasks(path, fields)
    assert task == dataclasses.replace(expected(str(path), (1, 2))[0], task_id="ifeval-7")
    # the key is optional: without one, the id is derived from where the row is and what it asks
    del fields["key"]
    (task,) = load_tasks(path, fields)
    assert task.task_id == stable_id("ifeval", 1, ROWS[0]["prompt"]) == load_tasks(path, fields)[0].task_id
    # mapping only the kwargs is enough to read a file in this format
    renamed = write_jsonl(tmp_path / "renamed.jsonl", [{**ROWS[0], "args": ROWS[0]["kwargs"], "kwargs": None}])
    assert load_tasks(renamed, {"kwargs": "args"})[0].inputs == expected(str(path), (1, 2))[0].inputs


def test_family_and_task_id_columns_name_the_task(tmp_path):
    """The built-in constraints family's files carry task_id, family and verifier beside the IFEval columns."""
    rows = [{**ROWS[0], "task_id": "constraints-0001", "family": "constraints-2", "verifier": "constraints",
             "answer": ""},
            {**ROWS[1], "family": "ifbench"}]
    path = write_jsonl(tmp_path / "heldout.jsonl", rows)
    a, b = load_tasks(path)
    assert (a.task_id, a.family, a.verifier, a.answer) == ("constraints-0001", "constraints-2", "constraints", "")
    assert (b.task_id, b.family) == ("ifbench-1001", "ifbench")


def test_a_key_reads_the_same_from_text_and_from_a_number(tmp_path):
    as_text = write_jsonl(tmp_path / "a.jsonl", [{**ROWS[0], "key": "1000"}])
    as_number = write_jsonl(tmp_path / "b.jsonl", [ROWS[0]])
    assert load_tasks(as_text)[0].task_id == load_tasks(as_number)[0].task_id == "ifeval-1000"


def test_a_key_column_in_a_file_of_other_tasks_changes_nothing(tmp_path):
    path = write_jsonl(tmp_path / "sums.jsonl", [{"key": 3, "prompt": "What is 2 + 2?", "answer": "4"}])
    (task,) = load_tasks(path)
    assert (task.verifier, task.answer, task.family) == ("numeric", "4", "sums")


# ------------------------------------------------------------------------------------------ bad rows: one line each
F_IDS = 'field "instruction_id_list" (mapped to instruction_id_list)'
F_KW = 'field "kwargs" (mapped to kwargs)'


def bad(tmp_path: Path, row: Any, fields: dict[str, str] | None = None) -> str:
    """The message for a file whose line 1 is good and line 2 is ``row``, after ``path:``; it is one line."""
    path = write_jsonl(tmp_path / "ifeval.jsonl", [ROWS[0], row])
    with pytest.raises(RecordError) as e:
        load_tasks(path, fields)
    message = str(e.value)
    assert "\n" not in message and message.startswith(f"{path}:")
    return message[len(str(path)) + 1:]


def row2(**change: Any) -> dict[str, Any]:
    return {**ROWS[1], **change}


@pytest.mark.parametrize("row, message", [
    (row2(instruction_id_list=[REPEAT, "change_case:english_lowercas"]),
     f'2: {F_IDS} item 2: unknown instruction id "change_case:english_lowercas" — did you mean "{LOWER}"?'),
    (row2(instruction_id_list=[REPEAT, "english_lowercase"]),  # the type without its group
     f'2: {F_IDS} item 2: unknown instruction id "english_lowercase" — did you mean "{LOWER}"?'),
    (row2(instruction_id_list=REPEAT, kwargs=[{}]),
     (f'2: {F_IDS} must be a non-empty list of instruction ids, e.g. ["punctuation:no_comma", '
      f'"length_constraints:number_words"]; got "{REPEAT}"')),
    (row2(instruction_id_list=[], kwargs=[]),
     (f'2: {F_IDS} must be a non-empty list of instruction ids, e.g. ["punctuation:no_comma", '
      '"length_constraints:number_words"]; got []')),
    (row2(instruction_id_list=[REPEAT, 3]),
     (f'2: {F_IDS} must be a non-empty list of instruction ids, e.g. ["punctuation:no_comma", '
      f'"length_constraints:number_words"]; got ["{REPEAT}", 3]')),
    (row2(kwargs={"prompt_to_repeat": "Name three rivers."}),
     (f"2: {F_KW} must be a list of objects, one per instruction ({{}} where one takes no arguments), e.g. "
      '[{}, {"num_words": 50, "relation": "at least"}]; got {"prompt_to_repeat": "Name three rivers."}')),
    (row2(kwargs=[{"prompt_to_repeat": "Name three rivers."}]),
     (f"2: {F_KW} has 1 object for 2 instructions in instruction_id_list — give one per instruction, in the same "
      "order, {} where one takes no arguments")),
    (row2(kwargs=[{"prompt_to_repeat": "Name three rivers."}, "none"]),
     f'2: {F_KW} item 2 ({LOWER}) must be an object of its arguments ({{}} for none), got "none"'),
    (row2(prompt="  "), '2: field "prompt" (mapped to prompt) is empty'),
    (row2(prompt=None), '2: field "prompt" (mapped to prompt) is empty'),
    ({k: v for k, v in ROWS[1].items() if k != "kwargs"},
     (f'2: {F_KW} missing — name its column with fields, e.g. {{"kwargs": "<column>"}}; the row has key, prompt, '
      "instruction_id_list")),
    (row2(key=[1001]), '2: field "key" (mapped to key) must be an integer or text, got [1001]'),
    (row2(key=1000), '2: duplicate key "1000" (first at line 1)'),
    (row2(verifier="numeric"),
     ('2: field "verifier" (mapped to verifier) is "numeric", but a row with instruction_id_list is checked against '
      'its constraints — set it to "constraints" or drop the column')),
    (row2(kwargs='[{"prompt_to_repeat": "Name three rivers."}, {]'),
     (f"2: {F_KW} is not valid JSON — Expecting property name enclosed in double quotes (character 47); write it "
      'as a JSON array, e.g. [{}, {"num_words": 50, "relation": "at least"}]')),
], ids=["unknown-id", "unknown-id-without-group", "ids-a-string", "ids-empty", "id-a-number", "kwargs-an-object",
        "lengths-differ", "kwargs-item-a-string", "prompt-blank", "prompt-null", "kwargs-missing", "key-a-list",
        "duplicate-key", "other-verifier", "kwargs-bad-json"])
def test_bad_rows_stop_with_one_line(tmp_path, row, message):
    assert bad(tmp_path, row) == message


def test_an_id_far_from_every_known_one_lists_them(tmp_path):
    from pipeline.constraints import spec

    assert bad(tmp_path, row2(instruction_id_list=[REPEAT, "zzz:qqq"])) == (
        f'2: {F_IDS} item 2: unknown instruction id "zzz:qqq" — known: ' + ", ".join(spec.INSTRUCTION_IDS))


def test_arguments_and_combinations_the_checkers_reject(tmp_path):
    """kwargs of the wrong type or missing one, and "at most 5 words" with "at least 50": what
    :mod:`pipeline.constraints.spec` says, behind the row's place."""
    wrong_type = row2(instruction_id_list=[WORDS], kwargs=[{"num_words": "fifty", "relation": "at least"}])
    assert bad(tmp_path, wrong_type) == f'2: {F_KW} item 1 ({WORDS}): "num_words" must be int, got \'fifty\''
    missing = row2(instruction_id_list=[NO_COMMA, WORDS], kwargs=[{}, {"relation": "at least"}])
    assert bad(tmp_path, missing) == f'2: {F_KW} item 2 ({WORDS}): needs "num_words"'
    both = row2(instruction_id_list=[WORDS, WORDS], kwargs=[{"num_words": 5, "relation": "less than"},
                                                              {"num_words": 50, "relation": "at least"}])
    assert bad(tmp_path, both) == (f"2: {F_IDS} cannot all be satisfied by one response: at least 50 words and at "
                                   "most 4")


def test_a_mapped_column_is_named_in_the_message(tmp_path):
    row = {"id": 8, "instruction": "Say hi.", "constraints": {"ids": ["punctuation:no_coma"], "args": [{}]}}
    fields = {"prompt": "instruction", "instruction_id_list": "constraints.ids", "kwargs": "constraints.args"}
    path = write_jsonl(tmp_path / "mine.jsonl", [row])
    with pytest.raises(RecordError) as e:
        load_tasks(path, fields)
    assert str(e.value) == (f'{path}:1: field "constraints.ids" (mapped to instruction_id_list) item 1: unknown '
                            f'instruction id "punctuation:no_coma" — did you mean "{NO_COMMA}"?')


def test_bad_rows_in_csv_parquet_and_a_saved_dataset_name_their_line_or_row(tmp_path):
    import datasets
    import pyarrow as pa
    import pyarrow.parquet as pq

    csv_path = tmp_path / "t.csv"
    csv_path.write_text('key,prompt,instruction_id_list,kwargs\n1,Say hi.,"[""punctuation:no_comma""]","[{}]"\n'
                        '2,Say bye.,"[""punctuation:no_comma""","[{}]"\n')
    with pytest.raises(RecordError) as e:
        load_tasks(csv_path)
    assert str(e.value) == (f"{csv_path}:3: {F_IDS} is not valid JSON — Expecting ',' delimiter (character 24); "
                            'write it as a JSON array, e.g. ["punctuation:no_comma", "length_constraints:number_words"]')
    hf = [null_filled(ROWS[0]), null_filled(row2(instruction_id_list=[REPEAT, "punctuation:no_comas"]))]
    parquet = tmp_path / "t.parquet"
    pq.write_table(pa.Table.from_pylist(hf), parquet)
    saved = tmp_path / "saved"
    datasets.Dataset.from_list(hf).save_to_disk(str(saved))
    for path in (parquet, saved):
        with pytest.raises(RecordError) as e:
            load_tasks(path)
        assert str(e.value) == (f'{path}:2: {F_IDS} item 2: unknown instruction id "punctuation:no_comas" — did you '
                                f'mean "{NO_COMMA}"?')
