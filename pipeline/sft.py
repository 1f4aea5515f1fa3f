"""Seed SFT (both papers): M0 fine-tuned on instruction following (IFT) and judge examples (EFT).

IFT: instruction -> reference response. EFT: the rendered judge prompt -> the rubric justification and
``Score: N``, the very format the judge stage parses. Loss on completions only (TRL prompt-completion).
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pipeline.config import SftConfig
from pipeline import sampling, templates
from pipeline.judging import judge_conversation
from pipeline.records import JudgeExample, SeedInstruction
from pipeline.training import StopOnNonFiniteLoss, common_args, last_checkpoint, log_summary


def eft_target(example: JudgeExample) -> str:
    return f"{example.justification.strip()}\nScore: {example.score}"


def split_eft(examples: Sequence[JudgeExample], heldout: int, seed: int) -> tuple[list[JudgeExample], list[JudgeExample]]:
    """(train, held back): a seeded split; the held-back ones measure the judge before and after SFT."""
    order = list(examples)
    random.Random(seed).shuffle(order)
    return order[heldout:], order[:heldout]


def ift_example(seed: SeedInstruction, thoughts: str) -> dict[str, Any]:
    """instruction -> reference; with thoughts on, the thought prompt -> a fixed seed thought + the reference.

    The seed thought (``prompts/seed_thought.j2``) only teaches the format (thoughts, marker, response) to a
    model too small to follow the thought prompt unaided; TPO then optimizes what the thoughts say.
    """
    if thoughts == "none":
        return {"prompt": [{"role": "user", "content": seed.instruction}],
                "completion": [{"role": "assistant", "content": seed.reference}]}
    thought = templates.render("seed_thought.j2", instruction=seed.instruction)
    target = templates.render("seed_thought_target.j2", thoughts=thoughts, thought=thought, response=seed.reference)
    return {"prompt": [{"role": "user", "content": sampling.response_prompt(seed.instruction, thoughts)}],
            "completion": [{"role": "assistant", "content": target}]}


def sft_examples(ift: Sequence[SeedInstruction], eft: Sequence[JudgeExample], data: str,
                 max_examples: int | None = None, seed: int = 0, thoughts: str = "none") -> list[dict[str, Any]]:
    """Prompt-completion rows; at most ``max_examples`` of each kind, drawn with ``seed``."""
    if max_examples is not None:
        rng = random.Random(seed)
        ift = rng.sample(list(ift), min(max_examples, len(ift)))
        eft = rng.sample(list(eft), min(max_examples, len(eft)))
    rows: list[dict[str, Any]] = []
    if data in ("ift", "both"):
        rows += [ift_example(s, thoughts) for s in ift]
    if data in ("eft", "both"):
        rows += [{"prompt": judge_conversation(e.instruction, e.response),
                  "completion": [{"role": "assistant", "content": eft_target(e)}]} for e in eft]
    return rows


def train_sft(model_dir: Path, rows: list[dict[str, Any]], cfg: SftConfig, checkpoint_dir: Path
              ) -> tuple[Any, Any, dict[str, Any]]:
    from datasets import Dataset
    from trl import SFTConfig, SFTTrainer

    from pipeline.models import load_model

    model, tok = load_model(model_dir)
    random.Random(cfg.seed).shuffle(rows)
    args = SFTConfig(**common_args(str(checkpoint_dir), epochs=cfg.epochs, learning_rate=cfg.learning_rate,
                                   batch_size=cfg.batch_size, grad_accum=1, seed=cfg.seed, save_steps=500),
                     max_length=cfg.max_length, completion_only_loss=True, packing=False)
    trainer = SFTTrainer(model=model, args=args, train_dataset=Dataset.from_list(rows), processing_class=tok,
                         callbacks=[StopOnNonFiniteLoss()])
    trainer.train(resume_from_checkpoint=last_checkpoint(str(checkpoint_dir)))
    return trainer.model, tok, log_summary(trainer.state.log_history)
