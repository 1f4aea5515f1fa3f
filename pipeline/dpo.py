"""DPO on response pairs and judgment pairs with TRL's DPOTrainer, initialized from M_prev.

``dpo.reference: previous`` (the papers) uses M_prev as the frozen reference; ``base`` uses M0.
``loss_type`` and ``loss_weights`` go to TRL as they are, so ``[sigmoid, sft]`` gives the IRPO loss
(DPO + NLL on the chosen answer).
"""

from __future__ import annotations

import logging
import random
from pathlib import Path
from typing import Any

from pipeline.config import DpoConfig
from pipeline.models import load_model
from pipeline.training import StopOnNonFiniteLoss, common_args, last_checkpoint, log_summary

log = logging.getLogger("pipeline")

TRL_FIELDS = ("prompt", "chosen", "rejected")


def mix_pairs(response_pairs: list[dict[str, Any]], judgment_pairs: list[dict[str, Any]], seed: int
              ) -> list[dict[str, Any]]:
    """Both kinds shuffled together (seeded), reduced to TRL's fields."""
    rows = [{k: p[k] for k in TRL_FIELDS} for p in [*response_pairs, *judgment_pairs]]
    random.Random(seed).shuffle(rows)
    return rows


def train_dpo(model_dir: Path, reference_dir: Path | None, rows: list[dict[str, Any]], cfg: DpoConfig,
              checkpoint_dir: Path) -> tuple[Any, Any, dict[str, Any]]:
    """Train and return (model, tokenizer, training summary). Resumes from the last checkpoint if any."""
    from datasets import Dataset
    from trl import DPOConfig, DPOTrainer

    model, tok = load_model(model_dir)
    ref = load_model(reference_dir)[0] if reference_dir is not None else None
    args = DPOConfig(
        **common_args(str(checkpoint_dir), epochs=cfg.epochs, learning_rate=cfg.learning_rate,
                      batch_size=cfg.batch_size, grad_accum=cfg.gradient_accumulation_steps, seed=cfg.seed,
                      save_steps=cfg.save_steps, gradient_checkpointing=cfg.gradient_checkpointing),
        beta=cfg.beta, loss_type=list(cfg.loss_type), loss_weights=cfg.loss_weights, max_length=cfg.max_length,
        precompute_ref_log_probs=cfg.precompute_ref_log_probs,
    )
    trainer = DPOTrainer(model=model, ref_model=ref, args=args, train_dataset=Dataset.from_list(rows),
                         processing_class=tok, callbacks=[StopOnNonFiniteLoss()])
    resume = last_checkpoint(str(checkpoint_dir))
    if resume is not None:
        log.info("dpo: resuming from %s", resume)
    trainer.train(resume_from_checkpoint=resume)
    return trainer.model, tok, log_summary(trainer.state.log_history)
