"""Sampling N responses per prompt, with the chain of thought kept apart from the final response (TPO).

``thoughts: none`` sends the instruction as is. ``generic`` asks for thoughts after "Here is my thought
process:" and the response after "Here is my response:"; ``specific`` asks for a draft and its evaluation,
then the final response after "<R>". :func:`split_thought` separates the two; an output without the marker
is ``parse_ok: False``.
"""

from __future__ import annotations

from dataclasses import dataclass

from pipeline import templates

THOUGHT_TEMPLATES = {"generic": "respond_generic.j2", "specific": "respond_specific.j2"}
THOUGHT_HEADER = "Here is my thought process:"
RESPONSE_MARKERS = {"generic": "Here is my response:", "specific": "<R>"}


def response_prompt(instruction: str, thoughts: str) -> str:
    """The user turn sent to the model for ``instruction``."""
    if thoughts == "none":
        return instruction
    return templates.render(THOUGHT_TEMPLATES[thoughts], instruction=instruction)


def template_name(thoughts: str) -> str | None:
    return THOUGHT_TEMPLATES.get(thoughts)


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

