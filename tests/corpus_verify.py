"""Bad-input corpus rows for tasks, verifiers and answers (regexes, tests that do not compile, GSM8K rows).

Each row of CASES is a tests.corpus_kit.Case; tests/test_bad_input_corpus.py runs them all. A task file is read
by self_instruct (``self_instruct.tasks``, no model loads with ``num_prompts: 0``) and by evaluate
(``evaluate.heldout_tasks``); a task prompt written into an iteration's prompts.jsonl by hand is read by verify.
Line 1 of every file is a good row, so each message must name the bad one.
"""

from __future__ import annotations

from typing import Any

from tests.corpus_kit import GOOD, PROMPTS, RESPONSES, Case, chain, jsonl, params

TASKS = "my_tasks.jsonl"
HELD = "my_heldout.jsonl"
TRAIN = {"self_instruct": {"num_prompts": 0, "tasks": 1}, "data": {"train_tasks": {"path": TASKS}}}
T = f"{TASKS}:2: "

# Rows written for these cases in the datasets' formats (not taken from them).
GOOD_TASK = {"prompt": "What is 2 + 2?", "answer": "4"}
GSM8K = {"question": "Ana has 2 pens and buys 3 more. How many pens has she?", "answer": "2 + 3 = 5\n#### 5"}
HUMANEVAL = {"task_id": "Ours/0", "prompt": "from typing import List\n\n\ndef first(xs: List[int]) -> int:\n"
             '    """The first item of xs."""\n', "canonical_solution": "    return xs[0]\n",
             "test": "def check(candidate):\n    assert candidate([3, 4]) == 3\n", "entry_point": "first"}
MBPP = {"task_id": 1, "text": "Write a function that triples x.", "code": "def triple(x):\n    return 3 * x",
        "test_list": ["assert triple(2) == 6"], "test_setup_code": "", "challenge_test_list": []}
COUNTDOWN = {"nums": [3, 5, 2], "target": 16}


def tasks(bad: dict[str, Any], good: dict[str, Any] = GOOD_TASK, **patch: Any) -> Any:
    """data.train_tasks: a file with ``good`` on line 1 and ``bad`` on line 2, read by self_instruct@M1."""
    return chain(jsonl(TASKS, good, bad), params({**TRAIN, **patch}))


def without(row: dict[str, Any], key: str) -> dict[str, Any]:
    return {k: v for k, v in row.items() if k != key}


def task_prompt(**task: Any) -> Any:
    """data/M1/prompts.jsonl with a good prompt, then task prompt t1; a response to it (verify@M1 reads both)."""
    row = {"prompt_id": "t1", "instruction": "Answer this.", "source": "task", **task}
    response = {**GOOD[RESPONSES], "response_id": "r1", "prompt_id": "t1", "output": "Final answer: 4"}
    return chain(jsonl(PROMPTS, GOOD[PROMPTS], row), jsonl(RESPONSES, GOOD[RESPONSES], response), params({}))


REGEX = ("is not a valid regular expression (unterminated character set at position 6) — the regex verifier matches "
         "answers against it")
FOUR = 'is not a number ("four") — the numeric verifier compares numbers; for text, use verifier "exact"'
NOT_CLOSED = "has a test that does not compile — test 1, line 1: '(' was never closed"
NO_HASHES = ('field "answer" (mapped to answer) has no "#### <answer>" line — a GSM8K answer is the worked solution, '
             'then "#### 1,234"; without it the whole solution would be the answer')
V = 'verify: task prompt "t1": '

