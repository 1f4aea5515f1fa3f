"""IRPO probe: M0 -> M1 -> M2 -> M3 on 1- and 2-digit arithmetic with SmolLM2-135M-Instruct on CPU.

    HF_HUB_OFFLINE=1 python -m bench.irpo_probe.probe --tag base [--iterations 3] [knobs...]

Each iteration: sample n responses per training prompt with M_{t-1}, verify them, rank each sample
(level 2: correct and in the asked format; 1: correct, found only flexibly; 0: wrong or no answer), pair
higher-level samples against lower-level ones (best level first, capped per prompt), train DPO + NLL
(TRL loss_type [sigmoid, sft]) from M_{t-1} with M_{t-1} as reference, save M_t. Every model is evaluated on
fixed held-out splits (1-digit and 2-digit) with k samples. Writes bench/irpo_probe/results-<tag>.json.
Touches nothing outside bench/irpo_probe/.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import time
from pathlib import Path
from typing import Any

ROOT = Path("bench/irpo_probe")


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


def loadavg() -> float:
    try:
        return float(open("/proc/loadavg").read().split()[0])
    except OSError:
        return float("nan")


def adapt_threads(args: argparse.Namespace) -> int:
    """--threads 0 (auto): 2 threads on a free machine, 1 while a pipeline stage runs beside us (2 threads on
    2 shared cores make OpenMP spin: generation was ~100x slower)."""
    import subprocess

    import torch

    if torch.cuda.is_available():
        return torch.get_num_threads()
    n = args.threads
    if n == 0:
        busy = subprocess.run(["pgrep", "-f", "python -m stages"], capture_output=True).returncode == 0
        n = 1 if busy else (os.cpu_count() or 1)
    torch.set_num_threads(n)
    return n


def make_splits(args: argparse.Namespace) -> dict[str, tuple[list[Any], list[Any]]]:
    from pipeline.tasks import train_and_heldout

    ops = args.ops.split(",")
    out = {}
    for digits, n_train, n_held in ((1, args.train1, args.heldout1), (2, args.train2, args.heldout2)):
        tr, ho = train_and_heldout("arithmetic", n_train, n_held, args.data_seed, {"digits": digits, "ops": ops})
        out[f"d{digits}"] = (tr, ho)
    return out


def conv(task: Any) -> list[dict[str, str]]:
    return [{"role": "user", "content": task.prompt}]


def score(task: Any, text: str, finish: str) -> dict[str, Any]:
    from pipeline.verifiable import extract_answer, numeric

    e = extract_answer(text)
    correct = e.answer is not None and numeric(e.answer, task.answer)
    return {"extracted": e.answer, "method": e.method, "correct": bool(correct), "finish": finish}


def level(s: dict[str, Any], levels: str) -> int:
    if levels == "binary":  # IRPO: correct vs incorrect
        return 1 if s["correct"] else 0
    if levels == "strict_only":  # only correct-in-format wins
        return 1 if s["correct"] and s["method"] == "strict" else 0
    # "format3": correct+strict > correct flexible > wrong; a wrong answer in format is still level 0
    if s["correct"]:
        return 2 if s["method"] == "strict" else 1
    return 0


def build_pairs(tasks: list[Any], outs: list[list[Any]], args: argparse.Namespace, rng: random.Random
                ) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    rows, stats = [], {"prompts_with_pair": 0, "by_levels": {}}
    for task, comps in zip(tasks, outs):
        scored = [(c, score(task, c.text, c.finish_reason)) for c in comps]
        lv = [(level(s, args.levels), c.text, s) for c, s in scored]
        if args.drop_truncated_chosen:
            lv = [(l if s["finish"] != "length" or l == 0 else 0, t, s) for l, t, s in lv]
        top = max(l for l, _, _ in lv)
        made = []
        # best level against every lower level, then (if allowed) the next levels down
        for hi in sorted({l for l, _, _ in lv}, reverse=True):
            if hi != top and not args.all_levels:
                break
            winners = list(dict.fromkeys(t for l, t, _ in lv if l == hi))
            losers = list(dict.fromkeys(t for l, t, _ in lv if l < hi))
            if not winners or not losers:
                continue
            rng.shuffle(winners)
            if args.loser_order == "long":
                losers.sort(key=len, reverse=True)
            else:
                rng.shuffle(losers)
            lo_of = {t: l for l, t, _ in lv}
            for w, l_ in _walk(winners, losers, args.per_prompt - len(made)):
                made.append((hi, lo_of[l_], w, l_))
            if len(made) >= args.per_prompt:
                break
        if made:
            stats["prompts_with_pair"] += 1
        for hi, lo, w, l_ in made:
            key = f"{hi}>{lo}"
            stats["by_levels"][key] = stats["by_levels"].get(key, 0) + 1
            rows.append({"prompt": conv(task), "chosen": [{"role": "assistant", "content": w}],
                         "rejected": [{"role": "assistant", "content": l_}], "generated": None})
    rng.shuffle(rows)
    stats["pairs"] = len(rows)
    return rows, stats


def _walk(winners: list[str], losers: list[str], cap: int) -> list[tuple[str, str]]:
    from pipeline.verifiable import irpo_pairs

    return irpo_pairs(winners, losers, max(cap, 0)) if cap > 0 else []


def sample_stats(tasks: list[Any], outs: list[list[Any]]) -> dict[str, float]:
    ss = [score(t, c.text, c.finish_reason) for t, cs in zip(tasks, outs) for c in cs]
    n = max(len(ss), 1)
    toks = [c.num_tokens for cs in outs for c in cs]
    return {"samples": len(ss), "correct": sum(s["correct"] for s in ss) / n,
            "strict": sum(s["method"] == "strict" for s in ss) / n,
            "correct_strict": sum(s["correct"] and s["method"] == "strict" for s in ss) / n,
            "truncated": sum(s["finish"] == "length" for s in ss) / n,
            "mean_tokens": sum(toks) / max(len(toks), 1)}


def evaluate(engine: Any, splits: dict[str, tuple[list[Any], list[Any]]], args: argparse.Namespace,
             seed: int) -> dict[str, Any]:
    from pipeline.engines.base import SamplingSettings
    from pipeline.verifiable import sample_metrics

    out: dict[str, Any] = {}
    tasks = [t for key in splits for t in splits[key][1]]
    which = [key for key in splits for _ in splits[key][1]]
    t0 = time.time()
    gens = engine.generate([conv(t) for t in tasks],
                           SamplingSettings(n=args.eval_k, temperature=args.eval_temperature, top_p=1.0,
                                            max_new_tokens=args.eval_max_new_tokens, seed=seed), desc="eval")
    secs = time.time() - t0
    for key in splits:
        samples = []
        for t, w, cs in zip(tasks, which, gens):
            if w != key:
                continue
            for i, c in enumerate(cs):
                s = score(t, c.text, c.finish_reason)
                samples.append({"task_id": t.task_id, "sample_index": i, "extracted": s["extracted"],
                                "method": s["method"], "correct": s["correct"], "num_tokens": c.num_tokens})
        out[key] = sample_metrics(samples, args.eval_k)
    out["seconds"] = round(secs, 1)
    out["examples"] = [{"prompt": tasks[i].prompt.splitlines()[0], "answer": tasks[i].answer,
                        "text": gens[i][0].text} for i in (0, len(tasks) - 1)]
    return out


def fmt_eval(name: str, ev: dict[str, Any], k: int) -> str:
    parts = [name]
    for key in ("d1", "d2"):
        m = ev[key]
        parts.append(f"{key}: p@1 {m['pass@1']:.3f}±{m['pass@1_se']:.3f} p@{k} {m[f'pass@{k}']:.3f} "
                     f"maj@{k} {m[f'maj@{k}']:.3f} fmt {m['format_rate']:.3f}±{m['format_rate_se']:.3f} "
                     f"tok {m['mean_tokens']:.0f}")
    return " | ".join(parts) + f" ({ev['seconds']}s)"


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--tag", required=True)
    p.add_argument("--iterations", type=int, default=3)
    p.add_argument("--threads", type=int, default=0, help="torch threads; 0: auto per phase (1 while a pipeline stage runs beside us, else all cores)")
    # data
    p.add_argument("--data-seed", type=int, default=0)
    p.add_argument("--ops", default="+,-")
    p.add_argument("--train1", type=int, default=64)
    p.add_argument("--train2", type=int, default=64)
    p.add_argument("--heldout1", type=int, default=64)
    p.add_argument("--heldout2", type=int, default=64)
    p.add_argument("--prompts-per-iter", type=int, default=0,
                   help="train prompts sampled per iteration (0: all); a different random subset each time")
    # sampling
    p.add_argument("--n", type=int, default=4)
    p.add_argument("--temperature", type=float, default=0.8)
    p.add_argument("--max-new-tokens", type=int, default=64)
    p.add_argument("--batch-size", type=int, default=64)
    # pairs
    p.add_argument("--levels", default="format3", choices=["format3", "binary", "strict_only"])
    p.add_argument("--all-levels", action="store_true", help="also pair lower levels (1>0) on a prompt")
    p.add_argument("--per-prompt", type=int, default=2)
    p.add_argument("--loser-order", default="random", choices=["random", "long"])
    p.add_argument("--drop-truncated-chosen", action="store_true")
    # dpo
    p.add_argument("--lr", type=float, default=5e-6)
    p.add_argument("--epochs", type=float, default=2.0)
    p.add_argument("--beta", type=float, default=0.1)
    p.add_argument("--nll", type=float, default=1.0, help="weight of the sft (NLL) term")
    p.add_argument("--dpo-batch", type=int, default=8)
    p.add_argument("--reference", default="previous", choices=["previous", "base"])
    # eval
    p.add_argument("--eval-k", type=int, default=4)
    p.add_argument("--eval-temperature", type=float, default=0.7)
    p.add_argument("--eval-max-new-tokens", type=int, default=0, help="0: same as --max-new-tokens")
    p.add_argument("--eval-seed", type=int, default=1234)
    p.add_argument("--skip-m0-eval", default="", help="path of a results json whose M0 eval to reuse")
    p.add_argument("--no-eval", action="store_true", help="evaluate only the last model")
    p.add_argument("--keep-models", action="store_true")
    p.add_argument("--m0", default=str(ROOT / "models" / "M0"))
    args = p.parse_args()
    if args.eval_max_new_tokens == 0:
        args.eval_max_new_tokens = args.max_new_tokens

    import torch

    import pipeline.dpo

    _common = pipeline.dpo.common_args

    def fp32_args(*a: Any, **kw: Any) -> dict[str, Any]:  # same numerics as the CPU run: no bf16 autocast on GPU
        return {**_common(*a, **kw), "bf16": False}

    pipeline.dpo.common_args = fp32_args
    from pipeline.config import DpoConfig
    from pipeline.dpo import train_dpo
    from pipeline.engines.base import SamplingSettings
    from pipeline.engines.hf import HFEngine
    from pipeline.models import save_model

    splits = make_splits(args)
    train = {k: v[0] for k, v in splits.items()}
    run_dir = ROOT / "runs" / args.tag
    if run_dir.exists():
        shutil.rmtree(run_dir)
    run_dir.mkdir(parents=True)
    result: dict[str, Any] = {"tag": args.tag, "args": vars(args), "torch_threads": torch.get_num_threads(),
                              "device": torch.cuda.get_device_name(0) if torch.cuda.is_available() else "cpu",
                              "started": time.strftime("%Y-%m-%dT%H:%M:%S"), "models": {}, "iterations": []}
    out_path = ROOT / f"results-{args.tag}.json"

    def dump() -> None:
        out_path.write_text(json.dumps(result, indent=2) + "\n")

    prev = Path(args.m0)
    engine = HFEngine(str(prev), batch_size=args.batch_size, dtype="float32")
    if args.skip_m0_eval:
        result["models"]["M0"] = json.loads(Path(args.skip_m0_eval).read_text())["models"]["M0"]
        log("M0 eval reused from " + args.skip_m0_eval)
    elif not args.no_eval:
        la = loadavg()
        th = adapt_threads(args)
        result["models"]["M0"] = evaluate(engine, splits, args, args.eval_seed)
        result["models"]["M0"]["loadavg_before"] = la
        result["models"]["M0"]["threads"] = th
        log(fmt_eval("M0", result["models"]["M0"], args.eval_k))
    dump()
    rng = random.Random(args.data_seed)
    for it in range(1, args.iterations + 1):
        name = f"M{it}"
        rec: dict[str, Any] = {"model": name, "loadavg_before": loadavg()}
        tasks = [t for key in ("d1", "d2") for t in train[key]]
        if args.prompts_per_iter:
            tasks = rng.sample(tasks, min(args.prompts_per_iter, len(tasks)))
        rec["threads_sample"] = adapt_threads(args)
        t0 = time.time()
        outs = engine.generate([conv(t) for t in tasks],
                               SamplingSettings(n=args.n, temperature=args.temperature, top_p=1.0,
                                                max_new_tokens=args.max_new_tokens, seed=1000 + it),
                               desc=f"sample {name}")
        rec["sample_seconds"] = round(time.time() - t0, 1)
        rec["train_prompts"] = len(tasks)
        rec["sample_stats"] = {key: sample_stats([t for t in tasks if t in train[key]],
                                                 [o for t, o in zip(tasks, outs) if t in train[key]])
                               for key in ("d1", "d2")}
        t1 = time.time()
        rows, pstats = build_pairs(tasks, outs, args, random.Random(f"{args.data_seed}:{it}"))
        rec["pair_stats"] = pstats
        rec["pair_examples"] = [{"chosen": r["chosen"][0]["content"], "rejected": r["rejected"][0]["content"]}
                                for r in rows[:3]]
        log(f"{name}: sampled {len(tasks)}x{args.n} in {rec['sample_seconds']}s; stats {rec['sample_stats']}; "
            f"pairs {pstats}")
        if not rows:
            log("no pairs: stop")
            result["iterations"].append(rec)
            dump()
            break
        del engine
        cfg = DpoConfig(beta=args.beta, learning_rate=args.lr, epochs=args.epochs, batch_size=args.dpo_batch,
                        max_length=512, loss_type=["sigmoid", "sft"], loss_weights=[1.0, args.nll],
                        precompute_ref_log_probs=True, reuse_generation_logprobs=False, save_steps=100000,
                        seed=it)
        rec["threads_dpo"] = adapt_threads(args)
        rec["loadavg_before_dpo"] = loadavg()
        ref_dir = Path(args.m0) if args.reference == "base" and it > 1 else None
        work = run_dir / f"dpo-{name}"
        model, tok, summary = train_dpo(prev, ref_dir, rows, cfg, work)
        out_dir = run_dir / name
        save_model(model, tok, out_dir, {"name": name, "probe": args.tag})
        shutil.rmtree(work, ignore_errors=True)
        steps = [h for h in summary["log"] if "loss" in h]
        rec["dpo_seconds"] = round(time.time() - t1, 1)
        rec["dpo"] = {"steps": summary["steps"], "first_loss": summary["first_loss"],
                      "last_loss": summary["last_loss"],
                      "mean_margin": sum(h.get("rewards/margins", 0) for h in steps) / max(len(steps), 1),
                      "last_margin": steps[-1].get("rewards/margins") if steps else None,
                      "mean_acc": sum(h.get("rewards/accuracies", 0) for h in steps) / max(len(steps), 1)}
        rec["iteration_seconds"] = round(rec["sample_seconds"] + rec["dpo_seconds"], 1)
        log(f"{name}: dpo {len(rows)} pairs, {rec['dpo']}; dpo {rec['dpo_seconds']}s; iteration "
            f"{rec['iteration_seconds']}s")
        del model
        if not args.keep_models and prev.parent == run_dir:
            shutil.rmtree(prev, ignore_errors=True)
        prev = out_dir
        engine = HFEngine(str(prev), batch_size=args.batch_size, dtype="float32")
        if not args.no_eval or it == args.iterations:
            rec["threads_eval"] = adapt_threads(args)
            rec["eval"] = evaluate(engine, splits, args, args.eval_seed)
            result["models"][name] = rec["eval"]
            log(fmt_eval(name, rec["eval"], args.eval_k))
        result["iterations"].append(rec)
        dump()
    result["finished"] = time.strftime("%Y-%m-%dT%H:%M:%S")
    dump()
    log(f"wrote {out_path}")


if __name__ == "__main__":
    main()
