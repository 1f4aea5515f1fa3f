"""The paper-scale recipe's arithmetic: memory per GPU for each training config and time per stage for one
iteration of a preset at the papers' sizes. Nothing here is measured on a GPU: it multiplies counts that are
exact (requests per stage, from the preset), lengths measured in this repository's demo (prompt template sizes),
upper bounds (max_new_tokens), and throughputs that are assumptions you replace with your own measurement.

    python -m bench.recipe                                  # the README's tables (meta_rewarding preset)
    python -m bench.recipe --decode-tps 9000 --prefill-tps 40000   # with figures measured on your GPUs

Memory: model states only (weights, gradients, optimizer), per GPU; activations come on top (see the README).
Bytes per parameter with AdamW in mixed precision: 2 (bf16 weights) + 2 (bf16 gradients) + 12 (fp32 master weights,
momentum, variance) = 16 — DeepSpeed's accounting (ZeRO paper, §3); transformers' own mixed precision (DDP, FSDP)
keeps fp32 weights and gradients instead, the same 16 in all.
"""

from __future__ import annotations

import argparse
import math

MODELS = {"8B": 8.03e9, "70B": 70.6e9}  # Llama-3-8B and Llama-3-70B parameter counts

# Tokens per request measured on the demo's iteration M1 (metrics/M1/*.json: prompt_tokens / sequences): the
# template and instruction around what the stage adds (responses, judgments), which scale with max_new_tokens.
SAMPLE_PROMPT = 113  # 1,356 prompt tokens / 12 samples
JUDGE_OVERHEAD = 215  # 343 per judge prompt, less the 128-token mean response
META_OVERHEAD = 368  # 616 per meta-judge prompt, less a 128-token response and two 60-token judgments
SELF_INSTRUCT_PROMPT = 389  # 12,457 prompt tokens / 32 requests (M2)


def memory_gib(params: float, config: str, gpus: int, lora_params: float = 0.0) -> float:
    """Model-state memory per GPU in GiB."""
    p = params
    per_gpu = {
        "DDP (multi_gpu)": 16 * p,
        "ZeRO-1": 4 * p + 12 * p / gpus,
        "ZeRO-2": 2 * p + 14 * p / gpus,
        "ZeRO-3 / FSDP": 16 * p / gpus,
        "ZeRO-3 + CPU offload of the optimizer": 4 * p / gpus,
        "LoRA (float32 frozen weights: dpo.lora's default)": 4 * p + 16 * lora_params,
        "LoRA, bfloat16 frozen weights (dpo.lora.base_dtype)": 2 * p + 16 * lora_params,
    }[config]
    return per_gpu / 2**30


def lora_parameters(params: float, r: int = 16) -> float:
    """LoRA parameters on all seven projections of a Llama-shaped model (dpo.lora's default target modules)."""
    hidden, layers, inter, kv = (4096, 32, 14336, 1024) if params < 20e9 else (8192, 80, 28672, 1024)
    per_layer = r * ((hidden + hidden) * 2 + (hidden + kv) * 2 + (hidden + inter) * 3)  # q,o; k,v; gate,up,down
    return per_layer * layers


def workload(prompts: int, n: int, k: int, meta_judgments: int, max_requests: int, sample_tokens: int,
             judge_tokens: int, meta_tokens: int, instruct_tokens: int) -> dict[str, tuple[int, int, int]]:
    """Per stage: (sequences, prompt tokens, generated tokens), generated tokens at their upper bound."""
    responses = prompts * n
    battles = prompts * meta_judgments * (meta_judgments - 1)  # every pair of judgments, both orders
    return {
        "self_instruct": (max_requests, max_requests * SELF_INSTRUCT_PROMPT, max_requests * instruct_tokens),
        "sample": (responses, prompts * SAMPLE_PROMPT, responses * sample_tokens),  # n samples share a prefill
        "judge": (responses * k, responses * (JUDGE_OVERHEAD + sample_tokens), responses * k * judge_tokens),
        "meta_judge": (battles, battles * (META_OVERHEAD + sample_tokens + 2 * judge_tokens), battles * meta_tokens),
    }


