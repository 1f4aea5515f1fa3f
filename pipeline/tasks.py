"""Tasks with known answers, for training with verifiable rewards (Iterative RPO), and loaders for users' files.

Built-in families (:data:`FAMILIES`) are pure functions ``(rng, difficulty) -> Task``: the same seed gives the
same task on every machine and Python version (a ``random.Random`` seeded with a string is hashed with SHA-512,
not with ``hash()``). Each has difficulty knobs with defaults, checked on use (one-line :class:`ConfigError`).

- ``arithmetic``: ``a op b``; ``multi_step``: two or three operations in a short word problem;
  ``comparison``: the larger/smaller of two or three numbers; ``counting``: letters in a word, items in a list;
  ``countdown``: reach a target with the given numbers (checked by :func:`check_countdown`, parsed with ``ast``,
  never evaluated); ``python_function``: a small function with assert tests and a reference solution.

:func:`generate_split` draws ``n`` tasks with distinct prompts; :func:`train_and_heldout` keeps a held-out split
fixed by its own seed and never repeats one of its prompts in the training split.

:func:`load_tasks` reads a user's JSONL, JSON, CSV, parquet file or a folder saved by ``datasets``'
``save_to_disk``, with a ``fields`` mapping (nested paths like ``turns[0].content``), and recognizes GSM8K
(``#### 1,234`` → ``1234``), MBPP and HumanEval. Every bad row is one line: ``path:N: reason``. The file
readers and paths are :mod:`pipeline.sources`', shared with the other data files.
"""

from __future__ import annotations

import ast
import dataclasses
import difflib
import json
import math
import operator
import random
import re
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pipeline import verifiable
from pipeline.errors import ConfigError, RecordError
from pipeline.records import stable_id
from pipeline.sources import MISSING, check_fields, kind_of, lookup, open_rows

# The verifiers a task may name (pipeline.verifiable's answer checks, countdown and python_tests).
VERIFIER_NAMES: tuple[str, ...] = verifiable.VERIFIER_NAMES

FINAL_NUMBER = 'End your reply with a line of the form "Final answer: <number>".'
FINAL_EXPRESSION = 'End your reply with a line of the form "Final answer: <expression>".'
CODE_BLOCK = "Answer with one Python code block."


@dataclass(frozen=True)
class Task:
    """One problem with a known answer.

    ``inputs`` holds what a verifier needs besides the answer: ``numbers`` and ``target`` (countdown),
    ``entry_point``, ``prefix`` (code run before the answer: HumanEval's prompt) and ``setup`` (code run after it,
    before the tests: MBPP's ``test_setup_code``). ``source`` says where it came from: ``builtin`` or
    ``path:line``.
    """

    task_id: str
    family: str
    prompt: str
    answer: str
    verifier: str
    tests: list[str] = field(default_factory=list)
    difficulty: dict[str, Any] = field(default_factory=dict)
    inputs: dict[str, Any] = field(default_factory=dict)
    source: str = "builtin"

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


# --------------------------------------------------------------------------------------------- knobs
@dataclass(frozen=True)
class Knob:
    default: Any
    help: str
    check: Callable[[Any], str | None]


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _int_in(lo: int, hi: int) -> Callable[[Any], str | None]:
    return lambda v: None if _is_int(v) and lo <= v <= hi else f"must be an integer from {lo} to {hi}"


def _boolean(v: Any) -> str | None:
    return None if isinstance(v, bool) else "must be true or false"


def _subset(allowed: tuple[str, ...]) -> Callable[[Any], str | None]:
    def check(v: Any) -> str | None:
        if not isinstance(v, list) or not v or any(x not in allowed for x in v):
            return "must be a non-empty list of " + ", ".join(json.dumps(a) for a in allowed)
        return None

    return check


def resolve_difficulty(family: str, difficulty: Mapping[str, Any] | None) -> dict[str, Any]:
    """``difficulty`` over the family's defaults, every value checked; a bad one is a one-line ConfigError."""
    knobs = KNOBS[family]
    difficulty = dict(difficulty or {})
    for key in difficulty:
        if key not in knobs:
            near = difflib.get_close_matches(str(key), list(knobs), n=1)
            hint = f'did you mean "{near[0]}"?' if near else "known: " + ", ".join(knobs)
            raise ConfigError(f'{family} difficulty: unknown knob "{key}" — {hint}')
    out = {k: knob.default for k, knob in knobs.items()}
    out.update(difficulty)
    for key, knob in knobs.items():
        problem = knob.check(out[key])
        if problem:
            raise ConfigError(f'{family} difficulty "{key}": {problem}, got {json.dumps(out[key])}')
    if family == "python_function" and out["show_examples"] > out["num_tests"]:
        raise ConfigError(f'{family} difficulty "show_examples": must be at most num_tests '
                          f"({out['num_tests']}), got {out['show_examples']}")
    if family == "comparison" and out["max_value"] * 10 ** out["decimals"] + 1 < out["count"]:
        raise ConfigError(f'{family} difficulty "max_value": too small for {out["count"]} distinct numbers, '
                          f"got {out['max_value']}")
    return out


def _task(family: str, prompt: str, answer: Any, verifier: str, d: dict[str, Any], *,
          tests: list[str] | None = None, inputs: dict[str, Any] | None = None) -> Task:
    return Task(task_id=stable_id(family, prompt, str(answer)), family=family, prompt=prompt, answer=str(answer),
                verifier=verifier, tests=list(tests or []), difficulty=dict(d), inputs=dict(inputs or {}))


# --------------------------------------------------------------------------------------------- arithmetic
_OPS: dict[str, Callable[[int, int], int]] = {"+": operator.add, "-": operator.sub, "*": operator.mul}


def _operand(rng: random.Random, digits: int) -> int:
    return rng.randint(0 if digits == 1 else 10 ** (digits - 1), 10 ** digits - 1)


def arithmetic(rng: random.Random, difficulty: Mapping[str, Any] | None = None) -> Task:
    d = resolve_difficulty("arithmetic", difficulty)
    op = rng.choice(d["ops"])
    a, b = _operand(rng, d["digits"]), _operand(rng, d["digits"])
    if op == "-" and d["non_negative"] and a < b:
        a, b = b, a
    return _task("arithmetic", f"What is {a} {op} {b}?\n{FINAL_NUMBER}", _OPS[op](a, b), "numeric", d)


# --------------------------------------------------------------------------------------------- multi_step
NAMES = (("Ana", "she"), ("Ben", "he"), ("Chloe", "she"), ("David", "he"), ("Emma", "she"), ("Farid", "he"),
         ("Grace", "she"), ("Hiro", "he"), ("Ines", "she"), ("Jon", "he"), ("Kemi", "she"), ("Leo", "he"),
         ("Maya", "she"), ("Noah", "he"), ("Olga", "she"), ("Priya", "she"), ("Sam", "he"), ("Tara", "she"))
