"""Benchmark: the hf engine's grouped-query attention (pipeline/engines/grouped_attention.py) against
transformers' sdpa, which copies the key/value cache once per query head of a group at every decode step.

    python -m bench.grouped_attention --model models/M0 --prompts 32 --max-new-tokens 200

The same left-padded batch is generated greedily twice, sdpa first, then grouped (every sequence runs the full
--max-new-tokens: end-of-sequence is ignored), and the logits of one forward pass compared. Writes
bench/results/grouped_attention-<machine>.json: seconds and tokens/s of each, the ratio, the largest logit
difference and whether the greedy tokens agree.
"""

from __future__ import annotations

import argparse
import time


def _cpu() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            return next((line.split(":", 1)[1].strip() for line in f if line.startswith("model name")), "")
    except OSError:
        return ""


def main(argv: list[str] | None = None) -> None:
    import torch

    from bench.common import write_report
    from bench.generation import workload
    from pipeline.engines.grouped_attention import use_grouped_attention
    from pipeline.models import load_model

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", default="models/M0")
    p.add_argument("--prompts", type=int, default=32, help="sequences in the batch")
    p.add_argument("--max-new-tokens", type=int, default=200)
    p.add_argument("--out", default="bench/results")
    args = p.parse_args(argv)
    model, tok = load_model(args.model, "float32")
    model.eval()
    tok.padding_side = "left"
    tok.pad_token = tok.pad_token or tok.eos_token
    texts = [tok.apply_chat_template(c, tokenize=False, add_generation_prompt=True) for c in workload(args.prompts)]
    enc = tok(texts, return_tensors="pt", padding=True, add_special_tokens=False)
    kw = {"max_new_tokens": args.max_new_tokens, "min_new_tokens": args.max_new_tokens, "do_sample": False,
          "pad_token_id": tok.pad_token_id}
    runs, out = {}, {}
    with torch.inference_mode():
        for name in ("sdpa", "grouped"):
            if name == "grouped" and not use_grouped_attention(model):
                raise SystemExit(f"{args.model}: no grouped key/value heads — nothing to compare")
            logits = model(**enc).logits
            start = time.perf_counter()
            seqs = model.generate(**enc, **kw)
            seconds = time.perf_counter() - start
            runs[name] = {"seconds": round(seconds, 2),
                          "tokens_per_s": round(args.prompts * args.max_new_tokens / seconds, 1)}
            out[name] = (logits, seqs)
    keep = enc["attention_mask"].bool()
    report = {"threads": torch.get_num_threads(), "cpu": _cpu(),
              "workload": {"model": args.model, "prompts": args.prompts, "max_new_tokens": args.max_new_tokens,
                           "prompt_tokens": int(enc["input_ids"].shape[1])},
              "runs": runs, "speedup": round(runs["sdpa"]["seconds"] / runs["grouped"]["seconds"], 2),
              "max_logit_difference": float((out["sdpa"][0] - out["grouped"][0]).abs()[keep].max()),
              "same_greedy_tokens": bool(torch.equal(out["sdpa"][1], out["grouped"][1]))}
    path = write_report("grouped_attention", report, args.out)
    print(f"sdpa {runs['sdpa']['tokens_per_s']} tokens/s, grouped {runs['grouped']['tokens_per_s']} tokens/s: "
          f"{report['speedup']}x; max logit difference {report['max_logit_difference']}, same greedy tokens "
          f"{report['same_greedy_tokens']} -> {path}")


if __name__ == "__main__":
    main()
