"""The judge step: K judgments of every response, their scores, and the judge's metrics.

The rules it applies (the judge's prompt, the verdict chain its template's declaration builds, a response's
score) are in :mod:`pipeline.judge_rules`, which imports no engine; this module adds what needs one: forced and
expected scores from the engine's next-token log-probs (:func:`judge_verdicts`) and the step itself
(:func:`judge_responses`). :func:`judgment_rows` is the one place judgment rows are built (the meta-judge's
extra judgments are built there too).
"""

from __future__ import annotations

import logging
import statistics
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from typing import Any

from pipeline import forcing, templates, verifiable
from pipeline.config import JudgeConfig
from pipeline.engines.base import Completion, Conversation, Engine, SamplingSettings
from pipeline.errors import StageError
from pipeline.generation import Generation, histogram, token_stats
from pipeline.judge_rules import (  # noqa: F401  (the judge's rules, under the names the steps and tests use)
    DECLARATION,
    TEMPLATE,
    VARIANTS,
    Verdict,
    chain_for,
    declaration_for,
    digit_distribution,
    expected_score,
    forced_score,
    judge_conversation,
    parse_score,
    parse_score_strict,
    read_verdicts,
    response_score,
    score_variance,
)
from pipeline.records import Judgment, Response, Verification, stable_id

log = logging.getLogger("pipeline")


def judge_verdicts(engine: Engine, conversations: Sequence[Conversation], texts: Sequence[str],
                   scoring: str = "parsed", on_unparsed: str = "force", template: str | None = None
                   ) -> list[Verdict]:
    """Scores for judge outputs: parsed where possible; forced (or dropped) where not; expected when asked.

    ``template`` names the judge template whose declaration reads the verdicts (None: the default).
    """
    decl = declaration_for(template)
    chain = decl.chain("judge")
    parsed = [chain.parse(t) for t in texts]
    drop = on_unparsed == "drop"
    need = [i for i, p in enumerate(parsed) if (p is None and not drop) or (p is not None and scoring == "expected")]
    logprobs = forcing.option_logprobs(chain, engine, conversations, texts, parsed, need) if need else {}
    probs = {i: digit_distribution(lps) for i, lps in logprobs.items()}
    return read_verdicts(parsed, probs, scoring, drop, decl.numbers)


# ------------------------------------------------------------------------------------------------ the step
def judge_settings(cfg: JudgeConfig, n: int, seed: int) -> SamplingSettings:
    return SamplingSettings(n=n, temperature=cfg.temperature, top_p=cfg.top_p, max_new_tokens=cfg.max_new_tokens,
                            seed=seed, logprobs=True)


def judgment_rows(responses: Sequence[Response], completions: Sequence[Sequence[Completion]],
                  found: Sequence[Verdict], first_index: Sequence[int], provenance: dict[str, Any]
                  ) -> list[Judgment]:
    """Judgment rows of each response's completions (numbered from ``first_index``), in order."""
    rows = []
    verdict = iter(found)
    for r, row, start in zip(responses, completions, first_index):
        for i, c in enumerate(row, start=start):
            v = next(verdict)
            rows.append(Judgment(
                judgment_id=stable_id("j", r.response_id, i, c.text), response_id=r.response_id,
                prompt_id=r.prompt_id, judge_index=i, text=c.text, score=v.score, method=v.method,  # type: ignore[arg-type]
                digit_probs=v.probs, num_tokens=c.num_tokens, **c.generated_fields(), provenance=provenance))
    return rows


def score_judgments(engine: Engine, conversations: Sequence[Conversation],
                    completions: Sequence[Sequence[Completion]], cfg: JudgeConfig) -> list[Verdict]:
    """The verdicts of every completion of every conversation, flattened in order."""
    flat_convs = [conv for conv, row in zip(conversations, completions) for _ in row]
    return judge_verdicts(engine, flat_convs, [c.text for row in completions for c in row], cfg.scoring,
                          cfg.on_unparsed, cfg.template)


