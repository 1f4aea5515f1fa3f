"""Where each stage reads and writes, which stage makes each file, and what a model name refers to."""

from __future__ import annotations

from pathlib import Path

ROOT = Path(".")
# The input data's paths are params (`data:` section, pipeline.config.DataConfig), not constants.
WORK = Path(".work")  # resumable shards live here, outside DVC's declared outputs

# data/<key>/<file> -> the stage that writes it (named in the error when it is missing)
PRODUCERS = {
    "prompts.jsonl": "self_instruct",
    "instruction_candidates.jsonl": "self_instruct",
    "responses.jsonl": "sample",
    "verifications.jsonl": "verify",
    "reflections.jsonl": "reflect",
    "judgments.jsonl": "judge",
    "extra_judgments.jsonl": "meta_judge",
    "meta_judgments.jsonl": "meta_judge",
    "ratings.jsonl": "meta_judge",
    "known_pairs.jsonl": "judge_training",
    "known_judgments.jsonl": "judge_training",
    "response_pairs.jsonl": "pairs",
    "judgment_pairs.jsonl": "pairs",
    "reflection_pairs.jsonl": "pairs",
    "judge_training_pairs.jsonl": "pairs",
    "rollouts.jsonl": "dpo",
}


KNOWN_POOL = Path("data/M0/known_pool.jsonl")  # the held-out known pairs (stage known_pool, not per iteration)


def model_dir(key: str) -> Path:
    return Path("models") / key


def data_dir(key: str) -> Path:
    return Path("data") / key


def metrics_dir(key: str) -> Path:
    return Path("metrics") / key


def resolve_model(name: str, key: str, prev: str) -> Path:
    """The model folder a param names, seen from iteration ``key`` whose predecessor is ``prev``.

    ``previous`` is M_prev, ``current`` M_key, ``base`` M0; a pipeline model's name (M0, M0_sft, M2, ...)
    is its folder under models/; anything else is a path to a model directory.
    """
    special = {"previous": prev, "current": key, "base": "M0"}
    if name in special:
        return model_dir(special[name])
    if (model_dir(name) / "config.json").exists() or "/" not in name:
        return model_dir(name)
    return Path(name)