ITEMS = ("apples", "marbles", "stickers", "pencils", "cookies", "stamps", "shells", "cards", "books", "coins")
# (present, past) clauses; the verb always comes before the number, so the problem reads in order.
_GAIN = (("buys {n} more", "bought {n} more"), ("finds {n} more", "found {n} more"),
         ("receives {n} more from a friend", "received {n} more from a friend"),
         ("picks up {n} more", "picked up {n} more"), ("wins {n} more", "won {n} more"))
_LOSE = (("gives {n} away", "gave {n} away"), ("loses {n}", "lost {n}"), ("sells {n}", "sold {n}"),
         ("gives {n} to a neighbour", "gave {n} to a neighbour"))
_TIMES = {2: ("doubles them", "doubled them"), 3: ("triples them", "tripled them")}


def _join(clauses: list[str], last: str = "and") -> str:
    return clauses[0] if len(clauses) == 1 else ", ".join(clauses[:-1]) + f" {last} " + clauses[-1]


def _word_problem(rng: random.Random, name: str, he: str, items: str, start: int, present: list[str],
                  past: list[str]) -> str:
    He = he.capitalize()
    style = rng.randrange(5)
    if style == 0:
        return f"{name} has {start} {items}, {_join(present)}. How many {items} does {he} have now?"
    if style == 1:
        steps = ["First", "Then", "Finally"] if len(present) == 3 else ["First", "Then"]
        body = " ".join(f"{w} {he} {c}." for w, c in zip(steps, present))
        return f"{name} starts with {start} {items}. {body} How many {items} does {name} have at the end?"
    if style == 2:
        return f"{name} had {start} {items}. {He} {_join(past, 'and then')}. How many {items} did {he} have in the end?"
    if style == 3:
        return f"{name} had {start} {items}. After {he} {_join(past)}, how many {items} did {he} have left?"
    return f"There are {start} {items} in {name}'s box. {name} {_join(present)}. How many {items} are in the box now?"


def multi_step(rng: random.Random, difficulty: Mapping[str, Any] | None = None) -> Task:
    d = resolve_difficulty("multi_step", difficulty)
    name, he = rng.choice(NAMES)
    items = rng.choice(ITEMS)
    hi = d["max_value"]
    total = start = rng.randint(2, hi)
    present: list[str] = []
    past: list[str] = []
    for _ in range(d["steps"]):
        op = rng.choice(d["ops"])
        if op == "-" and total < 2:
            op = "+"
        if op == "*":
            k = rng.choice((2, 3))
            clause = _TIMES[k]
            total *= k
        elif op == "+":
            n = rng.randint(1, hi)
            clause = tuple(c.format(n=n) for c in rng.choice(_GAIN))
            total += n
        else:
            n = rng.randint(1, min(hi, total - 1))  # something is always left
            clause = tuple(c.format(n=n) for c in rng.choice(_LOSE))
            total -= n
        present.append(clause[0])
        past.append(clause[1])
    question = _word_problem(rng, name, he, items, start, present, past)
    return _task("multi_step", f"{question}\n{FINAL_NUMBER}", total, "numeric", d)


# --------------------------------------------------------------------------------------------- comparison
def _decimal_text(m: int, places: int) -> str:
    """``m / 10**places`` written without trailing zeros (exact, no float rounding): 911, 2 → ``9.11``."""
    sign, m = ("-" if m < 0 else ""), abs(m)
    whole, frac = divmod(m, 10 ** places) if places else (m, 0)
    frac_text = f"{frac:0{places}d}".rstrip("0") if places else ""
    return f"{sign}{whole}" + (f".{frac_text}" if frac_text else "")


def comparison(rng: random.Random, difficulty: Mapping[str, Any] | None = None) -> Task:
    d = resolve_difficulty("comparison", difficulty)
    scale = 10 ** d["decimals"]
    hi = d["max_value"] * scale
    values = rng.sample(range(-hi if d["negatives"] else 0, hi + 1), d["count"])
    texts = [_decimal_text(v, d["decimals"]) for v in values]
    which = rng.choice(d["which"])
    pick = max if which == "larger" else min
    answer = texts[values.index(pick(values))]
    if d["count"] == 2:
        question = f"Which number is {which}: {texts[0]} or {texts[1]}?"
    else:
        question = f"Which number is the {which[:-1]}st: {texts[0]}, {texts[1]} or {texts[2]}?"
    return _task("comparison", f"{question}\n{FINAL_NUMBER}", answer, "numeric", d)


# --------------------------------------------------------------------------------------------- counting
WORDS = ("strawberry", "banana", "mississippi", "bookkeeper", "committee", "assessment", "balloon", "coffee",
         "letter", "pepper", "success", "tomorrow", "necessary", "parallel", "giraffe", "umbrella", "hippopotamus",
         "programming", "cinnamon", "broccoli", "accommodate", "occurrence", "embarrass", "possession", "referee",
         "address", "google", "bubble", "puzzle", "kangaroo", "chocolate", "elephant", "pineapple", "raspberry",
         "grammar", "dessert", "tennessee", "apparatus", "millennium", "abracadabra", "barrier", "volleyball",
         "mammal", "cucumber", "avocado", "alabama", "engineer", "sleepless", "woodpecker", "lullaby")
LIST_ITEMS = {"fruit": ("apple", "pear", "plum", "grape", "kiwi", "mango"),
              "animal": ("cat", "dog", "bird", "fish", "horse", "goat"),
              "colour": ("red", "blue", "green", "yellow", "black", "white")}


def counting(rng: random.Random, difficulty: Mapping[str, Any] | None = None) -> Task:
    d = resolve_difficulty("counting", difficulty)
    kind = rng.choice(d["kind"])
    absent = d["allow_zero"] and rng.random() < 0.2
    if kind == "letter":
        word = rng.choice(WORDS)
        pool = sorted(set("abcdefghijklmnopqrstuvwxyz") - set(word)) if absent else sorted(set(word))
        letter = rng.choice(pool)
        question = f'How many times does the letter "{letter}" appear in the word "{word}"?'
        answer = word.count(letter)
    else:
        category = rng.choice(sorted(LIST_ITEMS))
        options = LIST_ITEMS[category]
        target = rng.choice(options)
        others = [o for o in options if o != target]
        length = rng.randint(3, d["max_items"])
        listed = [rng.choice(others if absent else options) for _ in range(length)]
        if not absent and target not in listed:
            listed[rng.randrange(length)] = target
        question = f'Here is a list of {category} names: {", ".join(listed)}. How many times does "{target}" appear in it?'
        answer = listed.count(target)
    return _task("counting", f"{question}\n{FINAL_NUMBER}", answer, "numeric", d)


