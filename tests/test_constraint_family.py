"""The built-in ``constraints`` family (pipeline/tasks/constraints.py): seeded draws, its knobs, no clashing or
self-contradicting constraint ever drawn, its committed split, and every drawn constraint satisfiable."""

import json
import random
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from pipeline import tasks, templates
from pipeline.constraints import checkers, spec
from pipeline.errors import ConfigError, RecordError
from pipeline.tasks import constraints as C

ROOT = Path(__file__).resolve().parent.parent
FOLDER = ROOT / "data/tasks/constraints"
SEED_FILE, EVAL_FILE = "data/seed/instructions.jsonl", "data/eval/prompts.jsonl"


def _bases(path):
    return [json.loads(line)["instruction"] for line in (ROOT / path).read_text().splitlines() if line.strip()]


def _base_of(prompt, bases):
    """The base instruction a prompt is built on: the one it starts with, followed by its constraint sentences."""
    found = [b for b in bases if prompt.startswith(b + "\n\n")]
    assert len(found) == 1, prompt[:80]
    return found[0]


# ------------------------------------------------------------------------------------------- determinism
def test_same_seed_same_tasks_with_exact_ids():
    one = tasks.generate_split("constraints", 25, seed=7)
    assert [t.to_dict() for t in one] == [t.to_dict() for t in tasks.generate_split("constraints", 25, seed=7)]
    assert [t.task_id for t in one] != [t.task_id for t in tasks.generate_split("constraints", 25, seed=8)]
    task = tasks.generate_split("constraints", 1, seed=0)[0]  # draw 0 of seed 0, on every machine
    assert (task.task_id, task.inputs) == ("constraints-8d6f646cd106", {
        "instruction_id_list": ["keywords:existence", "keywords:forbidden_words", "length_constraints:number_words"],
        "kwargs": [{"keywords": ["engine"]}, {"forbidden_words": ["just", "actually", "simply"]},
                   {"num_words": 120, "relation": "less than"}]})
    assert task.prompt == (
        "How can I give constructive criticism to a coworker whose reports are often late, without damaging our "
        'relationship?\n\nMake sure the word "engine" appears somewhere in your answer.\nDo not use the words '
        '"just", "actually" or "simply" anywhere in your answer.\nYour answer must be fewer than 120 words long.')
    assert (task.family, task.verifier, task.answer) == ("constraints", "constraints", "")


def test_a_task_is_its_instruction_then_one_sentence_per_constraint():
    bases = _bases(SEED_FILE)
    for k in range(40):
        task = C.constraints(random.Random(k))
        ids, kwargs = task.inputs["instruction_id_list"], task.inputs["kwargs"]
        base = _base_of(task.prompt, bases)
        sentences = task.prompt[len(base) + 2:].split("\n")
        assert len(sentences) == len(ids) == len(kwargs) and 1 <= len(ids) <= 3
        for i, kw, sentence in zip(ids, kwargs, sentences):
            assert sentence in {C.constraint_sentence(i, kw, s) for s in range(C.WORDINGS[i])}


# ------------------------------------------------------------------------------------------- knobs
def _range(lo, hi):
    return f"must be [min, max], two integers with {lo} <= min <= max <= {hi}"


