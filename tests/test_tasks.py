"""Task families with known answers, their splits, the countdown checker, and the loaders for users' files.

Every answer is recomputed here from the prompt text, independently of the generator.
"""

import ast
import csv
import json
import operator
import random
import re
from collections import Counter
from pathlib import Path

import pytest

from pipeline import tasks as T
from pipeline.errors import ConfigError, RecordError

FINAL = '\nEnd your reply with a line of the form "Final answer: <number>".'


def _run(namespace, *codes):
    """Runs our own reference solutions and tests in-process, in a fresh namespace: trusted code, no sandbox."""
    for code in codes:
        exec(code, namespace)  # noqa: S102
    return namespace


def _split(family, n=150, seed=0, difficulty=None):
    return T.generate_split(family, n, seed, difficulty)


# ------------------------------------------------------------------------------------------ registry, determinism
def test_registry():
    assert set(T.FAMILIES) == {"arithmetic", "multi_step", "comparison", "counting", "countdown", "python_function",
                               "constraints"}
    for name, fam in T.FAMILIES.items():
        assert fam.name == name and fam.description and "\n" not in fam.description
        assert callable(fam) and fam.knobs
        assert fam(random.Random(1), {}).family == name
    from pipeline import verifiable

    # the names a task may carry: the answer checks, plus the three that need the task's inputs
    assert set(T.VERIFIER_NAMES) == set(verifiable.VERIFIERS) | {"countdown", "python_tests", "constraints"}


def test_same_seed_same_tasks_pinned():
    assert _split("arithmetic", 40, 3) == _split("arithmetic", 40, 3)
    assert _split("python_function", 20, 3) == _split("python_function", 20, 3)
    assert _split("arithmetic", 40, 3) != _split("arithmetic", 40, 4)
    a0, a1 = T.generate_split("arithmetic", 2, 0)
    assert (a0.task_id, a0.prompt, a0.answer) == ("arithmetic-9b1c79de5f68", "What is 7 - 1?" + FINAL, "6")
    assert (a1.prompt, a1.answer) == ("What is 2 - 0?" + FINAL, "2")
    assert [(t.prompt, t.answer) for t in T.generate_split("arithmetic", 2, 7)] == [
        ("What is 5 - 4?" + FINAL, "1"), ("What is 1 - 0?" + FINAL, "1")]
    m = T.generate_split("multi_step", 1, 7)[0]
    assert (m.prompt, m.answer) == ("Maya had 6 cards. She sold 4 and then found 11 more. How many cards did she have "
                                    "in the end?" + FINAL, "13")
    c = T.generate_split("countdown", 2, 0)[1]
    assert (c.answer, c.inputs) == ("3 * (3 + 2)", {"numbers": [3, 3, 2], "target": 15})
    assert c.prompt.startswith("Using the numbers 3, 3 and 2, each at most once, and the operations +, - and *, "
                               "write an expression that equals 15.\n")
    p = T.generate_split("python_function", 1, 7)[0]
    assert p.prompt == ("Write a Python function `num_digits(n)` that returns how many decimal digits the integer `n` "
                        ">= 0 has.\nFor example, `num_digits(54091)` should return `5`.\nAnswer with one Python code "
                        "block.")
    assert p.answer == "def num_digits(n):\n    return len(str(n))\n" and p.verifier == "python_tests"


def test_task_fields():
    for fam in T.FAMILIES:
        for t in _split(fam, 30):
            assert t.family == fam and t.source == "builtin"
            assert t.difficulty == T.resolve_difficulty(fam, None)
            if fam == "constraints":  # no known answer: the constraints are checked (tests/test_constraint_family.py)
                assert t.verifier == "constraints" and t.answer == "" and t.tests == [] and t.inputs["kwargs"]
                continue
            assert t.answer
            if fam == "python_function":
                assert t.verifier == "python_tests" and t.tests and t.prompt.endswith("Answer with one Python code block.")
            else:
                assert t.tests == [] and "Final answer: <" in t.prompt.splitlines()[-1]
                assert t.verifier == ("countdown" if fam == "countdown" else "numeric")
            json.dumps(t.to_dict())  # writable as a row


# ------------------------------------------------------------------------------------------ answers and knobs
_ARITH = re.compile(r"What is (-?\d+) ([+*-]) (-?\d+)\?")
_PY_OPS = {"+": operator.add, "-": operator.sub, "*": operator.mul}


@pytest.mark.parametrize("difficulty, lo, hi", [
    (None, 0, 9),
    ({"digits": 2}, 10, 99),
    ({"digits": 2, "ops": ["*"]}, 10, 99),
    ({"ops": ["-"], "non_negative": False}, 0, 9),
])
def test_arithmetic(difficulty, lo, hi):
    tasks = _split("arithmetic", 100, 1, difficulty)
    ops = set((difficulty or {}).get("ops", ["+", "-"]))
    seen_ops, negatives = set(), 0
    for t in tasks:
        a, op, b = _ARITH.match(t.prompt).groups()
        a, b = int(a), int(b)
        assert lo <= a <= hi and lo <= b <= hi
        assert t.answer == str(_PY_OPS[op](a, b))
        seen_ops.add(op)
        negatives += int(t.answer) < 0
    assert seen_ops == ops
    if (difficulty or {}).get("non_negative", True):
        assert negatives == 0
    else:
        assert negatives > 10