# --------------------------------------------------------------------------------------------- countdown
def _countdown_prompt(numbers: list[int], target: int, ops: Iterable[str] = ("+", "-", "*")) -> str:
    ops = list(ops)
    op_text = _join(ops)
    return (f"Using the numbers {_join([str(n) for n in numbers])}, each at most once, and the operations {op_text}, "
            f"write an expression that equals {target}.\n{FINAL_EXPRESSION}")


def countdown(rng: random.Random, difficulty: Mapping[str, Any] | None = None) -> Task:
    d = resolve_difficulty("countdown", difficulty)
    numbers = [rng.randint(1, d["max_number"]) for _ in range(d["count"])]
    best: tuple[int, str] | None = None
    for _ in range(100):  # bounded: the last draw is kept even if it is trivial
        used = rng.sample(numbers, rng.randint(2, len(numbers)))
        parts: list[tuple[int, str, bool]] = [(n, str(n), True) for n in used]  # value, text, is a leaf
        while len(parts) > 1:
            i, j = rng.sample(range(len(parts)), 2)
            (a, ta, la), (b, tb, lb) = parts[i], parts[j]
            op = rng.choice(d["ops"])
            if op == "-" and a < b:  # intermediate results stay non-negative, as in the game
                (a, ta, la), (b, tb, lb) = (b, tb, lb), (a, ta, la)
            text = f"{ta if la else f'({ta})'} {op} {tb if lb else f'({tb})'}"
            parts = [p for k, p in enumerate(parts) if k not in (i, j)] + [(_OPS[op](a, b), text, False)]
        best = (parts[0][0], parts[0][1])
        if 1 <= best[0] <= d["max_target"] and best[0] not in numbers:
            break
    assert best is not None
    target, expression = best
    return _task("countdown", _countdown_prompt(numbers, target, d["ops"]), expression, "countdown", d,
                 inputs={"numbers": numbers, "target": target})


_AST_OPS: dict[type, Callable[[int, int], int]] = {ast.Add: operator.add, ast.Sub: operator.sub,
                                                   ast.Mult: operator.mul}


def check_countdown(expression: str, numbers: Iterable[int], target: int) -> bool:
    """Whether ``expression`` uses only integers, + - * and parentheses, each given number at most once, and
    equals ``target``. It is parsed with :mod:`ast` and walked; nothing in it is ever evaluated as code, so
    ``__import__('os')`` is merely not allowed. A trailing ``= <target>`` (``3 * 5 + 1 = 16``) is accepted."""
    if not isinstance(expression, str) or len(expression) > 300:
        return False
    text = expression.replace("×", "*").replace("−", "-").strip().rstrip(".").strip()
    if text.count("=") > 1:
        return False
    if "=" in text:
        text, _, claimed = text.partition("=")
        if claimed.strip() != str(target):
            return False
    try:
        tree = ast.parse(text.strip(), mode="eval")
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return False
    leaves: list[int] = []

    def walk(node: ast.AST) -> int | None:
        if isinstance(node, ast.Constant) and type(node.value) is int:
            leaves.append(node.value)
            return node.value
        if isinstance(node, ast.BinOp) and type(node.op) in _AST_OPS:
            left, right = walk(node.left), walk(node.right)
            if left is None or right is None:
                return None
            return _AST_OPS[type(node.op)](left, right)
        return None  # names, calls, attributes, division, powers, unary minus, floats: not allowed

    try:
        value = walk(tree.body)
    except RecursionError:
        return False
    if value is None or Counter(leaves) - Counter(numbers):
        return False
    return value == target


# --------------------------------------------------------------------------------------------- python_function
@dataclass(frozen=True)
class _Fn:
    """One instance of a code template: what to write, the reference solution and how to draw test inputs."""

    name: str
    args: str
    does: str
    solution: str
    ref: Callable[..., Any]
    draw: Callable[[random.Random], tuple[Any, ...]]
    edge: tuple[tuple[Any, ...], ...] = ()


def _text(r: random.Random) -> str:
    return r.choice(WORDS + ("hello world", "a man a plan", "Open AI", "data science", "x", ""))


def _int_list(r: random.Random, lo: int = -50, hi: int = 50, min_len: int = 0) -> list[int]:
    return [r.randint(lo, hi) for _ in range(r.randint(min_len, 7))]


def _code_add(r: random.Random) -> _Fn:
    three = r.random() < 0.5
    n = r.choice(("add", "add_numbers", "total", "plus"))
    if three:
        return _Fn(n, "a, b, c", "returns the sum of `a`, `b` and `c`", f"def {n}(a, b, c):\n    return a + b + c\n",
                   lambda a, b, c: a + b + c, lambda q: (q.randint(-99, 99), q.randint(-99, 99), q.randint(-99, 99)),
                   ((0, 0, 0),))
    return _Fn(n, "a, b", "returns the sum of `a` and `b`", f"def {n}(a, b):\n    return a + b\n",
               lambda a, b: a + b, lambda q: (q.randint(-99, 99), q.randint(-99, 99)), ((0, 0),))


def _code_add_k(r: random.Random) -> _Fn:
    k = r.randint(2, 20)
    n = r.choice((f"add_{k}", "increase", "add_constant"))
    return _Fn(n, "x", f"returns `x` plus {k}", f"def {n}(x):\n    return x + {k}\n", lambda x: x + k,
               lambda q: (q.randint(-99, 99),), ((0,),))


def _code_scale(r: random.Random) -> _Fn:
    k = r.randint(2, 9)
    n = r.choice((f"times_{k}", "scale", "multiply"))
    return _Fn(n, "x", f"returns `x` multiplied by {k}", f"def {n}(x):\n    return x * {k}\n", lambda x: x * k,
               lambda q: (q.randint(-50, 50),), ((0,),))


def _code_reverse(r: random.Random) -> _Fn:
    if r.random() < 0.5:
        n = r.choice(("reverse", "reverse_string", "backwards"))
        return _Fn(n, "s", "returns the string `s` reversed", f"def {n}(s):\n    return s[::-1]\n",
                   lambda s: s[::-1], lambda q: (_text(q),), (("",),))
    n = r.choice(("reverse_words", "words_backwards", "flip_words"))
    sentence = lambda q: (" ".join(q.choice(WORDS) for _ in range(q.randint(1, 5))),)
    return _Fn(n, "s", "returns the words of the string `s` (separated by single spaces) in reverse order, "
               "joined by single spaces", f'def {n}(s):\n    return " ".join(s.split(" ")[::-1])\n',
               lambda s: " ".join(s.split(" ")[::-1]), sentence, (("one",),))