@pytest.mark.parametrize("difficulty, message", [
    ({"count": [0, 2]}, f'constraints difficulty "count": {_range(1, 3)}, got [0, 2]'),
    ({"count": [3, 1]}, f'constraints difficulty "count": {_range(1, 3)}, got [3, 1]'),
    ({"count": 2}, f'constraints difficulty "count": {_range(1, 3)}, got 2'),
    ({"num_words": [300, 20]}, f'constraints difficulty "num_words": {_range(5, 5000)}, got [300, 20]'),
    ({"num_bullets": [1, 31]}, f'constraints difficulty "num_bullets": {_range(1, 30)}, got [1, 31]'),
    ({"types": ["punctuation:no_coma"]}, ('constraints difficulty "types": names an unknown instruction id '
                                          '"punctuation:no_coma" — did you mean "punctuation:no_comma"?, got '
                                          '["punctuation:no_coma"]')),
    ({"types": []}, ('constraints difficulty "types": must be a non-empty list of instruction ids, e.g. '
                     '["punctuation:no_comma"], got []')),
    ({"types": ["punctuation:no_comma", "punctuation:no_comma"]},
     ('constraints difficulty "types": names an instruction id twice, got ["punctuation:no_comma", '
      '"punctuation:no_comma"]')),
    ({"types": ["punctuation:no_comma"], "count": [1, 2]},
     'constraints difficulty "count": at most 1 constraints from 1 types, got [1, 2]'),
    ({"num_word": [20, 30]}, 'constraints difficulty: unknown knob "num_word" — did you mean "num_words"?'),
    ({"instructions": ""}, ('constraints difficulty "instructions": must be the path of a JSONL file with an '
                            'instruction field, got ""')),
    ({"instructions": "data/seed/nothing.jsonl"},
     f'constraints difficulty "instructions": {ROOT}/data/seed/nothing.jsonl not found'),
])
def test_bad_knobs_are_one_line(difficulty, message):
    with pytest.raises(ConfigError) as e:
        tasks.resolve_difficulty("constraints", difficulty)
    assert str(e.value) == message
    with pytest.raises(ConfigError):  # the family checks its difficulty too
        C.constraints(random.Random(0), difficulty)


def test_an_instruction_file_is_checked_row_by_row(tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"instruction": "Describe the sea."}\n{"prompt": "no instruction field"}\n')
    with pytest.raises(RecordError, match=rf'^{bad}:2: missing field "instruction"$'):
        tasks.resolve_difficulty("constraints", {"instructions": str(bad)})
    blank = tmp_path / "blank.jsonl"
    blank.write_text('{"instruction": "  "}\n')
    with pytest.raises(RecordError, match=rf'^{blank}:1: field "instruction" must be non-empty text$'):
        tasks.resolve_difficulty("constraints", {"instructions": str(blank)})
    code = tmp_path / "code.jsonl"
    code.write_text('{"instruction": "Write a Python function that adds two numbers."}\n')
    with pytest.raises(ConfigError, match="has no instruction to use"):
        tasks.resolve_difficulty("constraints", {"instructions": str(code)})


def test_instructions_come_from_the_named_file_with_code_and_duplicates_left_out(tmp_path):
    own = tmp_path / "own.jsonl"
    own.write_text('{"instruction": "Describe the sea."}\n{"instruction": "Describe the sea."}\n'
                   '{"instruction": "Write a SQL query that counts rows."}\n'
                   '{"instruction": "Summarize this.", "input": "The sea is wide."}\n')
    assert [b.text for b in C.instructions(str(own))] == ["Describe the sea.", "Summarize this.\n\nThe sea is wide."]
    got = {C.constraints(random.Random(k), {"instructions": str(own)}).prompt.split("\n\n")[0] for k in range(30)}
    assert got == {"Describe the sea.", "Summarize this."}


def test_types_that_can_never_go_together_stop_with_one_line():
    with pytest.raises(ConfigError, match=r"^constraints: no task with 2-2 compatible constraints of "
                                          r'\["detectable_format:json_format", "startend:quotation"\] in 200 tries'):
        C.constraints(random.Random(0), {"types": [C.JSON, C.QUOTATION], "count": [2, 2]})


