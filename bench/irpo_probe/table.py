"""Print M0..M3 held-out metrics (mean ± SE) and per-iteration timings/pairs of results-*.json files."""
import json, sys
for f in sys.argv[1:]:
    r = json.load(open(f))
    print(f"\n## {r['tag']} ({r.get('device', 'cpu')}) args: " + " ".join(
        f"{k}={v}" for k, v in r["args"].items() if k in ("train1", "train2", "n", "temperature", "max_new_tokens",
        "levels", "per_prompt", "lr", "epochs", "beta", "nll", "dpo_batch", "data_seed", "heldout2", "all_levels")))
    k = r["args"]["eval_k"]
    print("| model | d1 pass@1 | d1 pass@4 | d1 maj@4 | d1 format | d1 tok | d2 pass@1 | d2 pass@4 | d2 maj@4 | d2 format | d2 tok |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for name, m in r["models"].items():
        cells = []
        for key in ("d1", "d2"):
            x = m[key]
            cells += [f"{x['pass@1']:.3f}±{x['pass@1_se']:.3f}", f"{x[f'pass@{k}']:.3f}±{x[f'pass@{k}_se']:.3f}",
                      f"{x[f'maj@{k}']:.3f}±{x[f'maj@{k}_se']:.3f}", f"{x['format_rate']:.3f}±{x['format_rate_se']:.3f}",
                      f"{x['mean_tokens']:.1f}"]
        print(f"| {name} | " + " | ".join(cells) + " |")
    for it in r["iterations"]:
        print(f"- {it['model']}: sample {it.get('sample_seconds')}s, dpo {it.get('dpo_seconds')}s, "
              f"eval {it.get('eval', {}).get('seconds')}s, pairs {it['pair_stats']['pairs']} {it['pair_stats']['by_levels']}, "
              f"threads {it.get('threads_sample')}/{it.get('threads_dpo')}, dpo steps {it.get('dpo', {}).get('steps')}")
