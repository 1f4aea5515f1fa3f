"""DPO reference log-probs reused from generation, so the dpo stage never runs the reference model.

With ``dpo.reference: previous`` the reference model is M_prev, and M_prev generated every chosen and
rejected completion (responses in ``sample``, judgments in ``judge`` / ``meta_judge``). The engines keep the
raw (untempered, unfiltered) log-prob of every generated token and of the end-of-sequence token after it
(the one that ended it, or, for a completion cut at ``max_new_tokens``, the tokenizer's EOS at the next
position, read by the hf engine from its KV cache); a completion's reference log-prob is their sum.

That sum equals what TRL would compute only when TRL's tokenization of the pair is exactly what was
generated. :func:`reused_logprob` checks it token by token and says why not where it fails: a different
model, no end-of-sequence log-prob recorded (the vLLM engine has none for a completion cut at
``max_new_tokens``, while TRL appends EOS), tokens that re-tokenize differently, or ``max_length`` truncation. Those pairs are recomputed
with a forward pass (:func:`completion_logprob`) and counted in the metrics.

Precision is part of "exactly": an engine that computed in bfloat16 wrote other numbers than a float32
trainer computes, and a bfloat16 engine's (bfloat16 weights, bfloat16 activations) differ from a trainer's
bfloat16 mixed precision (float32 weights under autocast) too. :func:`reuse_decision` allows reuse only where
the engine's dtype is the trainer's compute dtype and the gap measured between them on the embedded model
(``bench/dtype_gap.py``, :data:`MEASURED_GAP`) is within :data:`TOLERANCE_NATS`; elsewhere the reference is
computed by the trainer in its own dtype.

The dpo stage trains on text pairs (:func:`text_pair`): the prompt rendered with the chat template as the
engines render it, the completion as generated, plus TRL's end-of-sequence token, so training sees the
sequence the model produced.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Any

import torch


def text_pair(row: dict[str, Any], tokenizer: Any) -> dict[str, Any]:
    """A conversational pair (``prompt``/``chosen``/``rejected`` message lists) as TRL text fields."""
    prompt = tokenizer.apply_chat_template(row["prompt"], tokenize=False, add_generation_prompt=True)
    return {"prompt": prompt, "chosen": row["chosen"][-1]["content"], "rejected": row["rejected"][-1]["content"]}


@dataclass(frozen=True)
class PairTokens:
    prompt_ids: list[int]
    chosen_ids: list[int]
    rejected_ids: list[int]


def trl_tokens(tokenizer: Any, prompt: str, chosen: str, rejected: str) -> PairTokens:
    """The ids TRL's DPOTrainer trains on for a text pair (its ``add_eos`` and ``tokenize_fn``, mirrored)."""
    from trl.data_utils import _tokenize, common_prefix_length

    eos = tokenizer.eos_token
    chosen = chosen if chosen.endswith(eos) else chosen + eos
    rejected = rejected if rejected.endswith(eos) else rejected + eos
    prompt_ids = _tokenize(tokenizer, prompt)["input_ids"]
    full_c = _tokenize(tokenizer, prompt + chosen)["input_ids"]
    full_r = _tokenize(tokenizer, prompt + rejected)["input_ids"]
    n = min(common_prefix_length(prompt_ids, full_c), common_prefix_length(prompt_ids, full_r))
    return PairTokens(list(prompt_ids[:n]), list(full_c[n:]), list(full_r[n:]))


# The largest mean |engine - trainer| log-prob of a completion (nats, summed over its tokens) at which an engine's
# log-probs stand for the trainer's reference. In DPO a reference error e moves a pair's implicit reward margin
# by beta * (e_chosen - e_rejected): at beta 0.1, 0.05 nats move it by at most 0.01, below the margins of the
# first steps.
TOLERANCE_NATS = 0.05

# Mean |engine - trainer| per completion, in nats, measured by bench/dtype_gap.py on the embedded model (16
# completions x 128 tokens, hf engine vs TRL's DPOTrainer forward; bench/results/dtype_gap-avx2-cpu-x86_64-2cores.json),
# keyed (engine dtype, trainer compute dtype). float32: 1.6e-5 nats per token, batching noise. bfloat16: an engine
# with bfloat16 weights against the trainer's bfloat16 autocast differs as much as against float32 (0.54 nats):
# bfloat16 rounds differently wherever the shapes of a computation differ (an incremental decode against one
# forward pass differs by 0.60 nats at the very same weights), so equal dtypes are not equal numbers there. Even
# TRL's own bfloat16 reference is not its policy's first forward to the last bit (other batches, other padded
# shapes): on 16 seed pairs the first step's margin was -0.014 instead of 0 (bench/results/dtype_dpo-*.json).
MEASURED_GAP: dict[tuple[str, str], float] = {
    ("float32", "float32"): 0.00202,
    ("bfloat16", "bfloat16"): 0.496,
}


