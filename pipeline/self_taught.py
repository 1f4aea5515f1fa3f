"""Self-Taught Evaluator pairs (Wang et al., 2024, arXiv 2408.02666, §3.3, response pair construction): known
pairs for open instructions, which have no checkable answer.

For an instruction x the model writes x', an instruction on the same subject that asks for something else
(``prompts/similar_instruction.j2``, read strictly by :func:`pipeline.pairwise_rules.parse_similar_instruction`),
then answers x'. For x, its answer to x is the better response and its answer to x' the worse one
(:func:`pipeline.known_pairs.from_self_taught`). Both answers are sampled alike (the caller's
``answer_settings``), so that only what they answer differs.

The step is :func:`self_taught_pairs`; the judge_training stage calls it on the iteration's prompts (the answer
to x is the iteration's own first sample), the known_pool stage on held-out prompts (both answers generated).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

from pipeline import known_pairs, pairwise_rules, sampling, templates
from pipeline.engines.base import SamplingSettings
from pipeline.generation import Generation
from pipeline.records import KnownPair


@dataclass(frozen=True)
class Instruction:
    """An instruction x to make a pair for; ``answer`` is the model's answer to x where it already has one (and
    ``answer_id`` its response row), else None: then it is generated with the answer to x'."""

    prompt_id: str
    instruction: str
    answer: str | None = None
    answer_id: str | None = None


def self_taught_pairs(gen: Generation, items: Sequence[Instruction], *, split: Literal["train", "heldout"],
                      similar_settings: SamplingSettings, answer_settings: SamplingSettings, made_by: dict[str, Any],
                      thoughts: str = "none", template: str | None = None) -> tuple[list[KnownPair], dict[str, Any]]:
    """One known pair per instruction where the model wrote a usable x' and two different answers; the pairs
    and counts (``instructions``, ``pairs``, ``no_similar_instruction``: x' missing, empty or a copy of x,
    ``same_answers``: the two answers alike, ``unparsed_answers``: no final response after the thought).

    Answers are asked as the sample step asks (``thoughts``, ``template``) and their final responses kept, so an
    answer to x' has the same form as the iteration's answers to x."""
    if not items:
        return [], {"instructions": 0, "pairs": 0, "no_similar_instruction": 0, "same_answers": 0}
    asked = gen.generate([pairwise_rules.similar_instruction_conversation(i.instruction) for i in items],
                         similar_settings, name="similar", desc="similar instructions")
    similar = [pairwise_rules.parse_similar_instruction(row[0].text, i.instruction) for i, row in zip(items, asked)]
    usable = [(i, x2) for i, x2 in zip(items, similar) if x2 is not None]
    queries = [x2 for _, x2 in usable] + [i.instruction for i, _ in usable if i.answer is None]
    outs = gen.generate([[{"role": "user", "content": sampling.response_prompt(q, thoughts, template)}]
                         for q in queries], answer_settings, name="answers", desc="answers to x and x'")
    finals = [sampling.split_thought(row[0].text, thoughts).response for row in outs]
    to_similar = finals[:len(usable)]
    own = iter(finals[len(usable):])
    provenance = {**made_by, "template_sha": templates.template_hash(pairwise_rules.SIMILAR_TEMPLATE),
                  "similar_sampling": similar_settings.to_dict(), "answer_sampling": answer_settings.to_dict()}
    pairs, same = [], 0
    for (item, x2), worse in zip(usable, to_similar):
        better = item.answer if item.answer is not None else next(own)
        pair = known_pairs.from_self_taught(item.prompt_id, item.instruction, better, worse, similar_instruction=x2,
                                            split=split, better_id=item.answer_id, provenance=dict(provenance))
        if pair is None:
            same += 1
        else:
            pairs.append(pair)
    return pairs, {"instructions": len(items), "pairs": len(pairs), "no_similar_instruction": len(items) - len(usable),
                   "same_answers": same, "unparsed_answers": sum(not f for f in finals)}
