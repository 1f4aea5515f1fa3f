"""Run the stages of one iteration on a tiny random model in a scratch folder and print a digest of every output.

    python scripts/tiny_run.py /tmp/tiny-a              # builds the folder, runs sft .. summarize
    python scripts/tiny_run.py /tmp/tiny-b && diff <(python scripts/tiny_run.py --digest /tmp/tiny-a) \
                                                  <(python scripts/tiny_run.py --digest /tmp/tiny-b)

Used to check that a refactor changes no output: run it before and after, and compare the digests. Data files
are hashed byte for byte; metrics files without their clock fields (seconds, throughput); models by the sha256
of their weights. The tiny model has random weights (seed 0) and the SmolLM2 tokenizer; no network.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

PARAMS = {
    "engine": {"backend": "hf", "batch_size": 16, "shard_size": 3},
    "sft": {"max_examples": 4, "heldout_eft": 2, "epochs": 1, "batch_size": 4, "eval_max_new_tokens": 16,
            "max_length": 512},
    "sample": {"n": 3, "max_new_tokens": 12, "thoughts": "none"},
    "judge": {"k": 2, "max_new_tokens": 10, "scoring": "expected"},
    "meta_judge": {"num_judgments": 3, "max_new_tokens": 10, "tie_margin": 0.0, "calibrate_forced": True},
    "pairs": {"min_pairs": 1, "truncated_response": "keep"},  # 12 tokens of a random model cut every response
    "dpo": {"batch_size": 2, "max_length": 256, "learning_rate": 1e-4, "save_steps": 1000},
    "evaluate": {"baselines": ["previous", "M0"], "max_prompts": 3, "max_new_tokens": 12,
                 "compare_max_new_tokens": 8, "max_labelled_pairs": 2, "judge_k": 1, "bootstrap": 50,
                 "calibrate_forced": True},
    "iterations": {"M1": {"prev": "M0_sft"}},
}
CLOCK_KEYS = {"seconds", "pairs_per_second", "reference_seconds", "train_runtime", "train_samples_per_second",
              "train_steps_per_second", "created_at", "total_flos"}
STAGES = ["sft", "sample", "verify", "reflect", "judge", "meta_judge", "pairs", "dpo", "evaluate"]


def build(root: Path) -> None:
    import yaml
    from transformers import AutoTokenizer

    from pipeline.models import REGISTRY, save_model
    from tests.conftest import build_tiny_model

    if root.exists():
        shutil.rmtree(root)
    for name in ("prompts", "data/seed", "data/eval"):
        shutil.copytree(REPO / name, root / name)
    gguf = REGISTRY["smollm2-135m-instruct"].locate()
    tok = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    save_model(build_tiny_model(tok), tok, root / "models/M0", {"name": "M0", "source": "test"})
    (root / "params.yaml").write_text(yaml.safe_dump(PARAMS))
    rows = [{"prompt_id": f"p{i}", "instruction": f"Write one sentence about the number {i}.", "source": "test",
             "provenance": {}} for i in range(3)]
    (root / "data/M1").mkdir(parents=True)
    (root / "data/M1/prompts.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))


def run(root: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(REPO), "HF_HUB_OFFLINE": "1"}
    for stage in STAGES:
        args = [] if stage == "sft" else ["--iteration", "M1"]
        proc = subprocess.run([sys.executable, "-m", f"stages.{stage}", *args], cwd=root, env=env,
                              capture_output=True, text=True)
        if proc.returncode != 0:
            sys.exit(f"{stage} failed:\n{proc.stderr[-3000:]}")


def _strip(obj):
    if isinstance(obj, dict):
        return {k: _strip(v) for k, v in obj.items() if k not in CLOCK_KEYS}
    if isinstance(obj, list):
        return [_strip(v) for v in obj]
    return obj


def digest(root: Path) -> list[str]:
    out = []
    for path in sorted((root / "data").rglob("*.jsonl")):
        out.append(f"{hashlib.sha256(path.read_bytes()).hexdigest()[:16]}  {path.relative_to(root)}")
    for path in sorted((root / "metrics").rglob("*.json")):
        text = json.dumps(_strip(json.loads(path.read_text())), sort_keys=True)
        out.append(f"{hashlib.sha256(text.encode()).hexdigest()[:16]}  {path.relative_to(root)} (no clock fields)")
    for card in sorted((root / "models").glob("*/model_card.json")):
        out.append(f"{json.loads(card.read_text())['weights_sha256'][:16]}  {card.parent.relative_to(root)} (weights)")
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("root", type=Path, help="scratch folder (replaced)")
    p.add_argument("--digest", action="store_true", help="only print the digest of an existing folder")
    args = p.parse_args()
    if not args.digest:
        build(args.root)
        run(args.root)
    print("\n".join(digest(args.root)))


if __name__ == "__main__":
    main()
