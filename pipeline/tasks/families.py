"""The built-in families with numeric or expression answers: arithmetic, multi_step, comparison, counting,
countdown.

Each is a pure function ``(rng, difficulty) -> Task``: every random draw is made here, in a fixed order, and the
instruction is then written by the family's template (``prompts/tasks/<family>.j2``) from what was drawn. The
difficulty knobs of each family are in :data:`KNOBS`; :func:`check_countdown` checks a countdown answer.
"""

from __future__ import annotations

import ast
import operator
import random
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from pipeline.errors import ConfigError
from pipeline.tasks.base import Knob, Task, boolean, check_knobs, int_in, make_task, render, subset

_OPS: dict[str, Callable[[int, int], int]] = {"+": operator.add, "-": operator.sub, "*": operator.mul}

KNOBS: dict[str, dict[str, Knob]] = {
    "arithmetic": {
        "digits": Knob(1, "digits of each operand: 1 (0-9) or 2 (10-99)", int_in(1, 2)),
        "ops": Knob(["+", "-"], "operators to draw from", subset(("+", "-", "*"))),
        "non_negative": Knob(True, "order a subtraction's operands so the answer is >= 0", boolean),
    },
    "multi_step": {
        "steps": Knob(2, "operations after the starting amount: 2 or 3", int_in(2, 3)),
        "max_value": Knob(20, "largest starting amount and largest amount added or taken away", int_in(2, 1000)),
        "ops": Knob(["+", "-"], "kinds of step: + (buys more), - (gives away), * (doubles/triples)",
                    subset(("+", "-", "*"))),
    },
    "comparison": {
        "count": Knob(2, "how many numbers to compare: 2 or 3", int_in(2, 3)),
        "max_value": Knob(100, "largest magnitude", int_in(1, 10 ** 9)),
        "decimals": Knob(0, "decimal places (0-2; trailing zeros dropped, so 9.9 meets 9.11)", int_in(0, 2)),
        "negatives": Knob(False, "draw negative numbers too", boolean),
        "which": Knob(["larger", "smaller"], "questions to ask", subset(("larger", "smaller"))),
    },
    "counting": {
        "kind": Knob(["letter", "list"], "letters in a word, or items in a list", subset(("letter", "list"))),
        "max_items": Knob(8, "longest list (items)", int_in(3, 30)),
        "allow_zero": Knob(True, "sometimes ask for something absent (answer 0)", boolean),
    },
    "countdown": {
        "count": Knob(3, "how many numbers are given", int_in(2, 6)),
        "max_number": Knob(10, "largest given number", int_in(2, 100)),
        "ops": Knob(["+", "-", "*"], "operators allowed", subset(("+", "-", "*"))),
        "max_target": Knob(100, "largest target", int_in(1, 10 ** 6)),
    },
}


def resolve_difficulty(family: str, difficulty: Mapping[str, Any] | None) -> dict[str, Any]:
    """One of these families' ``difficulty`` over its defaults, every value checked (one-line ConfigError)."""
    out = check_knobs(family, KNOBS[family], difficulty)
    if family == "comparison" and out["max_value"] * 10 ** out["decimals"] + 1 < out["count"]:
        raise ConfigError(f'{family} difficulty "max_value": too small for {out["count"]} distinct numbers, '
                          f"got {out['max_value']}")
    return out


# --------------------------------------------------------------------------------------------- arithmetic
def _operand(rng: random.Random, digits: int) -> int:
    return rng.randint(0 if digits == 1 else 10 ** (digits - 1), 10 ** digits - 1)


def arithmetic(rng: random.Random, difficulty: Mapping[str, Any] | None = None) -> Task:
    """``a op b`` with operands of ``digits`` digits; the answer is the exact integer."""
    d = resolve_difficulty("arithmetic", difficulty)
    op = rng.choice(d["ops"])
    a, b = _operand(rng, d["digits"]), _operand(rng, d["digits"])
    if op == "-" and d["non_negative"] and a < b:
        a, b = b, a
    return make_task("arithmetic", render("tasks/arithmetic.j2", a=a, op=op, b=b), _OPS[op](a, b), "numeric", d)


# --------------------------------------------------------------------------------------------- multi_step
NAMES = (("Ana", "she"), ("Ben", "he"), ("Chloe", "she"), ("David", "he"), ("Emma", "she"), ("Farid", "he"),
         ("Grace", "she"), ("Hiro", "he"), ("Ines", "she"), ("Jon", "he"), ("Kemi", "she"), ("Leo", "he"),
         ("Maya", "she"), ("Noah", "he"), ("Olga", "she"), ("Priya", "she"), ("Sam", "he"), ("Tara", "she"))
