"""Self-instruct: few-shot requests from seed instructions make M_t write new instructions.

Each request shows ``num_examples`` seed instructions (drawn at random, seeded) and asks for one new task
between ``<task>`` and ``</task>``. :class:`InstructionFilter` applies the filters in a fixed order and
counts every rejection by reason.
"""

from __future__ import annotations

import random
import re
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from pipeline import templates

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


def build_request(seed_instructions: Sequence[str], num_examples: int, rng: random.Random) -> str:
    """One few-shot request: ``num_examples`` seed instructions drawn without replacement."""
    examples = rng.sample(list(seed_instructions), min(num_examples, len(seed_instructions)))
    return templates.render(TEMPLATE, examples=examples)


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