def test_types_and_count_knobs_are_obeyed():
    d = {"types": ["punctuation:no_comma", "detectable_format:title", "startend:quotation"], "count": [2, 2]}
    for k in range(50):
        ids = C.constraints(random.Random(k), d).inputs["instruction_id_list"]
        assert len(ids) == 2 and set(ids) <= set(d["types"])
    words = [C.constraints(random.Random(k), {"types": [C.WORDS], "count": [1, 1], "num_words": [40, 60]})
             .inputs["kwargs"][0]["num_words"] for k in range(50)]
    assert set(words) <= {40, 50, 60} and len(set(words)) == 3  # rounded to tens, inside the range
    assert C.KNOBS["constraints"]["types"].default == [t for t in C.TYPES if t not in C.UNFIT]
    assert set(C.UNFIT) == {C.LANGUAGE, C.REPEAT, C.TWO}


# ------------------------------------------------------------------------------------------- no clashes
def _check_draw(task, bases):
    ids, kwargs = task.inputs["instruction_id_list"], task.inputs["kwargs"]
    assert len(set(ids)) == len(ids)
    assert all(v is not None for kw in kwargs for v in kw.values())
    assert C.clash([C.Constraint(i, kw) for i, kw in zip(ids, kwargs)]) is None
    base = next(b for b in bases if task.prompt.startswith(b.text + "\n\n"))
    assert all(C.fits(i, base) for i in ids), (base.text, ids)
    words = C._words_in(base.text)
    for i, kw in zip(ids, kwargs):  # a word to use or avoid never comes from the instruction itself
        assert not words & set(kw.get("keywords", []) + kw.get("forbidden_words", []) + [kw.get("keyword", "")])
    assert spec.conflict(ids, kwargs) is None, (ids, kwargs)
    for i, kw in zip(ids, kwargs):
        assert spec.kwargs_problem(i, kw) is None, (i, kw)


def test_no_clashing_pair_in_2000_draws():
    for path, types in ((SEED_FILE, None), (EVAL_FILE, None), (SEED_FILE, list(C.TYPES)), (EVAL_FILE, list(C.TYPES))):
        d = {"instructions": path, **({"types": types} if types else {})}
        bases = C.instructions(path)
        for k in range(500):
            _check_draw(C.constraints(random.Random(f"clash:{path}:{types is None}:{k}"), d), bases)


@pytest.mark.parametrize("drawn, reason", [
    ([(C.JSON, {}), (C.QUOTATION, {})], f"{C.JSON} with {C.QUOTATION}"),
    ([(C.NO_COMMA, {}), (C.NO_COMMA, {})], f"{C.NO_COMMA} twice"),
    ([(C.LOWER, {}), (C.END, {"end_phrase": "Thanks for reading."})], "a required phrase has capitals"),
    ([(C.LOWER, {}), (C.CAPITAL_WORDS, {"capital_frequency": 2, "capital_relation": "at least"})],
     f"{C.LOWER} with at least 2 capitalized words"),
    ([(C.UPPER, {}), (C.SECTIONS, {"section_spliter": "Section", "num_sections": 2})],
     "a required phrase has lowercase letters"),
    ([(C.EXISTENCE, {"keywords": ["harbor"]}), (C.FORBIDDEN, {"forbidden_words": ["harbor"]})],
     '"harbor" is forbidden and required'),
    ([(C.WORDS, {"num_words": 40, "relation": "less than"}), (C.PARAGRAPHS, {"num_paragraphs": 5})],
     f"fewer than 40 words for {C.PARAGRAPHS}"),
    ([(C.SENTENCES, {"num_sentences": 3, "relation": "less than"}), (C.BULLETS, {"num_bullets": 4})],
     f"fewer than 3 sentences for 4 parts of {C.BULLETS}"),
    ([(C.SENTENCES, {"num_sentences": 3, "relation": "less than"}), (C.WORDS, {"num_words": 200, "relation": "at least"})],
     "at least 200 words in fewer than 3 sentences"),
    ([(C.LETTER, {"letter": "z", "let_frequency": 2, "let_relation": "less than"}),
      (C.EXISTENCE, {"keywords": ["puzzle"]})], 'the letter "z" is required at least 2 times'),
    ([(C.NO_COMMA, {}), (C.REPEAT, {"prompt_to_repeat": "Describe the sea, then the sky."})],
     "a required phrase has a comma"),
    ([(C.NO_COMMA, {}), (C.TITLE, {}), (C.WORDS, {"num_words": 40, "relation": "less than"})], None),
    ([(C.LOWER, {}), (C.SECTIONS, {"section_spliter": "Section", "num_sections": 2})],
     "a required phrase has capitals"),
    ([(C.UPPER, {}), (C.SECTIONS, {"section_spliter": "SECTION", "num_sections": 2})], None),
])
def test_what_clashes(drawn, reason):
    assert C.clash([C.Constraint(i, kw) for i, kw in drawn]) == reason


