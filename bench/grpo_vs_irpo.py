"""IRPO (iterative DPO) against GRPO from M0: held-out pass@1 against the training wall clock, one figure.

    python -m bench.grpo_vs_irpo --run irpo=/tmp/irpo --run grpo=/tmp/grpo \\
        --out bench/results/grpo_vs_irpo-cpu-x86_64-2cores

Each ``--run NAME=DIR`` is a workspace whose iterations were made by ``dvc repro`` of a preset (params/irpo.yaml,
params/grpo.yaml). Per iteration it reads ``metrics/<key>/*.json``: the seconds of the stages that make M_key
(self_instruct to dpo: what a run spends to train, evaluation left out, since it measures and does not train)
and the evaluate stage's held-out pass@1 per family, with its SE; M0's figures come from the first iteration's
baseline. Writes ``<out>.json`` (every point) and ``<out>.png`` (pass@1 with ±1 SE against cumulative minutes).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from pipeline.summary import LOOP_STAGES  # noqa: E402  (after the sys.path line above)


def load(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text(encoding="utf-8")) if path.exists() else {}


def iteration_keys(run: Path) -> list[str]:
    """The iterations of the run's params.yaml, in their order, that have an eval.json."""
    import yaml

    params = yaml.safe_load((run / "params.yaml").read_text(encoding="utf-8"))
    return [k for k in params["iterations"] if (run / "metrics" / k / "eval.json").exists()]


def heldout_point(eval_metrics: dict[str, Any], model: str) -> dict[str, Any]:
    """pass@1 and its SE per task family (and all) of one model in an eval.json."""
    groups = eval_metrics["heldout"]["models"][model]
    return {family: {"pass@1": g["pass@1"], "pass@1_se": g.get("pass@1_se"), "tasks": g.get("tasks")}
            for family, g in groups.items() if isinstance(g, dict) and "pass@1" in g}


def series(run: Path) -> list[dict[str, Any]]:
    """M0 at 0 s, then each iteration at the cumulative seconds its training stages took."""
    keys = iteration_keys(run)
    if not keys:
        raise SystemExit(f"{run}: no iteration with metrics/<key>/eval.json — run `dvc repro` there first")
    first = load(run / "metrics" / keys[0] / "eval.json")
    if "M0" not in first.get("heldout", {}).get("models", {}):
        raise SystemExit(f"{run}: metrics/{keys[0]}/eval.json has no M0 baseline (evaluate.baselines: [M0])")
    points = [{"model": "M0", "seconds": 0.0, "stage_seconds": {}, "heldout": heldout_point(first, "M0")}]
    total = 0.0
    for key in keys:
        stages = {s: load(run / "metrics" / key / f"{s}.json").get("seconds") for s in LOOP_STAGES}
        total += sum(v for v in stages.values() if v is not None)
        points.append({"model": key, "seconds": round(total, 1), "stage_seconds": stages,
                       "heldout": heldout_point(load(run / "metrics" / key / "eval.json"), "current")})
    return points


def plot(runs: dict[str, list[dict[str, Any]]], family: str, out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    for name, points in runs.items():
        xs = [p["seconds"] / 60 for p in points]
        ys = [p["heldout"][family]["pass@1"] for p in points]
        es = [p["heldout"][family]["pass@1_se"] or 0.0 for p in points]
        ax.errorbar(xs, ys, yerr=es, marker="o", capsize=3, label=name)
        for x, y, p in zip(xs, ys, points, strict=True):
            ax.annotate(p["model"], (x, y), textcoords="offset points", xytext=(4, -12), fontsize=8)
    ax.set_xlabel("training wall clock (minutes; stages self_instruct to dpo, evaluation left out)")
    ax.set_ylabel(f"held-out pass@1 ({family})")
    ax.set_ylim(0, 1)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(out, dpi=120)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    ap.add_argument("--run", action="append", required=True, metavar="NAME=DIR", help="a run's workspace")
    ap.add_argument("--family", default="arithmetic-1digit", help="the task family plotted (default 1-digit)")
    ap.add_argument("--machine", default="", help="the machine, in words, written into the JSON")
    ap.add_argument("--out", type=Path, required=True, help="path without suffix: <out>.json and <out>.png")
    args = ap.parse_args(argv)
    runs = {}
    for spec in args.run:
        name, sep, folder = spec.partition("=")
        if not sep:
            ap.error(f"--run {spec!r}: write NAME=DIR")
        runs[name] = series(Path(folder))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.with_suffix(".json").write_text(json.dumps({"machine": args.machine, "family": args.family,
                                                         "runs": runs}, indent=1) + "\n", encoding="utf-8")
    plot(runs, args.family, args.out.with_suffix(".png"))
    for name, points in runs.items():
        print(name + ": " + ", ".join(f"{p['model']} {p['heldout'][args.family]['pass@1']:.3f} at "
                                      f"{p['seconds'] / 60:.1f} min" for p in points))
    return 0


if __name__ == "__main__":
    sys.exit(main())
