"""What every benchmark shares: the machine's name, library versions, and writing the result file."""

from __future__ import annotations

import json
import os
import platform
import time
from pathlib import Path
from typing import Any


def machine_name() -> str:
    import torch

    if torch.cuda.is_available():
        return torch.cuda.get_device_name(0).replace(" ", "-")
    return f"cpu-{platform.machine()}-{os.cpu_count()}cores"


def versions() -> dict[str, str]:
    import torch
    import transformers

    out = {"torch": torch.__version__, "transformers": transformers.__version__}
    for name in ("trl", "vllm", "peft"):
        try:
            out[name] = __import__(name).__version__
        except ImportError:
            pass
    return out


def write_report(name: str, report: dict[str, Any], out_dir: str = "bench/results") -> Path:
    """bench/results/<name>-<machine>.json with machine, versions and the time of measurement added."""
    full = {"benchmark": name, "machine": machine_name(), **versions(), **report,
            "measured_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    out = Path(out_dir) / f"{name}-{full['machine']}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(full, indent=2) + "\n")
    print(json.dumps(full, indent=2))
    return out


def never_stop(engine: Any) -> None:
    """Make an HFEngine generate exactly max_new_tokens per sample (no id ends a row): fixed-length workloads."""
    engine._eos_ids = {-1}


def vllm_fixed_length(engine: Any, convs: list, n: int, temperature: float, top_p: float, max_new: int
                      ) -> tuple[list[list[int]], list[int], float]:
    """A VLLMEngine's LLM on ``convs`` rendered as the engine renders them, every sample exactly ``max_new``
    tokens (EOS ignored). Returns (generated token counts per request, prompt lengths, seconds)."""
    from vllm import SamplingParams
    from vllm.inputs import TokensPrompt

    prompts = [engine.encode(engine.format_chat(c)) for c in convs]
    params = SamplingParams(n=n, temperature=temperature, top_p=top_p, max_tokens=max_new, ignore_eos=True)
    start = time.perf_counter()
    outs = engine.llm.generate([TokensPrompt(prompt_token_ids=p) for p in prompts], params)
    seconds = time.perf_counter() - start
    return [[len(c.token_ids) for c in o.outputs] for o in outs], [len(p) for p in prompts], seconds


def flops_per_token(model: Any) -> int:
    """Matrix-multiply FLOPs per generated token: 2 x (every 2-D weight but the input embedding, plus the output
    projection, which a tied model shares with it). Attention over the context is left out (at 256 tokens of
    context about 6% more for the embedded model), so the bound below is an upper bound."""
    config = model.config
    inputs = model.get_input_embeddings().weight
    weights = sum(p.numel() for p in model.parameters() if p.dim() == 2 and p is not inputs)
    tied = model.get_output_embeddings() is None or model.get_output_embeddings().weight is inputs
    return 2 * (weights + (config.vocab_size * config.hidden_size if tied else 0))


def matmul_flops(dtype: str, m: int, k: int, n: int, seconds: float = 1.0) -> float:
    """FLOP/s of ``[m, k] @ [k, n]`` in ``dtype`` on this machine (best of repeated runs for about ``seconds``)."""
    import torch

    device = "cuda" if torch.cuda.is_available() else "cpu"
    a = torch.randn(m, k, dtype=getattr(torch, dtype), device=device)
    b = torch.randn(k, n, dtype=getattr(torch, dtype), device=device)
    for _ in range(3):
        a @ b
    best, spent = float("inf"), 0.0
    while spent < seconds:
        if device == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        a @ b
        if device == "cuda":
            torch.cuda.synchronize()
        took = time.perf_counter() - start
        best, spent = min(best, took), spent + took
    return 2 * m * k * n / best


def generation_bound(model: Any, dtype: str, batch: int) -> dict[str, float]:
    """Tokens/s this machine's matrix units allow for ``model`` in ``dtype``: the FLOP/s of the model's largest
    layer shape at ``batch`` rows (a decode step's MLP: ``[batch, hidden] @ [hidden, intermediate]``) over the
    FLOPs per token; also the FLOP/s of a 2048 x 2048 product, the machine's peak, for reference."""
    config = model.config
    width = getattr(config, "intermediate_size", 4 * config.hidden_size)
    at_batch = matmul_flops(dtype, batch, config.hidden_size, width)
    peak = matmul_flops(dtype, 2048, 2048, 2048)
    per_token = flops_per_token(model)
    return {"flops_per_token": per_token, "gflops_at_batch": at_batch / 1e9, "gflops_2048": peak / 1e9,
            "tokens_per_second": at_batch / per_token}
