"""Print the README's table of measured figures from metrics/<key>/*.json (what `dvc repro` wrote).

    python scripts/figures.py
"""

from __future__ import annotations

import json
from pathlib import Path


def load(path: Path) -> dict:
    return json.loads(path.read_text()) if path.exists() else {}


def main() -> None:
    sft = load(Path("metrics/M0_sft/sft.json"))
    if sft.get("enabled"):
        b, a = sft["judge_before"], sft["judge_after"]
        print(f"Seed SFT ({sft['examples']} examples, {sft['seconds']:.0f} s): judge strict-parse rate on "
              f"{sft['heldout_eft']} held-back EFT examples {b['strict_parse_rate']:.0%} -> {a['strict_parse_rate']:.0%}, "
              f"mean absolute score error {b['mean_abs_error']:.2f} -> {a['mean_abs_error']:.2f}\n")
    print("| iteration | stage | seconds | figures |")
    print("|---|---|---|---|")
    for d in sorted(p for p in Path("metrics").iterdir() if p.is_dir() and p.name != "M0_sft"):
        m = {s: load(d / f"{s}.json") for s in ("self_instruct", "sample", "judge", "meta_judge", "pairs", "dpo", "eval")}
        rows = []
        if m["self_instruct"]:
            s = m["self_instruct"]
            rows.append(("self_instruct", s["seconds"], f"{s['accepted']} of {s['requests']} accepted; rejected: "
                         + ", ".join(f"{k} {v}" for k, v in s["rejected"].items() if v)))
        if m["sample"]:
            s = m["sample"]
            rows.append(("sample", s["seconds"], f"{s['responses']} responses, {s['parse_rate']:.0%} with the response marker, "
                         f"mean response {s['mean_response_chars']:.0f} chars"))
        if m["judge"]:
            s = m["judge"]
            rows.append(("judge", s["seconds"], f"{s['judgments']} judgments: strict {s['strict']}, flexible {s['flexible']}, "
                         f"forced {s['forced']}; response score mean {s['mean_score']:.2f}, sd {s['score_std']:.2f}"))
        if m["meta_judge"]:
            s = m["meta_judge"]
            bias = "n/a" if s["position_bias"] is None else f"{s['position_bias']:.2f}"
            rows.append(("meta_judge", s["seconds"], f"{s['comparisons']} comparisons: strict {s['strict']}, flexible "
                         f"{s['flexible']}, forced {s['forced']}, ties {s['ties']}; position bias {bias}; "
                         f"mean Elo spread {s['elo_spread_mean']:.0f}"
                         + (f"; forced verdicts calibrated (offset {s['calibration_offset']:.2f} nats)"
                            if s.get("calibrated") else "")))
        if m["pairs"]:
            s = m["pairs"]
            rows.append(("pairs", 0, f"{s['response_pairs']} response pairs ({s['dropped_equal_scores']} prompts with equal "
                         f"scores), {s['judgment_pairs']} judgment pairs"))
        if m["dpo"]:
            s = m["dpo"]
            rows.append(("dpo", s["seconds"], f"{s['pairs']} pairs, {s['pairs_per_second']} pairs/s, loss "
                         f"{s['first_loss']:.3f} -> {s['last_loss']:.3f}, mean reward accuracy {s['mean_reward_accuracy']:.2f}"
                         + (f"; reference log-probs reused for {s['sides_reused']} of "
                            f"{s['sides_reused'] + s['sides_recomputed']} sides ({s['recomputed_because']} recomputed)"
                            if "sides_reused" in s else "")))
        if m["eval"]:
            s = m["eval"]
            parts = [f"vs {k}: win rate {v['win_rate']:.2f} ± {v['win_rate_se']:.2f} (95% CI {v['win_rate_ci95_low']:.2f}-"
                     f"{v['win_rate_ci95_high']:.2f}), length-adjusted {v['length_adjusted_win_rate']:.2f}, W/T/L {v['wins']}/{v['ties']}/{v['losses']}"
                     for k, v in s["baselines"].items()]
            acc = s.get("judge_accuracy") or {}
            if acc:
                parts.append(f"judge accuracy {acc['accuracy']:.2f} on {acc['pairs']} labelled pairs ({acc['ties']} ties)")
            rows.append(("evaluate", s["seconds"], "; ".join(parts)))
        if not rows:  # e.g. metrics/M0: the known pool or an evaluation of M0, no iteration
            continue
        total = sum(r[1] for r in rows if r[0] != "evaluate")
        for name, secs, text in rows:
            print(f"| {d.name} | {name} | {secs:.0f} | {text} |")
        print(f"| {d.name} | **loop total** (without evaluate) | {total:.0f} | |")


if __name__ == "__main__":
    main()
