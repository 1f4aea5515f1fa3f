"""What the generating stages share: the engine params ask for, made resumable, and the engine replicas of
engine.data_parallel_size (kept apart from _common so that stages which generate nothing do not depend on the
engines).

A generating stage's main reads its inputs, then, just before it loads its model:

    if _generate.replicated(it):   # engine.data_parallel_size > 1: the replicas did the work
        return
    gen = _generate.generation(it, ...)
"""

from __future__ import annotations

import shutil
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pipeline import launch, models
from pipeline.config import Params
from pipeline.engines.base import Engine
from pipeline.engines.factory import make_engine, resolve_backend
from pipeline.errors import StageError
from pipeline.generation import Generation
from pipeline.paths import WORK
from pipeline.shards import ShardCache
from pipeline.templates import template_hash
from stages._common import Iteration, log


def open_engine(params: Params, it: Iteration | None = None, local: bool = False) -> Callable[[Any], Engine]:
    """A function that loads the generation engine params ask for on a model directory (``local``: never a
    server); engines opened for ``it`` report into its metrics (servers: requests, retries, fallbacks)."""

    def load(model_dir: Any) -> Engine:
        engine = make_engine(model_dir, params.engine, params.model.trust_remote_code, local=local)
        if it is not None and getattr(engine, "precision", None) is not None:  # hf, vllm: into the metrics
            it.precision = engine.precision
        if it is not None and engine.report():  # servers only: a local engine must not be kept alive by this list
            it.engines.append(engine)           # (evaluate frees each model before loading the next)
        return engine

    return load


def replicated(it: Iteration) -> bool:
    """With engine.data_parallel_size > 1, run this stage as that many engine replicas (each with its own GPUs),
    wait for them, clear their shards and return True: replica 0 wrote the outputs, the caller returns. Inside a
    replica, or with one, return False: generate here."""
    cfg = it.params.engine
    if cfg.data_parallel_size <= 1 or launch.replica() is not None:
        return False
    per_replica = cfg.tensor_parallel_size if resolve_backend(cfg.backend) == "vllm" else 1
    try:
        code = launch.run_replicas(cfg.data_parallel_size, per_replica, f"stages.{it.stage}", sys.argv[1:])
    except ValueError as e:
        raise StageError(f"engine.data_parallel_size: {e}") from None
    if code:
        raise StageError(f"{it.stage} {it.key}: a replica failed (exit {code}); its error is above")
    for d in WORK.glob(f"{it.stage}-{it.key}-*"):
        shutil.rmtree(d, ignore_errors=True)
    log.info("%s %s: %d replicas done; replica 0 wrote the outputs", it.stage, it.key, cfg.data_parallel_size)
    return True


def _check_replicated(it: Iteration) -> None:
    if it.params.engine.data_parallel_size > 1 and launch.replica() is None:  # a stage main that forgot
        raise RuntimeError(f"stages.{it.stage}: engine.data_parallel_size > 1 — call _generate.replicated(it) "
                           "before opening the shard cache")


def engine_dtype(params: Params) -> str:
    """The dtype a local engine computes in on this machine (``engine.dtype``, auto decided as the engines decide
    it, without loading a model); ``server`` for servers, whose dtype is theirs."""
    if resolve_backend(params.engine.backend) == "server":
        return "server"
    import torch

    from pipeline import cpu_dtype

    return cpu_dtype.decide(params.engine.dtype, cpu_dtype.read_features(), cuda=torch.cuda.is_available()).dtype


def cache(it: Iteration, *inputs: Any, templates: tuple[str, ...] = (), model_dir: Path | None = None) -> ShardCache:
    """The stage's shard cache under .work/, keyed by the model, the engine's dtype, ``inputs`` and the templates'
    hashes (shared by the replicas of engine.data_parallel_size, which :func:`replicated` starts first): a run
    resumed on a machine that computes in another dtype starts its shards again."""
    _check_replicated(it)
    d = model_dir or it.prev_dir
    return ShardCache(it.stage, it.key, [models.model_ref(d), engine_dtype(it.params), *inputs,
                                         [template_hash(t) for t in templates]], replica=launch.replica())


def openai_generation(it: Iteration, url: str, model: str, key_env: str | None, *inputs: Any,
                      max_concurrency: int = 8) -> Generation:
    """An OpenAI-compatible server as the generator, checked first, resumable like a local model."""
    from pipeline.engines.openai import OpenAIEngine

    server = OpenAIEngine(url, model, key_env, max_concurrency=max_concurrency)
    server.preflight(it.stage)
    return Generation(server, ShardCache(it.stage, it.key, [url, model, *inputs]), it.params.shard_size(it.stage))


def generation(it: Iteration, *inputs: Any, templates: tuple[str, ...] = (), model_dir: Path | None = None
               ) -> Generation:
    """The engine on ``model_dir`` (default M_prev), resumable: finished shards survive a crash."""
    _check_replicated(it)
    d = model_dir or it.prev_dir
    return Generation(open_engine(it.params, it)(d), cache(it, *inputs, templates=templates, model_dir=d),
                      it.params.shard_size(it.stage))