_GAIN_WORDS = {"buys", "bought", "finds", "found", "receives", "received", "picks", "picked", "wins", "won"}
_LOSE_WORDS = {"gives", "gave", "loses", "lost", "sells", "sold"}
_TIMES_WORDS = {"doubles": 2, "doubled": 2, "triples": 3, "tripled": 3}
_TOKENS = re.compile(r"\b(" + "|".join(_GAIN_WORDS | _LOSE_WORDS | set(_TIMES_WORDS)) + r")\b|(\d+)")


def _solve_word_problem(text):
    """Reads the problem in order: the first number is the start, each verb acts on the number after it."""
    tokens = _TOKENS.findall(text.split("\n")[0])
    total, steps, values, i = int(tokens[0][1]), 0, [int(tokens[0][1])], 1
    while i < len(tokens):
        verb = tokens[i][0]
        assert verb, f"a number without a verb in {text!r}"
        if verb in _TIMES_WORDS:
            total *= _TIMES_WORDS[verb]
            i += 1
        else:
            n = int(tokens[i + 1][1])
            values.append(n)
            total += n if verb in _GAIN_WORDS else -n
            i += 2
        steps += 1
        assert total >= 0
    return total, steps, values


@pytest.mark.parametrize("difficulty", [None, {"steps": 3}, {"steps": 3, "max_value": 50, "ops": ["+", "-", "*"]}])
def test_multi_step(difficulty):
    d = T.resolve_difficulty("multi_step", difficulty)
    tasks = _split("multi_step", 150, 2, difficulty)
    for t in tasks:
        total, steps, values = _solve_word_problem(t.prompt)
        assert t.answer == str(total) and steps == d["steps"] and max(values) <= d["max_value"]
    assert len({t.prompt.split(" ")[0] for t in tasks}) > 10  # names
    assert len({re.sub(r"\d+|\b[A-Z][a-z]+\b", "", t.prompt)[:25] for t in tasks}) >= 4  # wordings


@pytest.mark.parametrize("difficulty", [None, {"count": 3, "which": ["smaller"]}, {"decimals": 2, "max_value": 10},
                                        {"negatives": True}])
def test_comparison(difficulty):
    d = T.resolve_difficulty("comparison", difficulty)
    for t in _split("comparison", 100, 3, difficulty):
        question = t.prompt.split("\n")[0]
        numbers = re.findall(r"-?\d+(?:\.\d+)?", question)
        assert len(numbers) == d["count"] and len(set(map(float, numbers))) == d["count"]
        pick = max if re.search(r"larg", question) else min
        assert t.answer == pick(numbers, key=float)
        assert all(abs(float(x)) <= d["max_value"] for x in numbers)
        assert all(len(x.partition(".")[2]) <= d["decimals"] for x in numbers)
        if not d["negatives"]:
            assert not any(x.startswith("-") for x in numbers)
        if "smaller" not in d["which"]:
            assert "small" not in question


@pytest.mark.parametrize("difficulty", [None, {"kind": ["list"], "max_items": 12}, {"allow_zero": False}])
def test_counting(difficulty):
    d = T.resolve_difficulty("counting", difficulty)
    zeros = 0
    for t in _split("counting", 100, 4, difficulty):
        question = t.prompt.split("\n")[0]
        letter = re.fullmatch(r'How many times does the letter "(\w)" appear in the word "(\w+)"\?', question)
        if letter:
            assert "letter" in d["kind"]
            expected = letter.group(2).count(letter.group(1))
        else:
            listed, item = re.fullmatch(r'Here is a list of \w+ names: (.+)\. How many times does "(\w+)" appear in '
                                        r"it\?", question).groups()
            listed = listed.split(", ")
            assert 3 <= len(listed) <= d["max_items"]
            expected = listed.count(item)
        assert t.answer == str(expected)
        zeros += expected == 0
    assert (zeros > 0) == d["allow_zero"]


# ------------------------------------------------------------------------------------------ countdown
def _evaluate(expression):
    """Independent of the checker: + - * over integer literals, by hand."""
    def walk(node):
        if isinstance(node, ast.Constant):
            return node.value, [node.value]
        (a, la), (b, lb) = walk(node.left), walk(node.right)
        op = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul}[type(node.op)]
        return op(a, b), la + lb

    return walk(ast.parse(expression, mode="eval").body)


