# ---
# jupyter:
#   jupytext:
#     text_representation:
#       extension: .py
#       format_name: percent
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Win rates per iteration
# Reads every iteration's `metrics/<key>/eval.json`, `metrics/<key>/judge.json` and
# `data/<key>/eval_comparisons.jsonl`; writes `reports/summary.csv` and the figures as PNG.
# Executed by `python -m stages.report` (a DVC stage) into `reports/win_rates.ipynb`.

# %% tags=["parameters"]
root = "."
out_dir = "reports"

# %%
import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import pandas as pd
import yaml

root, out = Path(root), Path(out_dir)
out.mkdir(parents=True, exist_ok=True)
iterations = list((yaml.safe_load((root / "params.yaml").read_text()).get("iterations") or {}))
done = [k for k in iterations if (root / "metrics" / k / "eval.json").exists()]
print("iterations with an evaluation:", done)

# %% [markdown]
# ## The per-iteration table

# %%
rows = []
for k in done:
    ev = json.loads((root / "metrics" / k / "eval.json").read_text())
    judge = root / "metrics" / k / "judge.json"
    acc = (ev.get("judge_accuracy") or {}).get("accuracy")
    for baseline, s in ev["baselines"].items():
        rows.append({"iteration": k, "baseline": baseline, "wins": s["wins"], "ties": s["ties"], "losses": s["losses"],
                     "win_rate": s["win_rate"], "win_rate_se": s["win_rate_se"], "length_adjusted_win_rate": s["length_adjusted_win_rate"],
                     "ci95_low": s["win_rate_ci95_low"], "ci95_high": s["win_rate_ci95_high"],
                     "model_chars": s["model_mean_chars"], "baseline_chars": s["baseline_mean_chars"],
                     "judge_accuracy": acc})
table = pd.DataFrame(rows, columns=["iteration", "baseline", "wins", "ties", "losses", "win_rate", "win_rate_se",
                                    "length_adjusted_win_rate", "ci95_low", "ci95_high", "model_chars",
                                    "baseline_chars", "judge_accuracy"])
table.to_csv(out / "summary.csv", index=False)


def placeholder(path, text):
    """A figure that says why there is nothing to plot (DVC expects every declared output)."""
    fig, ax = plt.subplots(figsize=(5, 1.5))
    ax.axis("off")
    ax.text(0.5, 0.5, text, ha="center", va="center")
    fig.savefig(path, dpi=100)
    plt.close(fig)


table

# %% [markdown]
# ## Held-out tasks with known answers (pass@1, pass@k, maj@k, format rate; SE over tasks)
# One row per model and task family: M0 as first measured, then each iteration's model.

# %%
held = []
for k in done:
    ev = json.loads((root / "metrics" / k / "eval.json").read_text())
    block = ev.get("heldout") or {}
    for name, groups in block.get("models", {}).items():
        model = k if name == "current" else name
        if any(r["model"] == model for r in held if r["iteration"] != k):
            continue  # a baseline (M0) measured again in a later iteration: keep the first
        for family, m in groups.items():
            kk = m.get("k", block["k"])  # the k its pass@k and maj@k used: fewer than asked where samples were
            held.append({"iteration": k, "model": model, "family": family, "tasks": m["tasks"], "k": kk,
                         "pass@1": m["pass@1"], "pass@1_se": m["pass@1_se"],
                         "pass@1_strict": m["pass@1_strict"], "pass@k": m[f"pass@{kk}"],
                         "pass@k_se": m[f"pass@{kk}_se"], "maj@k": m[f"maj@{kk}"], "maj@k_se": m[f"maj@{kk}_se"],
                         "format_rate": m["format_rate"], "format_rate_se": m["format_rate_se"],
                         "mean_tokens": m["mean_tokens"]})
heldout = pd.DataFrame(held, columns=["iteration", "model", "family", "tasks", "k", "pass@1", "pass@1_se",
                                      "pass@1_strict", "pass@k", "pass@k_se", "maj@k", "maj@k_se", "format_rate",
                                      "format_rate_se", "mean_tokens"])
heldout = heldout.drop_duplicates(["model", "family"])
order = {m: i for i, m in enumerate(["M0", "M0_sft", *iterations])}
heldout = heldout.sort_values(["family", "model"], key=lambda c: c.map(order) if c.name == "model" else c)
heldout.to_csv(out / "heldout.csv", index=False)
if len(heldout):
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(9, 3.5))
    for family, g in heldout.groupby("family"):
        a1.errorbar(g["model"], g["pass@1"], yerr=g["pass@1_se"], marker="o", capsize=3, label=family)
        a2.errorbar(g["model"], g["format_rate"], yerr=g["format_rate_se"], marker="o", capsize=3, label=family)
    a1.set_ylabel("pass@1 (answer read flexibly)")
    a2.set_ylabel("format rate (Final answer: line)")
    for a in (a1, a2):
        a.set_ylim(0, 1)
        a.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(out / "heldout.png", dpi=100)
else:
    placeholder(out / "heldout.png", "no held-out tasks in this run (evaluate.heldout_tasks: 0)")
heldout

# %% [markdown]
# ## Open instructions with checkable constraints (IFEval's accuracies; SE over prompts)
# The measure to trust on open prompts: each constraint is checked, not judged. Prompt-level strict: every
# constraint of an instruction held; loose: IFEval's loose reading (markdown emphasis, a first or last line left
# out). The mean answer length is beside them: longer answers meet "at least N words" more often.

