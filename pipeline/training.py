"""What SFT and DPO share: TRL arguments for this machine (with its compute dtype), a NaN guard, and the training
log."""

from __future__ import annotations

import logging
import math
import shutil
from pathlib import Path
from typing import Any

from transformers import TrainerCallback

log = logging.getLogger("pipeline")


class NonFiniteLossError(RuntimeError):
    pass


def check_disk(model_dir: Path, stage: str, factor: float = 5.0) -> None:
    """Fail before training when the disk cannot hold the checkpoints (weights + optimizer) and the model."""
    from pipeline.errors import StageError

    weights = sum(f.stat().st_size for f in Path(model_dir).glob("*.safetensors"))
    free = shutil.disk_usage(".").free
    if free < factor * weights:
        raise StageError(f"{stage}: {free / 2**30:.1f} GiB free on disk, but saving checkpoints and the model needs "
                         f"about {factor * weights / 2**30:.1f} GiB ({factor:g} x the weights) — free some space "
                         "(e.g. `dvc gc`, old .work/ folders) and run again")


def fit_to_length(lengths: list[tuple[int, list[int]]], max_length: int, key: str) -> dict[str, int]:
    """How ``max_length`` cuts the examples TRL trains on, from ``(prompt tokens, [completion tokens per side])``.

    TRL keeps the first ``max_length`` tokens of prompt + completion and drops an example whose prompt alone fills
    them (nothing of its completion would be trained); a cut completion is trained on its start only. Every
    example dropped is an error (``key`` names the param) before any model loads.
    """
    from pipeline.errors import StageError

    dropped = cut = tokens_cut = 0
    for prompt, sides in lengths:
        if prompt >= max_length:
            dropped += 1
            continue
        over = [max(0, prompt + side - max_length) for side in sides]
        cut += any(over)
        tokens_cut += sum(over)
    if lengths and dropped == len(lengths):
        shortest = min(p for p, _ in lengths)
        raise StageError(f"{key}: {max_length} — every example's prompt fills it (the shortest prompt has {shortest} "
                         "tokens), so nothing of a completion would be trained; raise it above "
                         f"{shortest + max(max(s) for _, s in lengths)}")
    if dropped or cut:
        log.warning("%s %d: %d of %d examples dropped (prompt too long), %d cut (%d completion tokens lost)", key,
                    max_length, dropped, len(lengths), cut, tokens_cut)
    return {"examples_dropped_prompt_too_long": dropped, "examples_truncated": cut, "completion_tokens_cut": tokens_cut}


def load_tokenizer(model_dir: Path) -> Any:
    """The tokenizer of a saved model, without its weights (for checks before training)."""
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(model_dir))


class StopOnNonFiniteLoss(TrainerCallback):
    """Stop at once when the logged loss is NaN or infinite (the last checkpoint stays the last good one)."""

    def on_log(self, args, state, control, logs=None, **kwargs):
        loss = (logs or {}).get("loss")
        if loss is not None and not math.isfinite(loss):
            raise NonFiniteLossError(f"training loss became {loss} at step {state.global_step}; the last good "
                                     "checkpoint is kept — lower the learning rate and run again")


def training_precision(requested: str, stage: str) -> Any:
    """The compute dtype of a training run (``sft.dtype`` / ``dpo.dtype``): a :class:`pipeline.cpu_dtype.DtypeChoice`,
    logged. auto is bfloat16 on a GPU that has it (as before) and on a CPU with native bfloat16, float32 elsewhere."""
    from pipeline import cpu_dtype

    return cpu_dtype.choose(requested, stage)


def common_args(output_dir: str, *, epochs: float, learning_rate: float, batch_size: int, grad_accum: int,
                seed: int, save_steps: int, gradient_checkpointing: bool = False,
                compute_dtype: str = "float32") -> dict[str, Any]:
    """TrainingArguments shared by SFT and DPO. ``compute_dtype`` bfloat16 sets ``bf16``: transformers then runs
    the forward passes under ``torch.autocast(<device>, bfloat16)`` (accelerate's native AMP, on a CPU too),
    while weights, gradients and optimizer state stay in the dtype the model was loaded in (float32)."""
    import torch

    gpu = torch.cuda.is_available()
    return {
        "output_dir": output_dir, "num_train_epochs": epochs, "learning_rate": learning_rate,
        "per_device_train_batch_size": batch_size, "gradient_accumulation_steps": grad_accum, "seed": seed,
        "data_seed": seed, "lr_scheduler_type": "linear", "warmup_steps": 0, "logging_steps": 1,
        "save_strategy": "steps", "save_steps": save_steps, "save_total_limit": 1, "save_only_model": False,
        "report_to": [], "use_cpu": not gpu, "bf16": compute_dtype == "bfloat16",
        "gradient_checkpointing": gradient_checkpointing, "dataloader_num_workers": 0, "disable_tqdm": False,
    }


def last_checkpoint(output_dir: str) -> str | None:
    """The newest complete checkpoint under ``output_dir``, or None.

    The Trainer writes weights, optimizer, scheduler and RNG state, then ``trainer_state.json`` last, each in
    place; a process killed while saving leaves a checkpoint without a readable state file, which is skipped
    (resuming from it would fail or, worse, load half-written weights).
    """
    import json
    import re
    from pathlib import Path

    root = Path(output_dir)
    if not root.is_dir():
        return None
    found = sorted((int(m.group(1)), d) for d in root.iterdir()
                   if d.is_dir() and (m := re.fullmatch(r"checkpoint-(\d+)", d.name)))
    for _, d in reversed(found):
        try:
            json.loads((d / "trainer_state.json").read_text(encoding="utf-8"))
        except (OSError, ValueError):
            log.warning("skipping incomplete checkpoint %s", d)
            continue
        return str(d)
    return None


def log_summary(history: list[dict[str, Any]]) -> dict[str, Any]:
    steps = [h for h in history if "loss" in h]
    return {"steps": len(steps), "first_loss": steps[0]["loss"] if steps else None,
            "last_loss": steps[-1]["loss"] if steps else None, "log": history}


def trained_model(trainer: Any) -> tuple[Any, dict[str, Any] | None]:
    """The trained model as a plain module, and, where processes hold only shards of it (DeepSpeed ZeRO-3, FSDP),
    its whole weights gathered onto the main process (None elsewhere, and whenever every process holds the whole
    model: one process, DDP, ZeRO-1/2).

    Every process must call this: gathering the shards is a collective step (accelerate's ``get_state_dict``; under
    ZeRO-3 it needs ``zero3_save_16bit_model``, as TRL's zero3 config sets, and gives 16-bit weights).
    """
    from accelerate.utils import DistributedType

    from pipeline import launch

    acc = trainer.accelerator
    model = acc.unwrap_model(trainer.model)
    sharded = acc.distributed_type == DistributedType.FSDP or (
        acc.distributed_type == DistributedType.DEEPSPEED and acc.deepspeed_config["zero_optimization"]["stage"] == 3)
    if not sharded:
        return model, None
    state = acc.get_state_dict(trainer.model_wrapped)
    return model, (state if launch.is_main() else None)


def training_record(cfg: Any) -> dict[str, Any]:
    """A training section's params for the model card; ``launch`` only when set, so a one-process run writes the
    same card as before launching existed."""
    import dataclasses

    record = dataclasses.asdict(cfg)
    if record.get("launch") is None:
        record.pop("launch", None)
    return record
