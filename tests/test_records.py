import hashlib
import inspect
import json

import pytest

from pipeline.records import (
    JudgeExample,
    RecordError,
    SeedInstruction,
    read_jsonl,
    stable_id,
    write_json,
    write_jsonl,
)

GOOD = {"id": "s1", "category": "math", "instruction": "Add 2 and 2.", "reference": "4"}


def write_lines(path, lines):
    path.write_bytes(b"".join((line if isinstance(line, bytes) else line.encode()) + b"\n" for line in lines))
    return path


def error_of(path, cls=SeedInstruction) -> str:
    with pytest.raises(RecordError) as e:
        read_jsonl(path, cls)
    return str(e.value)


def test_roundtrip_and_atomic_write(tmp_path):
    rows = [SeedInstruction(**GOOD), SeedInstruction(**{**GOOD, "id": "s2"})]
    out = tmp_path / "sub" / "rows.jsonl"
    assert write_jsonl(out, rows) == 2
    assert read_jsonl(out, SeedInstruction) == rows
    assert [p.name for p in out.parent.iterdir()] == ["rows.jsonl"]  # no temporary file left behind


def test_failed_write_leaves_the_old_file(tmp_path):
    out = tmp_path / "rows.jsonl"
    write_jsonl(out, [SeedInstruction(**GOOD)])

    def broken():
        yield SeedInstruction(**{**GOOD, "id": "s9"})
        raise RuntimeError("crash mid-write")

    with pytest.raises(RuntimeError):
        write_jsonl(out, broken())
    assert read_jsonl(out, SeedInstruction) == [SeedInstruction(**GOOD)]
    assert [p.name for p in tmp_path.iterdir()] == ["rows.jsonl"]


@pytest.mark.parametrize("line, message", [
    ('{"id": "s2", "category": "x", "reference": "r"}', 'missing field "instruction"'),
    ('{"id": "s2", "category": "x", "instruction": "  ", "reference": "r"}', 'field "instruction" is empty'),
    ('{"id": "s2", "category": "x", "instruction": 7, "reference": "r"}', 'field "instruction" must be a string'),
    ('{"id": "s2", "category": "x", "instruction": "a"', "invalid JSON"),
    ('["a", "b"]', "expected a JSON object, got list"),
    (json.dumps(GOOD), 'duplicate id "s1" (first on line 1)'),
    (json.dumps({**GOOD, "id": "s3", "reference": "x" * 20001}), 'field "reference" is 20001 characters long'),
])
def test_bad_line_names_path_and_line(tmp_path, line, message):
    path = write_lines(tmp_path / "seed.jsonl", [json.dumps(GOOD), line])
    assert error_of(path) == f"{path}:2: {message}" or error_of(path).startswith(f"{path}:2: {message}")


def test_non_utf8_bytes(tmp_path):
    path = write_lines(tmp_path / "seed.jsonl", [json.dumps(GOOD), b'{"id": "\xff"}'])
    assert error_of(path) == f"{path}:2: not valid UTF-8 (byte 9 of the line)"


def test_score_out_of_range(tmp_path):
    row = {"id": "e1", "category": "c", "instruction": "i", "response": "r", "justification": "j", "score": 6}
    path = write_lines(tmp_path / "eft.jsonl", [json.dumps(row)])
    assert error_of(path, JudgeExample) == f'{path}:1: field "score" must be between 0 and 5, got 6'


# Literal ids, computed once: a salted hash() or a changed serialisation would give different ids on the
# next run and orphan every cached shard and every reference to a row.
@pytest.mark.parametrize("prefix, parts, expected", [
    ("p", ("abc", 1), "p-ad22a04f3a0b"),
    ("p", ("abc", 2), "p-b60ddfc584f3"),
    ("p", (1,), "p-080a9ed42855"),
    ("resp", ("Grüße, 世界", 0), "resp-14787ea2c1ec"),
    ("pair", ({"b": [1, 2, {"z": None, "a": 1.5}], "a": "é"}, ["x", True]), "pair-bfc451f03e1d"),
])
def test_stable_ids_are_pinned(prefix, parts, expected):
    assert stable_id(prefix, *parts) == expected


