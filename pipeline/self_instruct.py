"""Self-instruct: few-shot requests from seed instructions make M_t write new instructions.

Each request shows ``num_examples`` seed instructions (drawn at random, seeded) and asks for one new task
between ``<task>`` and ``</task>``. :class:`InstructionFilter` applies the filters in a fixed order and
counts every rejection by reason. :func:`generate_instructions` is the whole step: rounds of requests,
each saved as a resumable shard, until ``num_prompts`` are accepted or ``max_requests`` were made.
"""

from __future__ import annotations

import random
import re
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from pipeline import templates
from pipeline.config import SelfInstructConfig
from pipeline.engines.base import SamplingSettings
from pipeline.errors import StageError
from pipeline.generation import Generation, token_stats
from pipeline.records import Prompt, stable_id
from pipeline.tasks import Task

TEMPLATE = "self_instruct.j2"
OPEN, CLOSE = "<task>", "</task>"

# Tasks a text-only model cannot do: they refer to media or to things outside the conversation.
NOT_TEXT_ONLY = re.compile(
    r"\b(images?|pictures?|photos?|photographs?|graphs?|charts?|diagrams?|drawings?|videos?|audio|"
    r"files?|attach(ed|ment|ments)?|urls?|links?|websites?|web ?pages?|visit)\b|https?://|www\.",
    re.IGNORECASE,
)

REJECT_REASONS = ("unparseable", "too_short", "too_long", "not_text_only", "duplicate",
                  "similar_to_seed", "similar_to_accepted", "similar_to_eval")


def build_request(seed_instructions: Sequence[str], num_examples: int, rng: random.Random,
                  template: str | None = None, generated: Sequence[str] = (), num_generated: int = 0) -> str:
    """One few-shot request: ``num_examples`` instructions drawn without replacement, of which up to
    ``num_generated`` from ``generated`` (instructions accepted so far) and the rest from the seed."""
    k = min(num_generated, len(generated))
    examples = rng.sample(list(seed_instructions), min(num_examples - k, len(seed_instructions)))
    if k:
        examples += rng.sample(list(generated), k)
    return templates.render(template or TEMPLATE, examples=examples)


def parse_task(output: str, stopped_at: str | None = None) -> str | None:
    """The new task from one output; None when there is none.

    Generation starts with ``<task>`` prefilled and stops at ``</task>`` or at a second ``<task>``
    (``stopped_at``). Strict: the text up to ``</task>``. Flexible: a second ``<task>`` also ends the
    first, and an unclosed output is cut at its first blank line (small models go on writing).
    """
    text = output.split(OPEN, 1)[1] if output.lstrip().startswith(OPEN) else output
    if CLOSE in text:
        text = text.split(CLOSE, 1)[0]
    elif OPEN in text:
        text = text.split(OPEN, 1)[0]
    elif stopped_at is None:
        stripped = text.strip()
        if "\n\n" not in stripped:
            return None
        text = stripped.split("\n\n", 1)[0]
    text = " ".join(text.split())
    return text or None


def normalize(text: str) -> str:
    return " ".join(re.sub(r"[^\w\s]", " ", text.lower()).split())


@dataclass
class InstructionFilter:
    """Accepts new instructions one at a time; ``counts`` holds accepted and every rejection reason."""

    seed: Sequence[str]
    held_out: Sequence[str]
    min_words: int = 3
    max_words: int = 150
    rouge_threshold: float = 0.7
    accepted: list[str] = field(default_factory=list)
    counts: Counter = field(default_factory=Counter)

    def __post_init__(self) -> None:
        from rouge_score import rouge_scorer

        self._scorer = rouge_scorer.RougeScorer(["rougeL"], use_stemmer=False)
        self._seen = {normalize(s) for s in self.accepted}

    def rouge_l(self, a: str, b: str) -> float:
        return self._scorer.score(a, b)["rougeL"].fmeasure

    def _too_similar(self, text: str, others: Iterable[str]) -> bool:
        return any(self.rouge_l(other, text) >= self.rouge_threshold for other in others)

    def reason(self, task: str | None) -> str | None:
        """Why ``task`` is rejected (one of REJECT_REASONS), or None when it passes every filter."""
        if not task:
            return "unparseable"
        words = len(task.split())
        if words < self.min_words:
            return "too_short"
        if words > self.max_words:
            return "too_long"
        if NOT_TEXT_ONLY.search(task):
            return "not_text_only"
        if normalize(task) in self._seen:
            return "duplicate"
        if self._too_similar(task, self.seed):
            return "similar_to_seed"
        if self._too_similar(task, self.accepted):
            return "similar_to_accepted"
        if self._too_similar(task, self.held_out):
            return "similar_to_eval"
        return None

    def offer(self, task: str | None) -> bool:
        why = self.reason(task)
        self.counts[why or "accepted"] += 1
        if why is None:
            assert task is not None
            self.accepted.append(task)
            self._seen.add(normalize(task))
        return why is None