@pytest.mark.parametrize("difficulty", [None, {"count": 4, "max_number": 25}, {"ops": ["+", "*"]}])
def test_countdown_tasks(difficulty):
    d = T.resolve_difficulty("countdown", difficulty)
    for t in _split("countdown", 100, 5, difficulty):
        numbers, target = t.inputs["numbers"], t.inputs["target"]
        value, used = _evaluate(t.answer)
        assert value == target and not Counter(used) - Counter(numbers)
        assert len(numbers) == d["count"] and all(1 <= n <= d["max_number"] for n in numbers)
        assert set(re.findall(r"[+*-]", t.answer)) <= set(d["ops"])
        assert T.check_countdown(t.answer, numbers, target)
        assert f"equals {target}." in t.prompt


@pytest.mark.parametrize("expression, ok", [
    ("(3 + 5) * 2", True),
    ("2 * (5 + 3)", True),
    ("(3 + 5) * 2 = 16", True),  # the equation, when it names the target
    ("2 × (3 + 5)", True),
    ("3 × 5 + 1", False),  # 1 not given
    ("16", False),  # not a given number
    ("3 + 5 + 2", False),  # wrong value
    ("(3 + 5) * 2 = 17", False),
    ("(5 + 5) + 3 * 2", False),  # 5 used twice
    ("(3 + 5) * 2 * 1", False),  # 1 not given
    ("(3 + 5) / 2 * 4", False),  # division not allowed
    ("-3 + 5 * 2 + 9", False),  # unary minus not allowed
    ("2 ** 4", False),
    ("(3 + 5) * 2.0", False),
    ("True * 16", False),
    ("", False),
    ("(3 + 5", False),
    ("__import__('os').system('touch {marker}')", False),
    ("[3, 5, 2]", False),
])
def test_check_countdown(expression, ok, tmp_path):
    marker = tmp_path / "ran"
    assert T.check_countdown(expression.format(marker=marker), [3, 5, 2], 16) is ok
    assert not marker.exists()  # parsed, never run


def test_check_countdown_repeated_numbers():
    assert T.check_countdown("4 * 4", [4, 4, 1], 16)
    assert not T.check_countdown("4 * 4", [4, 1, 2], 16)
    assert not T.check_countdown("1" + " + 1" * 400, [1] * 3, 401)  # too long: refused without parsing


# ------------------------------------------------------------------------------------------ python_function
def test_python_function_reference_solutions_pass_their_tests():
    tasks = _split("python_function", 300, 6)
    assert {t.inputs["template"] for t in tasks} == set(T.CODE_TEMPLATES)
    assert len(T.CODE_TEMPLATES) >= 15
    for t in tasks:
        namespace = _run({}, t.answer, *t.tests)
        assert callable(namespace[t.inputs["entry_point"]])
        assert f"`{t.inputs['entry_point']}(" in t.prompt
        assert len(t.tests) == len(set(t.tests)) == 5 and all(x.startswith("assert ") for x in t.tests)


def test_python_function_wrong_solution_fails():
    t = next(t for t in _split("python_function", 100, 6) if t.inputs["template"] == "reverse")
    namespace = _run({}, f"def {t.inputs['entry_point']}(s):\n    return s\n")
    with pytest.raises(AssertionError):
        _run(namespace, *t.tests)


def test_python_function_knobs():
    tasks = _split("python_function", 40, 8, {"templates": ["fizzbuzz", "clamp"], "num_tests": 8,
                                               "show_examples": 2})
    assert {t.inputs["template"] for t in tasks} == {"fizzbuzz", "clamp"}
    for t in tasks:
        assert len(t.tests) == 8 and t.prompt.count("For example") == 2
        shown = re.findall(r"`(\w+\(.*?\))` should return `(.*?)`\.", t.prompt)
        assert [f"assert {call} == {value}" for call, value in shown] == t.tests[:2]
    assert all("For example" not in t.prompt for t in _split("python_function", 20, 8, {"show_examples": 0}))


# ------------------------------------------------------------------------------------------ knobs and errors
@pytest.mark.parametrize("family, difficulty, message", [
    ("arithmetic", {"digits": 3}, 'arithmetic difficulty "digits": must be an integer from 1 to 2, got 3'),
    ("arithmetic", {"digit": 2}, 'arithmetic difficulty: unknown knob "digit" — did you mean "digits"?'),
    ("arithmetic", {"ops": ["/"]}, 'arithmetic difficulty "ops": must be a non-empty list of "+", "-", "*", got ["/"]'),
    ("arithmetic", {"non_negative": "yes"}, 'arithmetic difficulty "non_negative": must be true or false, got "yes"'),
    ("multi_step", {"steps": 4}, 'multi_step difficulty "steps": must be an integer from 2 to 3, got 4'),
    ("python_function", {"templates": ["quicksort"]}, None),
    ("aritmetic", None, 'unknown task family "aritmetic" — did you mean "arithmetic"?'),
])
def test_bad_difficulty(family, difficulty, message):
    with pytest.raises(ConfigError) as e:
        T.generate_split(family, 3, 0, difficulty)
    assert "\n" not in str(e.value)
    if message:
        assert str(e.value) == message


