"""Reading the params ``data`` sources (apart from _common, so that only the stages that read them depend on the
readers)."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import TypeVar

from pipeline import models, records, sources, tasks
from pipeline.config import DataSource

R = TypeVar("R", bound=records.Row)


def read(source: DataSource, cls: type[R]) -> list[R]:
    """Rows of a params ``data`` source, validated (``path:line: reason``), with its field mapping applied."""
    return sources.read_source(source.path, cls, source.fields or None)


def read_tasks(source: DataSource) -> list[tasks.Task]:
    """Tasks with known answers from a params ``data`` source (GSM8K, MBPP, HumanEval recognized)."""
    return tasks.load_tasks(source.path, source.fields or None)


def digest(source: DataSource) -> str:
    """sha256 of a source file, or of a saved dataset folder's files (names and contents, in order)."""
    path = Path(source.path)
    if not path.is_dir():
        return models.sha256_file(path)
    h = hashlib.sha256()
    for f in sorted(p for p in path.rglob("*") if p.is_file()):
        h.update(f"{f.relative_to(path)}\0{models.sha256_file(f)}\n".encode())
    return h.hexdigest()
