"""Evaluate M_key: win rates against baselines on held-out prompts, and judge accuracy on labelled pairs.

    python -m stages.evaluate --iteration M1

Reads: data/eval/prompts.jsonl, data/eval/labelled_pairs.jsonl, models/<key>, each baseline's model and the
evaluator (evaluate.evaluator). Writes: data/<key>/eval_answers.jsonl, data/<key>/eval_comparisons.jsonl,
data/<key>/eval_judge.jsonl, metrics/<key>/eval.json.
Models are loaded one after another and released in between.
"""

from __future__ import annotations

import gc
import time
from collections import Counter
from pathlib import Path
from typing import Any

from pipeline import evaluation, judging, meta_judging, paths, records, sampling, templates
from pipeline.engines import make_engine
from pipeline.engines.base import SamplingSettings
from pipeline.engines.openai import NoLogprobsError, OpenAIEngine
from pipeline.records import EvalPrompt, LabelledPair
from pipeline.shards import ShardCache
from stages import _common


def resolve_model(name: str, key: str, prev: str) -> Path:
    if name == "previous":
        return paths.model_dir(prev)
    if name == "current":
        return paths.model_dir(key)
    if name == "base":
        return paths.model_dir("M0")
    return paths.model_dir(name) if (paths.model_dir(name) / "config.json").exists() or "/" not in name else Path(name)


def answers_of(engine: Any, prompts: list[EvalPrompt], it: _common.Iteration, cache: ShardCache,
               name: str) -> list[dict[str, Any]]:
    cfg, thoughts = it.params.evaluate, it.params.sample.thoughts
    convs = [[{"role": "user", "content": sampling.response_prompt(p.instruction, thoughts)}] for p in prompts]
    settings = SamplingSettings(n=1, temperature=cfg.temperature, top_p=it.params.sample.top_p,
                                max_new_tokens=cfg.max_new_tokens, seed=cfg.seed)
    outs = cache.generate(engine, convs, settings, it.params.shard_size("evaluate"), name=f"answers-{name}",
                          desc=f"answers {name}")
    rows = []
    for p, (c,) in zip(prompts, outs):
        split = sampling.split_thought(c.text, thoughts)
        rows.append({"prompt_id": p.id, "response": split.response if split.parse_ok else c.text.strip(),
                     "parse_ok": split.parse_ok, "num_tokens": c.num_tokens})
    return rows


def judge_labelled(engine: Any, pairs: list[LabelledPair], it: _common.Iteration,
                   cache: ShardCache) -> tuple[list[dict], dict]:
    jcfg, cfg = it.params.judge, it.params.evaluate
    k = cfg.judge_k or jcfg.k
    convs = [judging.judge_conversation(p.instruction, r) for p in pairs for r in (p.response_a, p.response_b)]
    settings = SamplingSettings(n=k, temperature=jcfg.temperature, top_p=jcfg.top_p,
                                max_new_tokens=jcfg.max_new_tokens, seed=cfg.seed)
    outs = cache.generate(engine, convs, settings, it.params.shard_size("evaluate"), name="judge",
                          desc="judge accuracy")
    flat_convs = [c for c, row in zip(convs, outs) for _ in row]
    verdicts = judging.judge_verdicts(engine, flat_convs, [c.text for row in outs for c in row], jcfg.scoring)
    scores = [judging.response_score([v.score for v in verdicts[i * k:(i + 1) * k]]) for i in range(len(convs))]
    rows = [{"pair_id": p.id, "preferred": p.preferred, "score_a": scores[2 * i], "score_b": scores[2 * i + 1]}
            for i, p in enumerate(pairs)]
    summary = evaluation.judge_accuracy([r["score_a"] for r in rows], [r["score_b"] for r in rows],
                                        [p.preferred for p in pairs])
    summary["forced"] = sum(v.method == "forced" for v in verdicts)
    summary["judge_k"] = k
    return rows, summary


def compare(evaluator: Any, prompts: list[EvalPrompt], mine: dict, theirs: dict, baseline: str,
            margin: float, max_new: int, seed: int, calibrate: bool, cache: ShardCache,
            shard_size: int) -> tuple[list[dict], list[int]]:
    convs, meta = [], []
    for p in prompts:
        a, b = mine[p.id]["response"], theirs[p.id]["response"]
        convs.append(evaluation.compare_conversation(p.instruction, a, b))
        meta.append((p.id, True))
        convs.append(evaluation.compare_conversation(p.instruction, b, a))
        meta.append((p.id, False))
    outs = cache.generate(evaluator, convs, SamplingSettings(n=1, temperature=0.0, max_new_tokens=max_new, seed=seed),
                          shard_size, name=f"compare-{baseline}", desc=f"compare vs {baseline}")
    texts = [row[0].text for row in outs]
    parsed = [evaluation.parse_compare(t) for t in texts]
    need = [i for i, p in enumerate(parsed) if p is None]
    if need:
        try:
            contexts = [f"{evaluator.format_chat(convs[i])}{texts[i].rstrip()}\n{evaluation.VERDICT_PREFIX}" for i in need]
            margins = [la - lb for la, lb in evaluator.choice_logprobs(contexts, ["A", "B"])]
            _, forced = meta_judging.forced_verdicts(margins, margin, calibrate)
            for i, v in zip(need, forced):
                parsed[i] = ({1: "A", -1: "B", 0: "tie"}[v.verdict], "forced")
        except NoLogprobsError:
            for i in need:
                parsed[i] = ("tie", "unparsed")
    rows = []
    for (pid, model_is_a), text, (letter, method) in zip(meta, texts, parsed):  # type: ignore[misc]
        rows.append({"prompt_id": pid, "baseline": baseline, "model_is_a": model_is_a, "text": text,
                     "letter": letter, "method": method, "verdict": evaluation.model_verdict(letter, model_is_a)})
    return rows, [r["verdict"] for r in rows]


