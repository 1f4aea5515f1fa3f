"""What every stage entry point shares: argument parsing, params loading, one-line errors."""

from __future__ import annotations

import argparse
import logging
import sys
import time
from collections.abc import Callable
from typing import Any

from pipeline.config import ConfigError, Params, load_params
from pipeline.models import ModelSourceError
from pipeline.records import RecordError

log = logging.getLogger("pipeline")


class StageError(RuntimeError):
    """A stage cannot go on (degenerate data, missing input); the message says what to change."""


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
    except (ConfigError, RecordError, ModelSourceError, StageError) as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)
    log.info("done in %.1f s", time.time() - start)


class Iteration:
    """What a per-iteration stage needs to know: params with overrides, its key, its predecessor's model."""

    def __init__(self, args: argparse.Namespace) -> None:
        from pipeline import models, paths

        self.params = load(args)
        self.key: str = args.iteration
        self.prev: str = self.params.prev_of(self.key)
        self.prev_dir = paths.model_dir(self.prev)
        self.data = paths.data_dir(self.key)
        self.metrics = paths.metrics_dir(self.key)
        if not (self.prev_dir / "config.json").exists():
            raise StageError(f"{self.prev_dir}: missing — run `dvc repro` for {self.prev} first")
        self.prev_card = models.read_card(self.prev_dir)

    def model_ref(self, model_dir: Any = None) -> dict[str, Any]:
        """Which model made a row: its name and the first 16 hex of its weights' sha256."""
        from pathlib import Path

        from pipeline import models

        d = Path(model_dir) if model_dir is not None else self.prev_dir
        card = models.read_card(d)
        return {"model": d.name, "model_sha256": str(card.get("weights_sha256", ""))[:16]}

    def engine(self, model_dir: Any = None) -> Any:
        from pipeline.engines import make_engine

        d = model_dir if model_dir is not None else self.prev_dir
        return make_engine(d, self.params.engine, self.params.model.trust_remote_code)


def token_stats(completions: Any) -> dict[str, int]:
    flat = [c for row in completions for c in row]
    return {"generated_tokens": sum(c.num_tokens for c in flat),
            "prompt_tokens": sum(c.num_prompt_tokens for c in flat),
            "sequences": len(flat),
            "truncated": sum(c.finish_reason == "length" for c in flat)}


def histogram(values: Any, bins: Any) -> dict[str, int]:
    out = {str(b): 0 for b in bins}
    for v in values:
        out[str(v)] = out.get(str(v), 0) + 1
    return out


def generated_fields(c: Any) -> dict[str, Any]:
    """A completion's token ids and raw log-probs as row fields (dpo reuses them as reference log-probs)."""
    return {"token_ids": list(c.token_ids),
            "logprob": float(sum(c.logprobs)) if c.logprobs is not None else None,
            "stop_logprob": c.stop_logprob}

