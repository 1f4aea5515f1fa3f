"""The kit of the bad-input corpus (tests/test_bad_input_corpus.py): setups that make one bad input in a
tiny work folder, the Case row type, and the runner that runs a stage or command in-process. Cases live in
tests/test_bad_input_corpus.py and in tests/corpus_*.py (one module per area, each a list CASES).
"""


from __future__ import annotations

import contextlib
import copy
import http.server
import io
import json
import shlex
import shutil
import socket
import subprocess
import sys
import threading
import traceback
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from tests.helpers import REPO, TINY_PARAMS
from tests.inprocess import Result, run_stage

UNSET_KEY = "SELFREWARD_TEST_UNSET_KEY"
MODEL = "judge-model"  # the evaluator model the openai rows ask for

SEED = "data/seed/instructions.jsonl"
EFT = "data/seed/judgments.jsonl"
EVAL = "data/eval/prompts.jsonl"
PAIRS = "data/eval/labelled_pairs.jsonl"
PROMPTS = "data/M1/prompts.jsonl"
RESPONSES = "data/M1/responses.jsonl"
JUDGMENTS = "data/M1/judgments.jsonl"

# A valid first line for each file: the bad line is line 2, so a message must name the right line.
GOOD = {
    SEED: {"id": "s1", "category": "math", "instruction": "Add two and two.", "reference": "Four."},
    EFT: {"id": "e1", "category": "c", "instruction": "Q", "response": "R", "justification": "J", "score": 3},
    EVAL: {"id": "e1", "category": "c", "instruction": "Say hi."},
    PAIRS: {"id": "lp1", "category": "c", "instruction": "Q", "response_a": "a", "response_b": "b", "preferred": "A"},
    PROMPTS: {"prompt_id": "p0", "instruction": "Write one sentence about the number 0.", "source": "test"},
    RESPONSES: {"response_id": "r0", "prompt_id": "p0", "sample_index": 0, "instruction": "Say hi.",
                "prompt_text": "Say hi.", "output": "Hi.", "thought": "", "response": "Hi.", "parse_ok": True,
                "num_tokens": 2, "finish_reason": "stop"},
    JUDGMENTS: {"judgment_id": "j0", "response_id": "r0", "prompt_id": "p0", "judge_index": 0,
                "text": "Score: 3", "score": 3.0, "method": "strict"},
}
ID_FIELD = {SEED: "id", EFT: "id", EVAL: "id", PAIRS: "id", PROMPTS: "prompt_id", RESPONSES: "response_id",
            JUDGMENTS: "judgment_id"}
# The stage that reads each file first (before any model loads).
READER = {SEED: "self_instruct@M1", EFT: "sft", EVAL: "evaluate@M1", PAIRS: "evaluate@M1", PROMPTS: "sample@M1",
          RESPONSES: "judge@M1"}


# --------------------------------------------------------------------------------------------------- setups
Setup = Callable[[Path, dict[str, Any]], None]  # (workdir, context: "url" of the stub server) -> None