def main() -> None:
    args = _common.parser(__doc__).parse_args()
    it = _common.Iteration(args)
    cfg = it.params.evaluate
    start = time.time()
    prompts = records.read_jsonl(paths.EVAL_PROMPTS, EvalPrompt)[:cfg.max_prompts]
    labelled = records.read_jsonl(paths.LABELLED_PAIRS, LabelledPair)[:cfg.max_labelled_pairs] if cfg.judge_accuracy else []
    current = paths.model_dir(it.key)
    baselines = {b: resolve_model(b, it.key, it.prev) for b in cfg.baselines}
    for name, d in {"current": current, **baselines}.items():
        if not (d / "config.json").exists():
            raise _common.StageError(f"evaluate {it.key}: model {name} ({d}) is missing — run its stages first")

    refs = {name: it.model_ref(d) for name, d in {"current": current, **baselines}.items()}
    evaluator_ref: Any = ([cfg.openai_url, cfg.openai_model] if cfg.evaluator == "openai"
                          else it.model_ref(resolve_model(cfg.evaluator, it.key, it.prev)))
    cache = ShardCache("evaluate", it.key, [refs, evaluator_ref, cfg.__dict__, it.params.judge.__dict__,
                                            it.params.sample.thoughts, it.params.sample.top_p,
                                            [templates.template_hash(t) for t in
                                             (evaluation.TEMPLATE, judging.TEMPLATE)]])
    answers: dict[str, dict[str, dict]] = {}
    by_dir: dict[str, dict[str, dict]] = {}  # a model named twice (e.g. previous = M0) is run once
    answer_rows: list[dict] = []
    judge_rows: list[dict] = []
    judge_summary: dict | None = None
    for name, d in {"current": current, **baselines}.items():
        if str(d) not in by_dir:
            engine = make_engine(d, it.params.engine, it.params.model.trust_remote_code)
            rows = answers_of(engine, prompts, it, cache, name)
            by_dir[str(d)] = {r["prompt_id"]: r for r in rows}
            answer_rows += [{**r, "model": name, "model_dir": str(d)} for r in rows]
            if name == "current" and labelled:
                judge_rows, judge_summary = judge_labelled(engine, labelled, it, cache)
            engine.close()
            del engine
            gc.collect()
        answers[name] = by_dir[str(d)]

    if cfg.evaluator == "openai":
        evaluator: Any = OpenAIEngine(cfg.openai_url or "", cfg.openai_model or "", cfg.api_key_env)
        evaluator_name = f"openai:{cfg.openai_model}"
    else:
        evaluator_dir = resolve_model(cfg.evaluator, it.key, it.prev)
        evaluator = make_engine(evaluator_dir, it.params.engine, it.params.model.trust_remote_code)
        evaluator_name = str(evaluator_dir)
    comparisons: list[dict] = []
    per_baseline: dict[str, Any] = {}
    for name in baselines:
        rows, _ = compare(evaluator, prompts, answers["current"], answers[name], name, cfg.tie_margin,
                          cfg.compare_max_new_tokens, cfg.seed, cfg.calibrate_forced, cache,
                          it.params.shard_size("evaluate"))
        comparisons += rows
        by_prompt: dict[str, list[int]] = {}
        for r in rows:
            by_prompt.setdefault(r["prompt_id"], []).append(r["verdict"])
        outcomes = [evaluation.combine_orders(*by_prompt[p.id]) for p in prompts]
        summary = evaluation.win_rate_summary(
            outcomes, [len(answers["current"][p.id]["response"]) for p in prompts],
            [len(answers[name][p.id]["response"]) for p in prompts], cfg.bootstrap, cfg.seed)
        decided = [r for r in rows if r["letter"] != "tie"]
        pairs_disagree = sum(1 for v in by_prompt.values() if v[0] * v[1] < 0)
        methods = Counter(r["method"] for r in rows)
        per_baseline[name] = {**summary, "evaluator_position_bias": (sum(r["letter"] == "A" for r in decided) / len(decided)) if decided else None,
                              "order_inconsistent_share": pairs_disagree / len(prompts),
                              "verdicts": dict(methods)}
    metrics = {"prompts": len(prompts), "evaluator": evaluator_name, "calibrated_forced": cfg.calibrate_forced,
               "baselines": per_baseline,
               "judge_accuracy": judge_summary,
               "unparsed_answers": {n: sum(not r["parse_ok"] for r in rows.values()) for n, rows in answers.items()},
               "seconds": round(time.time() - start, 1)}
    records.write_jsonl(it.data / "eval_answers.jsonl", answer_rows)
    records.write_jsonl(it.data / "eval_comparisons.jsonl", comparisons)
    records.write_jsonl(it.data / "eval_judge.jsonl", judge_rows)
    records.write_json(it.metrics / "eval.json", metrics)
    cache.finish()
    for name, s in per_baseline.items():
        _common.log.info("evaluate %s vs %s: win rate %.3f ± %.3f (LC %.3f), W/T/L %d/%d/%d", it.key, name,
                         s["win_rate"], s["win_rate_se"], s["lc_win_rate"], s["wins"], s["ties"], s["losses"])


if __name__ == "__main__":
    _common.run(main)
