"""A stage asks for what it uses: the stages that load no model run with no model folder at all, the ones that
load one stop first with the line that names what to run, and the stages that generate nothing import no engine
code (so an edit to an engine re-runs none of them)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import yaml

from pipeline.records import Judgment, Response, write_jsonl
from tests.helpers import REPO, TINY_PARAMS, write_prompts
from tests.inprocess import run_stage

NO_MODEL_STAGES = ("verify", "pairs", "summarize", "page")
ENGINE_CODE = ("stages/_generate.py", "pipeline/engines/factory.py", "pipeline/engines/hf.py",
               "pipeline/engines/vllm.py", "pipeline/engines/server.py", "pipeline/engines/openai.py")


GENERATOR_MISSING = ("self_instruct.generator: 'previous' is models/M0_sft, which is missing — run `dvc repro` "
                     "for M0_sft first")


def rows(workdir):
    """Two prompts with two responses each, one judgment apiece whose scores differ (enough for two pairs), and
    no verification."""
    write_prompts(workdir, 2)
    responses, judgments = [], []
    for p in range(2):
        for s, score in enumerate((5.0, 1.0)):
            rid = f"r{p}{s}"
            text = f"Answer {s} about {p}."
            responses.append(Response(response_id=rid, prompt_id=f"p{p}", sample_index=s, instruction=f"Q{p}",
                                      prompt_text=f"Q{p}", output=text, thought="", response=text, parse_ok=True,
                                      num_tokens=len(text), finish_reason="stop"))
            judgments.append(Judgment(judgment_id=f"j{p}{s}", response_id=rid, prompt_id=f"p{p}", judge_index=0,
                                      text=f"Score: {int(score)}", score=score, method="strict"))
    write_jsonl(workdir / "data/M1/responses.jsonl", responses)
    write_jsonl(workdir / "data/M1/judgments.jsonl", judgments)
    write_jsonl(workdir / "data/M1/verifications.jsonl", [])  # no task among the prompts: what verify writes


@pytest.fixture()
def no_models(workdir):
    """The repository layout, the tiny params with meta-judging off, rows up to the judgments, no models/."""
    params = {**TINY_PARAMS, "meta_judge": {**TINY_PARAMS["meta_judge"], "enabled": False}}
    (workdir / "params.yaml").write_text(yaml.safe_dump(params))
    rows(workdir)
    assert not (workdir / "models").exists()
    return workdir


def ok(stage):
    proc = run_stage(stage, "--iteration", "M1")
    assert proc.returncode == 0, f"{stage}: {proc.stderr[-2000:]}"
    return proc


def test_the_stages_that_load_no_model_run_without_one(no_models):
    """verify (no task among the prompts), reflect and meta_judge switched off (they write empty outputs),
    pairs, summarize and page: none of them needs models/M0_sft."""
    for stage in ("verify", "reflect", "meta_judge", "pairs"):
        ok(stage)
    assert json.loads((no_models / "metrics/M1/pairs.json").read_text())["response_pairs"] == 2
    for stage in ("self_instruct", "sample", "judge", "dpo", "grpo", "eval"):  # what the skipped stages would say
        (no_models / f"metrics/M1/{stage}.json").write_text("{}")
    ok("summarize")
    assert json.loads((no_models / "metrics/M1/summary.json").read_text())["pairs"]["response_pairs"] == 2
    ok("page")
    assert (no_models / "reports/M1/index.html").exists()
    assert not (no_models / "models").exists()


@pytest.mark.parametrize("stage, patch, expect", [
    ("sample", {}, "models/M0_sft: missing — run `dvc repro` for M0_sft first"),
    ("judge", {}, "models/M0_sft: missing — run `dvc repro` for M0_sft first"),
    ("meta_judge", {"meta_judge": {"enabled": True}}, "models/M0_sft: missing — run `dvc repro` for M0_sft first"),
    ("dpo", {}, "models/M0_sft: missing — run `dvc repro` for M0_sft first"),
    ("self_instruct", {}, GENERATOR_MISSING),
    ("evaluate", {}, "models/M1: missing — run `dvc repro` for M1 first"),
])
def test_the_stages_that_load_a_model_ask_for_it_first(no_models, stage, patch, expect):
    params = yaml.safe_load((no_models / "params.yaml").read_text())
    for section, values in patch.items():
        params[section] = {**params[section], **values}
    (no_models / "params.yaml").write_text(yaml.safe_dump(params))
    before = sorted(p.relative_to(no_models) for p in (no_models / "data").rglob("*"))
    proc = run_stage(stage, "--iteration", "M1")
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert proc.stderr.strip().splitlines()[-1] == "error: " + expect
    assert sorted(p.relative_to(no_models) for p in (no_models / "data").rglob("*")) == before


def _stage_deps():
    from pipeline import stage_deps  # the closure scripts/stage_deps.py checks dvc.yaml with

    return stage_deps


@pytest.mark.parametrize("stage", [*NO_MODEL_STAGES, "dpo"])
def test_the_stages_that_generate_nothing_reach_no_engine_code(stage):
    """Statically, over every import (lazy ones too): no engine module at all (not even the interface), no
    generation glue, so that dvc.yaml re-runs none of these stages when an engine changes."""
    sd = _stage_deps()
    code, _ = sd.code_closure(REPO, [f"stages/{stage}.py"])
    assert not sorted(set(ENGINE_CODE) & code)
    assert not sorted(f for f in code if f.startswith("pipeline/engines/"))


def test_the_engine_interface_imports_no_backend():
    """Importing the interface loads neither a backend nor the factory; the stages that generate nothing load no
    engine module at all."""
    probe = ("import sys, pipeline.engines.base; "
             "print(sorted(m for m in sys.modules if m.startswith(('pipeline.engines.', 'stages._generate'))))")
    out = subprocess.run([sys.executable, "-c", probe], cwd=REPO, capture_output=True, text=True, check=True).stdout
    assert out.strip() == "['pipeline.engines.base']"
    probe = ("import sys, stages.verify, stages.pairs, stages.summarize, stages.dpo; "
             "print(sorted(m for m in sys.modules if m.startswith(('pipeline.engines', 'stages._generate'))))")
    out = subprocess.run([sys.executable, "-c", probe], cwd=REPO, capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
