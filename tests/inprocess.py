"""Run a stage entry point inside the test process: same argument parsing, error handling and exit codes as
``python -m stages.<name>``, without a new interpreter (importing torch and transformers again costs seconds)."""

from __future__ import annotations

import contextlib
import importlib
import io
import sys
from dataclasses import dataclass


@dataclass
class Result:
    returncode: int
    stderr: str


def run_stage(name: str, *args: str) -> Result:
    from stages import _common

    module = importlib.import_module(f"stages.{name}")
    err = io.StringIO()
    argv = sys.argv
    sys.argv = [f"stages.{name}", *args]
    code = 0
    try:
        with contextlib.redirect_stderr(err):
            _common.run(module.main)
    except SystemExit as e:
        code = e.code if isinstance(e.code, int) else 1
    finally:
        sys.argv = argv
    return Result(code, err.getvalue())
