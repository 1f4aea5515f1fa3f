"""The judge on known pairs (stage judge_known): the step that makes the iteration's known-preference pairs,
judges each K times and says which judgments are correct (Self-Taught Evaluator; EvalPlanner).

- :func:`train_known_pairs`: from the iteration's responses and their verifications, a right against a wrong
  answer, or a response meeting every constraint against one breaking some (:mod:`pipeline.known_pairs`).
- :func:`judge_known_pairs`: pairwise (``judge_training.mode``): each pair in both orders, K judgments per
  order with the pairwise judge (:mod:`pipeline.pairwise_rules`), verdicts read strictly, flexibly or forced;
  pointwise: K judgments of each side with the iteration's 5-point judge (:mod:`pipeline.judging`). Each row
  says whether it prefers the known-better side (:mod:`pipeline.judge_training`'s rules).
- :func:`measure`: the judge on the held-out pool (``pipeline.known_pool``), in the evaluate step.
- :func:`decisions` / the metrics: the judge's accuracy on these pairs, per source, with its standard error.

The judge-training pairs themselves (a correct judgment chosen over an incorrect one) are made by the pairs
step from these rows (:func:`pipeline.pairs.judge_training_pairs`).
"""

from __future__ import annotations

import dataclasses
import statistics
from collections import Counter, defaultdict
from collections.abc import Sequence
from typing import Any

from pipeline import forcing, judge_training, judging, known_pairs, pairwise_rules, self_taught, templates
from pipeline.config import JudgeConfig, JudgeTrainingConfig, SampleConfig
from pipeline.engines.base import Completion, SamplingSettings
from pipeline.generation import Generation, token_stats
from pipeline.records import KnownJudgment, KnownPair, Response, Verification, stable_id


def train_known_pairs(responses: Sequence[Response], verifications: Sequence[Verification], cfg: JudgeTrainingConfig,
                      key: str) -> tuple[list[KnownPair], dict[str, Any]]:
    """The iteration's known pairs (split ``train``) of the sources ``cfg.sources`` names, at most
    ``cfg.max_pairs`` (the first, in prompt order); and their counts."""
    pairs, counts = known_pairs.from_verifications(responses, verifications, split="train", per_prompt=cfg.per_prompt,
                                                   seed=cfg.seed, iteration=key, keep_truncated=cfg.keep_truncated)
    wanted = [p for p in pairs if p.source in cfg.sources]
    kept = wanted if cfg.max_pairs is None else wanted[:cfg.max_pairs]
    return kept, {**counts, "left_out_by_source": len(pairs) - len(wanted), "left_out_by_max_pairs": len(wanted) - len(kept)}


def self_taught_instructions(responses: Sequence[Response], cfg: JudgeTrainingConfig) -> list[self_taught.Instruction]:
    """The instructions that get a Self-Taught Evaluator pair: the first ``cfg.self_taught_prompts`` prompts (in
    the order of their first response) with a parsed response, each with its lowest-numbered sample as the
    answer to x."""
    first: dict[str, Response] = {}
    for r in responses:
        if r.parse_ok and r.response.strip() and (r.prompt_id not in first or r.sample_index < first[r.prompt_id].sample_index):
            first[r.prompt_id] = r
    chosen = list(first.values())[:cfg.self_taught_prompts] if cfg.self_taught_prompts else list(first.values())
    return [self_taught.Instruction(r.prompt_id, r.instruction, r.response, r.response_id) for r in chosen]


def similar_settings(cfg: JudgeTrainingConfig) -> SamplingSettings:
    """How x' is written: the judge_training sampling, ``similar_max_new_tokens`` long."""
    return SamplingSettings(n=1, temperature=cfg.temperature, top_p=cfg.top_p, max_new_tokens=cfg.similar_max_new_tokens,
                            seed=cfg.seed)


def answer_settings(scfg: SampleConfig, seed: int) -> SamplingSettings:
    """How the answer to x' (and, for the held-out pool, to x) is sampled: as the sample stage samples."""
    return SamplingSettings(n=1, temperature=scfg.temperature, top_p=scfg.top_p, max_new_tokens=scfg.max_new_tokens,
                            seed=seed)


