"""Golden files for every prompt template, and template safety.

A test never rewrites what it checks: after an intended prompt change, regenerate the golden files with
``python scripts/update_golden.py`` (which renders this module's RENDERED table) and review the diff.
"""

import random
import shutil
from pathlib import Path

import jinja2
import pytest

from pipeline import judging, meta_judging, reflection, sampling, self_instruct, tasks, templates
from pipeline.records import SeedInstruction, user_query

GOLDEN = Path(__file__).parent / "golden"
PROMPTS = templates.PROMPTS_DIR

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
    "pairwise_judge": lambda: templates.render("pairwise_judge.j2", instruction="Name a prime.", response_a="7",
                                               response_b="8"),
    "pairwise_judge_plan": lambda: templates.render("pairwise_judge_plan.j2", instruction="Name a prime.",
                                                    response_a="7", response_b="8"),
    "similar_instruction": lambda: templates.render("similar_instruction.j2",
                                                    instruction="Name three rivers in Africa."),
    "reflect": lambda: reflection.reflection_request(
        'What is 7 - 1?\nEnd your reply with a line of the form "Final answer: <number>".',
        "7 - 1 = 8.\nFinal answer: 8"),
    "retry": lambda: reflection.retry_request(
        'What is 7 - 1?\nEnd your reply with a line of the form "Final answer: <number>".',
        "The subtraction was done as an addition; subtract 1 from 7 instead."),
    "seed_thought": lambda: _seed_thought(),
    "seed_thought_target": lambda: _seed_thought_targets(),
    # prompts/tasks/: each branch of a task template, filled the way pipeline/tasks fills it
    "arithmetic": lambda: _task_prompts("arithmetic", {"a": 7, "op": "-", "b": 1}),
    "multi_step": lambda: _task_prompts("multi_step", *(
        {"style": style, "name": "Maya", "he": "she", "items": "cards", "start": 6, "present": present, "past": past}
        for present, past in ((["sells 4", "finds 11 more"], ["sold 4", "found 11 more"]),
                              (["sells 4", "finds 11 more", "doubles them"], ["sold 4", "found 11 more", "doubled them"]))
        for style in range(5))),
    "comparison": lambda: _task_prompts("comparison", {"numbers": ["9.11", "9.9"], "which": "larger"},
                                        {"numbers": ["3", "-7", "12"], "which": "smaller"}),
    "counting": lambda: _task_prompts("counting", {"kind": "letter", "letter": "r", "word": "strawberry"},
                                      {"kind": "list", "category": "fruit", "listed": ["apple", "pear", "apple"],
                                       "target": "apple"}),
    "countdown": lambda: "\n\n---\n\n".join(
        (tasks.countdown_prompt([3, 3, 2], 15), tasks.countdown_prompt([4, 5], 9, ["+"]))),
    "python_function": lambda: _task_prompts(
        "python_function", *({"name": "add", "args": "a, b", "does": "returns the sum of `a` and `b`", "examples": shown}
                             for shown in ([("add(2, 3)", "5"), ("add(-1, 1)", "0")], []))),
    "humaneval": lambda: _task_prompts("humaneval", {"code": 'def identity(x):\n    """Return x unchanged."""'}),
    "mbpp": lambda: _task_prompts("mbpp", {"text": "Write a function to add two numbers.",
                                           "tests": ["assert add(1, 2) == 3", "assert add(0, 0) == 0"]}),
    "final_answer": lambda: "\n".join(tasks.final_answer_line(what) for what in ("number", "expression", "answer")),
    # prompts/tasks/constraints.j2, and each constraint's sentence (prompts/tasks/constraints/<type>.j2) in every
    # wording, filled as pipeline.tasks.constraints fills them
    "constraints": lambda: tasks.constraints_prompt("Describe the sea.", [
        tasks.constraint_sentence("punctuation:no_comma", {}), tasks.constraint_sentence(
            "length_constraints:number_words", {"num_words": 50, "relation": "less than"})]),
    **{f"constraints/{i.split(':')[1]}": (lambda i=i: _constraint_sentences(i)) for i in tasks.constraints.TYPES},
}