def reuse_decision(engine_dtype: str, trainer_dtype: str) -> tuple[bool, str]:
    """Whether log-probs an engine computed in ``engine_dtype`` may serve as the reference of a trainer computing
    in ``trainer_dtype``, and why (pure: a table lookup)."""
    if engine_dtype != trainer_dtype:
        return False, f"engine computed in {engine_dtype}, the trainer in {trainer_dtype}"
    measured = MEASURED_GAP.get((engine_dtype, trainer_dtype))
    if measured is None:
        return False, f"no measured gap for an engine and a trainer in {engine_dtype}"
    if measured > TOLERANCE_NATS:
        return False, (f"engine and trainer in {engine_dtype} differ by {measured:.3g} nats per completion "
                       f"(tolerance {TOLERANCE_NATS:g})")
    return True, (f"engine and trainer in {engine_dtype}: {measured:.3g} nats per completion apart (tolerance "
                  f"{TOLERANCE_NATS:g})")


def reused_logprob(tokens: PairTokens, side: str, generated: dict[str, Any] | None, engine_prompt_ids: list[int],
                   eos_id: int, reference_sha: str, max_length: int | None, *, engine_dtype: str = "float32",
                   trainer_dtype: str = "float32") -> tuple[float | None, str]:
    """The generator's log-prob of one side of a pair, if it is exactly TRL's; else (None, why not).

    ``engine_dtype``: what the generating engine computed in, for a pair whose ``generated`` names no ``dtype``
    of its own; ``trainer_dtype``: the trainer's compute dtype (:func:`reuse_decision` between the two).
    """
    if generated is None:
        return None, "no log-probs recorded"
    if generated.get("model_sha256") != reference_sha:
        return None, "generated by another model"
    allowed, why = reuse_decision(str(generated.get("dtype", engine_dtype)), trainer_dtype)
    if not allowed:
        return None, why
    gen = generated[side]
    completion = tokens.chosen_ids if side == "chosen" else tokens.rejected_ids
    if gen.get("stop_logprob") is None:
        return None, "no end-of-sequence log-prob"
    if tokens.prompt_ids != engine_prompt_ids:
        return None, "prompt tokenized differently"
    if completion != [*gen["token_ids"], eos_id]:
        return None, "completion tokenized differently"
    if max_length is not None and len(tokens.prompt_ids) + len(completion) > max_length:
        return None, "truncated at max_length"
    return float(gen["logprob"]) + float(gen["stop_logprob"]), "reused"


@torch.inference_mode()
def completion_logprob(model: Any, prompt_ids: list[int], completion_ids: list[int],
                       max_length: int | None, compute_dtype: str = "float32") -> float:
    """Sum of log p(completion | prompt) under ``model`` (the sequence cut at ``max_length`` as TRL does), in the
    trainer's ``compute_dtype`` (bfloat16: under autocast, as TRL computes its reference with ``bf16``)."""
    import contextlib

    ids = [*prompt_ids, *completion_ids]
    if max_length is not None:
        ids = ids[:max_length]
    device = next(model.parameters()).device
    autocast = (torch.autocast(device.type, dtype=torch.bfloat16) if compute_dtype == "bfloat16"
                else contextlib.nullcontext())
    with autocast:
        logits = model(input_ids=torch.tensor([ids], device=device)).logits
    logits = logits.float()[0]
    logps = torch.log_softmax(logits[:-1], dim=-1)
    targets = torch.tensor(ids[1:], device=device)
    token_logps = logps.gather(-1, targets.unsqueeze(-1)).squeeze(-1)
    return float(token_logps[len(prompt_ids) - 1:].sum())


def reference_columns(rows: list[dict[str, Any]], tokenizer: Any, model: Any, reference_sha: str,
                      max_length: int | None, engine_dtype: str = "float32", trainer_dtype: str = "float32"
                      ) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Text pairs with ``ref_chosen_logps`` / ``ref_rejected_logps``, reused where exact, else recomputed.

    ``model`` is the reference model (M_prev, before any training step); the recomputed sides are computed in
    ``trainer_dtype``; ``engine_dtype`` is what the engine computed in (see :func:`reused_logprob`). Returns
    the rows and counts: sides reused, sides recomputed and why.
    """
    out = []
    why: Counter[str] = Counter()
    for row in rows:
        pair = text_pair(row, tokenizer)
        tokens = trl_tokens(tokenizer, pair["prompt"], pair["chosen"], pair["rejected"])
        engine_prompt = list(tokenizer(pair["prompt"], add_special_tokens=False)["input_ids"])
        values = {}
        for side in ("chosen", "rejected"):
            value, reason = reused_logprob(tokens, side, row.get("generated"), engine_prompt,
                                           tokenizer.eos_token_id, reference_sha, max_length,
                                           engine_dtype=engine_dtype, trainer_dtype=trainer_dtype)
            why[reason] += 1
            if value is None:
                ids = tokens.chosen_ids if side == "chosen" else tokens.rejected_ids
                value = completion_logprob(model, tokens.prompt_ids, ids, max_length, trainer_dtype)
            values[f"ref_{side}_logps"] = value
        out.append({**pair, **values})
    reused = why.pop("reused", 0)
    return out, {"sides_reused": reused, "sides_recomputed": sum(why.values()), "recomputed_because": dict(why)}