def _user_turn(conversation: list[dict[str, str]]) -> str:
    return conversation[-1]["content"]


def _pairwise(gen: Generation, pairs: Sequence[KnownPair], cfg: JudgeTrainingConfig, made_by: dict[str, Any]
              ) -> tuple[list[KnownJudgment], list[list[Completion]]]:
    convs, shown = [], []
    for p in pairs:
        for order in ("better_first", "worse_first"):
            a, b = (p.better, p.worse) if order == "better_first" else (p.worse, p.better)
            convs.append(pairwise_rules.pairwise_conversation(p.instruction, a, b, cfg.template))
            shown.append((p, order))
    chain = pairwise_rules.chain_for(cfg.template)
    settings = SamplingSettings(n=cfg.judgments, temperature=cfg.temperature, top_p=cfg.top_p, max_new_tokens=cfg.max_new_tokens,
                                seed=cfg.seed, logprobs=True,
                                force_choice=chain.force_choice if cfg.on_unparsed == "force" else None)
    outs = gen.generate(convs, settings, name="pairwise", desc="judge known pairs")
    flat_convs = [conv for conv, row in zip(convs, outs) for _ in row]
    flat = [c for row in outs for c in row]
    chain = dataclasses.replace(chain, on_unparsed="force" if cfg.on_unparsed == "force" else "drop")
    # no tie: a strict choice (pairwise_judge.verdict.yaml); forced A vs B decided by the sign of the margin
    found, _ = forcing.pairwise_verdicts(chain, gen.engine, flat_convs, [c.text for c in flat], tie_margin=0.0,
                                         known=[c.choice_logprobs for c in flat])
    provenance = {**made_by, "template_sha": templates.template_hash(cfg.template or pairwise_rules.TEMPLATE),
                  "sampling": settings.to_dict()}
    rows, at = [], 0
    for (p, order), conv, row in zip(shown, convs, outs):
        for i, c in enumerate(row):
            v = found[at]
            at += 1
            letter = v.letter if v.letter in ("A", "B") else None
            method = {"drop": "dropped", "tie": "forced"}.get(v.method, v.method)
            rows.append(KnownJudgment(
                judgment_id=stable_id("kj", p.known_id, order, i, c.text), known_id=p.known_id, prompt_id=p.prompt_id,
                source=p.source, mode="pairwise", shown=order, judge_index=i,  # type: ignore[arg-type]
                prompt_text=_user_turn(conv), text=c.text, verdict=letter, score=None, method=method,  # type: ignore[arg-type]
                correct=judge_training.pairwise_correct("A" if order == "better_first" else "B", letter),
                num_tokens=c.num_tokens, **c.generated_fields(), provenance=provenance))
    return rows, outs


def _pointwise(gen: Generation, pairs: Sequence[KnownPair], cfg: JudgeTrainingConfig, jcfg: JudgeConfig,
               made_by: dict[str, Any]) -> tuple[list[KnownJudgment], list[list[Completion]]]:
    convs, shown = [], []
    for p in pairs:
        for side, text in (("better", p.better), ("worse", p.worse)):
            convs.append(judging.judge_conversation(p.instruction, text, jcfg.template))
            shown.append((p, side))
    settings = judging.judge_settings(jcfg, cfg.judgments, cfg.seed)  # the iteration's judge, as it samples
    outs = gen.generate(convs, settings, name="pointwise", desc="judge known pairs")
    found = judging.score_judgments(gen.engine, convs, outs, jcfg)
    scores: dict[tuple[str, str], list[float | None]] = defaultdict(list)
    at = 0
    for (p, side), row in zip(shown, outs):
        for _ in row:
            scores[(p.known_id, side)].append(found[at].score)
            at += 1
    provenance = {**made_by, "template_sha": templates.template_hash(jcfg.template or judging.TEMPLATE),
                  "scoring": jcfg.scoring, "sampling": settings.to_dict()}
    rows, at = [], 0
    for (p, side), conv, row in zip(shown, convs, outs):
        other = scores[(p.known_id, "worse" if side == "better" else "better")]
        for i, c in enumerate(row):
            v = found[at]
            at += 1
            rows.append(KnownJudgment(
                judgment_id=stable_id("kj", p.known_id, side, i, c.text), known_id=p.known_id, prompt_id=p.prompt_id,
                source=p.source, mode="pointwise", shown=side, judge_index=i,  # type: ignore[arg-type]
                prompt_text=_user_turn(conv), text=c.text, verdict=None, score=v.score, method=v.method,  # type: ignore[arg-type]
                correct=judge_training.pointwise_correct(side, v.score, other),  # type: ignore[arg-type]
                num_tokens=c.num_tokens, **c.generated_fields(), provenance=provenance))
    return rows, outs