# Arguments each constraint sentence is shown with: both relations, one and many, each marker or heading word.
CONSTRAINT_EXAMPLES = {
    "keywords:existence": [{"keywords": ["lantern"]}, {"keywords": ["lantern", "harbor"]}],
    "keywords:frequency": [{"keyword": "river", "frequency": 1, "relation": "at least"},
                           {"keyword": "river", "frequency": 3, "relation": "less than"}],
    "keywords:forbidden_words": [{"forbidden_words": ["very"]}, {"forbidden_words": ["very", "just", "also"]}],
    "keywords:letter_frequency": [{"letter": "e", "let_frequency": 1, "let_relation": "at least"},
                                  {"letter": "z", "let_frequency": 4, "let_relation": "less than"}],
    "language:response_language": [{"language": "fr"}],
    "length_constraints:number_sentences": [{"num_sentences": 5, "relation": "at least"},
                                            {"num_sentences": 2, "relation": "less than"}],
    "length_constraints:number_paragraphs": [{"num_paragraphs": 3}],
    "length_constraints:number_words": [{"num_words": 120, "relation": "at least"},
                                        {"num_words": 40, "relation": "less than"}],
    "length_constraints:nth_paragraph_first_word": [{"num_paragraphs": 4, "nth_paragraph": 2, "first_word": "today"}],
    "detectable_content:number_placeholders": [{"num_placeholders": 1}, {"num_placeholders": 3}],
    "detectable_content:postscript": [{"postscript_marker": "P.S."}, {"postscript_marker": "P.P.S"}],
    "detectable_format:number_bullet_lists": [{"num_bullets": 1}, {"num_bullets": 4}],
    "detectable_format:constrained_response": [{}],
    "detectable_format:number_highlighted_sections": [{"num_highlights": 1}, {"num_highlights": 3}],
    "detectable_format:multiple_sections": [{"section_spliter": "SECTION", "num_sections": 3}],
    "detectable_format:json_format": [{}],
    "detectable_format:title": [{}],
    "combination:two_responses": [{}],
    "combination:repeat_prompt": [{"prompt_to_repeat": "Describe the sea."}],
    "startend:end_checker": [{"end_phrase": "Any other questions?"}],
    "change_case:capital_word_frequency": [{"capital_frequency": 1, "capital_relation": "at least"},
                                           {"capital_frequency": 6, "capital_relation": "less than"}],
    "change_case:english_capital": [{}],
    "change_case:english_lowercase": [{}],
    "punctuation:no_comma": [{}],
    "startend:quotation": [{}],
}


def _constraint_sentences(instruction_id):
    """A constraint's sentence in each of its wordings for each of its examples, separated by ``---`` lines."""
    return "\n\n---\n\n".join(tasks.constraint_sentence(instruction_id, kwargs, style)
                                for kwargs in CONSTRAINT_EXAMPLES[instruction_id]
                                for style in range(tasks.constraints.WORDINGS[instruction_id]))


SEED = SeedInstruction(id="s1", category="test", instruction="Summarize this sentence in five words.",
                       input="The river rose overnight and flooded the lower town.",
                       reference="River flooded the lower town.")


def _seed_thought():
    """The fixed thought SFT writes before a seed's reference (pipeline/sft.py, ift_example)."""
    return templates.render("seed_thought.j2", instruction=user_query(SEED.instruction, SEED.input))


def _seed_thought_targets():
    """The SFT target of one seed in both thought formats (the template's two branches), as ift_example builds it."""
    from pipeline import sft  # imports torch: only these two entries pay for it

    return "\n\n--- thoughts: specific ---\n\n".join(
        sft.ift_example(SEED, thoughts)["completion"][0]["content"] for thoughts in ("generic", "specific"))


