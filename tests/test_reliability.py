"""Faults a long run meets: a flaky server, a full or read-only disk, and re-runs that must hash the same."""

import errno
import hashlib
import json
import os
import shutil
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import yaml

from pipeline import records
from pipeline.engines.base import SamplingSettings
from pipeline.engines.openai import OpenAIEngine, ServerError, retry_after
from pipeline.errors import OutputError
from pipeline.generation import Generation
from pipeline.shards import ShardCache


# ------------------------------------------------------------------------------------------ a flaky server
class Faults(BaseHTTPRequestHandler):
    """Answers chat completions and the model list; ``plan`` scripts what each request to a path gets."""

    plan: dict = {}  # path -> list of ("ok" | status code | "json" | "slow" | "garbage"), consumed in order
    served: list = []

    def _reply(self, status, body, headers=()):
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        self.send_response(status)
        for k, v in headers:
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _next(self):
        steps = Faults.plan.get(self.path, [])
        step = steps.pop(0) if steps else "ok"
        Faults.served.append((self.path, step))
        return step

    def do_GET(self):  # noqa: N802
        step = self._next()
        if step == "garbage":
            return self._reply(200, b"<html>not json</html>")
        self._reply(200, {"data": [{"id": "judge-model"}, {"id": "other"}]})

    def do_POST(self):  # noqa: N802
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        step = self._next()
        if step == "slow":
            threading.Event().wait(1.0)  # longer than the client's timeout
        if isinstance(step, int):
            headers = [("Retry-After", "7")] if step == 429 else []
            return self._reply(step, {"error": {"message": f"injected {step}"}}, headers)
        if step == "garbage":
            return self._reply(200, b"{not json")
        if step == "json":
            return self._reply(200, {"unexpected": True})
        text = "Winner: A" if "first" in body["messages"][0]["content"] else "Winner: B"
        self._reply(200, {"choices": [{"message": {"content": text}, "finish_reason": "stop"}] * body["n"],
                          "usage": {"completion_tokens": 3 * body["n"]}})

    def log_message(self, *args):
        pass


@pytest.fixture()
def server():
    Faults.plan, Faults.served = {}, []
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Faults)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_port}/v1"
    httpd.shutdown()
    httpd.server_close()


def engine_for(url, **kw):
    waits = []
    engine = OpenAIEngine(url, "judge-model", None, timeout=0.5, sleep=waits.append, **kw)
    return engine, waits


CONV = [[{"role": "user", "content": "first"}]]
SETTINGS = SamplingSettings(n=1, temperature=0.0, max_new_tokens=8)


def test_retries_429_and_5xx_with_backoff_honouring_retry_after(server):
    Faults.plan = {"/v1/chat/completions": [429, 503, 500, "ok"]}
    engine, waits = engine_for(server, backoff=0.5)
    out = engine.generate(CONV, SETTINGS)
    assert out[0][0].text == "Winner: A"
    assert waits == [7.0, 1.0, 2.0]  # Retry-After: 7; then 0.5 * 2**1, 0.5 * 2**2
    assert (engine.retries, engine.retry_seconds) == (3, 10.0)


def test_a_timeout_is_retried(server):
    Faults.plan = {"/v1/chat/completions": ["slow", "ok"]}
    engine, waits = engine_for(server)
    assert engine.generate(CONV, SETTINGS)[0][0].text == "Winner: A" and engine.retries == 1 and waits == [1.0]


def test_backoff_is_bounded_and_retries_end(server):
    Faults.plan = {"/v1/chat/completions": [503] * 10}
    engine, waits = engine_for(server, retries=4, backoff=10.0, max_backoff=25.0)
    with pytest.raises(ServerError, match=r"/chat/completions: no answer after 5 attempts \(last: HTTP 503\)"):
        engine.generate(CONV, SETTINGS)
    assert waits == [10.0, 20.0, 25.0, 25.0]


@pytest.mark.parametrize("step, message", [
    (400, r"HTTP 400 — .*injected 400.* \(not retried"),
    (401, r"HTTP 401"),
    ("garbage", r"the answer is not JSON"),
    ("json", r"no choices\[\]\.message\.content"),
])
def test_refusals_and_unreadable_answers_fail_at_once(server, step, message):
    Faults.plan = {"/v1/chat/completions": [step]}
    engine, waits = engine_for(server)
    with pytest.raises(ServerError, match=message):
        engine.generate(CONV, SETTINGS)
    assert waits == [] and len(Faults.served) == 1


def test_retry_after_as_seconds_or_date():
    assert retry_after("3") == 3.0 and retry_after(None) is None and retry_after("soon") is None
    assert retry_after("Wed, 21 Oct 2026 07:28:10 GMT", now=1792567680.0) == 10.0


