"""Self-instruct: few-shot requests from seed instructions make M_t write new instructions.

Each request shows ``num_examples`` seed instructions (drawn at random, seeded) and asks for one new task
between ``<task>`` and ``</task>``. :class:`InstructionFilter` applies the filters in a fixed order and
counts every rejection by reason. :func:`generate_instructions` is the whole step: rounds of requests,
each saved as a resumable shard, until ``num_prompts`` are accepted or ``max_requests`` were made. Every
output the filter saw is kept as an :class:`InstructionCandidate` (accepted or why not, and the instruction it
came closest to), so that a rejection can be read, not only counted.
"""

from __future__ import annotations

import random
import re
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

from pipeline import templates
from pipeline.config import SelfInstructConfig
from pipeline.engines.base import Conversation, Engine, SamplingSettings
from pipeline.errors import StageError
from pipeline.generation import Generation, token_stats
from pipeline.records import Prompt, Row, stable_id
from pipeline.tasks import Task

TEMPLATE = "self_instruct.j2"
OPEN, CLOSE = "<task>", "</task>"
CANDIDATES = "instruction_candidates.jsonl"
NEAR_MISSES_SHOWN = 5  # the closest accepted instructions listed in the metrics

# Tasks a text-only model cannot do: they refer to media or to things outside the conversation.
NOT_TEXT_ONLY = re.compile(
    r"\b(images?|pictures?|photos?|photographs?|graphs?|charts?|diagrams?|drawings?|videos?|audio|"
    r"files?|attach(ed|ment|ments)?|urls?|links?|websites?|web ?pages?|visit)\b|https?://|www\.",
    re.IGNORECASE,
)

REJECT_REASONS = ("unparseable", "too_short", "too_long", "echo_of_request", "not_text_only", "duplicate",
                  "similar_to_seed", "similar_to_accepted", "similar_to_eval")


def build_request(seed_instructions: Sequence[str], num_examples: int, rng: random.Random,
                  template: str | None = None, generated: Sequence[str] = (), num_generated: int = 0) -> str:
    """One few-shot request: ``num_examples`` instructions drawn without replacement, of which up to
    ``num_generated`` from ``generated`` (instructions accepted so far) and the rest from the seed (there must
    be enough: :func:`check_seed_count`)."""
    k = min(num_generated, len(generated))
    examples = rng.sample(list(seed_instructions), num_examples - k)
    if k:
        examples += rng.sample(list(generated), k)
    return templates.render(template or TEMPLATE, examples=examples)


def request_text(template: str | None, num_examples: int) -> str:
    """The words every request shares: the template rendered with placeholder examples, the placeholders
    removed. What is left (the template's own instructions and the tags around each example) is what an echo
    of the request repeats; the few-shot examples are the similarity filters' business."""
    marks = [f"\x00{i}\x00" for i in range(num_examples)]
    text = templates.render(template or TEMPLATE, examples=marks)
    for mark in marks:
        text = text.replace(mark, " ")
    return text


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


def _ngrams(words: Sequence[str], n: int) -> set[tuple[str, ...]]:
    return {tuple(words[i:i + n]) for i in range(len(words) - n + 1)}


@dataclass(frozen=True)
class Verdict:
    """What the filter made of one task: ``reason`` (None: it passes) and, once it reached the similarity
    filters, the highest ROUGE-L against any seed, accepted or held-out instruction and which one that was."""

    reason: str | None
    rouge_l: float | None = None
    closest: str | None = None
    closest_source: str | None = None  # seed | accepted | eval