CASES: list[Case] = [
    # answers a verifier could never match (issue 22, items 13-14)
    Case("task-regex-invalid", "self_instruct@M1", tasks({"prompt": "Give a year.", "answer": "([1-9][0-9",
                                                           "verifier": "regex"}),
         T + 'field "answer" (mapped to answer) ' + REGEX),
    Case("task-regex-without-pattern", "self_instruct@M1", tasks({"prompt": "Give a year.", "verifier": "regex"}),
         T + 'field "answer" (mapped to answer) missing — name its column with fields, e.g. {"answer": "<column>"}; '
         "the row has prompt, verifier"),
    Case("task-regex-empty-pattern", "self_instruct@M1",
         tasks({"prompt": "Give a year.", "answer": " ", "verifier": "regex"}),
         T + 'field "answer" (mapped to answer) is empty'),
    Case("task-numeric-answer-a-word", "self_instruct@M1", tasks({"prompt": "How many legs has a dog?",
                                                                  "answer": "four"}),
         T + 'field "answer" (mapped to answer) ' + FOUR),
    Case("task-numeric-answer-not-available", "self_instruct@M1", tasks({"prompt": "How many?", "answer": "n/a"}),
         T + 'field "answer" (mapped to answer) is not a number ("n/a") — the numeric verifier compares numbers; '
         'for text, use verifier "exact"'),
    Case("task-numeric-answer-null", "self_instruct@M1", tasks({"prompt": "How many?", "answer": None}),
         T + 'field "answer" (mapped to answer) is empty'),
    Case("task-math-answer-unreadable", "self_instruct@M1",
         tasks({"prompt": "Square x.", "answer": "x^^2", "verifier": "math"}),
         T + 'field "answer" (mapped to answer) is not a mathematical expression math-verify can read ("x^^2") — no '
         "answer could ever equal it"),
    Case("task-math-answer-unfinished", "self_instruct@M1",
         tasks({"prompt": "Add x.", "answer": "x+", "verifier": "math"}),
         T + 'field "answer" (mapped to answer) is not a mathematical expression math-verify can read ("x+") — no '
         "answer could ever equal it"),
    Case("task-unknown-verifier", "self_instruct@M1", tasks({"prompt": "Give a year.", "answer": "1999",
                                                             "verifier": "regx"}),
         T + 'unknown verifier "regx" — did you mean "regex"?'),
    Case("task-answer-a-list", "self_instruct@M1", tasks({"prompt": "Name two.", "answer": ["a", "b"],
                                                          "verifier": "exact"}),
         T + 'field "answer" (mapped to answer) must be text or a number, got ["a", "b"]'),
    # GSM8K rows
    Case("gsm8k-without-hashes", "self_instruct@M1",
         tasks({"question": "Ben has 4 cards and loses 1. How many are left?", "answer": "4 - 1 = 3 cards."}, GSM8K),
         T + NO_HASHES),
    Case("gsm8k-nothing-after-hashes", "self_instruct@M1",
         tasks({"question": "Ben has 4 cards and loses 1. How many?", "answer": "4 - 1 = 3\n#### "}, GSM8K),
         T + 'field "answer" (mapped to answer) has "####" but no answer after it'),
    Case("gsm8k-a-word-after-hashes", "self_instruct@M1",
         tasks({"question": "Ben has 4 cards and loses 1. How many?", "answer": "4 - 1\n#### three"}, GSM8K),
         T + 'field "answer" (mapped to answer) is not a number ("three") — the numeric verifier compares numbers; '
         'for text, use verifier "exact"'),
    # code tasks: tests that do not compile, missing tests
    Case("code-tests-do-not-compile", "self_instruct@M1",
         tasks({"prompt": "Write f.", "answer": "def f():\n    return 1", "verifier": "python_tests",
                "tests": ["assert f() == (1"]}),
         T + 'field "tests" (mapped to tests) ' + NOT_CLOSED),
    Case("code-tests-empty", "self_instruct@M1",
         tasks({"prompt": "Write f.", "answer": "def f():\n    return 1", "verifier": "python_tests", "tests": []}),
         T + 'field "tests" (mapped to tests) must be a non-empty list of test strings'),
    Case("code-without-tests", "self_instruct@M1",
         tasks({"prompt": "Write f.", "answer": "def f():\n    return 1", "verifier": "python_tests"}),
         T + 'verifier "python_tests" needs tests — map them with fields: {tests: <column>}'),
    Case("code-setup-does-not-compile", "self_instruct@M1",
         tasks({"prompt": "Write f.", "answer": "def f():\n    return 1", "verifier": "python_tests",
                "tests": ["assert f() == 1"], "setup": "import"}),
         T + 'field "setup" (mapped to setup) does not compile — line 1: invalid syntax'),
    Case("humaneval-without-entry-point", "self_instruct@M1", tasks(without(HUMANEVAL, "entry_point"), HUMANEVAL),
         T + 'field "entry_point" (mapped to entry_point) missing — name its column with fields, e.g. '
         '{"entry_point": "<column>"}; the row has task_id, prompt, canonical_solution, test'),
    Case("humaneval-empty-entry-point", "self_instruct@M1",
         tasks({**HUMANEVAL, "task_id": "Ours/1", "entry_point": ""}, HUMANEVAL),
         T + 'field "entry_point" (mapped to entry_point) is empty'),
    Case("humaneval-test-does-not-compile", "self_instruct@M1",
         tasks({**HUMANEVAL, "task_id": "Ours/1", "test": "def check(candidate):\n    assert candidate([3]) == (3\n"},
               HUMANEVAL),
         T + 'field "test" (mapped to tests) has a test that does not compile — test 1, line 2: \'(\' was never '
         "closed"),
    Case("mbpp-empty-test-list", "self_instruct@M1", tasks({**MBPP, "task_id": 2, "test_list": []}, MBPP),
         T + 'field "test_list" (mapped to tests) must be a non-empty list of test strings'),
    Case("mbpp-test-does-not-compile", "self_instruct@M1",
         tasks({**MBPP, "task_id": 2, "test_list": ["assert triple(2) == (6"]}, MBPP),
         T + 'field "test_list" (mapped to tests) ' + NOT_CLOSED),
    Case("mbpp-setup-does-not-compile", "self_instruct@M1",
         tasks({**MBPP, "task_id": 2, "test_setup_code": "from import x"}, MBPP),
         T + 'field "test_setup_code" (mapped to setup) does not compile — line 1: invalid syntax'),
    Case("mbpp-duplicate-task-id", "self_instruct@M1", tasks(MBPP, MBPP),
         T + 'duplicate task_id "mbpp-1" (first at line 1)'),
    # countdown
    Case("countdown-no-numbers", "self_instruct@M1", tasks({"nums": [], "target": 4}, COUNTDOWN),
         T + 'field "nums" (mapped to numbers) must be a non-empty list of integers, got []'),
    Case("countdown-numbers-as-text", "self_instruct@M1", tasks({"nums": ["3", "5"], "target": 8}, COUNTDOWN),
         T + 'field "nums" (mapped to numbers) must be a non-empty list of integers, got ["3", "5"]'),
    Case("countdown-target-a-word", "self_instruct@M1", tasks({"nums": [3, 5], "target": "eight"}, COUNTDOWN),
         T + 'field "target" (mapped to target) must be an integer, got "eight"'),
    # the held-out file: read by self_instruct (kept out of training) and by evaluate
    Case("heldout-regex-invalid", "self_instruct@M1",
         chain(jsonl(TASKS, GOOD_TASK), jsonl(HELD, GOOD_TASK, {"prompt": "Year?", "answer": "([1-9][0-9",
                                                                 "verifier": "regex"}),
               params({**TRAIN, "data": {"train_tasks": {"path": TASKS}, "heldout_tasks": {"path": HELD}}})),
         f"{HELD}:2: " + 'field "answer" (mapped to answer) ' + REGEX),
    Case("evaluate-heldout-answer-a-word", "evaluate@M1",
         chain(jsonl(HELD, GOOD_TASK, {"prompt": "How many legs has a dog?", "answer": "four"}),
               params({"data": {"heldout_tasks": {"path": HELD}}, "evaluate": {"heldout_tasks": 2}})),
         f"{HELD}:2: " + 'field "answer" (mapped to answer) ' + FOUR),
    # task prompts written into prompts.jsonl by hand: verify reads them
    Case("verify-regex-invalid", "verify@M1", task_prompt(answer="([1-9][0-9", verifier="regex"),
         V + 'field "answer" ' + REGEX),
    Case("verify-regex-invalid-names-its-task-file", "verify@M1",
         task_prompt(answer="([1-9][0-9", verifier="regex", provenance={"task_source": f"{TASKS}:7"}),
         f'verify: {TASKS}:7: task prompt "t1": field "answer" ' + REGEX),
    Case("verify-tests-do-not-compile", "verify@M1",
         task_prompt(verifier="python_tests", tests=["assert f() == (1"]), V + 'field "tests" ' + NOT_CLOSED),
    Case("verify-code-without-tests", "verify@M1", task_prompt(verifier="python_tests"),
         V + 'field "tests" is empty — the python_tests verifier needs at least one test'),
    Case("verify-unknown-verifier", "verify@M1", task_prompt(answer="4", verifier="numerik"),
         V + 'field "verifier" names an unknown verifier "numerik" — known: numeric, exact, math, regex, countdown, '
         "python_tests, constraints"),
    Case("verify-numeric-answer-a-word", "verify@M1", task_prompt(answer="four", verifier="numeric"),
         V + 'field "answer" ' + FOUR),
    Case("verify-math-answer-unreadable", "verify@M1", task_prompt(answer="x^^2", verifier="math"),
         V + 'field "answer" is not a mathematical expression math-verify can read ("x^^2") — no answer could ever '
         "equal it"),
    Case("verify-exact-without-answer", "verify@M1", task_prompt(verifier="exact"),
         V + 'field "answer" is empty — the exact verifier compares each answer with it'),
    Case("verify-countdown-without-numbers", "verify@M1", task_prompt(verifier="countdown", inputs={"target": 4}),
         V + 'field "numbers" must be a non-empty list of integers, got null'),
]