def decisions(rows: Sequence[KnownJudgment], pairs: Sequence[KnownPair]) -> list[judge_training.Decision]:
    """One decision per judgment, for :func:`pipeline.judge_training.accuracy`.

    Pairwise: each order's K judgments are one decision each, so a known pair's accuracy is the share of its
    2K judgments that name the better side. Pointwise: each judgment of either side is one decision (correct
    as :func:`pipeline.judge_training.pointwise_correct` says)."""
    by_id = {p.known_id: p for p in pairs}
    matched = {p.known_id: judge_training.format_matched(p.better, p.worse) for p in pairs}  # once per pair
    out = []
    for r in rows:
        p = by_id[r.known_id]
        out.append(judge_training.Decision(
            known_id=r.known_id, prompt_id=r.prompt_id, source=r.source, mode=r.mode, correct=r.correct,
            tie=False, better_chars=len(p.better), worse_chars=len(p.worse), format_matched=matched[r.known_id],
            better_shown_first=(r.shown == "better_first") if r.mode == "pairwise" else None,
            readable=r.method in ("strict", "flexible", "forced")))
    return out


def measure(gen: Generation, pairs: Sequence[KnownPair], modes: Sequence[str], cfg: JudgeTrainingConfig,
            jcfg: JudgeConfig, made_by: dict[str, Any]) -> tuple[list[KnownJudgment], dict[str, Any]]:
    """The judge measured on held-out known pairs (the evaluate stage): in each of ``modes``, one greedy
    judgment per order (pairwise, ``cfg``'s template and length) or per side (pointwise, the 5-point judge of
    ``jcfg``); rows and, per mode, :func:`pipeline.judge_training.accuracy`'s figures (overall and per source)."""
    rows: list[KnownJudgment] = []
    figures: dict[str, Any] = {}
    for mode in modes:
        greedy = dataclasses.replace(cfg, mode=mode, judgments=1, temperature=0.0)  # type: ignore[arg-type]
        found, _ = (_pairwise(gen, pairs, greedy, made_by) if mode == "pairwise"
                    else _pointwise(gen, pairs, greedy, dataclasses.replace(jcfg, temperature=0.0), made_by))
        rows += found
        methods = Counter(r.method for r in found)
        figures[mode] = {**judge_training.accuracy(decisions(found, pairs))[mode],
                         "methods": {m: methods[m] for m in sorted(methods)}}
    return rows, {"pairs": len(pairs), "by_source": dict(sorted(Counter(p.source for p in pairs).items())),
                  "modes": figures}


def judge_known_pairs(gen: Generation, pairs: Sequence[KnownPair], cfg: JudgeTrainingConfig, jcfg: JudgeConfig,
                      made_by: dict[str, Any]) -> tuple[list[KnownJudgment], dict[str, Any]]:
    """The judge_known step: K judgments of every known pair in ``cfg.mode``; rows and metrics (how each verdict
    was read, and the judge's accuracy on these pairs)."""
    if not pairs:
        return [], {"known_pairs": 0, "judgments": 0, "mode": cfg.mode}
    rows, outs = (_pairwise(gen, pairs, cfg, made_by) if cfg.mode == "pairwise"
                  else _pointwise(gen, pairs, cfg, jcfg, made_by))
    methods = Counter(r.method for r in rows)
    acc = judge_training.accuracy(decisions(rows, pairs))[cfg.mode]
    return rows, {"known_pairs": len(pairs), "judgments": len(rows), "mode": cfg.mode,
                  "methods": {m: methods[m] for m in sorted(methods)},
                  "correct_share": statistics.fmean(r.correct for r in rows), "accuracy": acc, **token_stats(outs)}
