"""Seed SFT (both papers): M0 fine-tuned on instruction following (IFT) and judge examples (EFT).

IFT: instruction -> reference response. EFT: the rendered judge prompt -> the rubric justification and
``Score: N``, the very format the judge stage parses. Loss on completions only (TRL prompt-completion).
"""

from __future__ import annotations

import random
import shutil
import statistics
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from pipeline import judging, launch, models, sampling, templates
from pipeline.config import SampleConfig, SftConfig
from pipeline.engines.base import Engine, SamplingSettings
from pipeline.judging import judge_conversation
from pipeline.records import JudgeExample, SeedInstruction, digest, user_query
from pipeline.training import (
    StopOnNonFiniteLoss,
    common_args,
    fit_to_length,
    last_checkpoint,
    load_tokenizer,
    log_summary,
    trained_model,
    training_precision,
    training_record,
)


def eft_target(example: JudgeExample) -> str:
    return f"{example.justification.strip()}\nScore: {example.score}"


def split_eft(examples: Sequence[JudgeExample], heldout: int, seed: int) -> tuple[list[JudgeExample], list[JudgeExample]]:
    """(train, held back): a seeded split; the held-back ones measure the judge before and after SFT."""
    order = list(examples)
    random.Random(seed).shuffle(order)
    return order[heldout:], order[:heldout]


def ift_example(seed: SeedInstruction, thoughts: str, template: str | None = None) -> dict[str, Any]:
    """instruction -> reference; with thoughts on, the thought prompt -> a fixed seed thought + the reference.

    The seed thought (``prompts/seed_thought.j2``) only teaches the format (thoughts, marker, response) to a
    model too small to follow the thought prompt unaided; TPO then optimizes what the thoughts say.
    """
    query = user_query(seed.instruction, seed.input)
    if thoughts == "none":
        return {"prompt": [{"role": "user", "content": query}],
                "completion": [{"role": "assistant", "content": seed.reference}]}
    thought = templates.render("seed_thought.j2", instruction=query)
    target = templates.render("seed_thought_target.j2", thoughts=thoughts, thought=thought, response=seed.reference)
    return {"prompt": [{"role": "user", "content": sampling.response_prompt(query, thoughts, template)}],
            "completion": [{"role": "assistant", "content": target}]}


def sft_examples(ift: Sequence[SeedInstruction], eft: Sequence[JudgeExample], data: str,
                 max_examples: int | None = None, seed: int = 0, thoughts: str = "none",
                 thought_template: str | None = None, judge_template: str | None = None) -> list[dict[str, Any]]:
    """Prompt-completion rows; at most ``max_examples`` of each kind, drawn with ``seed``.

    IFT prompts are the sample stage's (``thoughts``, ``thought_template``), EFT prompts the judge's
    (``judge_template``), so SFT teaches the formats the loop then asks for.
    """
    if max_examples is not None:
        rng = random.Random(seed)
        ift = rng.sample(list(ift), min(max_examples, len(ift)))
        eft = rng.sample(list(eft), min(max_examples, len(eft)))
    rows: list[dict[str, Any]] = []
    if data in ("ift", "both"):
        rows += [ift_example(s, thoughts, thought_template if thoughts != "none" else None) for s in ift]
    if data in ("eft", "both"):
        rows += [{"prompt": judge_conversation(e.instruction, e.response, judge_template),
                  "completion": [{"role": "assistant", "content": eft_target(e)}]} for e in eft]
    return rows


def example_lengths(rows: Sequence[dict[str, Any]], tokenizer: Any) -> list[tuple[int, list[int]]]:
    """(prompt tokens, [completion tokens]) of each prompt-completion row: the prompt rendered by the chat
    template with the generation prompt, the completion's text plus its end-of-sequence token."""
    out = []
    for row in rows:
        prompt = tokenizer.apply_chat_template(row["prompt"], tokenize=False, add_generation_prompt=True)
        completion = row["completion"][-1]["content"]
        out.append((len(tokenizer(prompt, add_special_tokens=False)["input_ids"]),
                    [len(tokenizer(completion, add_special_tokens=False)["input_ids"]) + 1]))
    return out