def test_too_many_tasks_for_the_difficulty():
    with pytest.raises(ConfigError, match=r"^arithmetic: only 155 distinct prompts in 4000 draws with difficulty "
                                          r"\{.*\}; ask for at most 155 or raise the difficulty$"):
        T.generate_split("arithmetic", 200, 0)
    assert len(T.generate_split("arithmetic", 155, 0)) == 155  # 1-digit: 100 sums, 55 ordered differences


# ------------------------------------------------------------------------------------------ splits
@pytest.mark.parametrize("family", sorted(T.FAMILIES))
def test_train_and_heldout_disjoint(family):
    n = 40 if family == "arithmetic" else 150
    train, heldout = T.train_and_heldout(family, n, 60, seed=1, difficulty=None)
    assert len(train) == n and len(heldout) == 60
    assert not {t.prompt for t in train} & {t.prompt for t in heldout}
    assert len({t.prompt for t in train}) == n and len({t.task_id for t in train + heldout}) == n + 60
    # the held-out split is fixed by its own seed: another training seed leaves it as it is
    train2, heldout2 = T.train_and_heldout(family, n, 60, seed=2, difficulty=None)
    assert heldout2 == heldout and train2 != train


def test_split_prefix_and_exclude():
    big = T.generate_split("multi_step", 50, 9)
    assert T.generate_split("multi_step", 20, 9) == big[:20]
    excluded = {big[0].prompt, big[3].prompt}
    again = T.generate_split("multi_step", 20, 9, exclude=excluded)
    assert not excluded & {t.prompt for t in again}
    assert again[0].prompt == big[1].prompt and again[0].task_id == big[0].task_id  # ids are positions
    assert T.generate_split("multi_step", 0, 9) == []