def generate_instructions(gen: Generation, seed_instructions: Sequence[str], held_out: Sequence[str],
                          cfg: SelfInstructConfig, made_by: dict[str, Any]) -> tuple[list[Prompt], dict[str, Any]]:
    """The self-instruct step: accepted instructions as prompt rows, and counts of every rejection."""
    chat_server = gen.engine.backend == "openai"
    # Prefilled "<task>": a second "<task>" also ends the task. A chat server writes the opening tag itself.
    settings = SamplingSettings(n=1, temperature=cfg.temperature, top_p=cfg.top_p, max_new_tokens=cfg.max_new_tokens,
                                stop=(CLOSE,) if chat_server else (CLOSE, OPEN), seed=cfg.seed)
    filt = InstructionFilter(seed=list(seed_instructions), held_out=list(held_out), min_words=cfg.min_words,
                             max_words=cfg.max_words, rouge_threshold=cfg.rouge_threshold)
    rng = random.Random(cfg.seed)
    template_sha = templates.template_hash(cfg.template or TEMPLATE)
    key = made_by.get("iteration")
    prompts: list[Prompt] = []
    completions = []
    requests = 0
    while len(prompts) < cfg.num_prompts and requests < cfg.max_requests:
        size = min(cfg.shard_size, cfg.max_requests - requests)
        prefill = [] if chat_server else [{"role": "assistant", "content": OPEN}]
        convs = [[{"role": "user", "content": build_request(seed_instructions, cfg.num_examples, rng, cfg.template,
                                                            filt.accepted, cfg.num_generated_examples)}, *prefill]
                 for _ in range(size)]
        outs = gen.generate(convs, settings, name=f"round{requests // cfg.shard_size:04d}", desc="self_instruct",
                            shard_size=size)
        completions.extend(outs)
        for i, (row,) in enumerate(outs):
            task = parse_task(row.text, row.stop_string)
            if filt.offer(task) and len(prompts) < cfg.num_prompts:
                assert task is not None
                prompts.append(Prompt(
                    prompt_id=stable_id("p", key, task), instruction=task, source="self_instruct",
                    provenance={**made_by, "request": requests + i, "template_sha": template_sha,
                                "sampling": settings.to_dict()}))
        requests += size
    if not prompts:
        raise StageError(f"self_instruct: 0 of {requests} requests gave an acceptable instruction "
                         f"({dict(filt.counts)}) — raise self_instruct.max_requests or check the generator model")
    metrics = {"requests": requests, "accepted": len(prompts), "acceptance_rate": len(prompts) / requests,
               "rejected": {r: filt.counts.get(r, 0) for r in REJECT_REASONS},
               "mean_words": sum(len(p.instruction.split()) for p in prompts) / len(prompts), **token_stats(completions)}
    return prompts, metrics


def _same_task(prompt: str) -> str:
    """A task prompt up to case and spacing (not :func:`normalize`: "8 + 4" and "8 - 4" are different tasks)."""
    return " ".join(prompt.lower().split())


def task_prompts(train: Sequence[Task], n: int, seed: int, held_out: Sequence[Task], made_by: dict[str, Any]
                 ) -> tuple[list[Prompt], dict[str, Any]]:
    """``n`` tasks with known answers as prompt rows: a draw seeded by ``seed`` and the iteration key (each
    iteration sees its own draw; all tasks when there are at most ``n``). A task whose prompt is also a held-out
    task's is never drawn (counted as ``heldout_overlap``)."""
    blocked = {_same_task(t.prompt) for t in held_out}
    usable = [t for t in train if _same_task(t.prompt) not in blocked]
    key = made_by.get("iteration")
    rng = random.Random(f"{seed}:{key}")
    drawn = usable if len(usable) <= n else rng.sample(usable, n)
    prompts = [Prompt(prompt_id=stable_id("p", "task", t.task_id, t.prompt), instruction=t.prompt,
                      source=f"task:{t.family}", answer=t.answer, verifier=t.verifier, tests=t.tests or None,
                      inputs=dict(t.inputs), provenance={**made_by, "task_id": t.task_id, "task_source": t.source})
               for t in drawn]
    if n and not prompts:
        raise StageError(f"self_instruct: tasks {n} asked for, but every training task is also a held-out task "
                         f"({len(train)} of {len(train)})")
    families = Counter(t.family for t in drawn)
    return prompts, {"tasks": len(prompts), "tasks_available": len(usable),
                     "heldout_overlap": len(train) - len(usable), "task_families": dict(sorted(families.items()))}