def test_finished_shards_survive_a_server_that_goes_down(server, tmp_path):
    convs = [[{"role": "user", "content": f"first {i}"}] for i in range(4)]
    Faults.plan = {"/v1/chat/completions": ["ok", "ok", 400]}
    engine, _ = engine_for(server)
    gen = Generation(engine, ShardCache("evaluate", "M1", ["x"], root=tmp_path), shard_size=1)
    with pytest.raises(ServerError):
        gen.generate(convs, SETTINGS, name="compare")
    assert len(list(tmp_path.glob("evaluate-M1-*/compare-*.jsonl"))) == 2
    Faults.served.clear()
    gen = Generation(engine, ShardCache("evaluate", "M1", ["x"], root=tmp_path), shard_size=1)
    out = gen.generate(convs, SETTINGS, name="compare")
    assert [row[0].text for row in out] == ["Winner: A"] * 4
    assert gen.cache.reused == 2 and len(Faults.served) == 2  # only the two unfinished shards were asked again


# ------------------------------------------------------------------------------------------ pre-flight
def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_preflight_passes_and_names_each_problem(server, monkeypatch):
    OpenAIEngine(server, "judge-model", None).preflight()
    monkeypatch.delenv("SELFREWARD_TEST_KEY", raising=False)
    cases = [
        (OpenAIEngine("127.0.0.1:8000/v1", "m", None), "evaluate.openai_url: '127.0.0.1:8000/v1' — must be an http(s) URL"),
        (OpenAIEngine(server, "judge-model", "SELFREWARD_TEST_KEY"),
         "evaluate.api_key_env: the variable SELFREWARD_TEST_KEY is not set"),
        (OpenAIEngine(server, "missing-model", None),
         "evaluate.openai_model: 'missing-model' — not served at " + server + " (it serves: judge-model, other)"),
    ]
    for engine, message in cases:
        with pytest.raises(ServerError) as e:
            engine.preflight()
        assert str(e.value).startswith(message)
    closed = OpenAIEngine(f"http://127.0.0.1:{free_port()}/v1", "m", None, retries=1, sleep=lambda s: None)
    with pytest.raises(ServerError, match=r"/models: no answer after 2 attempts .* is the server up\?"):
        closed.preflight()


# ------------------------------------------------------------------------------------------ disk faults
@pytest.mark.parametrize("where, err", [("fsync", errno.ENOSPC), ("replace", errno.EROFS), ("mkstemp", errno.EACCES)])
def test_a_failed_write_leaves_the_old_file_and_no_partial_one(tmp_path, monkeypatch, where, err):
    path = tmp_path / "out.jsonl"
    path.write_text('{"old": true}\n')

    def fail(*args, **kwargs):
        raise OSError(err, os.strerror(err))

    target = {"fsync": (os, "fsync"), "replace": (os, "replace"), "mkstemp": (records.tempfile, "mkstemp")}[where]
    monkeypatch.setattr(*target, fail)
    with pytest.raises(OutputError) as e:
        records.write_jsonl(path, [{"new": True}])
    monkeypatch.undo()
    assert str(e.value).startswith(f"{path}: cannot write — {os.strerror(err)} — ")
    assert "\n" not in str(e.value)
    assert path.read_text() == '{"old": true}\n' and sorted(p.name for p in tmp_path.iterdir()) == ["out.jsonl"]


def test_a_failed_model_save_leaves_no_folder(tmp_path, monkeypatch, tiny_model_dir):
    from pipeline.models import load_model, save_model

    model, tok = load_model(tiny_model_dir)

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(type(model), "save_pretrained", full)
    with pytest.raises(OutputError, match=r"models/M1: cannot write — No space left on device — free some space"):
        save_model(model, tok, tmp_path / "models/M1", {"name": "M1"})
    assert list((tmp_path / "models").iterdir()) == []


# ------------------------------------------------------------------------------------------ reproducibility
def digest_tree(root):
    """sha256 of every file a DVC stage would hash (data, models), by path."""
    out = {}
    for sub in ("data/M1", "models/M1"):
        for path in sorted((root / sub).rglob("*")):
            if path.is_file():
                out[str(path.relative_to(root))] = hashlib.sha256(path.read_bytes()).hexdigest()
    return out


@pytest.mark.slow
def test_two_runs_write_identical_bytes(tmp_path, tiny_model_dir, monkeypatch):
    """sample -> dpo twice on the tiny model, in two folders: every data file and model file is the same."""
    from tests.helpers import REPO, TINY_PARAMS, write_prompts
    from tests.inprocess import run_stage

    digests = []
    for run in ("a", "b"):
        root = tmp_path / run
        for name in ("prompts", "data/seed", "data/eval"):
            shutil.copytree(REPO / name, root / name)
        shutil.copytree(tiny_model_dir, root / "models/M0_sft")
        (root / "params.yaml").write_text(yaml.safe_dump(TINY_PARAMS))
        monkeypatch.chdir(root)
        write_prompts(root)
        for stage in ("sample", "verify", "reflect", "judge", "meta_judge", "pairs", "dpo"):
            assert run_stage(stage, "--iteration", "M1").returncode == 0, stage
        digests.append(digest_tree(root))
    assert digests[0] == digests[1]
    assert "models/M1/model.safetensors" in digests[0] and "models/M1/model_card.json" in digests[0]