def _task_prompts(name, *variables):
    """prompts/tasks/<name>.j2 filled with each set of variables, as the task code renders it (text kept exactly,
    outer whitespace included), the fillings separated by ``---`` lines."""
    return "\n\n---\n\n".join(tasks.base.render(f"tasks/{name}.j2", **v) for v in variables)


@pytest.mark.parametrize("name", sorted(RENDERED))
def test_golden(name):
    text = RENDERED[name]()
    assert text == (GOLDEN / f"{name}.txt").read_text()


def test_every_template_has_a_golden_entry_that_renders_it(monkeypatch):
    """Each template under prompts/ (and prompts/tasks/), includes aside, is the key of a RENDERED entry, and that
    entry does render it; every golden file belongs to an entry."""
    found = {p.stem: p.relative_to(PROMPTS).as_posix()
             for folder in (PROMPTS, PROMPTS / "tasks") for p in sorted(folder.glob("*.j2")) if p.name[0] != "_"}
    found.update({f"constraints/{p.stem}": p.relative_to(PROMPTS).as_posix()
                  for p in sorted((PROMPTS / "tasks/constraints").glob("*.j2")) if p.name[0] != "_"})
    assert len(found) >= 13  # the glob itself works
    missing = sorted(set(found) - set(RENDERED))
    assert not missing, f"templates with no RENDERED entry (then run scripts/update_golden.py): {missing}"
    assert sorted(p.relative_to(GOLDEN).with_suffix("").as_posix() for p in GOLDEN.rglob("*.txt")) == sorted(RENDERED)
    env = templates.environment()
    loaded: list[str] = []
    real = env.get_template
    monkeypatch.setattr(env, "get_template", lambda name, *a, **k: loaded.append(name) or real(name, *a, **k))
    for key, template in found.items():
        loaded.clear()
        RENDERED[key]()
        assert template in loaded, f"RENDERED[{key!r}] renders {loaded}, not {template}"


def test_model_output_is_data_not_template():
    text = judging.judge_conversation("{{ 7 * 7 }}", "{% for x in range(3) %}x{% endfor %}")[0]["content"]
    assert "{{ 7 * 7 }}" in text and "{% for x in range(3) %}x{% endfor %}" in text and "49" not in text


def test_missing_variable_is_an_error():
    with pytest.raises(jinja2.UndefinedError):
        templates.render("judge.j2", instruction="only this")


@pytest.fixture()
def scratch_prompts(tmp_path, monkeypatch):
    """A copy of prompts/ that templates reads instead of the repository's, for tests that edit a template."""
    shutil.copytree(PROMPTS, tmp_path / "prompts")
    monkeypatch.setattr(templates, "PROMPTS_DIR", tmp_path / "prompts")
    templates.environment.cache_clear()
    yield tmp_path / "prompts"
    templates.environment.cache_clear()


def test_template_hash_covers_includes(scratch_prompts):
    names = ("judge.j2", "meta_judge.j2", "judge_compact.j2", "compare.j2")
    before = {n: templates.template_hash(n) for n in names}
    assert all(len(h) == 16 for h in before.values()) and len(set(before.values())) == len(names)
    rubric = scratch_prompts / "_rubric.j2"
    rubric.write_text(rubric.read_text() + "- One more criterion.\n")
    after = {n: templates.template_hash(n) for n in names}
    # both templates that include _rubric.j2 change; the one including _rubric_compact.j2 and compare.j2 do not
    assert after["judge.j2"] != before["judge.j2"] and after["meta_judge.j2"] != before["meta_judge.j2"]
    assert after["judge_compact.j2"] == before["judge_compact.j2"] and after["compare.j2"] == before["compare.j2"]
    (scratch_prompts / "_rubric_compact.j2").write_text("Score it.\n")
    assert templates.template_hash("judge_compact.j2") != before["judge_compact.j2"]