def test_stable_id_is_sha256_of_the_json_parts():
    # Written out by hand, not with json.dumps: non-ASCII kept as UTF-8 (ensure_ascii=False), default
    # separators.
    serialised = '["Grüße, 世界", 0]'.encode()
    assert stable_id("resp", "Grüße, 世界", 0) == "resp-" + hashlib.sha256(serialised).hexdigest()[:12]


def test_stable_id_ignores_dict_key_order():
    assert stable_id("pair", {"a": 1, "b": 2}) == stable_id("pair", {"b": 2, "a": 1})


def test_write_json_is_sorted_and_readable(tmp_path):
    write_json(tmp_path / "m.json", {"b": 1, "a": [1, 2]})
    assert json.loads((tmp_path / "m.json").read_text()) == {"a": [1, 2], "b": 1}


# The key order of each generated row type's file lines, as written before the generation fields were declared
# once (records.Generated): existing files, their hashes and DVC's cache depend on it.
WRITTEN_ORDER = {
    "Response": ["response_id", "prompt_id", "sample_index", "instruction", "prompt_text", "output", "thought",
                 "response", "parse_ok", "num_tokens", "finish_reason", "token_ids", "logprob", "stop_logprob",
                 "provenance"],
    "Judgment": ["judgment_id", "response_id", "prompt_id", "judge_index", "text", "score", "method", "digit_probs",
                 "num_tokens", "token_ids", "logprob", "stop_logprob", "provenance"],
    "Reflection": ["reflection_id", "response_id", "prompt_id", "reflection_index", "prompt_text", "text", "retry",
                   "retry_extracted", "retry_method", "retry_correct", "num_tokens", "token_ids", "logprob",
                   "stop_logprob", "provenance"],
}


def _generated_rows():
    from pipeline.records import Judgment, Reflection, Response

    gen = {"token_ids": [5, 7, 9], "logprob": -2.5, "stop_logprob": -0.25}
    return [
        Response(response_id="r1", prompt_id="p1", sample_index=0, instruction="Q?", prompt_text="Q?", output="A.",
                 thought="", response="A.", parse_ok=True, num_tokens=3, finish_reason="stop", **gen,
                 provenance={"model_sha256": "ab"}),
        Judgment(judgment_id="j1", response_id="r1", prompt_id="p1", judge_index=0, text="Score: 4", score=4.0,
                 method="strict", num_tokens=3, **gen),
        Reflection(reflection_id="f1", response_id="r1", prompt_id="p1", reflection_index=0, prompt_text="Q?",
                   text="I erred.", retry="B.", retry_extracted="B", retry_method="strict", retry_correct=True,
                   num_tokens=3, **gen),
    ]


def test_generation_fields_are_declared_once_and_written_where_they_were(tmp_path):
    from pipeline import records

    assert records.GENERATION_FIELDS == ("token_ids", "logprob", "stop_logprob")
    for row in _generated_rows():
        cls = type(row)
        assert isinstance(row, records.Generated)
        assert not {"token_ids", "logprob", "stop_logprob"} & set(inspect.get_annotations(cls))  # not repeated
        assert list(row.to_dict()) == records.field_names(cls) == WRITTEN_ORDER[cls.__name__]
        assert row.generation() == {"token_ids": [5, 7, 9], "logprob": -2.5, "stop_logprob": -0.25}
        path = tmp_path / f"{cls.__name__}.jsonl"
        write_jsonl(path, [row])
        line = path.read_text(encoding="utf-8")
        assert list(json.loads(line)) == WRITTEN_ORDER[cls.__name__]
        assert read_jsonl(path, cls) == [row]
        # a row without them (an engine without log-probs) reads back with None
        bare = {k: v for k, v in row.to_dict().items() if k not in records.GENERATION_FIELDS}
        assert cls.from_dict(bare).generation() == dict.fromkeys(records.GENERATION_FIELDS)


def test_generation_field_errors_name_the_field():
    from pipeline.records import Judgment

    raw = _generated_rows()[1].to_dict()
    with pytest.raises(RecordError, match=r'^f:1: field "logprob" must be '):
        Judgment.from_dict({**raw, "logprob": "high"}, "f:1: ")
    with pytest.raises(RecordError, match=r'^f:1: unknown field "zzz" — known fields: judgment_id, response_id, '
                                          r"prompt_id, judge_index, text, score, method, digit_probs, num_tokens, "
                                          r"token_ids, logprob, stop_logprob, provenance$"):
        Judgment.from_dict({**raw, "zzz": 1}, "f:1: ")
