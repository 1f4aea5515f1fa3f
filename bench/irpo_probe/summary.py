"""One line per run: M3 (and M1/M2) held-out pass@1 / format with SE, pairs per iteration."""
import json, sys
print("| run | seed | d1 p@1 M0→M1→M2→M3 | d2 p@1 M0→M3 | M3 d1 p@1±SE | M3 d2 p@1±SE | M3 fmt d1/d2 | pairs/iter |")
print("|---|---|---|---|---|---|---|---|")
for f in sys.argv[1:]:
    r = json.load(open(f)); m = r["models"]
    if "M3" not in m:
        print(f"| {r['tag']} | failed/incomplete |"); continue
    d1 = "→".join(f"{m[k]['d1']['pass@1']:.2f}" for k in ("M0", "M1", "M2", "M3") if k in m)
    print(f"| {r['tag']} | {r['args']['data_seed']} | {d1} | {m['M0']['d2']['pass@1']:.3f}→{m['M3']['d2']['pass@1']:.3f} | "
          f"{m['M3']['d1']['pass@1']:.3f}±{m['M3']['d1']['pass@1_se']:.3f} | {m['M3']['d2']['pass@1']:.3f}±{m['M3']['d2']['pass@1_se']:.3f} | "
          f"{m['M3']['d1']['format_rate']:.3f}/{m['M3']['d2']['format_rate']:.3f} | "
          + ",".join(str(i["pair_stats"]["pairs"]) for i in r["iterations"]) + " |")