def test_what_the_checkers_spec_refuses_is_never_drawn_either(monkeypatch):
    compatible = [C.Constraint(C.NO_COMMA, {}), C.Constraint(C.TITLE, {})]
    assert C.clash(compatible) is None
    monkeypatch.setattr(spec, "conflict", lambda ids, kwargs: f"refused: {ids} {kwargs}")
    assert C.clash(compatible) == f"refused: {[C.NO_COMMA, C.TITLE]} [{{}}, {{}}]"


@pytest.mark.parametrize("text, touched", [
    ("Keep it friendly and under 120 words.", {"count"}),
    ("Give a short comparison as a bulleted list.", {"count", "layout"}),
    ("Write an acrostic poem using the word RIVER.", {"count", "layout", "case"}),
    ("Give keywords as a comma-separated list.", {"layout", "comma"}),
    ("Write a piece in which the final line reveals the narrator.", {"count", "ending"}),
    ("Start the interview.", {"start"}),
    ("Why does ice float on liquid water?", set()),
])
def test_what_an_instruction_already_fixes(text, touched):
    assert C.touches(text) == touched


def test_a_type_is_drawn_only_for_an_instruction_that_admits_it():
    short = C.Base("Keep it under 120 words.", C.touches("Keep it under 120 words."), False)
    assert not C.fits(C.WORDS, short) and not C.fits(C.BULLETS, short) and C.fits(C.NO_COMMA, short)
    question = C.instructions(SEED_FILE)
    yes_no = {b.text for b in question if b.yes_no}
    assert "Is 221 a prime number? Show how you checked." in yes_no
    assert not any(b.startswith(("Write", "Describe", "Explain")) for b in yes_no)
    assert all(not C.fits(C.CONSTRAINED, b) for b in question if not b.yes_no)


# ------------------------------------------------------------------------------------------- the committed split
def test_committed_split_is_what_its_spec_writes(tmp_path):
    shutil.copy(FOLDER / "spec.yaml", tmp_path / "spec.yaml")
    proc = subprocess.run([sys.executable, str(ROOT / "scripts/make_tasks.py"), str(tmp_path / "spec.yaml")],
                          capture_output=True, text=True, cwd=tmp_path, check=False)
    assert proc.returncode == 0, proc.stderr
    for name in ("train.jsonl", "heldout.jsonl"):
        assert (tmp_path / name).read_bytes() == (FOLDER / name).read_bytes(), name


def _split(name):
    return [json.loads(line) for line in (FOLDER / name).read_text().splitlines()]


def test_heldout_and_train_share_no_base_instruction():
    train, heldout = _split("train.jsonl"), _split("heldout.jsonl")
    assert (len(train), len(heldout)) == (400, 120)
    train_bases = {_base_of(r["prompt"], _bases(SEED_FILE)) for r in train}
    heldout_bases = {_base_of(r["prompt"], _bases(EVAL_FILE)) for r in heldout}
    assert not train_bases & heldout_bases and not set(_bases(SEED_FILE)) & set(_bases(EVAL_FILE))
    assert len(heldout_bases) > 60 and len(train_bases) > 100  # spread over the instructions, not a few of them
    assert not any(r["prompt"].startswith(tuple(b + "\n" for b in heldout_bases)) for r in train)


