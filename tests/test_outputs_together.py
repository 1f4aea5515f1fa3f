"""A stage's outputs land together or not at all, and a folder that cannot be written is found before any work."""

from __future__ import annotations

import os

import pytest

from pipeline import records
from pipeline.errors import OutputError


def test_files_written_together_land_only_when_all_succeed(tmp_path, monkeypatch):
    (tmp_path / "old.jsonl").write_text('{"a": 0}\n')
    real = os.fsync
    calls = []

    def fail_second(fd):
        calls.append(fd)
        if len(calls) == 2:
            raise OSError(30, "Read-only file system")
        real(fd)

    monkeypatch.setattr(os, "fsync", fail_second)
    with pytest.raises(OutputError, match="cannot write"), records.together():
        records.write_jsonl(tmp_path / "old.jsonl", [{"a": 1}])
        records.write_json(tmp_path / "metrics.json", {"m": 1})
    assert (tmp_path / "old.jsonl").read_text() == '{"a": 0}\n'  # the first write did not land alone
    assert sorted(p.name for p in tmp_path.iterdir()) == ["old.jsonl"]  # no temporary file left


def test_files_written_together_all_land(tmp_path):
    with records.together():
        records.write_jsonl(tmp_path / "a.jsonl", [{"a": 1}])
        assert not (tmp_path / "a.jsonl").exists()  # not before the block ends
        records.write_json(tmp_path / "m" / "b.json", {"b": 2})
    assert records.read_json(tmp_path / "m" / "b.json") == {"b": 2}
    assert (tmp_path / "a.jsonl").read_text() == '{"a": 1}\n'


def test_a_folder_that_cannot_be_written_is_found_before_work(tmp_path):
    records.check_writable(tmp_path / "not" / "yet" / "there")  # its nearest existing parent is writable
    assert not (tmp_path / "not").exists()  # and the check made nothing
    (tmp_path / "metrics").write_text("a file where a folder should be")
    with pytest.raises(OutputError, match=r"metrics/M1: cannot write there — a file is in the way of the folder"):
        records.check_writable(tmp_path / "metrics" / "M1")


def test_a_stage_stops_before_its_model_loads_when_its_metrics_folder_is_blocked(tiny_workdir, monkeypatch):
    from tests.helpers import write_prompts
    from tests.inprocess import run_stage

    write_prompts(tiny_workdir)
    (tiny_workdir / "metrics").mkdir(exist_ok=True)
    (tiny_workdir / "metrics" / "M1").write_text("in the way")
    loaded = []
    from pipeline.engines import hf

    monkeypatch.setattr(hf.HFEngine, "__init__", lambda *a, **k: loaded.append(1) or None)
    proc = run_stage("sample", "--iteration", "M1")
    assert proc.returncode == 2 and loaded == []
    assert proc.stderr.strip().splitlines()[-1].startswith("error: metrics/M1: cannot write there")
    assert not (tiny_workdir / "data/M1/responses.jsonl").exists()
