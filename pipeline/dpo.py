"""DPO on response pairs and judgment pairs with TRL's DPOTrainer, initialized from M_prev.

``dpo.reference: previous`` (the papers) uses M_prev as the frozen reference; ``base`` uses M0.
``loss_type`` and ``loss_weights`` go to TRL as they are, so ``[sigmoid, sft]`` gives the IRPO loss
(DPO + NLL on the chosen answer). :func:`dpo_iteration` is the whole step: M_prev -> M_key on the pairs.
"""

from __future__ import annotations

import dataclasses
import logging
import random
import shutil
import statistics
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pipeline import launch, models
from pipeline.config import DpoConfig
from pipeline.errors import StageError
from pipeline.models import load_model
from pipeline.records import PreferencePair, digest
from pipeline.training import (
    StopOnNonFiniteLoss,
    check_disk,
    common_args,
    fit_to_length,
    last_checkpoint,
    load_tokenizer,
    log_summary,
    trained_model,
    training_precision,
    training_record,
)

log = logging.getLogger("pipeline")


def mix_pairs(response_pairs: Sequence[PreferencePair], judgment_pairs: Sequence[PreferencePair], seed: int,
              reflection_pairs: Sequence[PreferencePair] = (), judge_training_pairs: Sequence[PreferencePair] = ()
              ) -> list[dict[str, Any]]:
    """Every kind shuffled together (seeded), reduced to TRL's fields plus the generator's log-probs."""
    rows = [{"prompt": p.prompt, "chosen": p.chosen, "rejected": p.rejected, "generated": p.generated}
            for p in [*response_pairs, *judgment_pairs, *reflection_pairs, *judge_training_pairs]]
    random.Random(seed).shuffle(rows)
    return rows


def pair_lengths(rows: Sequence[dict[str, Any]], tokenizer: Any) -> list[tuple[int, list[int]]]:
    """(prompt tokens, [chosen, rejected] tokens) of each pair as TRL tokenizes it (EOS appended)."""
    from pipeline import reference

    out = []
    for row in rows:
        pair = reference.text_pair(row, tokenizer)
        t = reference.trl_tokens(tokenizer, pair["prompt"], pair["chosen"], pair["rejected"])
        out.append((len(t.prompt_ids), [len(t.chosen_ids), len(t.rejected_ids)]))
    return out


def check_lora_targets(model_dir: Path, targets: Sequence[str]) -> None:
    """Every ``dpo.lora.target_modules`` entry names modules of the model (peft matches the end of a module's
    dotted name), checked on an empty copy built from the config, before any weight loads."""
    import difflib

    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    if list(targets) == ["all-linear"]:  # peft's own shorthand
        return
    with torch.device("meta"):
        empty = AutoModelForCausalLM.from_config(AutoConfig.from_pretrained(str(model_dir)))
    names = [n for n, _ in empty.named_modules() if n]
    leaves = sorted({n.rsplit(".", 1)[-1] for n, m in empty.named_modules() if isinstance(m, torch.nn.Linear)})
    for t in targets:
        if not any(n == t or n.endswith("." + t) for n in names):
            near = difflib.get_close_matches(t, leaves, n=1)
            hint = f"did you mean {near[0]!r}? " if near else ""
            raise StageError(f"dpo.lora.target_modules: {t!r} — no module of {model_dir} has that name; {hint}its "
                             f"linear layers: {', '.join(leaves)}")


