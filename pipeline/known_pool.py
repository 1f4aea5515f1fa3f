"""The held-out known pool (stage known_pool, run once): the pairs every iteration's judge is measured on.

M0 samples answers to held-out tasks and constraint instructions, the verifier checks them, and a right one is
paired against a wrong one; each held-out open prompt gets a Self-Taught Evaluator pair (:mod:`pipeline.self_taught`).
The measurement itself is :func:`pipeline.known_judging.measure`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from pipeline import known_pairs, rewards, sampling, self_taught
from pipeline.config import KnownPoolConfig, SampleConfig, VerifyConfig
from pipeline.engines.base import SamplingSettings
from pipeline.generation import Generation
from pipeline.records import EvalPrompt, KnownPair, Response, Verification, user_query
from pipeline.self_instruct import task_prompts
from pipeline.tasks import Task


@dataclass
class Pool:
    """What the known_pool step made: every sampled answer, its verification, the pairs, and the counts."""

    responses: list[Response]
    verifications: list[Verification]
    pairs: list[KnownPair]
    metrics: dict[str, Any]


def build_pool(gen: Generation, tasks: Sequence[Task], open_prompts: Sequence[EvalPrompt], cfg: KnownPoolConfig,
               scfg: SampleConfig, vcfg: VerifyConfig, made_by: dict[str, Any]) -> Pool:
    """The known_pool step: M0 samples ``cfg.samples`` answers to every held-out task, the verifier checks them
    and a right one is paired against a wrong one (split ``heldout``); each open prompt gets a Self-Taught
    Evaluator pair (M0 answers x and the x' it writes)."""
    prompts, _ = task_prompts(tasks, len(tasks), cfg.seed, [], {"iteration": "known_pool"})
    settings = SamplingSettings(n=1, temperature=cfg.temperature, top_p=cfg.top_p, max_new_tokens=cfg.max_new_tokens,
                                seed=cfg.seed)
    sample_cfg = dataclasses.replace(scfg, n=cfg.samples, temperature=cfg.temperature, top_p=cfg.top_p,
                                     max_new_tokens=cfg.max_new_tokens, thoughts="none", template=None, seed=cfg.seed)
    responses, sample_metrics = sampling.sample_responses(gen, prompts, sample_cfg, made_by) if prompts else ([], {})
    verifications, verify_metrics = rewards.verify_responses(prompts, responses, vcfg, {"iteration": "known_pool"})
    pool, counts = known_pairs.from_verifications(responses, verifications, split="heldout",
                                                  per_prompt=cfg.pairs_per_task, seed=cfg.seed, iteration="known_pool")
    if open_prompts:
        items = [self_taught.Instruction(e.id, user_query(e.instruction, e.input)) for e in open_prompts]
        taught, counts["self_taught"] = self_taught.self_taught_pairs(
            gen, items, split="heldout", similar_settings=settings, answer_settings=settings, made_by=made_by)
        pool += taught
        counts["pairs"]["self_taught"] = len(taught)
    return Pool(responses, verifications, pool, {"enabled": True, "tasks": len(tasks), **counts,
                                                 "sample": sample_metrics, "verify": verify_metrics})