def _code_vowels(r: random.Random) -> _Fn:
    def draw(q: random.Random) -> tuple[str]:
        return ("".join(c.upper() if q.random() < 0.3 else c for c in _text(q)),)

    if r.random() < 0.5:
        n = r.choice(("count_vowels", "vowel_count", "num_vowels"))
        return _Fn(n, "s", "returns how many vowels (a, e, i, o, u, lower or upper case) the string `s` contains",
                   f'def {n}(s):\n    return sum(1 for ch in s.lower() if ch in "aeiou")\n',
                   lambda s: sum(1 for ch in s.lower() if ch in "aeiou"), draw, (("xyz",),))
    n = r.choice(("count_consonants", "consonant_count", "num_consonants"))
    return _Fn(n, "s", "returns how many consonants (letters other than a, e, i, o, u, lower or upper case) the "
               "string `s` contains",
               f'def {n}(s):\n    return sum(1 for ch in s.lower() if ch.isalpha() and ch not in "aeiou")\n',
               lambda s: sum(1 for ch in s.lower() if ch.isalpha() and ch not in "aeiou"), draw, (("aei",),))


def _code_extreme(r: random.Random) -> _Fn:
    which = r.choice(("largest", "smallest"))
    n = r.choice(("largest", "max_of_list", "biggest") if which == "largest" else ("smallest", "min_of_list", "lowest"))
    f = max if which == "largest" else min
    return _Fn(n, "xs", f"returns the {which} number in the non-empty list `xs`",
               f"def {n}(xs):\n    return {f.__name__}(xs)\n", f, lambda q: (_int_list(q, min_len=1),), (([7],),))


def _code_fizzbuzz(r: random.Random) -> _Fn:
    p, q_, w1, w2 = r.choice(((3, 5, "Fizz", "Buzz"), (2, 3, "Fizz", "Buzz"), (3, 7, "Foo", "Bar"),
                              (4, 5, "Ping", "Pong"), (2, 5, "Fizz", "Buzz")))
    n = r.choice(("fizzbuzz", "fizz_buzz", "game_word"))

    def ref(x: int) -> str:
        return w1 + w2 if x % p == 0 and x % q_ == 0 else w1 if x % p == 0 else w2 if x % q_ == 0 else str(x)

    solution = (f"def {n}(n):\n    if n % {p} == 0 and n % {q_} == 0:\n        return \"{w1}{w2}\"\n"
                f"    if n % {p} == 0:\n        return \"{w1}\"\n    if n % {q_} == 0:\n        return \"{w2}\"\n"
                "    return str(n)\n")
    does = (f'returns "{w1}{w2}" if `n` is divisible by both {p} and {q_}, "{w1}" if only by {p}, '
            f'"{w2}" if only by {q_}, and otherwise `n` as a string')
    return _Fn(n, "n", does, solution, ref, lambda q: (q.randint(1, 100),), ((p * q_,), (p,), (q_,), (1,)))


def _code_palindrome(r: random.Random) -> _Fn:
    n = r.choice(("is_palindrome", "palindrome", "reads_same_backwards"))
    pals = ("level", "radar", "noon", "racecar", "abba", "kayak", "refer", "madam", "stats", "a")
    if r.random() < 0.5:
        return _Fn(n, "s", "returns True if the string `s` reads the same forwards and backwards (character by "
                   "character), and False otherwise", f"def {n}(s):\n    return s == s[::-1]\n",
                   lambda s: s == s[::-1], lambda q: (q.choice(pals) if q.random() < 0.5 else q.choice(WORDS),),
                   (("level",), ("hello",)))
    mixed = lambda q: ("".join(c.upper() if q.random() < 0.4 else c
                               for c in (q.choice(pals) if q.random() < 0.5 else q.choice(WORDS))),)
    return _Fn(n, "s", "returns True if the string `s` reads the same forwards and backwards when upper and lower "
               "case are not told apart, and False otherwise",
               f"def {n}(s):\n    s = s.lower()\n    return s == s[::-1]\n",
               lambda s: s.lower() == s.lower()[::-1], mixed, (("Level",), ("Hello",)))


def _code_factorial(r: random.Random) -> _Fn:
    if r.random() < 0.5:
        n = r.choice(("factorial", "fact", "product_up_to"))
        return _Fn(n, "n", "returns n! (the product 1 * 2 * ... * n) for an integer `n` >= 0, where 0! = 1",
                   f"def {n}(n):\n    result = 1\n    for i in range(2, n + 1):\n        result *= i\n    return result\n",
                   math.factorial, lambda q: (q.randint(0, 12),), ((0,), (5,)))
    n = r.choice(("triangle", "sum_up_to", "triangular_number"))
    return _Fn(n, "n", "returns the sum 1 + 2 + ... + n for an integer `n` >= 0 (0 for n = 0)",
               f"def {n}(n):\n    return n * (n + 1) // 2\n", lambda x: x * (x + 1) // 2,
               lambda q: (q.randint(0, 100),), ((0,), (4,)))


def _code_sum_parity(r: random.Random) -> _Fn:
    parity = r.choice(("even", "odd"))
    n = r.choice((f"sum_{parity}s", f"{parity}_total"))
    rest = 0 if parity == "even" else 1
    return _Fn(n, "xs", f"returns the sum of the {parity} numbers in the list `xs` (0 if there are none)",
               f"def {n}(xs):\n    return sum(x for x in xs if x % 2 == {rest})\n",
               lambda xs: sum(x for x in xs if x % 2 == rest), lambda q: (_int_list(q, -20, 20),), (([],),))


def _code_count_letter(r: random.Random) -> _Fn:
    c = r.choice("aeinorst")
    n = r.choice((f"count_{c}", "letter_count", "count_letter"))
    return _Fn(n, "s", f'returns how many times the lowercase letter "{c}" appears in the string `s`',
               f'def {n}(s):\n    return s.count("{c}")\n', lambda s: s.count(c), lambda q: (_text(q),), (("",),))


def _code_divisible(r: random.Random) -> _Fn:
    k = r.randint(2, 12)
    n = r.choice((f"is_divisible_by_{k}", f"divisible_by_{k}", "is_multiple"))
    return _Fn(n, "n", f"returns True if the integer `n` is divisible by {k}, and False otherwise",
               f"def {n}(n):\n    return n % {k} == 0\n", lambda x: x % k == 0,
               lambda q: (q.randint(-20, 20) * k if q.random() < 0.5 else q.randint(-100, 100),), ((0,), (k,), (k + 1,)))


def _code_fibonacci(r: random.Random) -> _Fn:
    first, second = r.choice(((0, 1), (1, 1), (2, 1), (1, 2), (0, 2), (3, 1)))
    n = r.choice(("fib", "fibonacci", "sequence_value"))

    def ref(x: int) -> int:
        a, b = first, second
        for _ in range(x):
            a, b = b, a + b
        return a

    return _Fn(n, "n", f"returns the `n`-th number of the sequence where {n}(0) = {first}, {n}(1) = {second} and each "
               "next number is the sum of the two before it",
               f"def {n}(n):\n    a, b = {first}, {second}\n    for _ in range(n):\n        a, b = b, a + b\n    return a\n",
               ref, lambda q: (q.randint(0, 25),), ((0,), (1,), (10,)))


