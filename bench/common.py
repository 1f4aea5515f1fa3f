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
