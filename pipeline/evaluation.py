"""Evaluation: pairwise win rates against baselines (both orders) and judge accuracy on labelled pairs.

Win rates. The evaluator sees each (model, baseline) answer pair twice, once in each order, with
``prompts/compare.j2``; its verdict comes from the chain of the template's declaration
(``compare_rules.chain_for``: ``strict``, last line ``Winner: A|B|tie``; ``flexible``; then forced, A vs B by
next-token probability, a tie within ``evaluate.tie_margin``; an evaluator without log-probs leaves it
``unparsed``, a tie). Per order the verdict is +1 (the model's answer wins), -1 (the baseline's) or 0.
``compare_rules.combine_orders`` adds the two: > 0 a win, < 0 a loss, 0 a tie, so two orders that disagree make
a tie. The statistics (win rate with SE and bootstrap interval, length control, judge accuracy) are in
:mod:`pipeline.stats`; :func:`evaluate` is the whole step.
"""

from __future__ import annotations

import gc
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from pipeline import forcing, judging, known_judging, rewards, sampling, stats, verifiable
from pipeline.compare_rules import (  # noqa: F401  (the comparison's rules, under the names steps and tests use)
    DECLARATION,
    TEMPLATE,
    chain_for,
    combine_orders,
    compare_conversation,
    model_verdict,
    parse_compare,
)
from pipeline.config import EvaluateConfig, JudgeConfig, JudgeTrainingConfig, SampleConfig, VerifyConfig
from pipeline.engines.base import Engine, SamplingSettings
from pipeline.generation import Generation
from pipeline.models import model_ref
from pipeline.records import EvalPrompt, KnownJudgment, KnownPair, LabelledPair, Prompt, user_query
from pipeline.shards import ShardCache
from pipeline.tasks import Task


# ------------------------------------------------------------------------------------------------ the step
def answers(gen: Generation, prompts: Sequence[EvalPrompt], scfg: SampleConfig, cfg: EvaluateConfig, name: str
            ) -> list[dict[str, Any]]:
    """One answer per held-out prompt (greedy by default), its final response split from the thoughts."""
    thoughts = scfg.thoughts
    convs = [[{"role": "user", "content": sampling.response_prompt(user_query(p.instruction, p.input), thoughts,
                                                                   scfg.template)}]
             for p in prompts]
    settings = SamplingSettings(n=1, temperature=cfg.temperature, top_p=scfg.top_p, max_new_tokens=cfg.max_new_tokens,
                                seed=cfg.seed)
    outs = gen.generate(convs, settings, name=f"answers-{name}", desc=f"answers {name}")
    rows = []
    for p, (c,) in zip(prompts, outs):
        split = sampling.split_thought(c.text, thoughts)
        rows.append({"prompt_id": p.id, "response": split.response if split.parse_ok else c.text.strip(),
                     "parse_ok": split.parse_ok, "num_tokens": c.num_tokens})
    return rows


def heldout_answers(gen: Generation, tasks: Sequence[Task], scfg: SampleConfig, cfg: EvaluateConfig,
                    vcfg: VerifyConfig, name: str) -> list[dict[str, Any]]:
    """``heldout_samples`` answers per held-out task, each checked by the task's verifier (pipeline.rewards); each
    row carries the task's prompt and gold answer."""
    convs = [[{"role": "user", "content": sampling.response_prompt(t.prompt, scfg.thoughts, scfg.template)}]
             for t in tasks]
    settings = SamplingSettings(n=cfg.heldout_samples, temperature=cfg.heldout_temperature, top_p=scfg.top_p,
                                max_new_tokens=cfg.heldout_max_new_tokens, seed=cfg.seed)
    outs = gen.generate(convs, settings, name=f"heldout-{name}", desc=f"held-out tasks {name}")
    rows = []
    for t, completions in zip(tasks, outs):
        prompt = Prompt(prompt_id=t.task_id, instruction=t.prompt, source=t.family, answer=t.answer,
                        verifier=t.verifier, tests=t.tests or None, inputs=dict(t.inputs))
        for i, c in enumerate(completions):
            found = rewards.check(c.text, prompt, vcfg)
            rows.append({"task_id": t.task_id, "family": t.family, "sample_index": i, "output": c.text,
                         "extracted": found.extracted, "method": found.method, "correct": found.correct,
                         "num_tokens": c.num_tokens, "finish_reason": c.finish_reason,
                         "prompt": t.prompt, "answer": t.answer,  # so a row reads on its own (records.HeldoutSample)
                         "verifier": t.verifier})
    return rows