# %%
con = []
for k in done:
    ev = json.loads((root / "metrics" / k / "eval.json").read_text())
    for name, m in (ev.get("constraints") or {}).get("models", {}).items():
        model = k if name == "current" else name
        if any(r["model"] == model for r in con if r["iteration"] != k):
            continue  # a baseline measured again in a later iteration: keep the first
        con.append({"iteration": k, "model": model, "prompts": m["prompts"],
                    **{f"{level}_{rule}{se}": m[f"{level}_{rule}{se}"] for level in ("prompt", "instruction")
                       for rule in ("strict", "loose") for se in ("", "_se")},
                    "mean_words": m["mean_words"], "truncated": m["truncated"]})
constraints = pd.DataFrame(con, columns=["iteration", "model", "prompts", "prompt_strict", "prompt_loose",
                                         "instruction_strict", "instruction_loose", "prompt_strict_se",
                                         "prompt_loose_se", "instruction_strict_se", "instruction_loose_se",
                                         "mean_words", "truncated"])
constraints = constraints.drop_duplicates(["model"])
constraints = constraints.sort_values("model", key=lambda c: c.map(order))
constraints.to_csv(out / "constraints.csv", index=False)
if len(constraints):
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(9, 3.5))
    for col in ("prompt_strict", "prompt_loose", "instruction_strict", "instruction_loose"):
        a1.errorbar(constraints["model"], constraints[col], yerr=constraints[f"{col}_se"], marker="o", capsize=3,
                    label=col.replace("_", " "))
    a1.set_ylabel("accuracy on constraint instructions")
    a1.set_ylim(0, 1)
    a1.legend(fontsize=7)
    a2.plot(constraints["model"], constraints["mean_words"], marker="o")
    a2.set_ylabel("mean answer length (words)")
    fig.tight_layout()
    fig.savefig(out / "constraints.png", dpi=100)
else:
    placeholder(out / "constraints.png", "no constraint instructions in this run (evaluate.constraint_tasks: 0)")
constraints

# %% [markdown]
# ## Wins, ties and losses

# %%
if len(table):
    fig, ax = plt.subplots(figsize=(7, 3.5))
    labels = [f"{r.iteration} vs {r.baseline}" for r in table.itertuples()]
    left = [0] * len(table)
    for col, colour in (("wins", "tab:green"), ("ties", "tab:gray"), ("losses", "tab:red")):
        ax.barh(labels, table[col], left=left, color=colour, label=col)
        left = [a + b for a, b in zip(left, table[col])]
    ax.legend(loc="lower right")
    ax.set_xlabel("prompts")
    fig.tight_layout()
    fig.savefig(out / "win_tie_loss.png", dpi=100)
else:
    placeholder(out / "win_tie_loss.png", "no win rates in this run (evaluate.max_prompts: 0)")

# %% [markdown]
# ## Win rate and length against iteration

# %%
if len(table):
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(9, 3.5))
    for baseline, g in table.groupby("baseline"):
        a1.errorbar(g["iteration"], g["win_rate"], yerr=g["win_rate_se"], marker="o", capsize=3, label=f"vs {baseline}")
        a1.plot(g["iteration"], g["length_adjusted_win_rate"], linestyle="--", marker="x", label=f"length-adjusted vs {baseline}")
        a2.plot(g["iteration"], g["model_chars"], marker="o", label="model")
    a1.axhline(0.5, color="black", linewidth=0.5)
    a1.set_ylabel("win rate")
    a1.legend(fontsize=7)
    a2.set_ylabel("mean answer characters")
    fig.tight_layout()
    fig.savefig(out / "win_rate_length.png", dpi=100)
else:
    placeholder(out / "win_rate_length.png", "no win rates in this run (evaluate.max_prompts: 0)")

# %% [markdown]
# ## Judge accuracy on labelled pairs, and judge score histograms

# %%
if len(table):
    acc = table.groupby("iteration", sort=False)["judge_accuracy"].first()
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(9, 3.5))
    a1.plot(acc.index, acc.values, marker="o")
    a1.set_ylim(0, 1)
    a1.set_ylabel("pairwise judge accuracy")
    for k in done:
        path = root / "metrics" / k / "judge.json"
        if path.exists():
            hist = json.loads(path.read_text())["score_histogram"]
            a2.plot([int(s) for s in hist], list(hist.values()), marker="o", label=k)
    a2.set_xlabel("judge score")
    a2.set_ylabel("judgments")
    a2.legend()
    fig.tight_layout()
    fig.savefig(out / "judge.png", dpi=100)
else:
    placeholder(out / "judge.png", "no labelled-pair judge accuracy in this run")

# %% [markdown]
# ## A few example comparisons

# %%
for k in [k for k in done[-1:] if (root / "data" / k / "eval_comparisons.jsonl").stat().st_size]:
    comps = pd.read_json(root / "data" / k / "eval_comparisons.jsonl", lines=True)
    answers = pd.read_json(root / "data" / k / "eval_answers.jsonl", lines=True)
    for r in comps.head(3).itertuples():
        print(f"[{k} vs {r.baseline}] model shown as {'A' if r.model_is_a else 'B'}: verdict {r.letter} ({r.method})")
        print("   ", r.text[:300].replace("\n", " "))