def _code_repeat(r: random.Random) -> _Fn:
    k = r.randint(2, 5)
    n = r.choice((f"repeat_{k}", "repeat_string", "echo"))
    return _Fn(n, "s", f"returns the string `s` repeated {k} times, with nothing between the copies",
               f"def {n}(s):\n    return s * {k}\n", lambda s: s * k, lambda q: (q.choice(WORDS[:20] + ("ab", "x")),),
               (("",),))


def _code_clamp(r: random.Random) -> _Fn:
    lo, hi = r.randint(-10, 0), r.randint(1, 20)
    n = r.choice(("clamp", "limit", "bound"))
    return _Fn(n, "x", f"returns `x` limited to the range from {lo} to {hi}: {lo} if `x` is below {lo}, {hi} if it "
               f"is above {hi}, and `x` otherwise", f"def {n}(x):\n    return max({lo}, min({hi}, x))\n",
               lambda x: max(lo, min(hi, x)), lambda q: (q.randint(lo - 20, hi + 20),), ((lo - 1,), (hi + 1,), (lo,)))


def _code_gcd(r: random.Random) -> _Fn:
    def draw(q: random.Random) -> tuple[int, int]:
        f = q.randint(1, 12)
        return f * q.randint(1, 10), f * q.randint(1, 10)

    if r.random() < 0.5:
        n = r.choice(("gcd", "greatest_common_divisor", "common_factor"))
        return _Fn(n, "a, b", "returns the greatest common divisor of the positive integers `a` and `b`",
                   f"def {n}(a, b):\n    while b:\n        a, b = b, a % b\n    return a\n", math.gcd, draw,
                   ((12, 18),))
    n = r.choice(("lcm", "least_common_multiple", "common_multiple"))
    return _Fn(n, "a, b", "returns the least common multiple of the positive integers `a` and `b`",
               f"def {n}(a, b):\n    x, y = a, b\n    while y:\n        x, y = y, x % y\n    return a * b // x\n",
               lambda a, b: a * b // math.gcd(a, b), draw, ((4, 6),))


def _code_count_words(r: random.Random) -> _Fn:
    n = r.choice(("count_words", "word_count", "num_words"))
    if r.random() < 0.5:
        def draw(q: random.Random) -> tuple[str]:
            words = [q.choice(WORDS) for _ in range(q.randint(0, 6))]
            return ("".join(w + " " * q.randint(1, 2) for w in words).strip(),)

        return _Fn(n, "s", "returns the number of words in the string `s`, where words are separated by one or more "
                   "spaces", f"def {n}(s):\n    return len(s.split())\n", lambda s: len(s.split()), draw, (("",),))
    return _Fn(n, "s", "returns the number of items in the string `s`, a list of items separated by commas "
               "(an empty string has none)", f'def {n}(s):\n    return len(s.split(",")) if s else 0\n',
               lambda s: len(s.split(",")) if s else 0,
               lambda q: (",".join(q.choice(WORDS) for _ in range(q.randint(1, 6))),), (("",), ("one",)))


def _code_powers(r: random.Random) -> _Fn:
    p = r.choice((2, 3))
    word = {2: "square", 3: "cube"}[p]
    n = r.choice((f"{word}s", f"{word}_all", f"{word}_list"))
    return _Fn(n, "xs", f"returns a new list with the {word} of each number in the list `xs`, in the same order",
               f"def {n}(xs):\n    return [x ** {p} for x in xs]\n", lambda xs: [x ** p for x in xs],
               lambda q: (_int_list(q, -9, 9),), (([],),))


def _code_digit_sum(r: random.Random) -> _Fn:
    what = r.choice(("sum", "product", "count"))
    n = r.choice({"sum": ("digit_sum", "sum_of_digits", "add_digits"),
                  "product": ("digit_product", "product_of_digits", "multiply_digits"),
                  "count": ("digit_count", "count_digits", "num_digits")}[what])
    ref = {"sum": lambda x: sum(int(c) for c in str(x)), "product": lambda x: math.prod(int(c) for c in str(x)),
           "count": lambda x: len(str(x))}[what]
    body = {"sum": "return sum(int(d) for d in str(n))",
            "product": "result = 1\n    for d in str(n):\n        result *= int(d)\n    return result",
            "count": "return len(str(n))"}[what]
    does = {"sum": "the sum of the decimal digits of the integer `n` >= 0",
            "product": "the product of the decimal digits of the integer `n` >= 0",
            "count": "how many decimal digits the integer `n` >= 0 has"}[what]
    return _Fn(n, "n", f"returns {does}", f"def {n}(n):\n    {body}\n",
               ref, lambda q: (q.randint(0, 99999),), ((0,), (7,)))


CODE_TEMPLATES: dict[str, Callable[[random.Random], _Fn]] = {
    "add": _code_add, "add_constant": _code_add_k, "scale": _code_scale, "reverse": _code_reverse,
    "count_vowels_or_consonants": _code_vowels, "max_or_min": _code_extreme, "fizzbuzz": _code_fizzbuzz,
    "is_palindrome": _code_palindrome, "factorial_or_triangle": _code_factorial, "sum_even_or_odd": _code_sum_parity,
    "count_letter": _code_count_letter, "is_divisible": _code_divisible, "fibonacci_like": _code_fibonacci,
    "repeat_string": _code_repeat, "clamp": _code_clamp, "gcd_or_lcm": _code_gcd, "count_words": _code_count_words,
    "powers": _code_powers, "digits": _code_digit_sum,
}


def _call(name: str, args: tuple[Any, ...]) -> str:
    return f"{name}({', '.join(repr(a) for a in args)})"


def python_function(rng: random.Random, difficulty: Mapping[str, Any] | None = None) -> Task:
    d = resolve_difficulty("python_function", difficulty)
    key = rng.choice(d["templates"])
    fn = CODE_TEMPLATES[key](rng)
    # The prompt (and its examples) depends on the function asked for only, so deduplicating prompts also
    # deduplicates functions: a held-out function never reappears in training with another example.
    spec_rng = random.Random(f"python_function|{key}|{fn.name}|{fn.does}")
    calls: list[tuple[Any, ...]] = []
    for _ in range(50):
        if len(calls) >= d["show_examples"]:
            break
        args = fn.draw(spec_rng)
        if args not in calls:
            calls.append(args)
    calls += [args for args in fn.edge if args not in calls]
    for _ in range(50):
        if len(calls) >= d["num_tests"]:
            break
        args = fn.draw(rng)
        if args not in calls:
            calls.append(args)
    tests = [f"assert {_call(fn.name, args)} == {fn.ref(*args)!r}" for args in calls]
    examples = "".join(f"For example, `{_call(fn.name, args)}` should return `{fn.ref(*args)!r}`.\n"
                       for args in calls[:d["show_examples"]])
    prompt = f"Write a Python function `{fn.name}({fn.args})` that {fn.does}.\n{examples}{CODE_BLOCK}"
    return _task("python_function", prompt, fn.solution, "python_tests", d, tests=tests,
                 inputs={"entry_point": fn.name, "template": key})


# --------------------------------------------------------------------------------------------- registry
KNOBS: dict[str, dict[str, Knob]] = {
    "arithmetic": {
        "digits": Knob(1, "digits of each operand: 1 (0-9) or 2 (10-99)", _int_in(1, 2)),
        "ops": Knob(["+", "-"], "operators to draw from", _subset(("+", "-", "*"))),
        "non_negative": Knob(True, "order a subtraction's operands so the answer is >= 0", _boolean),
    },
    "multi_step": {
        "steps": Knob(2, "operations after the starting amount: 2 or 3", _int_in(2, 3)),
        "max_value": Knob(20, "largest starting amount and largest amount added or taken away", _int_in(2, 1000)),
        "ops": Knob(["+", "-"], "kinds of step: + (buys more), - (gives away), * (doubles/triples)",
                    _subset(("+", "-", "*"))),
    },
    "comparison": {
        "count": Knob(2, "how many numbers to compare: 2 or 3", _int_in(2, 3)),
        "max_value": Knob(100, "largest magnitude", _int_in(1, 10 ** 9)),
        "decimals": Knob(0, "decimal places (0-2; trailing zeros dropped, so 9.9 meets 9.11)", _int_in(0, 2)),
        "negatives": Knob(False, "draw negative numbers too", _boolean),
        "which": Knob(["larger", "smaller"], "questions to ask", _subset(("larger", "smaller"))),
    },
    "counting": {
        "kind": Knob(["letter", "list"], "letters in a word, or items in a list", _subset(("letter", "list"))),
        "max_items": Knob(8, "longest list (items)", _int_in(3, 30)),
        "allow_zero": Knob(True, "sometimes ask for something absent (answer 0)", _boolean),
    },
    "countdown": {
        "count": Knob(3, "how many numbers are given", _int_in(2, 6)),
        "max_number": Knob(10, "largest given number", _int_in(2, 100)),
        "ops": Knob(["+", "-", "*"], "operators allowed", _subset(("+", "-", "*"))),
        "max_target": Knob(100, "largest target", _int_in(1, 10 ** 6)),
    },
    "python_function": {
        "templates": Knob(list(CODE_TEMPLATES), "which function templates to draw from",
                          _subset(tuple(CODE_TEMPLATES))),
        "num_tests": Knob(5, "asserts per task (examples and edge cases included)", _int_in(1, 20)),
        "show_examples": Knob(1, "tests shown in the prompt as examples", _int_in(0, 5)),
    },
}


@dataclass(frozen=True)
class Family:
    """A task family: called as ``family(rng, difficulty)``; ``description`` is one line, ``knobs`` its knobs."""

    name: str
    make: Callable[[random.Random, Mapping[str, Any] | None], Task]
    description: str

    @property
    def knobs(self) -> dict[str, Knob]:
        return KNOBS[self.name]

    def __call__(self, rng: random.Random, difficulty: Mapping[str, Any] | None = None) -> Task:
        return self.make(rng, difficulty)


FAMILIES: dict[str, Family] = {f.name: f for f in (
    Family("arithmetic", arithmetic, "a op b with one- or two-digit operands; the answer is the exact integer"),
    Family("multi_step", multi_step, "a short word problem with 2-3 steps (buys, gives away, doubles)"),
    Family("comparison", comparison, "the larger or smaller of two or three numbers"),
    Family("counting", counting, "occurrences of a letter in a word or of an item in a list"),
    Family("countdown", countdown, "reach a target with given numbers and + - *; the answer is an expression"),
    Family("python_function", python_function, "a small Python function checked by assert tests"),
)}


def get_family(name: str) -> Family:
    if name not in FAMILIES:
        near = difflib.get_close_matches(str(name), list(FAMILIES), n=1)
        hint = f'did you mean "{near[0]}"?' if near else "known: " + ", ".join(FAMILIES)
        raise ConfigError(f'unknown task family "{name}" — {hint}')
    return FAMILIES[name]


# --------------------------------------------------------------------------------------------- splits
def generate_split(family: str, n: int, seed: int, difficulty: Mapping[str, Any] | None = None,
                   exclude: Iterable[str] = ()) -> list[Task]:
    """``n`` tasks of a family with distinct prompts, none of them in ``exclude`` (prompt texts).

    Draw ``k`` uses its own generator (seeded by family, seed and k), so a split of 100 is the first 100 of a
    split of 200 with the same seed. Ids come from family, seed, index and the resolved difficulty.
    """
    fam = get_family(family)
    d = resolve_difficulty(fam.name, difficulty)
    if not _is_int(n) or n < 0:
        raise ConfigError(f"{fam.name}: the number of tasks must be an integer >= 0, got {n!r}")
    blocked = set(exclude)
    out: list[Task] = []
    attempts = max(1000, 20 * n)
    for k in range(attempts):
        if len(out) == n:
            break
        task = fam(random.Random(f"{fam.name}:{seed}:{k}"), d)
        if task.prompt in blocked:
            continue
        blocked.add(task.prompt)
        out.append(dataclasses.replace(task, task_id=stable_id(fam.name, seed, len(out), d)))
    if len(out) < n:
        raise ConfigError(f"{fam.name}: only {len(out)} distinct prompts in {attempts} draws with difficulty "
                          f"{json.dumps(d, sort_keys=True)}; ask for at most {len(out)} or raise the difficulty")
    return out


HELDOUT_SEED = 1_000_003


def train_and_heldout(family: str, n_train: int, n_heldout: int, seed: int,
                      difficulty: Mapping[str, Any] | None = None, heldout_seed: int = HELDOUT_SEED
                      ) -> tuple[list[Task], list[Task]]:
    """A training split drawn with ``seed`` and a held-out split fixed by ``heldout_seed`` (changing the
    training seed leaves it as it is, so evaluations stay comparable); no held-out prompt is trained on."""
    heldout = generate_split(family, n_heldout, heldout_seed, difficulty)
    train = generate_split(family, n_train, seed, difficulty, exclude={t.prompt for t in heldout})
    return train, heldout


# --------------------------------------------------------------------------------------------- users' files
# What a ``fields`` mapping may set: the Task's own fields, and the inputs some verifiers need.
MAPPABLE = ("prompt", "answer", "verifier", "tests", "task_id", "family", "entry_point", "numbers", "target",
            "prefix", "setup")
# Where the code formats keep each field, for messages about them.
_CODE_COLUMNS = {"humaneval": {"prompt": "prompt", "answer": "canonical_solution", "tests": "test",
                               "prefix": "prompt", "entry_point": "entry_point"},
                 "mbpp": {"prompt": "text", "answer": "code", "tests": "test_list", "setup": "test_setup_code"}}


def _detect(keys: Iterable[str]) -> str:
    keys = set(keys)
    if {"prompt", "canonical_solution", "test"} <= keys:  # entry_point missing: said by the reader
        return "humaneval"
    if {"text", "code", "test_list"} <= keys:
        return "mbpp"
    if "target" in keys and ({"nums", "numbers"} & keys) and "prompt" not in keys:
        return "countdown"
    if {"question", "answer"} <= keys and "prompt" not in keys:
        return "gsm8k"
    return "generic"


class _Row:
    """One source row, with the mapping that reads Task fields out of it and the errors it raises."""

    def __init__(self, where: str, raw: dict[str, Any], mapping: dict[str, str]):
        self.where, self.raw, self.mapping = where, raw, mapping

    def fail(self, reason: str) -> RecordError:
        return RecordError(f"{self.where}{reason}")

    def get(self, target: str, path: str | None = None, required: bool = True) -> Any:
        """The value at ``path`` (by default the one mapped to ``target``); ``MISSING`` if absent and optional."""
        path = path or self.mapping.get(target, target)
        value, why = lookup(self.raw, path)
        if value is MISSING:
            if why == "" and target not in self.mapping:  # read by its default name: say how to point elsewhere
                why = (f'name its column with fields, e.g. {{"{target}": "<column>"}}; the row has '
                       + ", ".join(map(str, self.raw)))
            return self._absent(path, target, required, why or "")
        if value is None or (isinstance(value, float) and math.isnan(value)) or (isinstance(value, str)
                                                                                  and not value.strip()):
            if required:
                raise self.fail(f'field "{path}" (mapped to {target}) is empty')
            return MISSING
        return value

    def _absent(self, path: str, target: str, required: bool, why: str) -> Any:
        if required:
            raise self.fail(f'field "{path}" (mapped to {target}) missing' + (f" — {why}" if why else ""))
        return MISSING

    def text(self, target: str, path: str | None = None) -> str:
        value = self.get(target, path)
        if not isinstance(value, str):
            raise self.fail(f'field "{path or self.mapping.get(target, target)}" (mapped to {target}) must be '
                            f"text, got {json.dumps(value, default=str)[:40]}")
        return value


_BARE_ANSWER = re.compile(r"[-+]?\$?\d[\d,]*(?:\.\d+)?%?")


def _answer_text(row: _Row, value: Any, path: str, gsm8k: bool = False) -> str:
    if isinstance(value, bool) or not isinstance(value, (str, int, float)) or (isinstance(value, float)
                                                                               and not math.isfinite(value)):
        raise row.fail(f'field "{path}" (mapped to answer) must be text or a number, got '
                       f"{json.dumps(value, default=str)[:40]}")
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    text = str(value).strip()
    if "####" in text:  # GSM8K: the worked solution, then "#### 1,234"
        text = text.rsplit("####", 1)[1].strip().replace(",", "")
        if not text:
            raise row.fail(f'field "{path}" (mapped to answer) has "####" but no answer after it')
    elif gsm8k and not _BARE_ANSWER.fullmatch(text):
        raise row.fail(f'field "{path}" (mapped to answer) has no "#### <answer>" line — a GSM8K answer is the '
                       "worked solution, then \"#### 1,234\"; without it the whole solution would be the answer")
    return text


def _tests(row: _Row, value: Any, path: str) -> list[str]:
    if isinstance(value, str) and value.lstrip().startswith("["):
        try:
            value = json.loads(value)
        except json.JSONDecodeError:
            pass
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, (list, tuple)) or not value or not all(isinstance(t, str) and t.strip() for t in value):
        raise row.fail(f'field "{path}" (mapped to tests) must be a non-empty list of test strings')
    return list(value)