def heldout_summary(rows: Sequence[dict[str, Any]], k: int) -> dict[str, Any]:
    """pass@1 (flexible and strict), pass@k, maj@k, format rate, length with SEs: all tasks, then per family."""
    families = sorted({r["family"] for r in rows})
    out: dict[str, Any] = {"all": verifiable.sample_metrics(rows, k)}
    if len(families) > 1:
        out.update({f: verifiable.sample_metrics([r for r in rows if r["family"] == f], k) for f in families})
    return out


def constraint_answers(gen: Generation, tasks: Sequence[Task], scfg: SampleConfig, cfg: EvaluateConfig, name: str
                       ) -> list[dict[str, Any]]:
    """One answer per constraint instruction (at ``evaluate.temperature``: IFEval decodes greedily), its final
    response (the thought apart) checked against every constraint by IFEval's strict and loose rules."""
    convs = [[{"role": "user", "content": sampling.response_prompt(t.prompt, scfg.thoughts, scfg.template)}]
             for t in tasks]
    settings = SamplingSettings(n=1, temperature=cfg.temperature, top_p=scfg.top_p,
                                max_new_tokens=cfg.constraint_max_new_tokens, seed=cfg.seed)
    outs = gen.generate(convs, settings, name=f"constraints-{name}", desc=f"constraint instructions {name}")
    rows = []
    for t, (c,) in zip(tasks, outs):
        split = sampling.split_thought(c.text, scfg.thoughts)
        response = split.response if split.parse_ok else c.text.strip()
        prompt = Prompt(prompt_id=t.task_id, instruction=t.prompt, source=t.family, answer=t.answer,
                        verifier=t.verifier, inputs=dict(t.inputs))
        found = rewards.check_constraints(response, prompt)
        rows.append({"task_id": t.task_id, "family": t.family, "prompt": t.prompt, "output": c.text,
                     "response": response, "num_tokens": c.num_tokens, "finish_reason": c.finish_reason,
                     "followed": found.correct, "followed_loose": all(o["loose"] for o in found.constraints or []),
                     "constraints": found.constraints or []})
    return rows


ACCURACIES = ("prompt_strict", "prompt_loose", "instruction_strict", "instruction_loose")  # IFEval's four