def test_every_type_and_count_appears_in_each_split():
    for name in ("train.jsonl", "heldout.jsonl"):
        rows = _split(name)
        assert {i for r in rows for i in r["instruction_id_list"]} == set(C.DEFAULT_TYPES), name
        assert {len(r["instruction_id_list"]) for r in rows} == {1, 2, 3}, name
        assert all(r["verifier"] == "constraints" and r["answer"] == "" and r["family"] == "constraints"
                   for r in rows)


def test_committed_split_loads_and_passes_the_checks():
    heldout = _split("heldout.jsonl")
    loaded = tasks.load_tasks(FOLDER / "heldout.jsonl")
    assert [t.inputs for t in loaded] == [{"instruction_id_list": r["instruction_id_list"], "kwargs": r["kwargs"]}
                                          for r in heldout]
    assert [t.prompt for t in loaded] == [r["prompt"] for r in heldout]
    assert C.TYPES == spec.INSTRUCTION_IDS


# ------------------------------------------------------------------------------------------- satisfiable
LANGUAGE_TEXT = {
    "es": "El mar estaba tranquilo esta mañana y los pescadores salieron temprano con sus barcas.",
    "fr": "La mer était calme ce matin et les pêcheurs sont partis tôt avec leurs bateaux.",
    "de": "Das Meer war heute Morgen ruhig und die Fischer fuhren früh mit ihren Booten hinaus.",
    "it": "Il mare era calmo stamattina e i pescatori sono usciti presto con le loro barche.",
    "pt": "O mar estava calmo esta manhã e os pescadores saíram cedo com os seus barcos.",
}
PLAIN = "the sea was calm this morning and the boats went out early"


def follow(instruction_id, kw):
    """A response written to follow one constraint with these kwargs (built from them, so any draw is covered)."""
    t = instruction_id
    if t == C.EXISTENCE:
        return "The story mentions " + " and ".join(kw["keywords"]) + "."
    if t == C.FREQUENCY:
        return " ".join([kw["keyword"]] * kw["frequency"]) if kw["relation"] == "at least" else "Calm water."
    if t == C.LETTER:
        return (kw["letter"] * kw["let_frequency"] if kw["let_relation"] == "at least" else "Calm water.") + " ok"
    if t == C.LANGUAGE:
        return LANGUAGE_TEXT[kw["language"]]
    if t == C.SENTENCES:
        return "The sea was calm. " * (kw["num_sentences"] if kw["relation"] == "at least" else 1)
    if t == C.PARAGRAPHS:
        return "\n\n***\n\n".join(["The sea was calm."] * kw["num_paragraphs"])
    if t == C.WORDS:
        return " ".join(["word"] * (kw["num_words"] if kw["relation"] == "at least" else kw["num_words"] - 1))
    if t == C.NTH:
        paragraphs = ["The sea was calm."] * kw["num_paragraphs"]
        paragraphs[kw["nth_paragraph"] - 1] = kw["first_word"].capitalize() + " the sea was calm."
        return "\n\n".join(paragraphs)
    if t == C.PLACEHOLDERS:
        return "Dear " + " ".join(f"[name{i}]" for i in range(kw["num_placeholders"])) + "."
    if t == C.POSTSCRIPT:
        return f"The sea was calm.\n\n{kw['postscript_marker']} The boats are back."
    if t == C.BULLETS:
        return "Things to see:\n" + "\n".join(f"* sight {i}" for i in range(kw["num_bullets"]))
    if t == C.HIGHLIGHTS:
        return "The sea " + " ".join(f"*part {i}*" for i in range(kw["num_highlights"])) + "."
    if t == C.SECTIONS:
        return "\n\n".join(f"{kw['section_spliter']} {i}\nThe sea was calm." for i in range(1, kw["num_sections"] + 1))
    if t == C.REPEAT:
        return kw["prompt_to_repeat"] + "\n\nThe sea was calm."
    if t == C.END:
        return "The sea was calm. " + kw["end_phrase"]
    if t == C.CAPITAL_WORDS:
        return " ".join(["LOUD"] * kw["capital_frequency"] if kw["capital_relation"] == "at least" else ["quiet"])
    return {C.FORBIDDEN: "The sea was calm this morning.", C.CONSTRAINED: "My answer is yes.",
            C.JSON: '{"answer": "The sea was calm."}', C.TITLE: "<<Calm Sea>>\nThe sea was calm.",
            C.TWO: "The sea was calm.\n******\nThe boats went out.", C.UPPER: PLAIN.upper() + ".",
            C.LOWER: PLAIN + ".", C.NO_COMMA: "The sea was calm.", C.QUOTATION: '"The sea was calm."'}[t]


