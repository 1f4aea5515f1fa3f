"""Shared fixtures: a tiny random Llama with the SmolLM2 tokenizer (from the installed GGUF), no network."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

REPO = Path(__file__).resolve().parent.parent


def pytest_collection_modifyitems(config, items):
    import torch

    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA GPU")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def smol_tokenizer():
    from transformers import AutoTokenizer

    from pipeline.models import REGISTRY

    if os.environ.get("TEST_TOKENIZER_DIR"):  # e.g. a GPU machine the GGUF package cannot be carried to
        tok = AutoTokenizer.from_pretrained(os.environ["TEST_TOKENIZER_DIR"])
    else:
        gguf = REGISTRY["smollm2-135m-instruct"].locate()
        tok = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    return tok


def build_tiny_model(tokenizer, seed: int = 0):
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(seed)
    config = LlamaConfig(
        vocab_size=len(tokenizer), hidden_size=128, intermediate_size=256, num_hidden_layers=2,
        num_attention_heads=2, num_key_value_heads=1, max_position_embeddings=4096, tie_word_embeddings=True,  # head_dim 64: vLLM CPU needs it
        bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    return LlamaForCausalLM(config)


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory, smol_tokenizer) -> Path:
    """A saved pipeline model (safetensors + tokenizer + card) with random weights; seconds to build."""
    from pipeline.models import save_model

    out = tmp_path_factory.mktemp("models") / "tiny"
    save_model(build_tiny_model(smol_tokenizer), smol_tokenizer, out, {"name": "tiny", "source": "test"})
    return out


@pytest.fixture()
def workdir(tmp_path, monkeypatch) -> Path:
    """A scratch copy of the repository layout (prompts, seed and eval data, params) as the cwd."""
    for name in ("prompts", "data/seed", "data/eval", "data/tasks"):
        src = REPO / name
        if src.exists():
            shutil.copytree(src, tmp_path / name)
    shutil.copy(REPO / "params.yaml", tmp_path / "params.yaml")
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.fixture()
def tiny_workdir(workdir, tiny_model_dir) -> Path:
    """``workdir`` with the tiny model as M0_sft and the tiny params (tests.helpers.TINY_PARAMS)."""
    import yaml

    from tests.helpers import TINY_PARAMS

    shutil.copytree(tiny_model_dir, workdir / "models" / "M0_sft")
    (workdir / "params.yaml").write_text(yaml.safe_dump(TINY_PARAMS))
    return workdir


@pytest.fixture(scope="session")
def real_m0(tmp_path_factory) -> Path:
    """The real embedded model materialized as M0 (slow: about 30 s)."""
    from pipeline.models import materialize, save_model

    out = tmp_path_factory.mktemp("real") / "M0"
    model, tok, origin = materialize("smollm2-135m-instruct")
    save_model(model, tok, out, {"name": "M0", "source": "smollm2-135m-instruct", "origin": origin})
    return out
