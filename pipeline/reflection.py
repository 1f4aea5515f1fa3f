"""Reflect, Retry, Reward (Bensal et al., 2025, Writer): learn to reflect from whether the retry succeeds.

For an answer the verifier found wrong (stage verify), the model writes ``reflect.reflections`` reflections on it
(``prompts/reflect.j2``: the task and the failed attempt); each reflection goes into a retry of the task
(``prompts/retry.j2``), and the retry is checked by the same verifier. :func:`reflect_and_retry` is the step.
The reward belongs to the reflection alone: pairs (:func:`pipeline.pairs.reflection_pairs`) put a reflection
whose retry succeeded against one whose retry failed, with the reflection request as the prompt, so no answer
token is trained. The talk's method optimizes the same signal with GRPO; this is its DPO form.
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from typing import Any

from pipeline import rewards, templates, verifiable
from pipeline.config import ReflectConfig, VerifyConfig
from pipeline.engines.base import SamplingSettings
from pipeline.generation import Generation, token_stats
from pipeline.records import Prompt, Reflection, Response, Verification, stable_id

TEMPLATE = "reflect.j2"
RETRY_TEMPLATE = "retry.j2"


def failed_attempts(responses: Sequence[Response], verifications: Sequence[Verification], limit: int
                    ) -> list[Response]:
    """The wrong answers to reflect on: up to ``limit``, one per prompt first (in prompt order), then a second
    per prompt, and so on, so that a few hard prompts do not take every slot."""
    wrong = {v.response_id for v in verifications if not v.correct}
    per_prompt: dict[str, list[Response]] = {}
    for r in sorted(responses, key=lambda r: r.sample_index):
        if r.response_id in wrong:
            per_prompt.setdefault(r.prompt_id, []).append(r)
    order = list(dict.fromkeys(r.prompt_id for r in responses))
    picked: list[Response] = []
    depth = 0
    while len(picked) < limit and any(len(per_prompt.get(p, [])) > depth for p in order):
        picked += [per_prompt[p][depth] for p in order if len(per_prompt.get(p, [])) > depth]
        depth += 1
    return picked[:limit]


def reflection_request(instruction: str, attempt: str, template: str | None = None) -> str:
    return templates.render(template or TEMPLATE, instruction=instruction, attempt=attempt)


def retry_request(instruction: str, reflection: str, template: str | None = None) -> str:
    return templates.render(template or RETRY_TEMPLATE, instruction=instruction, reflection=reflection)


def reflect_and_retry(gen: Generation, prompts: Sequence[Prompt], responses: Sequence[Response],
                      verifications: Sequence[Verification], cfg: ReflectConfig, vcfg: VerifyConfig,
                      made_by: dict[str, Any]) -> tuple[list[Reflection], dict[str, Any]]:
    """The reflect step: reflections on failed attempts, a retry with each, the retries checked; rows, metrics."""
    tasks = {p.prompt_id: p for p in prompts}
    attempts = failed_attempts(responses, verifications, cfg.max_attempts)
    asks = [reflection_request(tasks[r.prompt_id].instruction, r.output, cfg.template) for r in attempts]
    settings = SamplingSettings(n=cfg.reflections, temperature=cfg.temperature, top_p=cfg.top_p,
                                max_new_tokens=cfg.max_new_tokens, seed=cfg.seed, logprobs=True)
    notes = gen.generate([[{"role": "user", "content": a}] for a in asks], settings, name="reflect", desc="reflect")
    retry_settings = SamplingSettings(n=1, temperature=cfg.retry_temperature, top_p=cfg.top_p,
                                      max_new_tokens=cfg.retry_max_new_tokens, seed=cfg.seed)
    retry_convs = [[{"role": "user", "content": retry_request(tasks[r.prompt_id].instruction, c.text.strip(),
                                                              cfg.retry_template)}]
                   for r, row in zip(attempts, notes) for c in row]
    retries = iter(gen.generate(retry_convs, retry_settings, name="retry", desc="retry"))
    provenance = {**made_by, "template_sha": templates.template_hash(cfg.template or TEMPLATE),
                  "retry_template_sha": templates.template_hash(cfg.retry_template or RETRY_TEMPLATE),
                  "sampling": settings.to_dict(), "retry_sampling": retry_settings.to_dict()}
    rows = []
    for r, ask, row in zip(attempts, asks, notes):
        for i, c in enumerate(row):
            (retry,) = next(retries)
            checked = rewards.check(retry.text, tasks[r.prompt_id], vcfg)
            rows.append(Reflection(
                reflection_id=stable_id("rf", r.response_id, i, c.text), response_id=r.response_id,
                prompt_id=r.prompt_id, reflection_index=i, prompt_text=ask, text=c.text, retry=retry.text,
                retry_extracted=checked.extracted, retry_method=checked.method,  # type: ignore[arg-type]
                retry_correct=checked.correct, num_tokens=c.num_tokens, **c.generated_fields(),
                provenance=provenance))
    return rows, reflect_metrics(rows, verifications, len(attempts), notes)


def reflect_metrics(rows: Sequence[Reflection], verifications: Sequence[Verification], attempts: int,
                    notes: Sequence[Sequence[Any]] = ()) -> dict[str, Any]:
    """First-try accuracy (the verifier's), how often a retry after reflection succeeds, and the second-try
    accuracy they imply: first + (1 - first) x retry success, each failed attempt weighted equally."""
    per_attempt: dict[str, list[bool]] = {}
    for row in rows:
        per_attempt.setdefault(row.response_id, []).append(row.retry_correct)
    success = verifiable.estimate([statistics.fmean(v) for v in per_attempt.values()])
    first = statistics.fmean(v.correct for v in verifications) if verifications else None
    second = first + (1 - first) * success.mean if first is not None and per_attempt else None
    return {"failed_attempts": attempts, "reflections": len(rows),
            "first_try_accuracy": first, "retry_success_rate": success.mean if per_attempt else None,
            "retry_success_rate_se": success.se if per_attempt else None, "second_try_accuracy": second,
            "attempts_all_retries_right": sum(all(v) for v in per_attempt.values()),
            "attempts_all_retries_wrong": sum(not any(v) for v in per_attempt.values()),
            "mean_reflection_tokens": statistics.fmean(r.num_tokens for r in rows) if rows else None,
            **({f"reflect_{k}": v for k, v in token_stats(notes).items()} if notes else {})}