@dataclass
class InstructionFilter:
    """Accepts new instructions one at a time; ``counts`` holds accepted and every rejection reason.

    ``request`` is the request's own text (:func:`request_text`): a task that repeats ``echo_words`` words in a
    row of it is an echo of the request ("To write a new task of your own, ..."), not a task.
    """

    seed: Sequence[str]
    held_out: Sequence[str]
    min_words: int = 3
    max_words: int = 150
    rouge_threshold: float = 0.7
    request: str = ""
    echo_words: int = 5
    accepted: list[str] = field(default_factory=list)
    counts: Counter = field(default_factory=Counter)

    def __post_init__(self) -> None:
        from rouge_score import rouge_scorer

        self._scorer = rouge_scorer.RougeScorer(["rougeL"], use_stemmer=False)
        self._seen = {normalize(s) for s in self.accepted}
        self._request_runs = _ngrams(normalize(self.request).split(), self.echo_words) if self.echo_words else set()

    def rouge_l(self, a: str, b: str) -> float:
        return self._scorer.score(a, b)["rougeL"].fmeasure

    def echoes_request(self, task: str) -> bool:
        return bool(self._request_runs) and not self._request_runs.isdisjoint(
            _ngrams(normalize(task).split(), self.echo_words))

    def _closest(self, text: str, others: Iterable[str]) -> tuple[float, str | None]:
        best, closest = 0.0, None
        for other in others:
            score = self.rouge_l(other, text)
            if closest is None or score > best:
                best, closest = score, other
        return best, closest

    def assess(self, task: str | None) -> Verdict:
        """The verdict on ``task`` (filters in the order of REJECT_REASONS); changes nothing."""
        if not task:
            return Verdict("unparseable")
        words = len(task.split())
        if words < self.min_words:
            return Verdict("too_short")
        if words > self.max_words:
            return Verdict("too_long")
        if self.echoes_request(task):
            return Verdict("echo_of_request")
        if NOT_TEXT_ONLY.search(task):
            return Verdict("not_text_only")
        # Every similarity is measured (not only up to the first too-similar one): the closest instruction is
        # reported for accepted tasks too, where a near-miss shows how close the filter came to rejecting it.
        scored = [(*self._closest(task, others), source) for source, others in
                  (("seed", self.seed), ("accepted", self.accepted), ("eval", self.held_out))]
        reason = next((f"similar_to_{where}" for score, _, where in scored if score >= self.rouge_threshold), None)
        if normalize(task) in self._seen:
            reason = "duplicate"
        found = [s for s in scored if s[1] is not None]
        if not found:  # nothing to compare with
            return Verdict(reason)
        best, closest, source = max(found, key=lambda s: s[0])
        return Verdict(reason, best, closest, source)

    def reason(self, task: str | None) -> str | None:
        """Why ``task`` is rejected (one of REJECT_REASONS), or None when it passes every filter."""
        return self.assess(task).reason

    def take(self, task: str | None) -> Verdict:
        """Assess ``task``, count the verdict and keep the task when it passes."""
        verdict = self.assess(task)
        self.counts[verdict.reason or "accepted"] += 1
        if verdict.reason is None:
            assert task is not None
            self.accepted.append(task)
            self._seen.add(normalize(task))
        return verdict

    def offer(self, task: str | None) -> bool:
        return self.take(task).reason is None


@dataclass
class InstructionCandidate(Row):
    """One output the filter saw (data/<key>/instruction_candidates.jsonl): accepted or why not."""

    ID_FIELD: ClassVar[str] = "candidate_id"
    NONEMPTY: ClassVar[tuple[str, ...]] = ("candidate_id",)
    candidate_id: str
    request: int  # the request's position in this iteration (as in a prompt's provenance)
    text: str  # what the generator wrote, as it came back
    instruction: str | None  # what parse_task read from it (None: unparseable)
    accepted: bool  # it passed every filter
    reason: str | None  # why it was rejected (one of REJECT_REASONS); None when accepted
    prompt_id: str | None  # the prompt row it became; None when rejected or once num_prompts were accepted
    rouge_l: float | None  # highest ROUGE-L against a seed, accepted or held-out instruction (None: not measured)
    closest: str | None  # the instruction with that ROUGE-L
    closest_source: str | None  # seed | accepted | eval
    finish_reason: str | None = None  # stop, or length (cut at max_new_tokens)
    provenance: dict[str, Any] = field(default_factory=dict)


@dataclass
class InstructResult:
    prompts: list[Prompt]
    candidates: list[InstructionCandidate]
    metrics: dict[str, Any]


class NothingAccepted(StageError):
    """No request gave an acceptable instruction; ``candidates`` holds every output and why it was rejected."""

    def __init__(self, message: str, candidates: list[InstructionCandidate]) -> None:
        super().__init__(message)
        self.candidates = candidates


def check_seed_count(available: int, num_examples: int, where: str = "the seed file") -> None:
    """Each request draws ``num_examples`` distinct seeds (before anything is accepted): there must be as many."""
    if num_examples > available:
        raise StageError(f"self_instruct.num_examples: {num_examples} — more than the {available} seed "
                         f"instructions in {where}; show at most {available} or add seeds")


