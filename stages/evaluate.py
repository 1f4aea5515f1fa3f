"""Evaluate M_key: win rates against baselines on held-out prompts, and judge accuracy on labelled pairs.

    python -m stages.evaluate --iteration M1
    python -m stages.evaluate --iteration M0        # the base model before any training (also M0_sft)

Reads: params data.eval_prompts, data.labelled_pairs, data.heldout_tasks (evaluate.heldout_tasks),
data.constraint_tasks (evaluate.constraint_tasks), models/<key>,
each baseline's model and the evaluator (evaluate.evaluator); a baseline that is the evaluated model itself
(M0 against `previous` or M0) is left out, and with no baseline left there are no win rates. Writes: data/<key>/eval_answers.jsonl,
data/<key>/eval_comparisons.jsonl, data/<key>/eval_judge.jsonl, data/<key>/eval_heldout.jsonl (every held-out
sample, checked), data/<key>/eval_constraints.jsonl (every constraint answer, each constraint's outcome), data/<key>/eval_known.jsonl
(evaluate.known_pairs: M_key's judgments of the held-out known pairs, data/M0/known_pool.jsonl, and of the labelled
pairs), metrics/<key>/eval.json.
Models are loaded one after another and released in between.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from pipeline import evaluation, judging, known_pairs, paths, records
from pipeline.config import Params
from pipeline.engines.base import Engine
from pipeline.engines.openai import OpenAIEngine
from pipeline.records import EvalPrompt, KnownPair, LabelledPair
from stages import _common, _data, _generate


def engine_opener(params: Params, it: _common.Iteration | None = None) -> Callable[[str], Engine]:
    """Loads a model directory with the params' engine; ``openai`` is the OpenAI-compatible evaluator, checked
    (URL, key, server, model) before any model loads."""
    cfg, load = params.evaluate, _generate.open_engine(params, it)
    if cfg.evaluator != "openai":
        return load
    server = OpenAIEngine(cfg.openai_url or "", cfg.openai_model or "", cfg.api_key_env,
                          max_concurrency=cfg.openai_max_concurrency)
    server.preflight("evaluate")
    return lambda d: server if d == "openai" else load(d)


def main() -> None:
    args = _common.parser(__doc__).parse_args()
    it = _common.Iteration(args, "evaluate", base_models=True)
    cfg, p = it.params.evaluate, it.params
    prompts = _data.read(p.data.eval_prompts, EvalPrompt)[:cfg.max_prompts] if cfg.max_prompts != 0 else []
    labelled = _data.read(p.data.labelled_pairs, LabelledPair)[:cfg.max_labelled_pairs] if cfg.judge_accuracy else []
    tasks = _data.read_tasks(p.data.heldout_tasks)[:cfg.heldout_tasks] if cfg.heldout_tasks != 0 else []
    constrained = (_data.read_constraint_tasks(p.data.constraint_tasks)[:cfg.constraint_tasks]
                   if cfg.constraint_tasks != 0 else [])
    known = read_known(it) if cfg.known_pairs != 0 else []
    current = str(it.model("current"))
    _common.require_model(Path(current), it.key)
    models = {"current": current, **{b: d for b in cfg.baselines
                                     if (d := str(it.model(b, "evaluate.baselines"))) != current}}
    if skipped := [b for b in cfg.baselines if b not in models]:
        _common.log.info("evaluate %s: baseline %s is %s itself: left out", it.key, ", ".join(skipped), it.key)
    compares = bool(prompts) and len(models) > 1
    evaluator = "openai" if cfg.evaluator == "openai" else str(it.model(cfg.evaluator, "evaluate.evaluator")
                                                                if compares else it.model(cfg.evaluator))
    opener = engine_opener(p, it) if compares else _generate.open_engine(p, it)
    if _generate.replicated(it):
        return
    cache = _generate.cache(it, [it.made_by(d) for d in models.values()], evaluator, cfg.__dict__, p.judge.__dict__,
                            p.sample.__dict__, templates=(cfg.compare_template or evaluation.TEMPLATE,
                                                                      p.judge.template or judging.TEMPLATE))
    out = evaluation.evaluate(opener, cache, p.shard_size("evaluate"), models, evaluator, prompts, labelled, cfg,
                              p.judge, p.sample, tasks, p.verify, constrained, known, p.judge_training)
    it.write({"eval_answers.jsonl": out.answers, "eval_comparisons.jsonl": out.comparisons,
              "eval_judge.jsonl": out.judge, "eval_heldout.jsonl": out.heldout,
              "eval_constraints.jsonl": out.constraints, "eval_known.jsonl": out.known}, out.metrics, name="eval")
    cache.finish()
    log_figures(it.key, out.metrics)


def read_known(it: _common.Iteration) -> list[KnownPair]:
    """The held-out known pairs the judge is measured on: the first evaluate.known_pairs of the pool (stage
    known_pool), then the labelled pairs as known pairs (source labelled)."""
    if not paths.KNOWN_POOL.exists():
        raise _common.StageError(f"evaluate.known_pairs: {it.params.evaluate.known_pairs} — {paths.KNOWN_POOL} is "
                                 "missing: run `dvc repro known_pool` (or `python -m stages.known_pool`, with "
                                 "known_pool.enabled: true) first")
    pool = records.read_jsonl(paths.KNOWN_POOL, KnownPair) if paths.KNOWN_POOL.stat().st_size else []
    if problems := known_pairs.problems(pool, str(paths.KNOWN_POOL)):
        raise _common.StageError(problems[0])
    cfg = it.params.evaluate
    labelled = _data.read(it.params.data.labelled_pairs, LabelledPair)[:cfg.max_labelled_pairs]
    return [*(pool if cfg.known_pairs is None else pool[:cfg.known_pairs]), *known_pairs.from_labelled(labelled)]


def log_figures(key: str, metrics: dict) -> None:
    """One log line per baseline, per model on held-out tasks and on constraint instructions."""
    for name, s in metrics["baselines"].items():
        _common.log.info("evaluate %s vs %s: win rate %.3f ± %.3f (length-adjusted %.3f), W/T/L %d/%d/%d", key, name,
                         s["win_rate"], s["win_rate_se"], s["length_adjusted_win_rate"], s["wins"], s["ties"], s["losses"])
    for name, h in metrics.get("heldout", {}).get("models", {}).items():
        a = h["all"]
        _common.log.info("evaluate %s, %s on %d held-out tasks: pass@1 %.3f ± %.3f, format %.3f ± %.3f", key, name,
                         a["tasks"], a["pass@1"], a["pass@1_se"], a["format_rate"], a["format_rate_se"])
    for name, c in metrics.get("constraints", {}).get("models", {}).items():
        _common.log.info("evaluate %s, %s on %d constraint instructions: prompt-level strict %.3f ± %.3f, loose %.3f "
                         "± %.3f; instruction-level strict %.3f ± %.3f; %.0f words", key, name, c["prompts"],
                         c["prompt_strict"], c["prompt_strict_se"], c["prompt_loose"], c["prompt_loose_se"],
                         c["instruction_strict"], c["instruction_strict_se"],
                         c["mean_words"])
    for mode, k in (metrics.get("known_pairs") or {}).get("modes", {}).items():
        o = k["overall"]
        _common.log.info("evaluate %s as a %s judge on %d known pairs: accuracy %s ± %s (format-matched %s, better "
                         "longer %s, better shorter %s)", key, mode, o["n"], o["accuracy"], o["accuracy_se"],
                         o["format_matched"]["accuracy"], o["better_longer"]["accuracy"], o["better_shorter"]["accuracy"])



if __name__ == "__main__":
    _common.run(main)