def _check_verifier(name: Any, where: str, what: str) -> str:
    if name not in VERIFIER_NAMES:
        near = difflib.get_close_matches(str(name), VERIFIER_NAMES, n=1)
        hint = f'did you mean "{near[0]}"?' if near else "known: " + ", ".join(VERIFIER_NAMES)
        raise RecordError(f'{where}unknown verifier "{name}"{what} — {hint}')
    return name


def _paths(row: _Row, fmt: str) -> dict[str, str]:
    """Where each Task field is read from in this row: the format's columns, overridden by ``fields``."""
    raw = row.raw
    paths: dict[str, str] = {}
    if fmt == "generic":
        paths = {"prompt": "prompt", "answer": "answer"}
        paths.update({k: k for k in MAPPABLE if k in raw and k not in paths})
    elif fmt == "gsm8k":
        paths = {"prompt": "question", "answer": "answer"}
    elif fmt == "countdown":
        paths = {"numbers": "nums" if "nums" in raw else "numbers", "target": "target"}
        paths.update({k: k for k in ("prompt", "answer", "task_id") if k in raw})
    return {**paths, **row.mapping}


def _code_format(row: _Row, fmt: str) -> dict[str, Any]:
    """MBPP's and HumanEval's tasks, built from several columns each."""
    if fmt == "humaneval":
        entry = row.text("entry_point")
        code = row.text("prompt", "prompt")
        # The harness runs prompt + completion + test + check(entry_point): the prompt's imports and helpers
        # are part of the program (rewards.code_program), not only of the question.
        out = {"prompt": f"Complete this Python function:\n```python\n{code.rstrip()}\n```\n{CODE_BLOCK}",
               "answer": code + row.text("answer", "canonical_solution"), "verifier": "python_tests",
               "tests": [row.text("tests", "test") + f"\ncheck({entry})"], "family": "humaneval",
               "inputs": {"entry_point": entry, "prefix": code}}
        task_id = row.get("task_id", "task_id", required=False)
    else:
        asserts = _tests(row, row.get("tests", "test_list"), "test_list")
        setup = row.get("setup", "test_setup_code", required=False)
        code = row.text("answer", "code")
        # The function to write is the one the solution defines and the tests call.
        defined = re.findall(r"^def\s+(\w+)\s*\(", code, re.MULTILINE)
        called = [name for name in defined if any(re.search(rf"\b{name}\s*\(", t) for t in asserts)]
        shown = "\n".join(asserts)
        inputs: dict[str, Any] = {"entry_point": called[0]} if called else {}
        if setup is not MISSING:
            if not isinstance(setup, str):
                raise row.fail('field "test_setup_code" (mapped to setup) must be text')
            inputs["setup"] = setup  # run after the code, before the tests, as MBPP's harness does
        out = {"prompt": f"{row.text('prompt', 'text')}\nYour code should pass these tests:\n{shown}\n{CODE_BLOCK}",
               "answer": code, "verifier": "python_tests", "family": "mbpp", "tests": asserts, "inputs": inputs}
        task_id = row.get("task_id", "task_id", required=False)
        task_id = task_id if task_id is MISSING else f"mbpp-{task_id}"
    if task_id is not MISSING:
        out["task_id"] = str(task_id)
    return out