def train_sft(model_dir: Path, rows: list[dict[str, Any]], cfg: SftConfig, checkpoint_dir: Path
              ) -> tuple[Any, Any, dict[str, Any]]:
    """TRL's SFTTrainer on ``rows`` from ``model_dir``, computing in ``sft.dtype``: (model, tokenizer, summary
    with the loss log and ``precision``, the compute dtype and why)."""
    from datasets import Dataset
    from trl import SFTConfig, SFTTrainer

    from pipeline.models import load_model

    precision = training_precision(cfg.dtype, "sft")  # bfloat16: autocast over float32 weights
    model, tok = load_model(model_dir)
    random.Random(cfg.seed).shuffle(rows)
    args = SFTConfig(**common_args(str(checkpoint_dir), epochs=cfg.epochs, learning_rate=cfg.learning_rate,
                                   batch_size=cfg.batch_size, grad_accum=1, seed=cfg.seed, save_steps=500,
                                   compute_dtype=precision.dtype),
                     max_length=cfg.max_length, completion_only_loss=True, packing=False)
    trainer = SFTTrainer(model=model, args=args, train_dataset=Dataset.from_list(rows), processing_class=tok,
                         callbacks=[StopOnNonFiniteLoss()])
    trainer.train(resume_from_checkpoint=last_checkpoint(str(checkpoint_dir)))
    model, state = trained_model(trainer)  # every process: gathering ZeRO-3 / FSDP shards is collective
    return model, tok, {**log_summary(trainer.state.log_history), "state_dict": state,
                        "precision": precision.record()}


def ift_thoughts(cfg: SftConfig, sample_thoughts: str) -> str:
    """The thought format IFT examples teach: the sample stage's, unless ``ift_format`` says otherwise."""
    if cfg.ift_format == "plain":
        return "none"
    if cfg.ift_format == "thoughts" and sample_thoughts == "none":
        return "generic"
    return sample_thoughts


def judge_check(engine: Engine, examples: Sequence[JudgeExample], max_new_tokens: int,
                judge_template: str | None = None) -> dict[str, Any]:
    """Greedy judgments of held-back EFT examples: strict-parse rate and mean absolute score error."""
    if not examples:
        return {"examples": 0}
    convs = [judge_conversation(e.instruction, e.response, judge_template) for e in examples]
    outs = engine.generate(convs, SamplingSettings(n=1, temperature=0.0, max_new_tokens=max_new_tokens),
                           desc="judge check")
    texts = [row[0].text for row in outs]
    found = judging.judge_verdicts(engine, convs, texts, "parsed")
    return {"examples": len(examples),
            "strict_parse_rate": sum(judging.parse_score_strict(t) is not None for t in texts) / len(examples),
            "any_parse_rate": sum(v.method != "forced" for v in found) / len(examples),
            "mean_abs_error": statistics.fmean(abs(v.score - e.score) for v, e in zip(found, examples)),
            "sample_output": texts[0][:400]}


def seed_sft(m0: Path, out: Path, ift: Sequence[SeedInstruction], eft: Sequence[JudgeExample], cfg: SftConfig,
             scfg: SampleConfig, judge_template: str | None, open_engine: Callable[[Path], Engine], work_root: Path,
             data_sha256: dict[str, str]) -> dict[str, Any]:
    """The sft step: M0 -> ``out`` on IFT + EFT, with the judge checked on held-back EFT before and after.

    ``data_sha256`` (the seed files' hashes) goes into the model card.
    """
    eft_train, heldout = split_eft(eft, cfg.heldout_eft, cfg.seed)
    thoughts = ift_thoughts(cfg, scfg.thoughts)
    rows = sft_examples(ift, eft_train, cfg.data, cfg.max_examples, cfg.seed, thoughts, scfg.template, judge_template)
    fit = fit_to_length(example_lengths(rows, load_tokenizer(m0)), cfg.max_length, "sft.max_length")

    def check(model_dir: Path) -> dict[str, Any]:
        if not launch.is_main():  # under several processes, process 0 checks the judge; the others wait
            launch.barrier()
            return {}
        engine = open_engine(model_dir)
        try:
            return judge_check(engine, heldout, cfg.eval_max_new_tokens, judge_template)
        finally:
            engine.close()
            launch.barrier()

    before = check(m0)  # before training, so no trained model holds memory while the engine runs
    parent_sha = models.read_card(m0).get("weights_sha256")
    work = work_root / f"sft-{digest(parent_sha, cfg.__dict__, rows)}"
    model, tok, summary = train_sft(m0, rows, cfg, work)  # the other processes wait here for process 0
    card: dict[str, Any] = {"weights_sha256": None}
    if launch.is_main():
        card = models.save_model(model, tok, out, state_dict=summary.pop("state_dict"), card={
            "name": out.name, "parent": m0.name, "parent_sha256": parent_sha,
            "data_sha256": data_sha256, "precision": summary["precision"],
            "training": {"examples": len(rows), **training_record(cfg)}})
    del model
    summary.pop("state_dict", None)
    after = check(out)
    if launch.is_main():
        for stale in work_root.glob("sft-*"):
            shutil.rmtree(stale, ignore_errors=True)
    return {"enabled": True, "examples": len(rows), **fit, "heldout_eft": len(heldout), "ift_thoughts": thoughts,
            "judge_before": before, "judge_after": after, "first_loss": summary["first_loss"],
            "last_loss": summary["last_loss"], "steps": summary["steps"], "weights_sha256": card["weights_sha256"],
            "precision": summary["precision"]}
