"""The built-in code family, ``python_function``: a small function to write, checked by assert tests.

:data:`CODE_TEMPLATES` holds one generator per kind of function, each drawing one function to ask for (its
name, what it does, a reference solution, a reference implementation that computes the expected values, and
how to draw test inputs). What the function does is written beside the solution that does it, so the two never
drift apart; the instruction around it is ``prompts/tasks/python_function.j2``.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from pipeline.errors import ConfigError
from pipeline.tasks.base import Knob, Task, check_knobs, int_in, make_task, render, subset
from pipeline.tasks.families import WORDS


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


KNOBS: dict[str, dict[str, Knob]] = {
    "python_function": {
        "templates": Knob(list(CODE_TEMPLATES), "which function templates to draw from",
                          subset(tuple(CODE_TEMPLATES))),
        "num_tests": Knob(5, "asserts per task (examples and edge cases included)", int_in(1, 20)),
        "show_examples": Knob(1, "tests shown in the prompt as examples", int_in(0, 5)),
    },
}


def resolve_difficulty(family: str, difficulty: Mapping[str, Any] | None) -> dict[str, Any]:
    """``python_function``'s ``difficulty`` over its defaults, every value checked (one-line ConfigError)."""
    out = check_knobs(family, KNOBS[family], difficulty)
    if out["show_examples"] > out["num_tests"]:
        raise ConfigError(f'{family} difficulty "show_examples": must be at most num_tests '
                          f"({out['num_tests']}), got {out['show_examples']}")
    return out


def _call(name: str, args: tuple[Any, ...]) -> str:
    return f"{name}({', '.join(repr(a) for a in args)})"


def python_function(rng: random.Random, difficulty: Mapping[str, Any] | None = None) -> Task:
    """One function from a template of ``templates``: its prompt shows ``show_examples`` of its ``num_tests``
    asserts; the answer is the reference solution, the entry point and template name are in ``inputs``."""
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
    examples = [(_call(fn.name, args), repr(fn.ref(*args))) for args in calls[:d["show_examples"]]]
    prompt = render("tasks/python_function.j2", name=fn.name, args=fn.args, does=fn.does, examples=examples)
    return make_task("python_function", prompt, fn.solution, "python_tests", d, tests=tests,
                     inputs={"entry_point": fn.name, "template": key})
