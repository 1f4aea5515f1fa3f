"""Golden files for every prompt template, and template safety.

A test never rewrites what it checks: after an intended prompt change, regenerate the golden files with
``python scripts/update_golden.py`` (which renders this module's RENDERED table) and review the diff.
"""

import random
from pathlib import Path

import jinja2
import pytest

from pipeline import judging, meta_judging, sampling, self_instruct, templates

GOLDEN = Path(__file__).parent / "golden"

RENDERED = {
    "self_instruct": lambda: self_instruct.build_request([f"Seed task {i}." for i in range(10)], 8, random.Random(0)),
    "respond_generic": lambda: sampling.response_prompt("Name three rivers in Africa.", "generic"),
    "respond_specific": lambda: sampling.response_prompt("Name three rivers in Africa.", "specific"),
    "reason_step_by_step": lambda: sampling.response_prompt(
        'What is 7 - 1?\nEnd your reply with a line of the form "Final answer: <number>".', "none",
        "reason_step_by_step.j2"),
    "judge": lambda: judging.judge_conversation("Name three rivers in Africa.", "The Nile, the Congo and the Niger.")[0]["content"],
    "judge_compact": lambda: judging.judge_conversation("Name three rivers in Africa.", "The Nile, the Congo and the Niger.",
                                                        "judge_compact.j2")[0]["content"],
    "meta_judge": lambda: meta_judging.meta_judge_conversation(
        "Name three rivers in Africa.", "The Nile, the Congo and the Niger.",
        "All three are African rivers.\nScore: 5", "Wrong rivers.\nScore: 1")[0]["content"],
    "meta_judge_compact": lambda: meta_judging.meta_judge_conversation(
        "Name three rivers in Africa.", "The Nile, the Congo and the Niger.",
        "Relevance: yes - names rivers\nScore: 5", "Relevance: no - wrong\nScore: 1", "meta_judge_compact.j2")[0]["content"],
    "compare": lambda: templates.render("compare.j2", instruction="Name a prime.", response_a="7", response_b="8"),
}


@pytest.mark.parametrize("name", sorted(RENDERED))
def test_golden(name):
    text = RENDERED[name]()
    assert text == (GOLDEN / f"{name}.txt").read_text()


def test_model_output_is_data_not_template():
    text = judging.judge_conversation("{{ 7 * 7 }}", "{% for x in range(3) %}x{% endfor %}")[0]["content"]
    assert "{{ 7 * 7 }}" in text and "{% for x in range(3) %}x{% endfor %}" in text and "49" not in text


def test_missing_variable_is_an_error():
    with pytest.raises(jinja2.UndefinedError):
        templates.render("judge.j2", instruction="only this")


def test_template_hash_covers_includes():
    assert templates.template_hash("judge.j2") != templates.template_hash("judge.j2".replace("judge", "compare"))
    assert len(templates.template_hash("judge.j2")) == 16