def constraint_summary(rows: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """IFEval's four accuracies (prompt- and instruction-level, strict and loose) with SEs over prompts, each
    instruction type's, and the answers' length beside them (words and tokens, mean with SE; how many were cut
    at the token limit): a longer answer satisfies "at least N words" more often and "less than N" less often."""
    from pipeline.constraints import scoring

    per_prompt = [[scoring.Outcome(**o) for o in r["constraints"]] for r in rows]
    words = verifiable.estimate([float(len(str(r["response"]).split())) for r in rows])
    tokens = verifiable.estimate([float(r["num_tokens"]) for r in rows])
    figures = scoring.accuracy(per_prompt)
    flat = {}
    for key in ACCURACIES:  # flat, so `dvc metrics`, the summary and the report page read them as numbers
        flat[key], flat[f"{key}_se"] = figures[key]["mean"], figures[key]["se"]
    return {**flat, "by_type": figures["by_type"], "prompts": len(rows),
            "mean_words": words.mean, "mean_words_se": words.se, "mean_tokens": tokens.mean, "mean_tokens_se": tokens.se,
            "truncated": sum(r["finish_reason"] == "length" for r in rows)}


def judge_labelled(gen: Generation, pairs: Sequence[LabelledPair], jcfg: JudgeConfig, cfg: EvaluateConfig
                   ) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """The model as judge on labelled pairs: each response scored (mean of k judgments), then accuracy."""
    k = cfg.judge_k or jcfg.k
    convs = [judging.judge_conversation(p.instruction, r, jcfg.template) for p in pairs
             for r in (p.response_a, p.response_b)]
    settings = SamplingSettings(n=k, temperature=jcfg.temperature, top_p=jcfg.top_p,
                                max_new_tokens=jcfg.max_new_tokens, seed=cfg.seed)
    outs = gen.generate(convs, settings, name="judge", desc="judge accuracy")
    found = judging.score_judgments(gen.engine, convs, outs, jcfg)
    scores = [judging.response_score([v.score for v in found[i * k:(i + 1) * k]]) for i in range(len(convs))]
    rows = [{"pair_id": p.id, "preferred": p.preferred, "score_a": scores[2 * i], "score_b": scores[2 * i + 1]}
            for i, p in enumerate(pairs)]
    summary = stats.judge_accuracy([r["score_a"] for r in rows], [r["score_b"] for r in rows],
                                   [p.preferred for p in pairs])
    return rows, {**summary, "forced": sum(v.method == "forced" for v in found), "judge_k": k}


def compare(gen: Generation, prompts: Sequence[EvalPrompt], mine: Mapping[str, dict], theirs: Mapping[str, dict],
            baseline: str, cfg: EvaluateConfig) -> list[dict[str, Any]]:
    """The evaluator's verdict on each prompt in both orders (the model's answer first, then second)."""
    convs, order = [], []
    for p in prompts:
        a, b = mine[p.id]["response"], theirs[p.id]["response"]
        query = user_query(p.instruction, p.input)
        convs += [compare_conversation(query, a, b, cfg.compare_template),
                  compare_conversation(query, b, a, cfg.compare_template)]
        order += [(p.id, True), (p.id, False)]
    settings = SamplingSettings(n=1, temperature=0.0, max_new_tokens=cfg.compare_max_new_tokens, seed=cfg.seed)
    outs = gen.generate(convs, settings, name=f"compare-{baseline}", desc=f"compare vs {baseline}")
    texts = [row[0].text for row in outs]
    found, _ = forcing.pairwise_verdicts(chain_for(cfg.compare_template), gen.engine, convs, texts, cfg.tie_margin,
                                         cfg.calibrate_forced)
    rows = []
    for (pid, model_is_a), text, v in zip(order, texts, found):
        method = "forced" if v.method == "tie" else v.method  # a forced tie is reported as forced here
        rows.append({"prompt_id": pid, "baseline": baseline, "model_is_a": model_is_a, "text": text,
                     "letter": v.letter, "method": method, "verdict": model_verdict(v.letter, model_is_a)})
    return rows


def baseline_summary(rows: Sequence[dict[str, Any]], prompts: Sequence[EvalPrompt], mine: Mapping[str, dict],
                     theirs: Mapping[str, dict], cfg: EvaluateConfig) -> dict[str, Any]:
    """Win rate with its uncertainty, length control, the evaluator's position bias and consistency."""
    by_prompt: dict[str, list[int]] = {}
    for r in rows:
        by_prompt.setdefault(r["prompt_id"], []).append(r["verdict"])
    outcomes = [combine_orders(*by_prompt[p.id]) for p in prompts]
    summary = stats.win_rate_summary(outcomes, [len(mine[p.id]["response"]) for p in prompts],
                                     [len(theirs[p.id]["response"]) for p in prompts], cfg.bootstrap, cfg.seed)
    decided = [r for r in rows if r["letter"] != "tie"]
    return {**summary,
            "evaluator_position_bias": sum(r["letter"] == "A" for r in decided) / len(decided) if decided else None,
            "order_inconsistent_share": sum(1 for v in by_prompt.values() if v[0] * v[1] < 0) / len(prompts),
            "verdicts": dict(Counter(r["method"] for r in rows))}


@dataclass
class EvalResult:
    answers: list[dict[str, Any]]
    comparisons: list[dict[str, Any]]
    judge: list[dict[str, Any]]
    metrics: dict[str, Any]
    heldout: list[dict[str, Any]] = field(default_factory=list)
    constraints: list[dict[str, Any]] = field(default_factory=list)
    known: list[KnownJudgment] = field(default_factory=list)  # the judge on held-out known pairs


def evaluate(open_engine: Callable[[str], Engine], cache: ShardCache | None, shard_size: int,
             models: Mapping[str, str], evaluator: str, prompts: Sequence[EvalPrompt],
             labelled: Sequence[LabelledPair], cfg: EvaluateConfig, jcfg: JudgeConfig, scfg: SampleConfig,
             tasks: Sequence[Task] = (), vcfg: VerifyConfig | None = None,
             constraint_tasks: Sequence[Task] = (), known: Sequence[KnownPair] = (),
             jtcfg: JudgeTrainingConfig | None = None) -> EvalResult:
    """The evaluate step: answers of every model, judge accuracy of ``current``, each baseline compared, every
    model measured on the held-out ``tasks`` (pass@k, maj@k, format rate; :func:`heldout_summary`) and on the
    ``constraint_tasks`` (IFEval's accuracies; :func:`constraint_summary`).

    ``models`` maps ``current`` and each baseline to a model directory; ``open_engine`` loads one (or, for
    ``evaluator: openai``, the server). Models are loaded one at a time and released in between; a directory
    named twice (e.g. previous = M0) answers once. With no ``prompts`` or no baseline there are no win rates and the
    evaluator never loads.
    """
    by_dir: dict[str, dict[str, dict]] = {}
    answer_rows: list[dict[str, Any]] = []
    judge_rows: list[dict[str, Any]] = []
    judge_summary: dict[str, Any] | None = None
    heldout_rows: list[dict[str, Any]] = []
    heldout: dict[str, Any] = {}
    constraint_rows: list[dict[str, Any]] = []
    constraint_figures: dict[str, Any] = {}
    known_rows: list[KnownJudgment] = []
    known_summary: dict[str, Any] | None = None
    for name, d in models.items():
        if d in by_dir:
            same = next(n for n, other in models.items() if other == d)
            if tasks:
                heldout[name] = heldout[same]
            if constraint_tasks:
                constraint_figures[name] = constraint_figures[same]
            continue
        engine = open_engine(d)
        gen = Generation(engine, cache, shard_size)
        rows = answers(gen, prompts, scfg, cfg, name) if prompts else []
        by_dir[d] = {r["prompt_id"]: r for r in rows}
        answer_rows += [{**r, "model": name, "model_dir": d} for r in rows]
        if name == "current" and labelled:
            judge_rows, judge_summary = judge_labelled(gen, labelled, jcfg, cfg)
        if name == "current" and known:
            known_rows, known_summary = known_judging.measure(gen, known, cfg.known_modes, jtcfg or JudgeTrainingConfig(),
                                                              jcfg, {**model_ref(d), "iteration": "evaluate"})
        if tasks:
            samples = heldout_answers(gen, tasks, scfg, cfg, vcfg or VerifyConfig(), name)
            heldout_rows += [{**r, "model": name, "model_dir": d} for r in samples]
            heldout[name] = heldout_summary(samples, cfg.heldout_samples)
        if constraint_tasks:
            answered = constraint_answers(gen, constraint_tasks, scfg, cfg, name)
            constraint_rows += [{**r, "model": name, "model_dir": d} for r in answered]
            constraint_figures[name] = constraint_summary(answered)
        engine.close()
        del engine, gen
        gc.collect()
    per_model = {name: by_dir[d] for name, d in models.items()}
    comparisons: list[dict[str, Any]] = []
    per_baseline: dict[str, Any] = {}
    retries = None
    if prompts and len(models) > 1:  # with no baseline there is nothing to compare and no evaluator to load
        judge_gen = Generation(open_engine(evaluator), cache, shard_size)
        for name in models:
            if name == "current":
                continue
            rows = compare(judge_gen, prompts, per_model["current"], per_model[name], name, cfg)
            comparisons += rows
            per_baseline[name] = baseline_summary(rows, prompts, per_model["current"], per_model[name], cfg)
        retries = getattr(judge_gen.engine, "retries", None)  # an OpenAI-compatible server: requests sent again
    metrics = {"prompts": len(prompts), "evaluator": evaluator_name(evaluator, cfg) if per_baseline else None,
               **({"evaluator_retries": retries, "evaluator_retry_seconds": round(judge_gen.engine.retry_seconds, 1)}
                  if retries is not None else {}),
               "calibrated_forced": cfg.calibrate_forced, "baselines": per_baseline, "judge_accuracy": judge_summary,
               "unparsed_answers": {n: sum(not r["parse_ok"] for r in rows.values()) for n, rows in per_model.items()},
               **({"heldout": {"tasks": len(tasks), "k": cfg.heldout_samples, "models": heldout}} if tasks else {}),
               **({"constraints": {"prompts": len(constraint_tasks), "models": constraint_figures}}
                  if constraint_tasks else {}),
               **({"known_pairs": known_summary} if known_summary is not None else {})}
    return EvalResult(answer_rows, comparisons, judge_rows, metrics, heldout_rows, constraint_rows, known_rows)


def evaluator_name(evaluator: str, cfg: EvaluateConfig) -> str:
    return f"openai:{cfg.openai_model}" if evaluator == "openai" else evaluator