def _build(row: _Row, fmt: str, family_name: str, default_verifier: str, format_line: bool) -> dict[str, Any]:
    """The Task fields of one row: the format's own reading, then whatever ``fields`` maps explicitly."""
    out: dict[str, Any] = {"family": family_name, "tests": [], "inputs": {}}
    if fmt in ("mbpp", "humaneval"):
        out.update(_code_format(row, fmt))
    elif fmt in ("countdown", "gsm8k"):
        out.update(family=fmt, **({"verifier": "countdown"} if fmt == "countdown" else {}))
    paths = _paths(row, fmt)
    if "verifier" in paths:
        out["verifier"] = _check_verifier(row.get("verifier", paths["verifier"]), row.where, "")
    verifier = out.setdefault("verifier", default_verifier)
    for target, path in paths.items():
        if target == "verifier":
            continue
        if (verifier == "countdown" and target in ("prompt", "answer") and target not in row.mapping
                and row.get(target, path, required=False) is MISSING):
            continue  # the prompt is built from the numbers and target; any expression reaching it will do
        if target in ("prefix", "setup") and target not in row.mapping and verifier != "python_tests":
            continue  # a column of that name in a file of other tasks is not code
        value = row.get(target, path)
        if target == "prompt":
            out["prompt"] = row.text(target, path)
        elif target == "answer":
            gsm8k = fmt == "gsm8k" and "answer" not in row.mapping and verifier == "numeric"
            out["answer"] = _answer_text(row, value, path, gsm8k=gsm8k)
        elif target in ("prefix", "setup"):
            out["inputs"][target] = row.text(target, path)
        elif target == "tests":
            out["tests"] = _tests(row, value, path)
        elif target in ("task_id", "family"):
            if not isinstance(value, (str, int)) or isinstance(value, bool):
                raise row.fail(f'field "{path}" (mapped to {target}) must be text or an integer')
            out[target] = str(value)
        elif target == "entry_point":
            out["inputs"]["entry_point"] = row.text(target, path)
        elif target == "numbers":
            if not isinstance(value, (list, tuple)) or not value or not all(_is_int(v) for v in value):
                raise row.fail(f'field "{path}" (mapped to numbers) must be a non-empty list of integers, got '
                               f"{json.dumps(value, default=str)[:40]}")
            out["inputs"]["numbers"] = list(value)
        elif target == "target":
            if not _is_int(value):
                raise row.fail(f'field "{path}" (mapped to target) must be an integer, got '
                               f"{json.dumps(value, default=str)[:40]}")
            out["inputs"]["target"] = value
    if verifier == "countdown":
        for need in ("numbers", "target"):
            if need not in out["inputs"]:
                raise row.fail(f'verifier "countdown" needs {need} — map them with fields: '
                               "{numbers: <column>, target: <column>}")
        out.setdefault("prompt", _countdown_prompt(out["inputs"]["numbers"], out["inputs"]["target"]))
        out.setdefault("answer", "")
    if verifier == "python_tests" and not out["tests"]:
        raise row.fail('verifier "python_tests" needs tests — map them with fields: {tests: <column>}')
    problem = verifiable.task_problem(verifier, out.get("answer"), out["tests"], out["inputs"])
    if problem is not None:
        target, reason = problem
        path = {**_CODE_COLUMNS.get(fmt, {}), **paths}.get(target, target)
        raise row.fail(f'field "{path}" (mapped to {target}) {reason}')
    if format_line and verifier != "python_tests" and "final answer" not in out["prompt"].lower():
        line = {"countdown": FINAL_EXPRESSION, "numeric": FINAL_NUMBER}.get(
            verifier, FINAL_NUMBER.replace("<number>", "<answer>"))
        out["prompt"] = f"{out['prompt'].rstrip()}\n{line}"
    return out