def judge_metrics(judgments: Sequence[Judgment], values: Iterable[int] = range(6)) -> dict[str, Any]:
    """Parse counts, score histogram (over the declared ``values``) and spread of a set of judgments."""
    methods = Counter(j.method for j in judgments)
    by_response: dict[str, list[float | None]] = defaultdict(list)
    for j in judgments:
        by_response[j.response_id].append(j.score)
    response_scores = [s for s in (response_score(v) for v in by_response.values()) if s is not None]
    return {
        "judgments": len(judgments),
        "strict": methods["strict"], "flexible": methods["flexible"], "forced": methods["forced"],
        "dropped": methods["dropped"],
        "parse_rate": (methods["strict"] + methods["flexible"]) / max(1, len(judgments)),
        "strict_rate": methods["strict"] / max(1, len(judgments)),
        "score_histogram": histogram([round(j.score) for j in judgments if j.score is not None], values),
        "mean_score": statistics.fmean(response_scores) if response_scores else None,
        "score_std": statistics.pstdev(response_scores) if len(response_scores) > 1 else 0.0,
        "mean_judgment_chars": statistics.fmean(len(j.text) for j in judgments) if judgments else 0.0,
    }


def split_verified(responses: Sequence[Response], verifications: Sequence[Verification],
                   verifiable_prompts: int | None) -> tuple[list[Response], list[Response]]:
    """(responses the judge rewards, responses it scores only to be measured against the truth).

    Responses with a verification are rewarded by their verifier; the judge also sees those of the first
    ``verifiable_prompts`` verified prompts (None: all), in prompt order.
    """
    checked = {v.response_id for v in verifications}
    prompts = list(dict.fromkeys(r.prompt_id for r in responses if r.response_id in checked))
    probe_prompts = set(prompts if verifiable_prompts is None else prompts[:verifiable_prompts])
    rewarded = [r for r in responses if r.response_id not in checked]
    probe = [r for r in responses if r.response_id in checked and r.prompt_id in probe_prompts]
    return rewarded, probe


def against_truth(judgments: Sequence[Judgment], verifications: Sequence[Verification]) -> dict[str, Any] | None:
    """How well the judge's response scores separate right from wrong answers (``verifiable.judge_vs_truth``)."""
    truth = {v.response_id: v for v in verifications}
    by_response: dict[str, list[float | None]] = defaultdict(list)
    for j in judgments:
        if j.response_id in truth:
            by_response[j.response_id].append(j.score)
    scored = [(truth[rid].prompt_id, s, truth[rid].correct) for rid, scores in by_response.items()
              if (s := response_score(scores)) is not None]
    return verifiable.judge_vs_truth(scored) if scored else None


def judge_responses(gen: Generation, responses: Sequence[Response], cfg: JudgeConfig, made_by: dict[str, Any]
                    ) -> tuple[list[Judgment], dict[str, Any]]:
    """The judge step: K judgments of every response whose final response parsed; rows and metrics.

    ``made_by`` is the judging model's reference and the iteration (``{"model", "model_sha256",
    "iteration"}``), the start of every row's provenance.
    """
    todo = [r for r in responses if r.parse_ok]
    if not todo:
        key = made_by.get("iteration")
        raise StageError(f"judge {key}: no response has a parsed final response — see metrics/{key}/sample.json; "
                         "try sample.thoughts: none or more sample.max_new_tokens")
    # Requests that share a prefix (rubric + instruction) run together: vLLM's prefix cache then holds it
    # while it is reused; the K samples of one request share its prefill in both engines.
    first_seen = {pid: i for i, pid in reversed(list(enumerate(r.prompt_id for r in todo)))}
    todo.sort(key=lambda r: first_seen[r.prompt_id])
    settings = judge_settings(cfg, cfg.k, cfg.seed)
    convs = [judge_conversation(r.instruction, r.response, cfg.template) for r in todo]
    outs = gen.generate(convs, settings, name="shard", desc="judge")
    found = score_judgments(gen.engine, convs, outs, cfg)
    provenance = {**made_by, "template_sha": templates.template_hash(cfg.template or TEMPLATE), "scoring": cfg.scoring,
                  "sampling": settings.to_dict()}
    rows = judgment_rows(todo, outs, found, [0] * len(todo), provenance)
    metrics = {**judge_metrics(rows, declaration_for(cfg.template).scale), "responses": len(todo), "scoring": cfg.scoring, **token_stats(outs)}
    if metrics["parse_rate"] == 0:
        log.warning("judge: none of %d judgments wrote a parseable score; every score is %s — fine-tune the judge "
                    "(sft, EFT data) or use a larger model", len(rows),
                    "dropped" if cfg.on_unparsed == "drop" else "forced from next-token probabilities")
    if metrics["parse_rate"] < cfg.min_parse_rate:
        raise StageError(
            f"judge {made_by.get('iteration')}: only {metrics['parse_rate']:.0%} of {len(rows)} judgments gave a "
            f"parseable score (judge.min_parse_rate {cfg.min_parse_rate:.0%}) — fine-tune the judge (sft) or lower "
            "the threshold")
    return rows, metrics
