"""What every stage entry point shares: argument parsing, params, reading inputs, writing outputs, one-line errors."""

from __future__ import annotations

import argparse
import logging
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

from pipeline import launch, models, paths, records
from pipeline.config import Params, load_params
from pipeline.errors import PipelineError, StageError

log = logging.getLogger("pipeline")
BASE_MODELS = ("M0", "M0_sft")  # the models before the iterations: a stage that measures a model accepts them too
R = TypeVar("R", bound=records.Row)

__all__ = ["Iteration", "StageError", "load", "log", "parser", "relaunched", "require_model", "run"]


def parser(doc: str | None, iteration: bool = True) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=(doc or "").split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter, epilog=doc)
    p.add_argument("--params", default="params.yaml", help="params file (default: params.yaml)")
    if iteration:
        p.add_argument("--iteration", required=True, help="iteration key from params.yaml, e.g. M1")
    return p


def load(args: argparse.Namespace) -> Params:
    params = load_params(args.params)
    key = getattr(args, "iteration", None)
    return params.for_iteration(key) if key else params


def run(main: Callable[[], Any]) -> None:
    """Run a stage's main; known failures print one line and exit 2, nothing half-written stays."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s", datefmt="%H:%M:%S")
    start = time.time()
    try:
        main()
    except PipelineError as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)
    log.info("done in %.1f s", time.time() - start)


class Iteration:
    """What a per-iteration stage needs: params with overrides, its key, its predecessor, its files. It asks for
    no model: a stage that loads M_prev says so with :meth:`require_model` before its work."""

    def __init__(self, args: argparse.Namespace, stage: str, base_models: bool = False) -> None:
        self.key: str = args.iteration
        self.stage = stage
        if base_models and self.key in BASE_MODELS:  # M0 / M0_sft: the global params; M0_sft follows M0
            self.params = load_params(args.params)
            self.prev: str = "M0"
        else:
            self.params = load(args)
            self.prev = self.params.prev_of(self.key)
        self.prev_dir = paths.model_dir(self.prev)
        self.data = paths.data_dir(self.key)
        self.metrics = paths.metrics_dir(self.key)
        self.started = time.time()
        self.engines: list[Any] = []  # engines opened for this stage (their report() goes into its metrics)
        self.precision: dict[str, str] | None = None  # the local engine's compute dtype and why (cpu_dtype)
        for folder in (self.data, self.metrics):  # found now, not after the work
            records.check_writable(folder)

    def require_model(self) -> Path:
        """M_prev's folder, which the stage is about to load; missing, the message names what to run first."""
        require_model(self.prev_dir, self.prev)
        return self.prev_dir

    def model(self, name: str, param: str | None = None) -> Path:
        """The model a param names (previous, current, base, M0_sft, a path), seen from this iteration; with
        ``param`` (the param's key) it must exist, and a message names the param and what to do."""
        path = paths.resolve_model(name, self.key, self.prev)
        if param is None or (path / "config.json").exists():
            return path
        pipeline_models = ["M0", "M0_sft", *self.params.iterations]
        target = {"previous": self.prev, "current": self.key, "base": "M0"}.get(name, name)
        if target in pipeline_models:
            raise StageError(f"{param}: {name!r} is {path}, which is missing — run `dvc repro` for {target} first")
        if "/" not in name:
            raise StageError(f"{param}: {name!r} — not a model: neither previous, current, base, nor one of "
                             f"{', '.join(pipeline_models)}, nor a model folder (write a path with a /)")
        raise StageError(f"{param}: {name!r} — no model folder there ({path / 'config.json'} is missing)")

    def made_by(self, model_dir: Path | None = None) -> dict[str, Any]:
        """The start of a row's provenance: the model that made it and the iteration, and the dtype the engine
        computed in where it is not float32 (the dpo stage reuses float32 log-probs only as a float32 reference)."""
        dtype = (self.precision or {}).get("dtype", "float32")
        return {**models.model_ref(model_dir or self.prev_dir), "iteration": self.key,
                **({"dtype": dtype} if dtype != "float32" else {})}

    def read(self, name: str, cls: type[R], allow_empty: bool = False) -> list[R]:
        """Rows of ``data/<key>/<name>``; a missing file names the stage to run first."""
        path = self.data / name
        if not path.exists():
            stage = paths.PRODUCERS.get(name, "?")
            raise StageError(f"{path}: not found — run `dvc repro {stage}@{self.key}` (or `python -m stages.{stage} "
                             f"--iteration {self.key}`) first")
        return list(records.iter_jsonl(path, cls)) if allow_empty else records.read_jsonl(path, cls)

    def write(self, outputs: dict[str, Any], metrics: dict[str, Any], name: str | None = None) -> None:
        """Each ``data/<key>/<file>: rows`` and ``metrics/<key>/<stage>.json`` (with the stage's seconds); of the
        replicas of engine.data_parallel_size, replica 0 alone writes."""
        if not launch.writes_outputs():
            return
        reports = [r for e in self.engines if (r := e.report())]
        served = {"server": reports} if reports else {}  # nothing added for local engines
        if self.precision is not None:  # the rows name it in their provenance only where it is not float32
            served["engine_dtype"] = self.precision
        with records.together():  # the data files and the metrics land together or not at all
            for file, rows in outputs.items():
                records.write_jsonl(self.data / file, rows)
            records.write_json(self.metrics / f"{name or self.stage}.json",
                               {**metrics, **served, "seconds": round(time.time() - self.started, 1)})


    def skipped_for_grpo(self, outputs: Sequence[str]) -> bool:
        """With grpo.enabled the dpo stage trains online on the prompts and uses no offline data: an offline stage
        writes its outputs empty (and loads no model); the caller returns when this says True."""
        if not self.params.grpo.enabled:
            return False
        self.write({name: [] for name in outputs}, {"skipped": "grpo.enabled: the dpo stage trains with GRPO"})
        log.info("%s %s: skipped (grpo.enabled: the dpo stage samples its own rollouts)", self.stage, self.key)
        return True


def require_model(model_dir: Path, name: str) -> None:
    """A pipeline model a stage loads (``name``: M0, M0_sft, an iteration's key) must be there."""
    if not (model_dir / "config.json").exists():
        raise StageError(f"{model_dir}: missing — run `dvc repro` for {name} first")


def relaunched(spec: Any, stage: str, label: str) -> bool:
    """With ``<stage>.launch`` asking for a launcher (several processes, or an accelerate config), run this stage
    again under torchrun / ``accelerate launch``, wait, and return True: the launched processes did the work and
    process 0 wrote the outputs. Inside them, or with no launcher wanted, return False: do the work here.
    ``label`` starts the message when they fail (``sft``, ``dpo M1``)."""
    if not launch.wanted(spec) or launch.under_launcher():
        return False
    code = launch.relaunch(spec, f"stages.{stage}", sys.argv[1:])
    if code:
        raise StageError(f"{label}: the launched processes failed (exit {code}); their errors are above")
    return True