def check_accumulation(pairs: int, cfg: DpoConfig) -> None:
    """An optimizer step that asks for more batches than an epoch holds gets fewer than asked: say so."""
    world = cfg.launch.processes * cfg.launch.machines if cfg.launch is not None else 1
    batches = -(-pairs // (cfg.batch_size * world))
    if cfg.gradient_accumulation_steps > batches:
        raise StageError(f"dpo.gradient_accumulation_steps: {cfg.gradient_accumulation_steps} — the {pairs} pairs make "
                         f"{batches} batch(es) of dpo.batch_size {cfg.batch_size} per process, so no step could "
                         f"accumulate that many; at most {batches} here")


def padded_length(example: dict[str, Any]) -> int:
    """Tokens a pair occupies in a padded DPO batch: its prompt plus the longer of its two completions.

    TRL's collator pads chosen and rejected sequences to the longest in the batch, so grouping pairs by
    this length (``dpo.group_by_length``) is what cuts padding.
    """
    return len(example["prompt_ids"]) + max(len(example["chosen_ids"]), len(example["rejected_ids"]))


def padding_fraction(sequence_lengths: list[tuple[int, int]], order: list[int], batch_size: int) -> float:
    """Share of the tokens in DPO batches that are padding, for pairs taken in ``order``.

    ``sequence_lengths[i]`` is (prompt + chosen, prompt + rejected) of pair i; TRL's collator pads all
    2 x batch sequences of a batch to the longest of them.
    """
    padded = real = 0
    for start in range(0, len(order), batch_size):
        batch = [sequence_lengths[i] for i in order[start:start + batch_size]]
        padded += 2 * len(batch) * max(max(pair) for pair in batch)
        real += sum(sum(pair) for pair in batch)
    return (padded - real) / padded if padded else 0.0


def length_grouped_sampler(dataset: Any, batch_size: int, generator: Any = None) -> Any:
    """transformers' LengthGroupedSampler over :func:`padded_length`: shuffled megabatches of 50 batches, each
    sorted longest first, so a batch holds pairs of similar length (the longest batch comes first)."""
    from transformers.trainer_pt_utils import LengthGroupedSampler

    return LengthGroupedSampler(batch_size, lengths=[padded_length(ex) for ex in dataset], generator=generator)


def _trainer_class() -> type:
    from trl import DPOTrainer

    class PipelineDPOTrainer(DPOTrainer):
        """TRL's trainer, except that reference log-probs already in the dataset are not computed again and
        length-grouped batches use :func:`padded_length` (TRL's tokenized pairs have no ``input_ids``)."""

        def _precompute_ref_logps(self, dataset: Any, name: str, batch_size: int) -> Any:
            if "ref_chosen_logps" in dataset.column_names:
                return dataset
            return super()._precompute_ref_logps(dataset, name, batch_size)

        def _get_train_sampler(self, train_dataset: Any = None) -> Any:
            if self.args.train_sampling_strategy != "group_by_length":
                return super()._get_train_sampler(train_dataset)
            return length_grouped_sampler(self.train_dataset if train_dataset is None else train_dataset,
                                          self.args.train_batch_size * self.args.gradient_accumulation_steps)

    return PipelineDPOTrainer


def shared_dataset(data: list[dict[str, Any]], checkpoint_dir: Path) -> Any:
    """The pairs as a ``datasets.Dataset`` every process of a launch reads from one folder.

    TRL writes the reference log-probs it precomputes (and its tokenized pairs) as a cache file beside the
    dataset's own files, which the other processes then open. An in-memory dataset (``Dataset.from_list``) has
    its cache in a temporary folder of each process, where the others cannot find it; so under several
    processes the main process saves the pairs under ``checkpoint_dir`` first and every process loads them from
    there. One process keeps the dataset in memory.
    """
    from accelerate import PartialState
    from datasets import Dataset, load_from_disk

    state = PartialState()
    if state.num_processes == 1:
        return Dataset.from_list(data)
    folder = checkpoint_dir / "pairs-dataset"
    with state.main_process_first():
        if state.is_main_process and not (folder / "dataset_info.json").exists():
            Dataset.from_list(data).save_to_disk(str(folder))
    return load_from_disk(str(folder))


def reference_plan(rows: Sequence[dict[str, Any]], engine_dtype: str, trainer_dtype: str) -> dict[str, Any]:
    """Whether generation log-probs may be the reference of this run (:func:`pipeline.reference.reuse_decision`
    for each dtype the pairs were generated in: a pair's ``generated.dtype``, else ``engine_dtype``), as recorded
    in dpo.json: ``reuse`` (every dtype allowed), ``recompute`` (none: TRL computes the reference in the
    trainer's dtype) or ``per pair`` (some: the others are recomputed one by one)."""
    from pipeline import reference

    dtypes = sorted({str((r.get("generated") or {}).get("dtype", engine_dtype)) for r in rows} or {engine_dtype})
    decisions = {d: reference.reuse_decision(d, trainer_dtype) for d in dtypes}
    allowed = [d for d in dtypes if decisions[d][0]]
    decision = "reuse" if len(allowed) == len(dtypes) else ("recompute" if not allowed else "per pair")
    return {"engine_dtype": ", ".join(dtypes), "trainer_dtype": trainer_dtype, "decision": decision,
            "reason": "; ".join(decisions[d][1] for d in dtypes)}


def train_dpo(model_dir: Path, reference_dir: Path | None, rows: list[dict[str, Any]], cfg: DpoConfig,
              checkpoint_dir: Path, reference_sha: str | None = None, generation_dtype: str = "float32"
              ) -> tuple[Any, Any, dict[str, Any]]:
    """Train and return (model, tokenizer, training summary). Resumes from the last checkpoint if any.

    With ``reference_dir`` None the reference is the initial model (M_prev); then, with
    ``cfg.reuse_generation_logprobs``, reference log-probs come from generation (:mod:`pipeline.reference`)
    wherever they are exact and computed in the trainer's dtype (``cfg.dtype``; a pair's ``generated.dtype`` is
    what the engine computed in, ``generation_dtype`` that of a pair naming none: the engines name every dtype but
    float32 in the rows' provenance), and the reference model never runs for those pairs. The summary's ``precision`` and ``reference_reuse`` say which dtype trained and why.
    """
    import time

    from trl import DPOConfig

    from pipeline import reference

    precision = training_precision(cfg.dtype, "dpo")
    dtype = cfg.lora.base_dtype if cfg.lora is not None else "float32"  # full training keeps float32 weights
    # frozen bfloat16 weights (LoRA) compute in bfloat16 whatever the autocast
    trainer_dtype = "bfloat16" if "bfloat16" in (precision.dtype, dtype) else precision.dtype
    model, tok = load_model(model_dir, dtype)
    ref = load_model(reference_dir, dtype)[0] if reference_dir is not None else None
    started = time.time()
    reuse = reference_dir is None and cfg.reuse_generation_logprobs and reference_sha is not None
    stats: dict[str, Any] = {"precision": precision.record()}
    if reuse:
        stats["reference_reuse"] = plan = reference_plan(rows, generation_dtype, trainer_dtype)
        log.info("dpo: reference log-probs from generation: %s (%s)", plan["decision"], plan["reason"])
        reuse = plan["decision"] != "recompute"
    stats["reference_logprobs"] = "reused from generation" if reuse else (
        "precomputed" if cfg.precompute_ref_log_probs or stats.get("reference_reuse") else "live")
    if reuse:
        data, counts = reference.reference_columns(rows, tok, model, str(reference_sha), cfg.max_length,
                                                   engine_dtype=generation_dtype, trainer_dtype=trainer_dtype)
        stats.update(counts)
        log.info("dpo: reference log-probs reused for %d of %d sides (%s recomputed: %s)", counts["sides_reused"],
                 2 * len(rows), counts["sides_recomputed"], counts["recomputed_because"] or "none")
    else:
        data = [reference.text_pair(r, tok) for r in rows]
    stats["reference_seconds"] = round(time.time() - started, 2)
    args = DPOConfig(
        **common_args(str(checkpoint_dir), epochs=cfg.epochs, learning_rate=cfg.learning_rate,
                      batch_size=cfg.batch_size, grad_accum=cfg.gradient_accumulation_steps, seed=cfg.seed,
                      save_steps=cfg.save_steps, gradient_checkpointing=cfg.gradient_checkpointing,
                      compute_dtype=precision.dtype),
        beta=cfg.beta, loss_type=list(cfg.loss_type), loss_weights=cfg.loss_weights, max_length=cfg.max_length,
        # refused reuse: TRL computes the reference once, under the trainer's autocast
        precompute_ref_log_probs=cfg.precompute_ref_log_probs or "reference_reuse" in stats,
        train_sampling_strategy="group_by_length" if cfg.group_by_length else "random",
    )
    peft_config = None
    if cfg.lora is not None:
        from peft import LoraConfig

        peft_config = LoraConfig(r=cfg.lora.r, lora_alpha=cfg.lora.alpha, lora_dropout=cfg.lora.dropout,
                                 target_modules=list(cfg.lora.target_modules), task_type="CAUSAL_LM")
    trainer = _trainer_class()(model=model, ref_model=ref, args=args, train_dataset=shared_dataset(data, checkpoint_dir),
                               processing_class=tok, callbacks=[StopOnNonFiniteLoss()], peft_config=peft_config)
    resume = last_checkpoint(str(checkpoint_dir))
    if resume is not None:
        log.info("dpo: resuming from %s", resume)
    trainer.train(resume_from_checkpoint=resume)
    trained, state = trained_model(trainer)  # every process: gathering ZeRO-3 / FSDP shards is collective
    if peft_config is not None:  # the next iteration loads a plain model: fold the adapter into the weights
        # (params refuse LoRA with sharded weights), in float32: a small update is not lost to bfloat16 rounding
        import torch

        trained = trained.to(torch.float32).merge_and_unload()
    return trained, tok, {**log_summary(trainer.state.log_history), **stats, "state_dict": state}


def dpo_iteration(prev_dir: Path, reference_dir: Path | None, response_pairs: Sequence[PreferencePair],
                  judgment_pairs: Sequence[PreferencePair], cfg: DpoConfig, out_dir: Path, card: dict[str, Any],
                  work_root: Path, reflection_pairs: Sequence[PreferencePair] = (),
                  judge_training_pairs: Sequence[PreferencePair] = (), generation_dtype: str = "float32"
                  ) -> dict[str, Any]:
    """The dpo step: train from ``prev_dir`` on both kinds of pairs, save to ``out_dir``; return the metrics.

    ``reference_dir`` None means M_prev is the reference (and its generation log-probs may be reused, when
    the engine computed in the trainer's dtype: a pair's ``generated.dtype``, else ``generation_dtype``).
    ``card`` starts the saved model card (name, parent, data hashes); the compute dtype and why are
    added (``precision``). Checkpoints live under ``work_root`` and are removed once the model is saved.
    """
    rows = mix_pairs(response_pairs, judgment_pairs, cfg.seed, reflection_pairs, judge_training_pairs)
    if not rows:
        raise StageError(f"dpo {out_dir.name}: no pairs to train on — see metrics/{out_dir.name}/pairs.json")
    check_accumulation(len(rows), cfg)
    if cfg.lora is not None:
        check_lora_targets(prev_dir, cfg.lora.target_modules)
    fit = fit_to_length(pair_lengths(rows, load_tokenizer(prev_dir)), cfg.max_length, "dpo.max_length")
    check_disk(prev_dir, "dpo")
    ref = models.model_ref(prev_dir)
    work = work_root / f"dpo-{out_dir.name}-{digest(ref, dataclasses.asdict(cfg), rows)}"
    start = time.time()
    model, tok, summary = train_dpo(prev_dir, reference_dir, rows, cfg, work, reference_sha=ref["model_sha256"],
                                    generation_dtype=generation_dtype)
    saved: dict[str, Any] = {"weights_sha256": None}
    if launch.is_main():  # under several processes every one holds the same weights; one writes them
        saved = models.save_model(model, tok, out_dir, state_dict=summary.pop("state_dict"), card={
            **card, "reference": cfg.reference, "precision": summary["precision"],
            "training": {"pairs": len(rows), "response_pairs": len(response_pairs),
                         "judgment_pairs": len(judgment_pairs), "reflection_pairs": len(reflection_pairs),
                         **({"judge_training_pairs": len(judge_training_pairs)} if judge_training_pairs else {}),
                         **training_record(cfg)}})
    summary.pop("state_dict", None)
    launch.barrier()
    steps = [h for h in summary["log"] if "loss" in h]

    def mean(key: str) -> float | None:
        vals = [h[key] for h in steps if key in h]
        return statistics.fmean(vals) if vals else None

    seconds = time.time() - start
    if launch.is_main():
        for stale in work_root.glob(f"dpo-{out_dir.name}-*"):
            shutil.rmtree(stale, ignore_errors=True)
    return {"pairs": len(rows), "response_pairs": len(response_pairs), "judgment_pairs": len(judgment_pairs),
            "reflection_pairs": len(reflection_pairs), "judge_training_pairs": len(judge_training_pairs),
            "max_length": cfg.max_length,
            **{k.replace("examples", "pairs"): v for k, v in fit.items()},
            "steps": summary["steps"], "first_loss": summary["first_loss"], "last_loss": summary["last_loss"],
            "mean_reward_margin": mean("rewards/margins"), "mean_reward_accuracy": mean("rewards/accuracies"),
            "seconds": round(seconds, 1), "pairs_per_second": round(len(rows) * cfg.epochs / seconds, 3),
            "weights_sha256": saved["weights_sha256"],
            **{k: summary[k] for k in ("reference_logprobs", "sides_reused", "sides_recomputed", "recomputed_because",
                                       "reference_seconds", "precision", "reference_reuse") if k in summary},
            "log": summary["log"]}
