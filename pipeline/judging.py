"""LLM-as-a-judge: the additive 5-point rubric, its verdict chain, response scores, and the judge step.

A judgment's score comes from :data:`CHAIN` (``pipeline.verdicts``):

1. ``strict`` (:func:`parse_score_strict`): the last line is ``Score: N`` with N in 0-5.
2. ``flexible`` (:func:`parse_score_flexible`): the last ``Score`` mention (``Score: "4"``, ``score of 3``...),
   else the last ``N/5``.
3. ``forced``: ``Score: `` is appended to the judge's own text and the digit 0-5 with the highest next-token
   probability is taken (:func:`forced_score`).

With ``judge.scoring: expected`` the score is instead the probability-weighted mean of the digits at the score
position (:func:`expected_score`). A response's score is the mean of its judgments (:func:`response_score`).
:func:`judge_responses` is the whole judge step; :func:`judgment_rows` is the one place judgment rows are built
(the meta-judge's extra judgments are built there too).
"""

from __future__ import annotations

import logging
import math
import re
import statistics
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from pipeline import templates, verdicts, verifiable
from pipeline.config import JudgeConfig
from pipeline.engines.base import Completion, Conversation, Engine, SamplingSettings
from pipeline.errors import StageError
from pipeline.generation import Generation, histogram, token_stats
from pipeline.records import Judgment, Response, Verification, stable_id

log = logging.getLogger("pipeline")

TEMPLATE = "judge.j2"
VARIANTS = ("judge.j2", "judge_compact.j2")  # shipped judge prompts: the papers' rules, and ours for small models
DIGITS = tuple(str(d) for d in range(6))
SCORE_PREFIX = "Score: "

# The whole last line is the score: "Score: 4", and the papers' template spelling "Score: <4>", with markdown
# emphasis, a trailing period or "/5" allowed.
_STRICT = re.compile(r"^[\s*_#]*Score\s*:[\s*_]*<?\s*([0-5])\s*>?(?:\s*(?:/|out of)\s*5)?[\s*_]*\.?\s*$",
                     re.IGNORECASE)
_QUOTES = "\"'\u201c\u201d\u2018\u2019*"
_FLEX_SCORE = re.compile(
    r"score\s*(?:is|of|=|:)?\s*[" + _QUOTES + r"]*\s*([0-5])(?![\d.])(?:\s*(?:/|out of)\s*5)?", re.IGNORECASE)
_FLEX_OVER_5 = re.compile(r"(?<![\d.])([0-5])\s*(?:/|out of)\s*5\b", re.IGNORECASE)


def judge_conversation(instruction: str, response: str, template: str | None = None) -> list[dict[str, str]]:
    """The judge sees the user's instruction and the final response only, never the thoughts."""
    return [{"role": "user", "content": templates.render(template or TEMPLATE, instruction=instruction,
                                                         response=response)}]


def parse_score_strict(text: str) -> tuple[str, int] | None:
    return verdicts.on_last_line(_STRICT, text)


def parse_score_flexible(text: str) -> tuple[str, int] | None:
    """The last ``Score`` mention (straight or curly quotes allowed), else the last ``N/5``."""
    return verdicts.last_match(text, _FLEX_SCORE, _FLEX_OVER_5)


CHAIN = verdicts.Chain("judge", (("strict", parse_score_strict), ("flexible", parse_score_flexible)),
                       prefix=SCORE_PREFIX, options=DIGITS)


def parse_score(text: str) -> verdicts.Parsed | None:
    return CHAIN.parse(text)


def digit_distribution(logprobs: Sequence[float]) -> list[float]:
    """Log-probs of the digits 0-5 renormalized to probabilities over those six."""
    top = max(logprobs)
    weights = [math.exp(lp - top) for lp in logprobs]
    total = sum(weights)
    return [w / total for w in weights]


def expected_score(probs: Sequence[float]) -> float:
    """Probability-weighted mean of the digits 0-5."""
    return float(sum(d * p for d, p in enumerate(probs)))


def forced_score(probs: Sequence[float]) -> int:
    """The digit with the highest probability (the lowest digit on an exact tie)."""
    return max(range(len(probs)), key=lambda d: (probs[d], -d))


@dataclass(frozen=True)
class Verdict:
    score: float | None
    method: str  # strict | flexible | forced | dropped
    probs: list[float] | None


def judge_verdicts(engine: Engine, conversations: Sequence[Conversation], texts: Sequence[str],
                   scoring: str = "parsed", on_unparsed: str = "force") -> list[Verdict]:
    """Scores for judge outputs: parsed where possible; forced (or dropped) where not; expected when asked."""
    parsed = [CHAIN.parse(t) for t in texts]
    drop = on_unparsed == "drop"
    need = [i for i, p in enumerate(parsed) if (p is None and not drop) or (p is not None and scoring == "expected")]
    logprobs = verdicts.option_logprobs(CHAIN, engine, conversations, texts, parsed, need) if need else {}
    probs = {i: digit_distribution(lps) for i, lps in logprobs.items()}
    out = []
    for i, p in enumerate(parsed):
        method = p.method if p is not None else "forced"
        if p is None and drop:
            out.append(Verdict(None, "dropped", None))
        elif scoring == "expected":
            out.append(Verdict(expected_score(probs[i]), method, probs[i]))
        elif p is not None:
            out.append(Verdict(float(p.value), method, None))
        else:
            out.append(Verdict(float(forced_score(probs[i])), method, probs[i]))
    return out


def response_score(scores: Sequence[float | None]) -> float | None:
    """A response's score: the mean of its judgments that have a score."""
    valid = [s for s in scores if s is not None]
    return statistics.fmean(valid) if valid else None


def score_variance(scores: Sequence[float | None]) -> float:
    """Population variance of a response's judgment scores (0 for fewer than two)."""
    valid = [s for s in scores if s is not None]
    return statistics.pvariance(valid) if len(valid) >= 2 else 0.0


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
                          cfg.on_unparsed)


def judge_metrics(judgments: Sequence[Judgment]) -> dict[str, Any]:
    """Parse counts, score histogram and spread of a set of judgments."""
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
        "score_histogram": histogram([round(j.score) for j in judgments if j.score is not None], range(6)),
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
    metrics = {**judge_metrics(rows), "responses": len(todo), "scoring": cfg.scoring, **token_stats(outs)}
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