def prompt_tokens(engine: Engine, conversation: Conversation) -> int | None:
    """Tokens of ``conversation`` as the model reads it; None when the engine has no local tokenizer (a chat
    server tokenizes on its side)."""
    if not callable(engine.tokenizer):
        return None
    return len(engine.encode(engine.format_chat(conversation)))


def check_fits(engine: Engine, conversations: Sequence[Conversation], cfg: SelfInstructConfig,
               max_model_len: int | None, longest: bool = False) -> None:
    """Every request plus ``max_new_tokens`` within the engine's context, checked before it is generated."""
    if max_model_len is None:
        return
    for conv in conversations:
        n = prompt_tokens(engine, conv)
        if n is None:
            return
        if n + cfg.max_new_tokens > max_model_len:
            which = f"the longest possible request ({cfg.num_examples} longest seeds)" if longest else "a request"
            raise StageError(f"self_instruct: {which} is {n} tokens, which with self_instruct.max_new_tokens "
                             f"({cfg.max_new_tokens}) exceeds engine.max_model_len ({max_model_len}) — lower "
                             f"self_instruct.num_examples ({cfg.num_examples}), use a shorter self_instruct.template, "
                             "or raise engine.max_model_len")


def _advice(top: str, cfg: SelfInstructConfig, candidates: Sequence[InstructionCandidate]) -> str:
    """What to change when ``top`` is the reason most outputs were rejected."""
    if top == "unparseable":
        unparsed = [c for c in candidates if c.reason == "unparseable"]
        cut = sum(c.finish_reason == "length" for c in unparsed)
        if cut * 2 >= len(unparsed):
            return (f"{cut} of them stopped at self_instruct.max_new_tokens ({cfg.max_new_tokens}) before </task>: "
                    "raise it, or use a generator that writes short tasks (self_instruct.generator)")
        return ("the generator does not write its task between <task> and </task>: use one that follows the "
                "request (self_instruct.generator) or a clearer self_instruct.template")
    return {
        "too_short": f"lower self_instruct.min_words ({cfg.min_words})",
        "too_long": f"raise self_instruct.max_words ({cfg.max_words})",
        "echo_of_request": ("the generator repeats the request's own words instead of writing a task: use a stronger "
                            "generator (self_instruct.generator) or a clearer self_instruct.template "
                            f"(self_instruct.echo_words: {cfg.echo_words}; 0 turns this filter off)"),
        "not_text_only": ("the tasks ask for images, files or links: check the seed instructions "
                          "(data.seed_instructions) and the generator"),
        "duplicate": f"the generator repeats itself: raise self_instruct.temperature ({cfg.temperature})",
        "similar_to_seed": (f"the generator copies its examples (ROUGE-L at least self_instruct.rouge_threshold, "
                            f"{cfg.rouge_threshold}): raise self_instruct.temperature ({cfg.temperature}) or use a "
                            "stronger generator"),
        "similar_to_eval": ("the tasks copy held-out evaluation prompts: make sure data.seed_instructions and "
                            "data.eval_prompts do not overlap"),
    }.get(top, "check the generator model (self_instruct.generator)")


def nothing_accepted(requests: int, counts: Counter, cfg: SelfInstructConfig,
                     candidates: list[InstructionCandidate]) -> NothingAccepted:
    """The error when no output passed: the dominant rejection reason and advice that applies to it."""
    rejected = Counter({r: counts[r] for r in REJECT_REASONS if counts.get(r)})
    top, n = rejected.most_common(1)[0]
    others = ", ".join(f"{r} {k}" for r, k in rejected.most_common() if r != top)
    share = f"all {n} were {top}" if not others else f"most were {top} ({n} of {requests}; {others})"
    return NothingAccepted(f"self_instruct: 0 of {requests} requests gave an acceptable instruction — {share}; "
                           f"{_advice(top, cfg, candidates)}", candidates)


def _near_misses(candidates: Sequence[InstructionCandidate], threshold: float) -> dict[str, Any]:
    """Accepted instructions whose closest instruction reaches ``threshold`` (below the rejection threshold)."""
    near = sorted((c for c in candidates if c.prompt_id and c.rouge_l is not None and c.rouge_l >= threshold),
                  key=lambda c: (-(c.rouge_l or 0.0), c.request))
    return {"threshold": threshold, "count": len(near),
            "top": [{"prompt_id": c.prompt_id, "instruction": c.instruction, "rouge_l": round(c.rouge_l or 0.0, 4),
                     "closest": c.closest, "closest_source": c.closest_source} for c in near[:NEAR_MISSES_SHOWN]]}


