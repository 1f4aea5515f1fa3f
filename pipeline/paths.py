"""Where each stage reads and writes; one place, so stages and tests agree."""

from __future__ import annotations

from pathlib import Path

ROOT = Path(".")
SEED_INSTRUCTIONS = Path("data/seed/instructions.jsonl")
SEED_JUDGMENTS = Path("data/seed/judgments.jsonl")
EVAL_PROMPTS = Path("data/eval/prompts.jsonl")
LABELLED_PAIRS = Path("data/eval/labelled_pairs.jsonl")
WORK = Path(".work")  # resumable shards live here, outside DVC's declared outputs


def model_dir(key: str) -> Path:
    return Path("models") / key


def data_dir(key: str) -> Path:
    return Path("data") / key


def metrics_dir(key: str) -> Path:
    return Path("metrics") / key