@pytest.mark.parametrize("instruction_id", C.TYPES)
def test_every_drawn_constraint_can_be_followed(instruction_id):
    base = C.instructions(EVAL_FILE)[0]
    for k in range(30):
        kw = C.draw_kwargs(instruction_id, random.Random(k), tasks.resolve_difficulty("constraints", {}), base, [])
        assert checkers.follows(instruction_id, kw, follow(instruction_id, kw)), (kw, follow(instruction_id, kw))


# ------------------------------------------------------------------------------------------- the templates
def test_every_type_has_a_template_with_distinct_one_line_wordings():
    folder = templates.PROMPTS_DIR / "tasks/constraints"
    assert sorted(p.name for p in folder.glob("[!_]*.j2")) == sorted(Path(C.TEMPLATES[t]).name for t in C.TYPES)
    assert all(C.TEMPLATES[t] == f"tasks/constraints/{t.split(':')[1]}.j2" for t in C.TYPES)
    d = tasks.resolve_difficulty("constraints", {"types": list(C.TYPES)})
    for t in C.TYPES:
        kw = C.draw_kwargs(t, random.Random(0), d, C.instructions(EVAL_FILE)[0], [])
        wordings = [C.constraint_sentence(t, kw, s) for s in range(C.WORDINGS[t])]
        assert len(set(wordings)) == C.WORDINGS[t] and all(w and "\n" not in w for w in wordings), t


def test_an_edited_template_changes_the_prompts_and_nothing_drawn(tmp_path, monkeypatch):
    before = tasks.generate_split("constraints", 40, seed=3)
    shutil.copytree(templates.PROMPTS_DIR, tmp_path / "prompts")
    monkeypatch.setattr(templates, "PROMPTS_DIR", tmp_path / "prompts")
    templates.environment.cache_clear()
    try:
        for name in ("no_comma", "_parts"):  # a sentence, and the pieces sentences share
            path = tmp_path / f"prompts/tasks/constraints/{name}.j2"
            path.write_text(path.read_text().replace("comma", "COMMA").replace("fewer than", "under"))
        after = tasks.generate_split("constraints", 40, seed=3)
    finally:
        templates.environment.cache_clear()
    assert [(t.task_id, t.inputs) for t in after] == [(t.task_id, t.inputs) for t in before]
    for was, now in zip(before, after):
        n = len(was.inputs["instruction_id_list"])  # the last n lines are the sentences; the instruction is as it was
        head, sentences = was.prompt.split("\n")[:-n], was.prompt.split("\n")[-n:]
        edited = [s.replace(" comma", " COMMA").replace("fewer than", "under") for s in sentences]
        assert now.prompt == "\n".join(head + edited)
    assert sum(now.prompt != was.prompt for was, now in zip(before, after)) >= 10


def test_public_functions_say_what_they_do():
    import inspect

    assert C.__doc__
    for name, obj in vars(C).items():
        if (inspect.isfunction(obj) or inspect.isclass(obj)) and obj.__module__ == C.__name__ and name[0] != "_":
            assert inspect.getdoc(obj), name