def generate_instructions(gen: Generation, seed_instructions: Sequence[str], held_out: Sequence[str],
                          cfg: SelfInstructConfig, made_by: dict[str, Any],
                          max_model_len: int | None = None) -> InstructResult:
    """The self-instruct step: accepted instructions as prompt rows, every output the filter saw as a candidate
    row, and counts of every rejection. ``max_model_len``: the engine's context, which every request must fit."""
    check_seed_count(len(seed_instructions), cfg.num_examples)
    chat_server = gen.engine.backend == "openai"
    # Prefilled "<task>": a second "<task>" also ends the task. A chat server writes the opening tag itself.
    settings = SamplingSettings(n=1, temperature=cfg.temperature, top_p=cfg.top_p, max_new_tokens=cfg.max_new_tokens,
                                stop=(CLOSE,) if chat_server else (CLOSE, OPEN), seed=cfg.seed)
    filt = InstructionFilter(seed=list(seed_instructions), held_out=list(held_out), min_words=cfg.min_words,
                             max_words=cfg.max_words, rouge_threshold=cfg.rouge_threshold,
                             request=request_text(cfg.template, cfg.num_examples), echo_words=cfg.echo_words)
    prefill = [] if chat_server else [{"role": "assistant", "content": OPEN}]
    longest = sorted(seed_instructions, key=len, reverse=True)[:cfg.num_examples]
    check_fits(gen.engine, [[{"role": "user", "content": templates.render(cfg.template or TEMPLATE, examples=longest)},
                             *prefill]], cfg, max_model_len, longest=True)
    rng = random.Random(cfg.seed)
    template_sha = templates.template_hash(cfg.template or TEMPLATE)
    key = made_by.get("iteration")
    prompts: list[Prompt] = []
    candidates: list[InstructionCandidate] = []
    completions = []
    requests = 0
    while len(prompts) < cfg.num_prompts and requests < cfg.max_requests:
        size = min(cfg.shard_size, cfg.max_requests - requests)
        convs = [[{"role": "user", "content": build_request(seed_instructions, cfg.num_examples, rng, cfg.template,
                                                            filt.accepted, cfg.num_generated_examples)}, *prefill]
                 for _ in range(size)]
        check_fits(gen.engine, convs, cfg, max_model_len)
        outs = gen.generate(convs, settings, name=f"round{requests // cfg.shard_size:04d}", desc="self_instruct",
                            shard_size=size)
        completions.extend(outs)
        for i, (row,) in enumerate(outs):
            request = requests + i
            task = parse_task(row.text, row.stop_string)
            verdict = filt.take(task)
            candidate_id = stable_id("c", key, request, row.text)
            provenance = {**made_by, "request": request, "template_sha": template_sha, "sampling": settings.to_dict()}
            prompt_id = None
            if verdict.reason is None and len(prompts) < cfg.num_prompts:
                assert task is not None
                prompt_id = stable_id("p", key, task)
                prompts.append(Prompt(prompt_id=prompt_id, instruction=task, source="self_instruct",
                                      provenance={**provenance, "candidate_id": candidate_id}))
            candidates.append(InstructionCandidate(
                candidate_id=candidate_id, request=request, text=row.text, instruction=task,
                accepted=verdict.reason is None, reason=verdict.reason, prompt_id=prompt_id,
                rouge_l=None if verdict.rouge_l is None else round(verdict.rouge_l, 4), closest=verdict.closest,
                closest_source=verdict.closest_source, finish_reason=row.finish_reason, provenance=provenance))
        requests += size
    if not prompts:
        raise nothing_accepted(requests, filt.counts, cfg, candidates)
    metrics = {"requests": requests, "accepted": len(prompts), "acceptance_rate": len(prompts) / requests,
               "rejected": {r: filt.counts.get(r, 0) for r in REJECT_REASONS},
               "near_misses": _near_misses(candidates, cfg.near_miss),
               "mean_words": sum(len(p.instruction.split()) for p in prompts) / len(prompts), **token_stats(completions)}
    return InstructResult(prompts, candidates, metrics)



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
