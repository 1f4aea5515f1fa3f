"""One row of headline metrics per iteration, for `dvc metrics show` and `dvc metrics diff`.

Each stage writes its full metrics to ``metrics/<key>/<stage>.json``; :func:`iteration_summary` picks the
figures a user compares across iterations into ``metrics/<key>/summary.json``, the one file per iteration
that DVC declares as metrics.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

LOOP_STAGES = ("self_instruct", "sample", "verify", "reflect", "judge", "meta_judge", "pairs", "dpo")
METRIC_FILES = (*LOOP_STAGES, "grpo", "eval")  # what the summarize stage reads

# stage -> keys copied as they are (a missing key is written as None, never invented)
HEADLINE: dict[str, tuple[str, ...]] = {
    "self_instruct": ("accepted", "acceptance_rate"),
    "sample": ("responses", "parse_rate", "mean_response_chars"),
    "verify": ("verified", "accuracy", "strict_rate", "prompts_all_correct", "prompts_all_wrong"),
    "reflect": ("reflections", "first_try_accuracy", "retry_success_rate", "second_try_accuracy"),
    "judge": ("judgments", "parse_rate", "mean_score", "score_std"),
    "meta_judge": ("comparisons", "parse_rate", "position_bias", "elo_spread_mean"),
    "pairs": ("response_pairs", "judgment_pairs", "verified_pairs", "reflection_pairs"),
    "dpo": ("pairs", "first_loss", "last_loss", "mean_reward_accuracy", "mean_reward_margin"),
}
GRPO_KEYS = ("tasks", "steps", "rollouts", "first_reward_mean", "last_reward_mean", "correct_share")
EVAL_KEYS = ("win_rate", "win_rate_se", "length_adjusted_win_rate", "model_mean_chars", "baseline_mean_chars")
HELDOUT_KEYS = ("pass@1", "pass@1_se", "format_rate", "format_rate_se", "mean_tokens")
CONSTRAINT_KEYS = ("prompt_strict", "prompt_strict_se", "prompt_loose", "prompt_loose_se", "instruction_strict",
                   "instruction_strict_se", "instruction_loose", "instruction_loose_se")  # IFEval's four, with SEs


def _round(value: Any) -> Any:
    return round(value, 4) if isinstance(value, float) else value


def iteration_summary(stage_metrics: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    """The headline figures of one iteration from its stages' metrics (``{"judge": {...}, ...}``)."""
    out: dict[str, Any] = {}
    for stage, keys in HEADLINE.items():
        m = stage_metrics.get(stage, {})
        out[stage] = {k: _round(m.get(k)) for k in keys}
    grpo = stage_metrics.get("grpo") or {}
    if grpo.get("enabled"):  # grpo.enabled: the dpo stage trained online; its figures beside dpo's (which are None)
        out["grpo"] = {k: _round(grpo.get(k)) for k in GRPO_KEYS}
    ev = stage_metrics.get("eval")
    if ev is not None:
        block: dict[str, Any] = {f"vs_{name}": {k: _round(b.get(k)) for k in EVAL_KEYS}
                                 for name, b in ev.get("baselines", {}).items()}
        block["judge_accuracy"] = _round((ev.get("judge_accuracy") or {}).get("accuracy"))
        heldout = (ev.get("heldout") or {}).get("models", {})
        for name, groups in heldout.items():  # held-out tasks: all of them, per model (current, baselines)
            k = groups["all"].get("k", ev["heldout"]["k"])  # the k used (fewer samples: fewer), as its keys say
            keys = (*HELDOUT_KEYS, f"pass@{k}", f"maj@{k}")
            block[f"heldout_{name}"] = {key: _round(groups["all"].get(key)) for key in keys}
        for name, m in ((ev.get("constraints") or {}).get("models") or {}).items():  # IFEval's four, per model
            block[f"constraints_{name}"] = {k: _round(m.get(k)) for k in (*CONSTRAINT_KEYS, "mean_words")}
        out["eval"] = block
    truth = stage_metrics.get("judge", {}).get("judge_vs_truth")
    if truth:
        out["judge"]["vs_truth_pairwise_accuracy"] = _round(truth["pairwise_accuracy"])
        out["judge"]["vs_truth_auc"] = _round(truth["auc"])
    seconds = [stage_metrics.get(s, {}).get("seconds") for s in LOOP_STAGES]
    out["loop_stage_seconds"] = round(sum(s for s in seconds if s is not None), 1)
    return out