def _merge(base: dict[str, Any], patch: dict[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(base)
    for key, value in patch.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict) and key != "iterations":
            out[key] = _merge(out[key], value)
        else:
            out[key] = value
    return out


def params(patch: dict[str, Any] | Callable[[dict[str, Any]], dict[str, Any]]) -> Setup:
    """TINY_PARAMS with ``patch`` merged in (``iterations`` replaced whole); a callable gets the context."""
    def setup(wd: Path, ctx: dict[str, Any]) -> None:
        p = patch(ctx) if callable(patch) else patch
        (wd / "params.yaml").write_text(yaml.safe_dump(_merge(TINY_PARAMS, p)))
    return setup


def params_text(text: str | bytes) -> Setup:
    def setup(wd: Path, ctx: dict[str, Any]) -> None:
        (wd / "params.yaml").write_bytes(text.encode() if isinstance(text, str) else text)
    return setup


def jsonl(path: str, *lines: dict[str, Any] | bytes | str) -> Setup:
    """``path`` holding these lines (dicts as JSON, bytes/str as is)."""
    def setup(wd: Path, ctx: dict[str, Any]) -> None:
        raw = [ln if isinstance(ln, bytes) else ln.encode() if isinstance(ln, str) else json.dumps(ln).encode()
               for ln in lines]
        (wd / path).parent.mkdir(parents=True, exist_ok=True)
        (wd / path).write_bytes(b"".join(ln + b"\n" for ln in raw))
    return setup


def line2(path: str, bad: dict[str, Any] | bytes | str) -> Setup:
    """``path`` with a good first line and ``bad`` as line 2."""
    return jsonl(path, GOOD[path], bad)


def good(path: str, **changes: Any) -> dict[str, Any]:
    """The good row of ``path`` with a new id (so it is not a duplicate) and ``changes`` (None deletes)."""
    row = dict(GOOD[path])
    row[ID_FIELD[path]] += "b"
    row.update(changes)
    return {k: v for k, v in row.items() if v is not None}


def write(rel: str, data: bytes | str) -> Setup:
    def setup(wd: Path, ctx: dict[str, Any]) -> None:
        (wd / rel).parent.mkdir(parents=True, exist_ok=True)
        (wd / rel).write_bytes(data.encode() if isinstance(data, str) else data)
    return setup


def remove(rel: str) -> Setup:
    def setup(wd: Path, ctx: dict[str, Any]) -> None:
        p = wd / rel
        shutil.rmtree(p) if p.is_dir() else p.unlink()
    return setup


def copy_model(src: str, dst: str) -> Setup:
    def setup(wd: Path, ctx: dict[str, Any]) -> None:
        shutil.copytree(wd / src, wd / dst)
    return setup


def truncate(rel: str, keep: int | None = None) -> Setup:
    """Cut a file to ``keep`` bytes (default: half), as a full disk or an interrupted copy would."""
    def setup(wd: Path, ctx: dict[str, Any]) -> None:
        p = wd / rel
        size = p.stat().st_size
        with p.open("r+b") as fh:
            fh.truncate(size // 2 if keep is None else keep)
    return setup


def chain(*setups: Setup) -> Setup:
    def setup(wd: Path, ctx: dict[str, Any]) -> None:
        for s in setups:
            s(wd, ctx)
    return setup


def source(src: str, *extra: Setup) -> Setup:
    """model.source: ``src`` (for the base_model stage), after ``extra`` setups."""
    return chain(*extra, params({"model": {"source": src}}))


def tiny_model_at(rel: str) -> Setup:
    """A valid saved pipeline model (made by pipeline.models.save_model, as the fixture's M0_sft) at ``rel``."""
    return copy_model("models/M0_sft", rel)


def openai_evaluator(**over: Any) -> Setup:
    """evaluate.evaluator: openai at the case's URL (models/M1 present, so only the evaluator can fail)."""
    def patch(ctx: dict[str, Any]) -> dict[str, Any]:
        cfg = {"evaluator": "openai", "openai_url": ctx["url"], "openai_model": MODEL, "api_key_env": None,
               "baselines": ["previous"], **over}
        return {"evaluate": cfg}
    return chain(copy_model("models/M0_sft", "models/M1"), params(patch))


def openai_generator(**over: Any) -> Setup:
    """self_instruct.generator: openai at the case's URL."""
    def patch(ctx: dict[str, Any]) -> dict[str, Any]:
        return {"self_instruct": {"generator": "openai", "openai_url": ctx["url"], "openai_model": MODEL,
                                  "api_key_env": None, **over}}
    return params(patch)


# --------------------------------------------------------------------------------------------------- cases
@dataclass
class Case:
    id: str
    stage: str  # "sample@M1" runs `stages.sample --iteration M1`; "base_model" runs without one
    setup: Setup
    expect: str | tuple[str, ...]  # the exact message after "error: " ({url} filled in), or (prefix, *phrases)
    server: Any = None  # None, "closed" (a free port nobody listens on) or (status, body) of GET answers
    bug: str | None = None  # a known failure: the row is xfail(strict) until the pipeline is fixed


P = "params.yaml: "
LIMIT = "must be below engine.max_model_len (4096), which must also hold the prompt"
MISSING_PREV = "each iteration must name its predecessor, e.g. {prev: M0_sft}"



# --------------------------------------------------------------------------------------------------- running
class _Stub(http.server.BaseHTTPRequestHandler):
    answer: tuple[int, bytes] = (200, b"{}")

    def do_GET(self) -> None:
        status, body = self.answer
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_POST = do_GET

    def log_message(self, *args: Any) -> None:
        pass


@contextlib.contextmanager
def server_url(spec: Any) -> Iterator[str]:
    """A base URL on 127.0.0.1 (the only host a test contacts): a stub answering ``spec`` or a closed port."""
    if spec is None or spec == "closed":
        with socket.socket() as s:  # a port that was free a moment ago: nobody listens there
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        yield f"http://127.0.0.1:{port}/v1"
        return
    handler = type("Stub", (_Stub,), {"answer": spec})
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{srv.server_address[1]}/v1"
    finally:
        srv.shutdown()
        srv.server_close()


def snapshot(root: Path) -> dict[str, Any]:
    """Every path outside .work/ with (size, mtime) for files: what a failing stage must leave alone."""
    out: dict[str, Any] = {}
    for p in root.rglob("*"):
        rel = p.relative_to(root)
        if rel.parts[0] == ".work":
            continue
        st = p.stat()
        out[str(rel)] = "dir" if p.is_dir() else (st.st_size, st.st_mtime_ns)
    return out


def run(stage: str) -> Result:
    """What ``stage`` names, in this process; an exception that escapes is what `python -m` shows: exit 1, traceback.

    ``sample@M1`` runs `stages.sample --iteration M1`; ``base_model`` runs without one; ``evaluate@M0_sft --x y``
    passes the words after the first as more arguments; ``selfreward list pairs -i M1`` runs the inspection
    command and ``use_preset irpo --to x.yaml`` the preset script (shlex words, in the work folder).
    """
    words = shlex.split(stage)
    head, rest = words[0], words[1:]
    try:
        if head == "selfreward":
            return _run_main(lambda: __import__("selfreward.cli", fromlist=["main"]).main(rest))
        if head == "use_preset":  # a script, not a module: run as a user runs it
            proc = subprocess.run([sys.executable, str(REPO / "scripts" / "use_preset.py"), *rest],
                                  capture_output=True, text=True)
            return Result(proc.returncode, proc.stderr)
        name, _, key = head.partition("@")
        return run_stage(name, *(["--iteration", key] if key else []), *rest)
    except Exception:  # noqa: BLE001
        return Result(1, traceback.format_exc())


def _run_main(main: Callable[[], int]) -> Result:
    """A command's main() with stderr captured; SystemExit (argparse) is its exit code, as from a shell."""
    err = io.StringIO()
    try:
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
            code = main()
    except SystemExit as e:
        code = e.code if isinstance(e.code, int) else 1
    return Result(int(code or 0), err.getvalue())
