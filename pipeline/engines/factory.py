"""Which engine params ask for: :func:`make_engine` builds it on a model directory, :func:`resolve_backend` reads
``engine.backend: auto``. Apart from the package's ``__init__`` so that importing the engine interface
(``pipeline.engines.base``) reaches no backend: only the stages that generate (``stages/_generate.py``) import
this module, and with it the hf, vLLM and server engines.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

from pipeline.config import EngineConfig
from pipeline.engines.base import Engine

__all__ = ["make_engine", "resolve_backend"]


def resolve_backend(backend: str) -> str:
    """``auto`` is vllm on a CUDA machine with vllm installed, hf otherwise."""
    if backend != "auto":
        return backend
    import torch

    return "vllm" if torch.cuda.is_available() and importlib.util.find_spec("vllm") else "hf"


def make_engine(model_path: str | Path, cfg: EngineConfig, trust_remote_code: bool = False,
                local: bool = False) -> Engine:
    """The engine ``cfg`` asks for on a model directory; ``local``: never a server (a model that no server can
    serve yet, such as the seed SFT's own output), hf in its place."""
    backend = resolve_backend(cfg.backend)
    if backend == "server" and local:
        backend = "hf"
    if backend == "server":
        from pipeline.engines.server import ServerEngine

        server = ServerEngine(model_path, cfg.servers, cfg.server_api_key_env, max_concurrency=cfg.server_max_concurrency,
                              timeout=cfg.server_timeout, trust_remote_code=trust_remote_code)
        server.preflight()
        return server
    if backend == "vllm":
        from pipeline.engines.vllm import VLLMEngine

        return VLLMEngine(str(model_path), dtype=cfg.dtype, max_model_len=cfg.max_model_len,
                          gpu_memory_utilization=cfg.gpu_memory_utilization,
                          tensor_parallel_size=cfg.tensor_parallel_size, max_num_seqs=cfg.max_num_seqs,
                          enable_prefix_caching=cfg.enable_prefix_caching, seed=cfg.seed,
                          trust_remote_code=trust_remote_code, enforce_eager=cfg.enforce_eager,
                          cpu_reserved_cores=cfg.cpu_reserved_cores)
    from pipeline.engines.hf import HFEngine

    return HFEngine(str(model_path), batch_size=cfg.batch_size, dtype=cfg.dtype, trust_remote_code=trust_remote_code,
                    max_model_len=cfg.max_model_len)
