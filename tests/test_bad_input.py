"""Bad input files stop a stage before any model loads: one line `path:line: reason`, exit 2, nothing written."""

import json

import pytest

from tests.inprocess import run_stage

GOOD = {"id": "s1", "category": "math", "instruction": "Add two and two.", "reference": "Four."}
SEED = "data/seed/instructions.jsonl"
EVAL = "data/eval/prompts.jsonl"
PAIRS = "data/eval/labelled_pairs.jsonl"
EFT = "data/seed/judgments.jsonl"
GOOD_PAIR = {"id": "lp1", "category": "c", "instruction": "Q", "response_a": "a", "response_b": "b", "preferred": "A"}
GOOD_EFT = {"id": "e1", "category": "c", "instruction": "Q", "response": "R", "justification": "J", "score": 3}

CASES = [  # (stage, file, second line as bytes, expected message after "path:2: ")
    ("self_instruct", SEED, b'{"id": "s2", "category": "math"', "invalid JSON — Expecting ',' delimiter (column 32)"),
    ("self_instruct", SEED, json.dumps({**GOOD, "id": "s2", "instruction": None}).encode(),
     'field "instruction" must be a string, got null'),
    ("self_instruct", SEED, json.dumps({"id": "s2", "category": "c", "reference": "r"}).encode(),
     'missing field "instruction"'),
    ("self_instruct", SEED, json.dumps({**GOOD, "id": "s2", "instruction": " "}).encode(), 'field "instruction" is empty'),
    ("self_instruct", SEED, json.dumps({**GOOD, "id": 2}).encode(), 'field "id" must be a string, got 2'),
    ("self_instruct", SEED, b'{"id": "s2", "instruction": "caf\xe9"}', "not valid UTF-8 (byte 33 of the line)"),
    ("self_instruct", SEED, json.dumps(GOOD).encode(), 'duplicate id "s1" (first on line 1)'),
    ("self_instruct", SEED, json.dumps({**GOOD, "id": "s2", "reference": "x" * 20001}).encode(),
     'field "reference" is 20001 characters long — at most 20000 allowed'),
    ("self_instruct", SEED, b'["not", "an", "object"]', "expected a JSON object, got list"),
    ("self_instruct", EVAL, json.dumps({"id": "e2", "category": "c"}).encode(), 'missing field "instruction"'),
    ("evaluate", PAIRS, json.dumps({**GOOD_PAIR, "id": "lp2", "preferred": "C"}).encode(),
     "field \"preferred\" must be 'A' | 'B', got \"C\""),
    ("sft", EFT, json.dumps({**GOOD_EFT, "id": "e2", "score": 9}).encode(), 'field "score" must be between 0 and 5, got 9'),
    ("sft", EFT, json.dumps({**GOOD_EFT, "id": "e2", "score": "3"}).encode(), 'field "score" must be an integer, got "3"'),
]
FIRST_LINE = {SEED: GOOD, EVAL: {"id": "e1", "category": "c", "instruction": "Say hi."}, PAIRS: GOOD_PAIR, EFT: GOOD_EFT}


@pytest.mark.parametrize("stage, path, line, message", CASES, ids=[f"{c[0]}-{i}" for i, c in enumerate(CASES)])
def test_bad_input_line(tiny_workdir, stage, path, line, message):
    (tiny_workdir / path).write_bytes(json.dumps(FIRST_LINE[path]).encode() + b"\n" + line + b"\n")
    before = sorted(p.relative_to(tiny_workdir) for p in tiny_workdir.rglob("*"))
    args = [] if stage == "sft" else ["--iteration", "M1"]
    proc = run_stage(stage, *args)
    assert proc.returncode == 2
    assert proc.stderr.strip() == f"error: {path}:2: {message}"
    assert sorted(p.relative_to(tiny_workdir) for p in tiny_workdir.rglob("*")) == before  # nothing written


def test_missing_and_empty_input(tiny_workdir):
    (tiny_workdir / SEED).write_text("\n")
    proc = run_stage("self_instruct", "--iteration", "M1")
    assert proc.returncode == 2 and proc.stderr.strip() == f"error: {SEED}: no rows"
    (tiny_workdir / SEED).unlink()
    proc = run_stage("self_instruct", "--iteration", "M1")
    assert proc.returncode == 2 and proc.stderr.strip() == f"error: {SEED}: not found"


@pytest.mark.parametrize("stage, missing, producer", [
    ("sample", "prompts.jsonl", "self_instruct"), ("judge", "responses.jsonl", "sample"),
    ("meta_judge", "responses.jsonl", "sample"), ("pairs", "responses.jsonl", "sample"),
    ("dpo", "response_pairs.jsonl", "pairs")])
def test_a_missing_upstream_output_names_the_stage_to_run_first(tiny_workdir, stage, missing, producer):
    proc = run_stage(stage, "--iteration", "M1")
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines()[-1] == (
        f"error: data/M1/{missing}: not found — run `dvc repro {producer}@M1` (or `python -m stages.{producer} "
        "--iteration M1`) first")