# ------------------------------------------------------------------------------------------ users' files
def _jsonl(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def test_load_generic_jsonl(tmp_path):
    path = _jsonl(tmp_path / "mine.jsonl", [{"prompt": "Capital of France?", "answer": "Paris", "verifier": "exact"},
                                            {"prompt": "2 + 2?", "answer": 4},
                                            {"prompt": "Half of 3?", "answer": 1.5, "task_id": "h"}])
    a, b, c = T.load_tasks(path)
    assert (a.family, a.verifier, a.answer, a.source) == ("mine", "exact", "Paris", f"{path}:1")
    assert a.prompt == 'Capital of France?\nEnd your reply with a line of the form "Final answer: <answer>".'
    assert (b.verifier, b.answer, b.prompt) == ("numeric", "4", "2 + 2?" + FINAL)
    assert (c.task_id, c.answer) == ("h", "1.5")
    assert T.load_tasks(path, format_line=False)[1].prompt == "2 + 2?"
    assert T.load_tasks(path, default_verifier="math")[1].verifier == "math"
    assert [t.task_id for t in T.load_tasks(path)] == [t.task_id for t in T.load_tasks(path)]


def test_gsm8k(tmp_path):
    rows = [{"question": "Tom has 1,000 apples and buys 234 more. How many?",
             "answer": "He has 1,000 + 234 = <<1000+234=1234>>1,234 apples.\n#### 1,234"},
            {"question": "Owe 5?", "answer": "#### -5"}]
    a, b = T.load_tasks(_jsonl(tmp_path / "train.jsonl", rows))
    assert (a.answer, a.family, a.verifier) == ("1234", "gsm8k", "numeric")
    assert a.prompt == rows[0]["question"] + FINAL
    assert b.answer == "-5"


def test_mbpp(tmp_path):
    row = {"task_id": 11, "text": "Write a python function to remove first and last occurrence of a given character.",
           "code": "def remove_Occ(s, ch):\r\n    s = s.replace(ch, '', 1)\r\n    i = s.rfind(ch)\r\n"
                   "    return s if i < 0 else s[:i] + s[i + 1:]",
           "test_list": ['assert remove_Occ("hello","l") == "heo"', 'assert remove_Occ("abcda","a") == "bcd"'],
           "test_setup_code": "", "challenge_test_list": []}
    (t,) = T.load_tasks(_jsonl(tmp_path / "mbpp.jsonl", [row]))
    assert (t.task_id, t.family, t.verifier, t.answer) == ("mbpp-11", "mbpp", "python_tests", row["code"])
    assert t.tests == row["test_list"] and t.inputs == {"entry_point": "remove_Occ"}
    assert t.prompt == (row["text"] + "\nYour code should pass these tests:\n" + "\n".join(row["test_list"])
                        + "\nAnswer with one Python code block.")
    _run({}, t.answer, *t.tests)


def test_humaneval(tmp_path):
    row = {"task_id": "HumanEval/0", "prompt": 'def add_one(x: int) -> int:\n    """Return x plus one."""\n',
           "canonical_solution": "    return x + 1\n",
           "test": "def check(candidate):\n    assert candidate(1) == 2\n    assert candidate(-1) == 0\n",
           "entry_point": "add_one"}
    (t,) = T.load_tasks(_jsonl(tmp_path / "he.jsonl", [row]))
    assert (t.task_id, t.family, t.verifier) == ("HumanEval/0", "humaneval", "python_tests")
    assert t.tests == [row["test"] + "\ncheck(add_one)"] and t.answer == row["prompt"] + row["canonical_solution"]
    assert row["prompt"].rstrip() in t.prompt and t.prompt.endswith("Answer with one Python code block.")
    _run({}, t.answer, *t.tests)
    with pytest.raises(AssertionError):
        _run({}, "def add_one(x):\n    return x\n", *t.tests)


def test_countdown_file(tmp_path):
    (t,) = T.load_tasks(_jsonl(tmp_path / "cd.jsonl", [{"nums": [3, 5, 2], "target": 16}]))
    assert (t.family, t.verifier, t.inputs, t.answer) == ("countdown", "countdown", {"numbers": [3, 5, 2], "target": 16}, "")
    assert "equals 16" in t.prompt and T.check_countdown("(3 + 5) * 2", **t.inputs)


def test_field_mapping_with_nested_paths(tmp_path):
    rows = [{"id": "q1", "turns": [{"content": "What is 6 * 7?"}, {"content": "42"}], "meta": {"answer": {"v": 42}},
             "kind": "numeric", "checks": ["assert f() == 1"]},
            {"id": "q2", "turns": [{"content": "Say hi"}, {"content": "hi"}], "meta": {"answer": {"v": "hi"}},
             "kind": "exact", "checks": ["assert f() == 1"]}]
    path = _jsonl(tmp_path / "chat.jsonl", rows)
    fields = {"prompt": "turns[0].content", "answer": "meta.answer.v", "task_id": "id", "verifier": "kind"}
    a, b = T.load_tasks(path, fields)
    assert (a.task_id, a.prompt.split("\n")[0], a.answer, a.verifier) == ("q1", "What is 6 * 7?", "42", "numeric")
    assert (b.task_id, b.answer, b.verifier) == ("q2", "hi", "exact")
    assert T.load_tasks(path, {**fields, "answer": "turns[-1].content"})[1].answer == "hi"
    code = T.load_tasks(path, {"prompt": "turns[0].content", "answer": "turns[1].content", "tests": "checks"},
                        default_verifier="python_tests")
    assert code[0].tests == ["assert f() == 1"] and code[0].prompt == "What is 6 * 7?"


_ROWS = [{"question": "What is 2 + 3?", "solution": "5"}, {"question": "What is 10 - 4?", "solution": "6"}]
_FIELDS = {"prompt": "question", "answer": "solution"}


def _expect_rows(tasks, path):
    assert [(t.prompt, t.answer, t.verifier) for t in tasks] == [
        ("What is 2 + 3?" + FINAL, "5", "numeric"), ("What is 10 - 4?" + FINAL, "6", "numeric")]
    assert tasks[1].source == f"{path}:{2 if path.suffix != '.csv' else 3}"


def test_load_json(tmp_path):
    path = tmp_path / "t.json"
    path.write_text(json.dumps(_ROWS))
    _expect_rows(T.load_tasks(path, _FIELDS), path)
    path.write_text(json.dumps({"data": _ROWS}))
    _expect_rows(T.load_tasks(path, _FIELDS), path)


def test_load_csv(tmp_path):
    path = tmp_path / "t.csv"
    with path.open("w", newline="") as fh:
        writer = csv.DictWriter(fh, ["question", "solution"])
        writer.writeheader()
        writer.writerows(_ROWS)
    _expect_rows(T.load_tasks(path, _FIELDS), path)


def test_load_parquet(tmp_path):
    import pandas as pd

    path = tmp_path / "t.parquet"
    pd.DataFrame(_ROWS).to_parquet(path)
    _expect_rows(T.load_tasks(path, _FIELDS), path)


def test_load_saved_hf_dataset(tmp_path):
    import datasets

    path = tmp_path / "saved"
    datasets.Dataset.from_list(_ROWS).save_to_disk(str(path))
    _expect_rows(T.load_tasks(path, _FIELDS), path)
    both = tmp_path / "both"
    datasets.DatasetDict({"train": datasets.Dataset.from_list(_ROWS),
                          "test": datasets.Dataset.from_list(_ROWS)}).save_to_disk(str(both))
    with pytest.raises(RecordError) as e:
        T.load_tasks(both, _FIELDS)
    assert str(e.value) == f"{both}: a dataset with splits train, test — point at one, e.g. {both / 'train'}"
    _expect_rows(T.load_tasks(both / "test", _FIELDS), both / "test")


def _error(tmp_path, rows, fields=None, verifier="numeric", name="tasks.jsonl", raw=None):
    path = tmp_path / name
    if raw is not None:
        path.write_bytes(raw)
    else:
        _jsonl(path, rows)
    with pytest.raises(RecordError) as e:
        T.load_tasks(path, fields, verifier)
    message = str(e.value)
    assert "\n" not in message and message.startswith(f"{path}")
    return message[len(str(path)):]


def test_load_errors(tmp_path):
    good = {"question": "Q?", "answer": "1"}
    rows = [good] * 6 + [{"answer": "2"}]
    assert _error(tmp_path, rows, {"prompt": "question"}) == ':7: field "question" (mapped to prompt) missing'
    assert _error(tmp_path, [{"q": "Q?", "a": "1"}]) == (
        ':1: field "prompt" (mapped to prompt) missing — name its column with fields, e.g. '
        '{"prompt": "<column>"}; the row has q, a')
    assert _error(tmp_path, [good], {"prompt": "turns[0"}) == (
        ': fields: bad path "turns[0" for prompt — write keys with dots and list items as [i], e.g. turns[0].content')
    assert _error(tmp_path, [good], {"promt": "question"}) == ': fields: unknown task field "promt" — did you mean "prompt"?'
    nested = [{"turns": ["hi"], "meta": {"a": 1}}]
    assert _error(tmp_path, nested, {"prompt": "turns[2]", "answer": "meta.a"}) == (
        ':1: field "turns[2]" (mapped to prompt) missing — "turns" has 1 item')
    assert _error(tmp_path, nested, {"prompt": "turns[0]", "answer": "meta.b"}) == (
        ':1: field "meta.b" (mapped to answer) missing — "meta" has no key "b"')
    assert _error(tmp_path, nested, {"prompt": "turns.x", "answer": "meta.a"}) == (
        ':1: field "turns.x" (mapped to prompt) missing — "turns" is a list, not a mapping')
    assert _error(tmp_path, [good, {"question": "Q2?", "answer": "  "}]) == ':2: field "answer" (mapped to answer) is empty'
    assert _error(tmp_path, [{"question": "Q?", "answer": "work\n#### "}]) == (
        ':1: field "answer" (mapped to answer) has "####" but no answer after it')
    assert _error(tmp_path, [{"prompt": "P", "answer": ["a"]}]) == (
        ':1: field "answer" (mapped to answer) must be text or a number, got ["a"]')
    assert _error(tmp_path, [good], verifier="numerc") == ': unknown verifier "numerc" (default_verifier) — did you mean "numeric"?'
    assert _error(tmp_path, [{"prompt": "P", "answer": "1", "verifier": "exakt"}]) == (
        ':1: unknown verifier "exakt" — did you mean "exact"?')
    assert _error(tmp_path, [{"prompt": "P", "answer": "1"}], verifier="python_tests") == (
        ':1: verifier "python_tests" needs tests — map them with fields: {tests: <column>}')
    assert _error(tmp_path, [{"prompt": "P", "answer": "1", "task_id": "a"}] * 2) == (
        ':2: duplicate task_id "a" (first at line 1)')
    assert _error(tmp_path, [[1, 2]]) == ":1: expected an object (a mapping of fields), got a list"
    assert _error(tmp_path, None, raw=b'{"prompt": "P", "answer": "1"}\n{"prompt": \n') == (
        ":2: invalid JSON — Expecting value (column 12)")
    assert _error(tmp_path, None, raw=b'{"prompt": "P\xff", "answer": "1"}\n') == ":1: not valid UTF-8 (byte 14 of the line)"
    assert _error(tmp_path, None, raw=b"\n\n") == ": no rows"
    assert _error(tmp_path, None, name="t.txt", raw=b"x") == (
        ': unknown format ".txt" — use .jsonl, .json, .csv, .parquet or a folder saved with datasets\' save_to_disk')
    assert _error(tmp_path, None, name="t.json", raw=b'"x"') == (
        ": expected a JSON array of objects (one per task), got text")
    assert _error(tmp_path, None, name="t.csv", raw=b"prompt,answer\nP,1\nQ,2,3\n") == (
        ":3: 3 values, but the header has 2 columns")
    with pytest.raises(RecordError, match=r"^.*missing\.jsonl: not found$"):
        T.load_tasks(tmp_path / "missing.jsonl")


HE = {"task_id": "Ours/1", "prompt": 'from typing import List\n\n\ndef evens(xs: List[int]) -> List[int]:\n'
      '    """The even numbers of xs, in order."""\n',
      "canonical_solution": "    return [x for x in xs if x % 2 == 0]\n",
      "test": "def check(candidate):\n    assert candidate([1, 2, 4]) == [2, 4]\n", "entry_point": "evens"}
MB = {"task_id": 7, "text": "Write a function that doubles x.", "code": "def double(x):\n    return 2 * x",
      "test_list": ["assert double(2) == 4"], "test_setup_code": "", "challenge_test_list": []}


def test_code_formats_keep_what_their_harness_runs(tmp_path):
    (he,) = T.load_tasks(_jsonl(tmp_path / "he.jsonl", [HE]))
    assert he.inputs == {"entry_point": "evens", "prefix": HE["prompt"]}  # the imports travel with the task
    (mb,) = T.load_tasks(_jsonl(tmp_path / "mb.jsonl", [{**MB, "test_setup_code": "import math"}]))
    assert (mb.inputs, mb.tests) == ({"entry_point": "double", "setup": "import math"}, MB["test_list"])
    mine = T.load_tasks(_jsonl(tmp_path / "mine.jsonl", [
        {"prompt": "Write f.", "answer": "def f():\n    return 1", "verifier": "python_tests",
         "tests": ["assert f() == 1"],
         "prefix": "import math\n", "setup": "X = 1"},
        {"prompt": "What is 2 + 2?", "answer": "4", "setup": 3}]))  # not a code task: its "setup" column is not code
    assert mine[0].inputs == {"prefix": "import math\n", "setup": "X = 1"} and mine[1].inputs == {}


@pytest.mark.parametrize("rows, message", [
    ([{"prompt": "P", "answer": "([1-9][0-9", "verifier": "regex"}],
     (':1: field "answer" (mapped to answer) is not a valid regular expression (unterminated character set at '
     "position 6) — the regex verifier matches answers against it")),
    ([{"prompt": "How many legs has a dog?", "answer": "four"}],
     (':1: field "answer" (mapped to answer) is not a number ("four") — the numeric verifier compares numbers; for '
     'text, use verifier "exact"')),
    ([{"prompt": "Square x.", "answer": "x^^2", "verifier": "math"}],
     (':1: field "answer" (mapped to answer) is not a mathematical expression math-verify can read ("x^^2") — no '
     "answer could ever equal it")),
    ([{"question": "Q?", "answer": "1"}, {"question": "Tom has 3 and buys 2. How many?", "answer": "3 + 2 = 5 apples."}],
     (':2: field "answer" (mapped to answer) has no "#### <answer>" line — a GSM8K answer is the worked solution, '
     'then "#### 1,234"; without it the whole solution would be the answer')),
    ([{"prompt": "Write f.", "answer": "def f():\n    return 1", "verifier": "python_tests",
       "tests": ["assert f() == 1", "assert f() == (2"]}],
     ':1: field "tests" (mapped to tests) has a test that does not compile — test 2, line 1: \'(\' was never closed'),
    ([{**HE, "test": "def check(candidate):\nassert candidate([]) == []\n"}],
     (':1: field "test" (mapped to tests) has a test that does not compile — test 1, line 2: expected an indented '
     "block after function definition on line 1")),
    ([{k: v for k, v in HE.items() if k != "entry_point"}],
     (':1: field "entry_point" (mapped to entry_point) missing — name its column with fields, e.g. '
     '{"entry_point": "<column>"}; the row has task_id, prompt, canonical_solution, test')),
    ([{**MB, "test_list": []}], ':1: field "test_list" (mapped to tests) must be a non-empty list of test strings'),
    ([{**MB, "test_setup_code": "import"}],
     ':1: field "test_setup_code" (mapped to setup) does not compile — line 1: invalid syntax'),
    ([{"nums": [], "target": 4}], ':1: field "nums" (mapped to numbers) must be a non-empty list of integers, got []'),
])
def test_tasks_that_could_never_be_checked_stop_at_load(tmp_path, rows, message):
    assert _error(tmp_path, rows) == message


def test_gsm8k_answers_without_a_solution_still_load(tmp_path):
    rows = [{"question": "Q?", "answer": "1,234"}, {"question": "R?", "answer": "$5"}, {"question": "S?", "answer": -3}]
    assert [t.answer for t in T.load_tasks(_jsonl(tmp_path / "g.jsonl", rows))] == ["1,234", "$5", "-3"]
    words = [{"question": "Capital of France?", "answer": "Paris", "kind": "exact"}]  # no number to find: as it is
    assert T.load_tasks(_jsonl(tmp_path / "x.jsonl", words), {"verifier": "kind"})[0].answer == "Paris"
    worked = [{"question": "Q?", "answer": "It is 2 + 2 = 4."}]  # a mapping that names the answer is read as it is
    assert T.load_tasks(_jsonl(tmp_path / "w.jsonl", worked), {"prompt": "question", "answer": "answer"})[0].answer \
        == "It is 2 + 2 = 4."


@pytest.mark.parametrize("name", ["arithmetic", "countdown"])
def test_committed_task_splits_are_what_their_spec_writes(name, tmp_path):
    """data/tasks/<name>/{train,heldout}.jsonl are reproducible from spec.yaml, disjoint, and load as tasks."""
    import shutil
    import subprocess
    import sys

    root = Path(__file__).resolve().parent.parent
    folder = root / "data/tasks" / name
    shutil.copy(folder / "spec.yaml", tmp_path / "spec.yaml")
    proc = subprocess.run([sys.executable, str(root / "scripts/make_tasks.py"), str(tmp_path / "spec.yaml")],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    rows = {}
    for file in ("train.jsonl", "heldout.jsonl"):
        rows[file] = [json.loads(line) for line in (tmp_path / file).read_text().splitlines()]
        assert rows[file] and (tmp_path / file).read_bytes() == (folder / file).read_bytes(), file
    train, heldout = rows["train.jsonl"], rows["heldout.jsonl"]
    assert not {r["prompt"] for r in train} & {r["prompt"] for r in heldout}
    loaded = T.load_tasks(folder / "heldout.jsonl")
    assert [t.task_id for t in loaded] == [r["task_id"] for r in heldout]
    assert all(t.verifier == r["verifier"] and t.family == r["family"] for t, r in zip(loaded, heldout))


# ------------------------------------------------------------------------------------------ the package, its templates
def test_public_names_and_their_docstrings():
    """Importers see one namespace (``from pipeline.tasks import Task, load_tasks``); every public function and
    class of each module says what it does."""
    import inspect

    from pipeline.tasks import base, code, families, loaders, splits

    assert all(hasattr(T, name) for name in T.__all__)
    assert T.load_tasks is loaders.load_tasks and T.FAMILIES is splits.FAMILIES and T.Task is base.Task
    for module in (base, families, code, splits, loaders):
        assert module.__doc__
        for name, obj in vars(module).items():
            own = (inspect.isfunction(obj) or inspect.isclass(obj)) and obj.__module__ == module.__name__
            if own and name[0] != "_":
                assert inspect.getdoc(obj), f"{module.__name__}.{name} has no docstring"


@pytest.fixture()
def scratch_prompts(tmp_path, monkeypatch):
    """A copy of prompts/ that the templates are read from instead of the repository's."""
    import shutil

    from pipeline import templates

    shutil.copytree(templates.PROMPTS_DIR, tmp_path / "prompts")
    monkeypatch.setattr(templates, "PROMPTS_DIR", tmp_path / "prompts")
    templates.environment.cache_clear()
    yield tmp_path / "prompts"
    templates.environment.cache_clear()


def test_instructions_are_the_templates(request):
    """An edit to a task template, or to the part they share, changes the prompts and nothing that was drawn."""
    # constraints' sentences have templates of their own: tests/test_constraint_family.py edits those
    before = {fam: T.generate_split(fam, 20, 3) for fam in T.FAMILIES if fam != "constraints"}
    prompts = request.getfixturevalue("scratch_prompts")
    edits = {"_parts": ("End your reply with", "Finish with"), "multi_step": ("How many", "HOW MANY"),
             "python_function": ("Write a Python", "Define a Python")}
    for name, (old, new) in edits.items():
        path = prompts / f"tasks/{name}.j2"
        assert old in path.read_text()
        path.write_text(path.read_text().replace(old, new))
    for fam, tasks in before.items():
        again = T.generate_split(fam, 20, 3)
        assert [(t.task_id, t.answer, t.tests, t.inputs, t.difficulty) for t in again] == \
            [(t.task_id, t.answer, t.tests, t.inputs, t.difficulty) for t in tasks]
        for was, now in zip(tasks, again):
            expected = was.prompt
            for name in ("_parts", fam):
                if name in edits:
                    expected = expected.replace(*edits[name])
            assert now.prompt == expected != was.prompt
    assert T.final_answer_line("answer") == 'Finish with a line of the form "Final answer: <answer>".'


def test_task_templates_are_strict_and_keep_users_text(tmp_path):
    """A missing variable is an error, never an empty string; a user's text is data, kept to the character
    (its outer whitespace too, and jinja syntax in it is not run)."""
    import jinja2

    from pipeline.tasks import base

    with pytest.raises(jinja2.UndefinedError):
        base.render("tasks/arithmetic.j2", a=1, op="+")
    row = {"task_id": 3, "text": "\n  Return {{ 7 * 7 }} from f.  ", "code": "def f():\n    return 49\n",
           "test_list": ["assert f() == 49"]}
    (t,) = T.load_tasks(_jsonl(tmp_path / "mbpp.jsonl", [row]))
    assert t.prompt == ("\n  Return {{ 7 * 7 }} from f.  \nYour code should pass these tests:\nassert f() == 49\n"
                        "Answer with one Python code block.")


def test_every_task_template_is_named_where_it_is_used():
    """Each template under prompts/tasks/ is named by a literal in pipeline/tasks/, the way scripts/stage_deps.py
    finds the templates a stage renders (a name built at run time would leave it out of dvc.yaml's deps)."""
    root = Path(__file__).resolve().parent.parent
    source = "".join(p.read_text(encoding="utf-8") for p in (root / "pipeline/tasks").glob("*.py"))
    names = sorted(p.name for p in (root / "prompts/tasks").glob("*.j2") if p.name[0] != "_")
    assert len(names) == 10
    assert [n for n in names if f'"tasks/{n}"' not in source] == []