def load_tasks(path: str | Path, fields: Mapping[str, str] | None = None, default_verifier: str = "numeric",
               format_line: bool = True) -> list[Task]:
    """Tasks from a user's JSONL, JSON (an array of objects), CSV, parquet file or ``save_to_disk`` folder.

    ``fields`` maps a Task field (:data:`MAPPABLE`) to where it is in a row: ``{"prompt": "question"}``,
    ``{"answer": "meta.answer"}``, ``{"prompt": "turns[0].content"}``. Without a mapping, ``prompt`` and
    ``answer`` are read from columns of those names, and these formats are recognized by their columns:
    GSM8K (``question``, ``answer`` ending in ``#### N``: the answer is N without commas), MBPP (``text``,
    ``code``, ``test_list``), HumanEval (``prompt``, ``canonical_solution``, ``test``, ``entry_point``) and
    Countdown (``nums``/``numbers``, ``target``). A mapping overrides the format's reading field by field.
    Non-code prompts get the ``Final answer:`` line the built-in families ask for, unless they mention one or
    ``format_line`` is False. Every bad row fails with one line, ``path:N: reason``.
    """
    path = Path(path)
    _check_verifier(default_verifier, f"{path}: ", " (default_verifier)")
    mapping = check_fields(path, fields, MAPPABLE, "task field")
    rows = open_rows(path, item="task")
    family_name = path.stem if not path.is_dir() else path.name
    tasks: list[Task] = []
    seen: dict[str, int] = {}
    fmt: str | None = None
    for number, raw in rows.rows:
        where = f"{path}:{number}: "
        if not isinstance(raw, dict):
            raise RecordError(f"{where}expected an object (a mapping of fields), got {kind_of(raw)}")
        fmt = fmt or _detect(raw)
        row = _Row(where, raw, mapping)
        built = _build(row, fmt, family_name, default_verifier, format_line)
        task_id = built.get("task_id") or stable_id(built["family"], number, built["prompt"])
        if task_id in seen:
            raise RecordError(f'{where}duplicate task_id "{task_id}" (first at {rows.unit} {seen[task_id]})')
        seen[task_id] = number
        tasks.append(Task(task_id=task_id, family=built["family"], prompt=built["prompt"], answer=built["answer"],
                          verifier=built["verifier"], tests=built["tests"], inputs=built["inputs"],
                          source=f"{path}:{number}"))
    if not tasks:
        raise RecordError(f"{path}: no rows")
    return tasks