def dpo_tokens(prompts: int, judge_pairs: bool, epochs: float, sample_tokens: int, judge_tokens: int) -> float:
    """Tokens DPO trains on: one response pair per prompt (chosen + rejected, prompt each), one judgment pair."""
    per_epoch = prompts * 2 * (SAMPLE_PROMPT + sample_tokens)
    if judge_pairs:
        per_epoch += prompts * 2 * (JUDGE_OVERHEAD + sample_tokens + judge_tokens)
    return per_epoch * epochs


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--decode-tps", type=float, default=5000.0, help="generated tokens/s per GPU, 8B model "
                    "(assumed; scaled by 8B/size for bigger models)")
    ap.add_argument("--prefill-tps", type=float, default=20000.0, help="prompt tokens/s per GPU, 8B model (assumed)")
    ap.add_argument("--mfu", type=float, default=0.35, help="training: share of the GPU's peak bf16 FLOP/s reached")
    ap.add_argument("--peak-tflops", type=float, default=989.0, help="GPU peak dense bf16 TFLOP/s (H100 SXM: 989)")
    args = ap.parse_args()

    print("## Memory per GPU for model states (GiB; activations on top)\n")
    setups = [("8B", 8), ("70B", 16), ("70B", 32), ("70B", 64)]
    configs = ["DDP (multi_gpu)", "ZeRO-1", "ZeRO-2", "ZeRO-3 / FSDP", "ZeRO-3 + CPU offload of the optimizer",
               "LoRA (float32 frozen weights: dpo.lora's default)", "LoRA, bfloat16 frozen weights (dpo.lora.base_dtype)"]
    print("| config | " + " | ".join(f"{m} on {g} GPUs" for m, g in setups) + " |")
    print("|---|" + "---|" * len(setups))
    for c in configs:
        cells = [memory_gib(MODELS[m], c, g, lora_parameters(MODELS[m])) for m, g in setups]
        print(f"| {c} | " + " | ".join(f"{v:,.0f}" for v in cells) + " |")

    # meta_rewarding preset at the paper's sizes (params/meta_rewarding.yaml)
    prompts, n, k, meta, max_requests = 5000, 7, 11, 11, 20000
    sample_tokens, judge_tokens, meta_tokens, instruct_tokens = 256, 256, 512, 96
    work = workload(prompts, n, k, meta, max_requests, sample_tokens, judge_tokens, meta_tokens, instruct_tokens)
    print("\n## One meta_rewarding iteration at the paper's sizes (5,000 prompts, N = 7, K = 11, 11 judgments "
          "meta-judged in both orders; generated tokens at max_new_tokens)\n")
    print("| stage | sequences | prompt tokens | generated tokens | 8B, 8 GPUs | 70B, 32 GPUs |")
    print("|---|---|---|---|---|---|")
    for stage, (seqs, prompt, gen) in work.items():
        times = []
        for model, gpus in (("8B", 8), ("70B", 32)):
            scale = MODELS["8B"] / MODELS[model]
            seconds = prompt / (args.prefill_tps * scale * gpus) + gen / (args.decode_tps * scale * gpus)
            times.append(seconds)
        print(f"| {stage} | {seqs:,} | {prompt / 1e6:,.1f} M | {gen / 1e6:,.1f} M | "
              + " | ".join(fmt(t) for t in times) + " |")
    tokens = dpo_tokens(prompts, True, 10, sample_tokens, judge_tokens)
    times = [tokens * 6 * MODELS[m] / (g * args.peak_tflops * 1e12 * args.mfu) for m, g in (("8B", 8), ("70B", 32))]
    print(f"| dpo (10 epochs) | {2 * prompts:,} pairs | {tokens / 1e6:,.0f} M trained | | "
          + " | ".join(fmt(t) for t in times) + " |")
    print(f"\nAssumed (not measured): {args.decode_tps:,.0f} generated and {args.prefill_tps:,.0f} prompt tokens/s per "
          f"GPU for an 8B model (bigger models: scaled by parameter count); training at {args.mfu:.0%} of "
          f"{args.peak_tflops:,.0f} TFLOP/s, 6 FLOP per parameter per token, reference log-probs reused from "
          "generation (no reference forward).")


def fmt(seconds: float) -> str:
    if seconds < 3600:
        return f"{math.ceil(seconds / 60):,} min"
    return f"{seconds / 3600:,.1f} h"


if __name__ == "__main__":
    main()
