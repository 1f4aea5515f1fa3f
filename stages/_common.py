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
