"""Sampling N responses per prompt, with the chain of thought kept apart from the final response (TPO).

``thoughts: none`` sends the instruction as is. ``generic`` asks for thoughts after "Here is my thought
process:" and the response after "Here is my response:"; ``specific`` asks for a draft and its evaluation,
then the final response after "<R>". :func:`split_thought` separates the two; an output without the marker
is ``parse_ok: False``. :func:`sample_responses` is the whole sample step.
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from pipeline import templates
from pipeline.config import SampleConfig
from pipeline.engines.base import SamplingSettings
from pipeline.generation import Generation, token_stats
from pipeline.records import Prompt, Response, stable_id, user_query

THOUGHT_TEMPLATES = {"generic": "respond_generic.j2", "specific": "respond_specific.j2"}
THOUGHT_HEADER = "Here is my thought process:"
RESPONSE_MARKERS = {"generic": "Here is my response:", "specific": "<R>"}


def response_prompt(instruction: str, thoughts: str, template: str | None = None) -> str:
    """The user turn sent to the model for ``instruction``: ``template`` or the one for ``thoughts``."""
    name = template_name(thoughts, template)
    return instruction if name is None else templates.render(name, instruction=instruction)


def template_name(thoughts: str, template: str | None = None) -> str | None:
    """The thought prompt in use: ``template`` when given, else the default for ``thoughts`` (none: None)."""
    return template or THOUGHT_TEMPLATES.get(thoughts)


@dataclass(frozen=True)
class Split:
    thought: str
    response: str
    parse_ok: bool


def split_thought(output: str, thoughts: str) -> Split:
    """Separate thoughts from the final response at the marker's first occurrence."""
    text = output.strip()
    if thoughts == "none":
        return Split("", text, bool(text))
    marker = RESPONSE_MARKERS[thoughts]
    if marker not in text:
        return Split(text, "", False)
    thought, response = text.split(marker, 1)
    thought = thought.strip()
    if thought.startswith(THOUGHT_HEADER):
        thought = thought[len(THOUGHT_HEADER):].strip()
    response = response.strip()
    return Split(thought, response, bool(response))


def sample_responses(gen: Generation, prompts: Sequence[Prompt], cfg: SampleConfig, made_by: dict[str, Any]
                     ) -> tuple[list[Response], dict[str, Any]]:
    """The sample step: ``cfg.n`` responses per prompt, thoughts split off; rows and metrics."""
    settings = SamplingSettings(n=cfg.n, temperature=cfg.temperature, top_p=cfg.top_p,
                                max_new_tokens=cfg.max_new_tokens, seed=cfg.seed, logprobs=True)
    texts = [response_prompt(user_query(p.instruction, p.input), cfg.thoughts, cfg.template) for p in prompts]
    outs = gen.generate([[{"role": "user", "content": t}] for t in texts], settings, desc="sample")
    template = template_name(cfg.thoughts, cfg.template)
    provenance = {**made_by, "thoughts": cfg.thoughts, "template": template,
                  "template_sha": templates.template_hash(template) if template else None,
                  "sampling": settings.to_dict()}
    rows = []
    for prompt, text, completions in zip(prompts, texts, outs):
        for i, c in enumerate(completions):
            split = split_thought(c.text, cfg.thoughts)
            rows.append(Response(
                response_id=stable_id("r", prompt.prompt_id, i, c.text), prompt_id=prompt.prompt_id,
                sample_index=i, instruction=user_query(prompt.instruction, prompt.input), prompt_text=text, output=c.text,
                thought=split.thought, response=split.response, parse_ok=split.parse_ok, num_tokens=c.num_tokens,
                finish_reason=c.finish_reason, **c.generated_fields(), provenance=provenance))
    ok = [r for r in rows if r.parse_ok]
    metrics = {"prompts": len(prompts), "responses": len(rows), "parse_ok": len(ok),
               "parse_rate": len(ok) / len(rows) if rows else 0.0, "thoughts": cfg.thoughts,
               "mean_response_chars": statistics.fmean(len(r.response) for r in ok) if ok else 0.0,
               "mean_thought_chars": statistics.fmean(len(r.thought) for r in ok) if ok else 0.0,
               **token_stats(outs)}
    return rows, metrics
