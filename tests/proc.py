"""Stage subprocesses for tests: output to files (an unread pipe that fills up blocks the child), and waits on
files the stage writes rather than on sleeps of a guessed length."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


@dataclass
class Stage:
    proc: subprocess.Popen
    stdout: Path
    stderr: Path

    def err(self) -> str:
        return self.stderr.read_text(encoding="utf-8", errors="replace")

    def wait(self, timeout: float) -> int:
        return self.proc.wait(timeout=timeout)

    def kill(self) -> int:
        """SIGKILL (no cleanup handlers run, as in an OOM kill); returns the exit code: -9, unless the stage
        had already ended."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
        return self.proc.wait()


def start_stage(name: str, *args: str, logs: Path) -> Stage:
    """Start ``python -m stages.<name> *args`` in the cwd; stdout and stderr go to new files under ``logs``."""
    logs.mkdir(parents=True, exist_ok=True)
    runs = len(list(logs.glob(f"{name}-*.err")))
    out, err = logs / f"{name}-{runs}.out", logs / f"{name}-{runs}.err"
    env = {**os.environ, "PYTHONPATH": str(REPO), "HF_HUB_OFFLINE": "1"}
    with out.open("wb") as fo, err.open("wb") as fe:  # the child keeps its own copies of the descriptors
        cmd = [sys.executable, "-m", f"stages.{name}", *args]
        proc = subprocess.Popen(cmd, stdout=fo, stderr=fe, env=env)
    return Stage(proc, out, err)


def run_stage(name: str, *args: str, logs: Path, timeout: float = 300) -> Stage:
    """Run a stage to the end; fails the test with the tail of its stderr if it does not exit 0."""
    stage = start_stage(name, *args, logs=logs)
    try:
        code = stage.wait(timeout)
    except subprocess.TimeoutExpired:
        stage.kill()  # never leave a stage running behind a failed test
        raise AssertionError(f"stages.{name} ran past {timeout} s:\n{stage.err()[-3000:]}") from None
    assert code == 0, f"stages.{name} exited {code}:\n{stage.err()[-3000:]}"
    return stage


def wait_for_files(find: Callable[[], list[Path]], count: int, stage: Stage, timeout: float = 300,
                   interval: float = 0.01) -> list[Path]:
    """Poll ``find()`` until it returns at least ``count`` paths, the stage exits, or ``timeout`` passes;
    returns the last result (the caller decides what a short list means)."""
    deadline = time.monotonic() + timeout
    while True:
        found = find()
        if len(found) >= count or stage.proc.poll() is not None or time.monotonic() > deadline:
            return found
        time.sleep(interval)