ITEMS = ("apples", "marbles", "stickers", "pencils", "cookies", "stamps", "shells", "cards", "books", "coins")
# (present, past) clauses, drawn with the numbers; the verb always comes before the number, so the problem
# reads in order. The sentences around them are prompts/tasks/multi_step.j2's.
_GAIN = (("buys {n} more", "bought {n} more"), ("finds {n} more", "found {n} more"),
         ("receives {n} more from a friend", "received {n} more from a friend"),
         ("picks up {n} more", "picked up {n} more"), ("wins {n} more", "won {n} more"))
_LOSE = (("gives {n} away", "gave {n} away"), ("loses {n}", "lost {n}"), ("sells {n}", "sold {n}"),
         ("gives {n} to a neighbour", "gave {n} to a neighbour"))
_TIMES = {2: ("doubles them", "doubled them"), 3: ("triples them", "tripled them")}
WORDINGS = 5  # the word problem's wordings in multi_step.j2 (style 0-4)


def multi_step(rng: random.Random, difficulty: Mapping[str, Any] | None = None) -> Task:
    """A short word problem: a starting amount, then ``steps`` gains, losses or doublings, in one of five
    wordings; the answer is what is left (never negative)."""
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
    prompt = render("tasks/multi_step.j2", style=rng.randrange(WORDINGS), name=name, he=he, items=items,
                    start=start, present=present, past=past)
    return make_task("multi_step", prompt, total, "numeric", d)


# --------------------------------------------------------------------------------------------- comparison
def _decimal_text(m: int, places: int) -> str:
    """``m / 10**places`` written without trailing zeros (exact, no float rounding): 911, 2 → ``9.11``."""
    sign, m = ("-" if m < 0 else ""), abs(m)
    whole, frac = divmod(m, 10 ** places) if places else (m, 0)
    frac_text = f"{frac:0{places}d}".rstrip("0") if places else ""
    return f"{sign}{whole}" + (f".{frac_text}" if frac_text else "")


def comparison(rng: random.Random, difficulty: Mapping[str, Any] | None = None) -> Task:
    """The larger or smaller of two or three distinct numbers (decimals exact); the answer is its text."""
    d = resolve_difficulty("comparison", difficulty)
    scale = 10 ** d["decimals"]
    hi = d["max_value"] * scale
    values = rng.sample(range(-hi if d["negatives"] else 0, hi + 1), d["count"])
    texts = [_decimal_text(v, d["decimals"]) for v in values]
    which = rng.choice(d["which"])
    pick = max if which == "larger" else min
    answer = texts[values.index(pick(values))]
    return make_task("comparison", render("tasks/comparison.j2", numbers=texts, which=which), answer, "numeric", d)


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
    """How often a letter appears in a word, or an item in a list (sometimes 0, with ``allow_zero``)."""
    d = resolve_difficulty("counting", difficulty)
    kind = rng.choice(d["kind"])
    absent = d["allow_zero"] and rng.random() < 0.2
    if kind == "letter":
        word = rng.choice(WORDS)
        pool = sorted(set("abcdefghijklmnopqrstuvwxyz") - set(word)) if absent else sorted(set(word))
        letter = rng.choice(pool)
        prompt = render("tasks/counting.j2", kind=kind, letter=letter, word=word)
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
        prompt = render("tasks/counting.j2", kind=kind, category=category, listed=listed, target=target)
        answer = listed.count(target)
    return make_task("counting", prompt, answer, "numeric", d)


# --------------------------------------------------------------------------------------------- countdown
def countdown_prompt(numbers: list[int], target: int, ops: Iterable[str] = ("+", "-", "*")) -> str:
    """The countdown instruction (``prompts/tasks/countdown.j2``): also a user's countdown row's, when it has
    no prompt of its own."""
    return render("tasks/countdown.j2", numbers=list(numbers), ops=list(ops), target=target)


def countdown(rng: random.Random, difficulty: Mapping[str, Any] | None = None) -> Task:
    """Reach a target with some of the given numbers and + - *; the answer is one expression that does (any
    other one passes :func:`check_countdown` too)."""
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
    return make_task("countdown", countdown_prompt(numbers, target, d["ops"]), expression, "countdown", d,
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
