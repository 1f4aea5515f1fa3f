"""pipeline.sources: every user data file read through one validated reader with a field mapping."""

import csv
import json

import pytest

from pipeline import sources
from pipeline.errors import RecordError
from pipeline.records import EvalPrompt, JudgeExample, LabelledPair, SeedInstruction, read_jsonl, stable_id
from pipeline.sources import Source, open_rows, read_source

ROWS = [{"id": "e1", "category": "writing", "instruction": "Write a haiku.", "extra": 1},
        {"id": "e2", "category": "", "instruction": "Name a prime.", "extra": 2}]
EXPECTED = [EvalPrompt("e1", "writing", "Write a haiku."), EvalPrompt("e2", "", "Name a prime.")]


def _jsonl(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def _json(path, rows):
    path.write_text(json.dumps(rows), encoding="utf-8")
    return path


def _csv(path, rows):
    with path.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return path


def _parquet(path, rows):
    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(pa.Table.from_pylist(rows), path)
    return path


def _dataset(path, rows):
    import datasets

    datasets.Dataset.from_list(rows).save_to_disk(str(path))
    return path


WRITERS = {"t.jsonl": _jsonl, "t.json": _json, "t.csv": _csv, "t.parquet": _parquet, "saved": _dataset}


def _error(path, cls=EvalPrompt, fields=None) -> str:
    """The message of the RecordError reading ``path`` raises, without the path: one line."""
    with pytest.raises(RecordError) as e:
        read_source(path, cls, fields)
    message = str(e.value)
    assert "\n" not in message and message.startswith(str(path))
    return message[len(str(path)):]


# --------------------------------------------------------------------------------------------- formats
@pytest.mark.parametrize("name", list(WRITERS))
def test_every_format_reads_the_same_rows_and_ignores_extra_columns(tmp_path, name):
    path = WRITERS[name](tmp_path / name, ROWS)
    # A mapping (even of a field onto itself) turns a JSONL file from strict to projected, like the others.
    fields = {"instruction": "instruction"} if name.endswith(".jsonl") else None
    assert read_source(path, EvalPrompt, fields) == EXPECTED
    assert Source(str(path), fields or {}).read(EvalPrompt) == EXPECTED


def test_open_rows_units_and_positions(tmp_path):
    assert [(open_rows(WRITERS[n](tmp_path / n, ROWS)).unit) for n in WRITERS] == ["line", "item", "line", "row", "row"]
    rows = open_rows(_csv(tmp_path / "u.csv", ROWS))
    assert rows.text_cells and list(rows) == [
        (2, {"id": "e1", "category": "writing", "instruction": "Write a haiku.", "extra": "1"}),
        (3, {"id": "e2", "category": "", "instruction": "Name a prime.", "extra": "2"})]
    assert set(sources.FORMATS) == {".jsonl", ".json", ".csv", ".parquet", "folder"}


def test_jsonl_without_fields_is_read_jsonl(tmp_path):
    good = _jsonl(tmp_path / "good.jsonl", [{k: v for k, v in r.items() if k != "extra"} for r in ROWS])
    assert read_source(good, EvalPrompt) == read_jsonl(good, EvalPrompt) == EXPECTED
    strict = _jsonl(tmp_path / "strict.jsonl", ROWS)
    with pytest.raises(RecordError) as e:
        read_jsonl(strict, EvalPrompt)
    assert _error(strict) == str(e.value)[len(str(strict)):] == (
        ':1: unknown field "extra" — known fields: id, category, instruction, input')
    assert read_source(strict, EvalPrompt, {"id": "id"}) == EXPECTED  # with a mapping, extras are ignored


def test_seed_and_judge_examples_from_csv_and_parquet(tmp_path):
    seeds = [{"id": "s1", "category": "math", "instruction": "Add 2 and 2.", "reference": "4", "source": "x"}]
    want = [SeedInstruction("s1", "math", "Add 2 and 2.", "4")]
    assert read_source(_csv(tmp_path / "s.csv", seeds), SeedInstruction) == want
    assert read_source(_parquet(tmp_path / "s.parquet", seeds), SeedInstruction) == want
    judge = [{"id": "j1", "instruction": "Add 2 and 2.", "response": "4", "justification": "Correct.", "score": "5"}]
    # CSV cells are text; an integer field takes a cell of digits. category is absent: "".
    assert read_source(_csv(tmp_path / "j.csv", judge), JudgeExample) == [
        JudgeExample("j1", "", "Add 2 and 2.", "4", "Correct.", 5)]


def test_labelled_pairs_nulls_take_defaults(tmp_path):
    rows = [{"id": "p1", "instruction": "Hi?", "response_a": "Hello", "response_b": "Go away", "preferred": "A",
             "reason": None}]
    assert read_source(_parquet(tmp_path / "p.parquet", rows), LabelledPair) == [
        LabelledPair("p1", "", "Hi?", "Hello", "Go away", "A", "", "")]


# --------------------------------------------------------------------------------------------- mappings
def test_mt_bench_style_mapping(tmp_path):
    rows = [{"question_id": 81, "category": "writing", "turns": ["Compose a travel blog post.", "Rewrite it."]},
            {"question_id": 82, "category": "writing", "turns": ["Draft an email.", "Shorten it."]}]
    path = _jsonl(tmp_path / "question.jsonl", rows)
    assert read_source(path, EvalPrompt, {"id": "question_id", "instruction": "turns[0]"}) == [
        EvalPrompt("81", "writing", "Compose a travel blog post."), EvalPrompt("82", "writing", "Draft an email.")]
    assert read_source(path, EvalPrompt, {"id": "question_id", "instruction": "turns[-1]"})[1].instruction == (
        "Shorten it.")


def test_sharegpt_style_mapping_and_derived_ids(tmp_path):
    rows = [{"conversations": [{"from": "human", "value": "Say hi."}, {"from": "gpt", "value": "Hi!"}]},
            {"conversations": [{"from": "human", "value": "Say bye."}, {"from": "gpt", "value": "Bye!"}]},
            {"conversations": [{"from": "human", "value": "Say hi."}, {"from": "gpt", "value": "Hi!"}]}]
    path = _json(tmp_path / "chats.json", rows)
    fields = {"instruction": "conversations[0].value"}
    first, second = read_source(path, EvalPrompt, fields), read_source(path, EvalPrompt, fields)
    assert first == second  # ids are stable across reads
    assert [p.instruction for p in first] == ["Say hi.", "Say bye.", "Say hi."]
    assert first[0].id == stable_id("eval", "chats.json", 1, {"category": "", "instruction": "Say hi.", "input": ""})
    assert first[0].id.startswith("eval-") and len(first[0].id) == len("eval-") + 12
    assert len({p.id for p in first}) == 3  # the same text twice still gets two ids
    both = {**fields, "reference": "conversations[1].value", "category": "conversations[0].from"}
    seeds = read_source(path, SeedInstruction, both)
    assert (seeds[1].category, seeds[1].reference, seeds[1].id[:5]) == ("human", "Bye!", "seed-")


def test_alpaca_rows_and_a_dotted_column(tmp_path):
    rows = [{"instruction": "Translate to French.", "input": "Good morning", "output": "Bonjour", "meta.lang": "fr"}]
    path = _json(tmp_path / "alpaca.json", rows)
    (row,) = read_source(path, SeedInstruction, {"reference": "output", "category": "meta.lang"})
    # "meta.lang" is a column of that name, not a path; "input" is no field of SeedInstruction and is left out.
    assert (row.category, row.instruction, row.reference) == ("fr", "Translate to French.", "Bonjour")


# --------------------------------------------------------------------------------------------- errors
def test_row_errors(tmp_path):
    j = tmp_path / "e.jsonl"
    turns = {"instruction": "turns[0]"}
    assert _error(_jsonl(j, [{"id": "a", "question": "Q?"}, {"id": "b", "prompt": "P"}]), fields={
        "instruction": "question"}) == ':2: field "question" (mapped to instruction) missing — the row has id, prompt'
    assert _error(_json(tmp_path / "e.json", [{"id": "a", "prompt": "P"}])) == (
        ':1: missing field "instruction" — map it with fields: {instruction: <column>}; the row has id, prompt')
    assert _error(_jsonl(j, [{"turns": "hello"}]), fields=turns) == (
        ':1: field "turns[0]" (mapped to instruction) missing — "turns" is text, not a list')
    assert _error(_jsonl(j, [{"turns": ["hello"]}]), fields={"instruction": "turns[2]"}) == (
        ':1: field "turns[2]" (mapped to instruction) missing — "turns" has 1 item')
    assert _error(_jsonl(j, [{"m": {"a": "x"}}]), fields={"instruction": "m.b"}) == (
        ':1: field "m.b" (mapped to instruction) missing — "m" has no key "b"')
    assert _error(_jsonl(j, [{"turns": [5]}]), fields=turns) == ':1: field "instruction" must be a string, got 5'
    assert _error(_jsonl(j, [{"turns": ["ok"]}, {"turns": ["  "]}]), fields=turns) == ':2: field "instruction" is empty'
    assert _error(_jsonl(j, [{"turns": ["\ud800"]}]), fields=turns) == (
        ':1: field "instruction" holds text that is not valid Unicode (a lone surrogate \\ud800 at character 1)')
    assert _error(_json(tmp_path / "e.json", [[1, 2]])) == ":1: expected an object (a mapping of fields), got a list"
    seed = _csv(tmp_path / "s.csv", [{"id": "s1", "category": "c", "instruction": "I"}])
    assert _error(seed, SeedInstruction) == (
        ':2: missing field "reference" — map it with fields: {reference: <column>}; the row has id, category, instruction')
    judge = _csv(tmp_path / "j.csv", [{"id": "j", "instruction": "I", "response": "R", "justification": "J", "score": "7"}])
    assert _error(judge, JudgeExample) == ':2: field "score" must be between 0 and 5, got 7'


def test_mapping_errors(tmp_path):
    path = _json(tmp_path / "m.json", ROWS)
    assert _error(path, fields={"instrction": "prompt"}) == ': fields: unknown field "instrction" — did you mean "instruction"?'
    assert _error(path, fields={"zzz": "prompt"}) == ': fields: unknown field "zzz" — known: id, category, instruction, input'
    assert _error(path, fields={"instruction": "turns[0"}) == (
        ': fields: bad path "turns[0" for instruction — write keys with dots and list items as [i], e.g. turns[0].content')
    assert _error(path, fields={"instruction": 3}) == ": fields: bad path 3 for instruction — write keys with dots and " \
        "list items as [i], e.g. turns[0].content"


def test_file_errors(tmp_path):
    dup = [{"id": "a", "instruction": "One"}, {"id": "b", "instruction": "Two"}, {"id": "a", "instruction": "Three"}]
    assert _error(_csv(tmp_path / "d.csv", dup)) == ':4: duplicate id "a" (first at line 2)'
    assert _error(_json(tmp_path / "d.json", dup)) == ':3: duplicate id "a" (first at item 1)'
    assert _error(_parquet(tmp_path / "d.parquet", dup)) == ':3: duplicate id "a" (first at row 1)'
    bad = tmp_path / "bad.csv"
    bad.write_bytes(b"id,instruction\na,ok\nb,caf\xe9\n")
    assert _error(bad) == ":3: not valid UTF-8 (byte 6 of the line)"
    bad_json = tmp_path / "bad.json"
    bad_json.write_bytes(b'[\n{"id": "a", "instruction": "caf\xe9"}]')
    assert _error(bad_json) == ":2: not valid UTF-8 (byte 32 of the line)"
    header_only = tmp_path / "h.csv"
    header_only.write_text("id,instruction\n")
    assert _error(header_only) == ": no rows"
    assert _error(_json(tmp_path / "empty.json", [])) == ": no rows"
    assert _error(_jsonl(tmp_path / "empty.jsonl", []), fields={"id": "id"}) == ": no rows"
    assert _error(_jsonl(tmp_path / "empty.jsonl", [])) == ": no rows"  # the strict reader says the same
    assert _error(tmp_path / "gone.csv") == ": not found"
    unknown = tmp_path / "t.txt"
    unknown.write_text("x")
    assert _error(unknown) == (': unknown format ".txt" — use .jsonl, .json, .csv, .parquet or a folder saved with '
                               "datasets' save_to_disk")


def test_csv_row_with_too_many_values(tmp_path):
    path = tmp_path / "wide.csv"
    path.write_text("id,instruction\na,ok\nb,two,three\n")
    assert _error(path) == ":3: 3 values, but the header has 2 columns"


def test_alpaca_rows_keep_input_apart_from_the_instruction(tmp_path):
    """Self-Instruct / Alpaca rows: the input stays its own field; what the model is asked joins the two."""
    from pipeline import sampling
    from pipeline.config import SampleConfig
    from pipeline.generation import Generation
    from pipeline.records import Prompt, SeedInstruction, user_query
    from pipeline.sources import read_source
    from tests.fakes import ScriptedEngine

    path = tmp_path / "alpaca.json"
    path.write_text(json.dumps([{"instruction": "Translate to French.", "input": "Good morning", "output": "Bonjour"},
                                {"instruction": "Name a colour.", "input": "", "output": "Blue"}]))
    rows = read_source(path, SeedInstruction, {"reference": "output", "category": "instruction"})
    assert [(r.instruction, r.input) for r in rows] == [("Translate to French.", "Good morning"), ("Name a colour.", "")]
    assert user_query(rows[0].instruction, rows[0].input) == "Translate to French.\n\nGood morning"
    assert user_query(rows[1].instruction, rows[1].input) == "Name a colour."
    prompt = Prompt(prompt_id="p", instruction=rows[0].instruction, input=rows[0].input, source="test")
    out, _ = sampling.sample_responses(Generation(ScriptedEngine(lambda text, i: "ok")), [prompt],
                                       SampleConfig(n=2, thoughts="none"), {})
    assert out[0].instruction == out[0].prompt_text == "Translate to French.\n\nGood morning"


# --------------------------------------------------------------------------------------------- new checks
def test_csv_without_a_header_row_says_so(tmp_path):
    path = tmp_path / "h.csv"
    path.write_text("What is 2+2?,4\nName a prime.,2\n")
    assert _error(path) == (':1: the first line reads as data, not as column names ("What is 2+2?", "4") — a CSV '
                            "file starts with a header row naming its columns; add one, e.g. instruction")
    # A header of plain names that are not fields is a header: the row error names its columns.
    named = tmp_path / "n.csv"
    named.write_text("question,solution\nWhat is 2+2?,4\n")
    assert _error(named).startswith(':2: missing field "instruction" — map it with fields')
    assert read_source(named, EvalPrompt, {"instruction": "question"})[0].instruction == "What is 2+2?"


def test_csv_unclosed_quote_is_named_not_a_missing_field(tmp_path):
    path = tmp_path / "q.csv"
    path.write_text('id,instruction,input\na,ok,x\nb,"never closed,y\nc,fine,z\n')
    assert _error(path) == (":3: a quoted cell in the row starting here is never closed — the rest of the file "
                            'would read as one cell; close the quote (a quote inside a quoted cell is written "")')
    header = tmp_path / "qh.csv"
    header.write_text('"id,instruction\na,ok\n')
    assert _error(header).startswith(":1: a quoted cell in the row starting here is never closed")


def test_json_object_and_saved_dataset_problems(tmp_path):
    obj = tmp_path / "o.json"
    obj.write_text('{"rows": 1, "meta": {}}')
    assert _error(obj) == (": expected a JSON array of objects (one per row), got an object with keys rows, meta — "
                           'hold the rows in an array: [{...}, {...}], or under one key: {"data": [...]}')
    saved = _dataset(tmp_path / "saved", ROWS)
    (saved / "dataset_info.json").unlink()
    assert _error(saved) == (": the saved dataset lacks dataset_info.json — copy the whole folder, or save it again "
                             "with save_to_disk")
    saved = _dataset(tmp_path / "saved2", ROWS)
    arrow = next(saved.glob("*.arrow"))
    arrow.unlink()
    assert _error(saved) == (f": the saved dataset lacks {arrow.name} — copy the whole folder, or save it again with "
                             "save_to_disk")
    saved = _dataset(tmp_path / "saved3", ROWS)
    (saved / "state.json").write_text("{")
    assert _error(saved).startswith("/state.json: not valid JSON (")


def test_seed_category_defaults_to_the_file_name(tmp_path):
    rows = [{"instruction": "Give three tips for staying healthy.", "input": "", "output": "Eat, move, sleep."}]
    (row,) = read_source(_json(tmp_path / "alpaca_data.json", rows), SeedInstruction, {"reference": "output"})
    assert (row.category, row.reference, row.input) == ("alpaca_data", "Eat, move, sleep.", "")
    nulls = [{"id": "s1", "category": None, "instruction": "I", "reference": "R"}]  # pandas' gap
    assert read_source(_parquet(tmp_path / "gaps.parquet", nulls), SeedInstruction)[0].category == "gaps"


def test_readme_self_instruct_seed_mapping(tmp_path):
    """The README's data.seed_instructions example, on rows laid out as Self-Instruct's seed_tasks.jsonl."""
    import re
    from pathlib import Path

    import yaml

    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text(encoding="utf-8")
    line = next(ln for ln in readme.splitlines() if re.match(r"\s*seed_instructions: \{path: seed_tasks\.jsonl", ln))
    spec = yaml.safe_load(line)["seed_instructions"]
    rows = [{"id": "seed_task_0", "name": "packing_list", "instruction": "List what to pack for a weekend hike.",
             "instances": [{"input": "", "output": "Water, a map, a rain jacket and snacks."}],
             "is_classification": False},
            {"id": "seed_task_1", "name": "sentiment", "instruction": "Is this review positive or negative?",
             "instances": [{"input": "The soup was cold.", "output": "Negative"}], "is_classification": True}]
    _jsonl(tmp_path / spec["path"], rows)
    got = read_source(tmp_path / spec["path"], SeedInstruction, spec["fields"])
    assert got == [SeedInstruction("seed_task_0", "packing_list", "List what to pack for a weekend hike.",
                                   "Water, a map, a rain jacket and snacks.", ""),
                   SeedInstruction("seed_task_1", "sentiment", "Is this review positive or negative?", "Negative",
                                   "The soup was cold.")]


def test_several_sources_keep_order_and_ids_unique_across_them(tmp_path):
    a = tmp_path / "a.jsonl"  # y on line 3, after a blank line: the message counts lines as the reader does
    a.write_text('{"id": "x", "category": "", "instruction": "One."}\n\n'
                 '{"id": "y", "category": "", "instruction": "Two."}\n')
    b = _csv(tmp_path / "b.csv", [{"id": "z", "instruction": "Three."}, {"id": "y", "instruction": "Again."}])
    c = _csv(tmp_path / "c.csv", [{"id": "w", "instruction": "Four."}])
    assert [p.id for p in sources.read_sources([Source(str(a)), Source(str(c))], EvalPrompt)] == ["x", "y", "w"]
    with pytest.raises(RecordError) as e:
        sources.read_sources([Source(str(a)), Source(str(b))], EvalPrompt, "data.eval_prompts's sources")
    assert str(e.value) == (f'{b}:3: duplicate id "y" (first at {a}:3) — ids must be unique across '
                            "data.eval_prompts's sources")


# --------------------------------------------------------------------------------------------- the stages' reading
GSM8K = [{"question": "Ana has 3 apples and buys 4 more. How many now?", "answer": "3 + 4 = 7\n#### 7"}]
MBPP = [{"task_id": 11, "text": "Write a function that doubles a number.", "code": "def double(x):\n    return 2 * x",
         "test_list": ["assert double(2) == 4", "assert double(0) == 0"]}]


def _data_config(data):
    from pipeline.config import parse_params

    return parse_params({"data": data}).data


def test_tasks_from_several_files_each_in_its_own_format(tmp_path):
    from stages import _data

    gsm8k, mbpp = _jsonl(tmp_path / "gsm8k.jsonl", GSM8K), _jsonl(tmp_path / "mbpp.jsonl", MBPP)
    mine = _csv(tmp_path / "mine.csv", [{"q": "What is 6 times 7?", "a": "42"}])
    role = _data_config({"train_tasks": [{"path": str(gsm8k)}, {"path": str(mbpp)},
                                         {"path": str(mine), "fields": {"prompt": "q", "answer": "a"}}]}).train_tasks
    got = _data.read_tasks(role)
    assert [(t.family, t.verifier, t.answer) for t in got] == [("gsm8k", "numeric", "7"),
                                                               ("mbpp", "python_tests", MBPP[0]["code"]),
                                                               ("mine", "numeric", "42")]
    assert [t.source for t in got] == [f"{gsm8k}:1", f"{mbpp}:1", f"{mine}:2"]
    # One source in a list reads as the mapping does; the digest of a single source is the file's own.
    single = _data_config({"train_tasks": {"path": str(gsm8k)}}).train_tasks
    one_item = _data_config({"train_tasks": [{"path": str(gsm8k)}]}).train_tasks
    assert _data.read_tasks(single) == _data.read_tasks(one_item)
    assert _data.digest(single) == _data.digest(one_item) == sources_sha(gsm8k)
    assert _data.digest(role) not in {sources_sha(p) for p in (gsm8k, mbpp)}


def sources_sha(path):
    import hashlib

    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_duplicate_task_ids_across_sources_name_both_files(tmp_path):
    from stages import _data

    one = _jsonl(tmp_path / "one.jsonl", [{"task_id": "t1", "prompt": "2+2?", "answer": "4"}])
    two = _jsonl(tmp_path / "two.jsonl", [{"task_id": "t2", "prompt": "3+3?", "answer": "6"},
                                          {"task_id": "t1", "prompt": "5+5?", "answer": "10"}])
    role = _data_config({"train_tasks": [{"path": str(one)}, {"path": str(two)}]}).train_tasks
    with pytest.raises(RecordError) as e:
        _data.read_tasks(role)
    assert str(e.value) == (f'{two}:2: duplicate task_id "t1" (first at {one}:1) — task ids must be unique across '
                            "data.train_tasks's sources")


def test_task_csv_without_a_header_row(tmp_path):
    from stages import _data

    path = tmp_path / "t.csv"
    path.write_text("What is 2+2?,4\n")
    with pytest.raises(RecordError) as e:
        _data.read_tasks(_data_config({"heldout_tasks": {"path": str(path)}}).heldout_tasks)
    assert str(e.value) == (f'{path}:1: the first line reads as data, not as column names ("What is 2+2?", "4") — a '
                            "CSV file starts with a header row naming its columns; add one, e.g. prompt,answer")


def test_self_instruct_reads_its_tasks_before_any_model_loads(tiny_workdir, monkeypatch):
    """A bad data.train_tasks stops the stage before generation: no model loads, no finished shard is dropped."""
    import yaml

    from stages import self_instruct
    from tests.helpers import TINY_PARAMS
    from tests.inprocess import run_stage

    (tiny_workdir / "tasks.parquet").write_bytes(b"")
    params = {**TINY_PARAMS, "data": {"train_tasks": {"path": "tasks.parquet"}},
              "self_instruct": {**TINY_PARAMS["self_instruct"], "tasks": 2}}
    (tiny_workdir / "params.yaml").write_text(yaml.safe_dump(params))
    calls = []
    monkeypatch.setattr(self_instruct, "generate", lambda it: calls.append(it) or ([], [], {}))
    result = run_stage("self_instruct", "--iteration", "M1")
    assert result.returncode == 2, result.stderr
    assert result.stderr.strip().splitlines()[-1].startswith("error: tasks.parquet: not a readable parquet file")
    assert calls == []


def test_dvc_yaml_data_deps_follow_params(tmp_path):
    from pathlib import Path

    from stages import _data

    root = Path(__file__).resolve().parent.parent
    text = (root / "dvc.yaml").read_text(encoding="utf-8")
    assert _data.dvc_problems(text, _data_config({})) == []  # the repo's dvc.yaml, for the default data
    from pipeline.config import load_params

    for params in [root / "params.yaml", *sorted((root / "params").glob("*.yaml"))]:  # use_preset copies a preset
        assert _data.dvc_problems(text, load_params(params).data) == [], params
    listed = _data_config({"train_tasks": [{"path": "a.jsonl"}, {"path": "b.csv", "fields": {"prompt": "q"}}]})
    assert _data.dvc_problems(text, listed) == [(
        "self_instruct: declares ${data.train_tasks.path} for data.train_tasks, which needs "
        "${data.train_tasks[0].path}, ${data.train_tasks[1].path}")]
    written = _data.write_dvc_deps(text, listed)
    assert _data.dvc_problems(written, listed) == []
    assert "        - ${data.train_tasks[0].path}\n        - ${data.train_tasks[1].path}\n" in written
    assert written.replace("${data.train_tasks[0].path}\n        - ${data.train_tasks[1].path}",
                           "${data.train_tasks.path}") == text  # nothing else changed
    assert _data.write_dvc_deps(written, _data_config({})) == text


def test_a_stage_under_dvc_refuses_an_undeclared_source(tmp_path, monkeypatch):
    from pipeline.errors import StageError
    from stages import _data

    (tmp_path / "dvc.yaml").write_text("stages:\n  self_instruct:\n    foreach: {M1: {prev: M0_sft}}\n    do:\n"
                                       "      cmd: x\n      deps:\n        - ${data.train_tasks[0].path}\n"
                                       "        - data/extra\n")
    monkeypatch.setenv("DVC_ROOT", str(tmp_path))
    monkeypatch.setenv("DVC_STAGE", "self_instruct@M1")
    role = _data_config({"train_tasks": [{"path": "a.jsonl"}, {"path": "data/extra/b.jsonl"}, {"path": "c.csv"}]}
                        ).train_tasks
    with pytest.raises(StageError) as e:
        _data.check_declared(role)
    assert str(e.value) == ("dvc.yaml: stage self_instruct@M1 does not declare data.train_tasks[2].path (c.csv) as a "
                            "dep — run `python -m stages._data --write` to match dvc.yaml's data deps to params.yaml")
    monkeypatch.delenv("DVC_STAGE")
    _data.check_declared(role)  # run by hand: no dvc.yaml to hold it to
