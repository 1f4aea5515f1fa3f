"""The pairwise judge's rules (pipeline/pairwise_rules.py): its declaration and chain, its Bradley-Terry / Elo
ratings over one prompt's responses, every ordered pair, and the strict reading of a similar instruction.

The expected ratings are derived here from pipeline/elo.py's definitions (battle matrix, penalised Bradley-Terry
likelihood, Elo scale), by hand where symmetry reduces them to one equation and otherwise by a small Newton
solver of this file's own; never by calling the function under test.
"""

import ast
import doctest
import math
from pathlib import Path

import pytest

from pipeline import declarations, pairwise_rules, templates

GOLDEN = Path(__file__).parent / "golden"
L2 = 0.01


# ------------------------------------------------------------------ the declaration and its chain
def test_both_templates_are_read_by_the_one_declaration():
    for template in pairwise_rules.VARIANTS:
        decl = declarations.for_template(template, pairwise_rules.ROLE)
        assert decl.path == "prompts/" + pairwise_rules.DECLARATION
        assert (decl.kind, decl.label, decl.values, decl.forced_prefix) == ("choice", "Winner", ("A", "B"),
                                                                            "Winner: ")
    assert declarations.ROLES[pairwise_rules.ROLE] == "choice"
    assert declarations.role_default(pairwise_rules.ROLE).name == pairwise_rules.DECLARATION
    chain = pairwise_rules.chain_for()
    assert (chain.prefix, chain.options, chain.on_unparsed) == ("Winner: ", ("A", "B"), "force")
    assert chain.forced_context("P", "Both are fine. ") == "PBoth are fine.\nWinner: "


READS = [
    # strict: the whole last line is the verdict
    ("A is right: 7 is prime.\nWinner: A", ("A", "strict")),
    ("Winner: [B].", ("B", "strict")),
    ("**Winner: Response B**", ("B", "strict")),
    ("reasons\nwinner: b\n\n", ("B", "strict")),
    ("Winner: A\nWinner: B", ("B", "strict")),  # the last line decides
    # flexible: a mention elsewhere, when the last line is not a verdict
    ("I think the winner is Response A, since 8 is even.\nThanks!", ("A", "flexible")),
    ("Weighing both.\nWinner: [[B]]", ("B", "flexible")),
    ("Response B is better than A.", ("B", "flexible")),
    ("The winner is A. Response B is better.", ("A", "flexible")),  # the first reading that matches anywhere
    # unreadable: forced (or dropped) by the step
    ("Both answers are fine.\nWinner: tie", None),  # a strict choice: a tie is no verdict
    ("Both answers are fine.", None),
    ("Winner: AB", None),
    ("Winner: C", None),
    ("", None),
]


@pytest.mark.parametrize("template", pairwise_rules.VARIANTS)
@pytest.mark.parametrize("text, expect", READS, ids=range(len(READS)))
def test_the_chain_reads_strict_flexible_and_unreadable_verdicts(template, text, expect):
    p = pairwise_rules.chain_for(template).parse(text)
    assert (None if p is None else (p.value, p.method)) == expect
    if p is not None:
        assert text[p.start] in "AaBb"  # where the verdict's letter stands: a forced continuation starts there


def test_the_templates_take_the_three_variables_and_render_outputs_as_data():
    for template in pairwise_rules.VARIANTS:
        assert templates.variables(template) == {"instruction", "response_a", "response_b"}
        assert 'Winner: A" or "Winner: B"' in templates.render(template, instruction="i", response_a="a",
                                                               response_b="b")
    assert templates.variables(pairwise_rules.SIMILAR_TEMPLATE) == {"instruction"}
    text = pairwise_rules.pairwise_conversation("{{ 7 * 7 }}", "{% if true %}x{% endif %}", "y")[0]["content"]
    assert "{{ 7 * 7 }}" in text and "{% if true %}x{% endif %}" in text and "49" not in text


def test_the_builders_render_the_golden_prompts():
    turn = pairwise_rules.pairwise_conversation("Name a prime.", "7", "8")
    assert [m["role"] for m in turn] == ["user"]
    assert turn[0]["content"] == (GOLDEN / "pairwise_judge.txt").read_text()
    assert pairwise_rules.pairwise_conversation("Name a prime.", "7", "8", "pairwise_judge_plan.j2")[0][
        "content"] == (GOLDEN / "pairwise_judge_plan.txt").read_text()
    assert pairwise_rules.similar_instruction_conversation("Name three rivers in Africa.")[0]["content"] == (
        GOLDEN / "similar_instruction.txt").read_text()
    plan = (GOLDEN / "pairwise_judge_plan.txt").read_text()
    assert plan.index("Plan:") < plan.index("Evaluation:") < plan.index("Verdict:") < plan.rindex("Winner:")


def test_verdict_values():
    assert [pairwise_rules.verdict_value(v) for v in ("A", "B", "tie", None)] == [1, -1, 0, 0]
    with pytest.raises(ValueError, match="'C' is not a pairwise verdict"):
        pairwise_rules.verdict_value("C")


# ------------------------------------------------------------------ every ordered pair
@pytest.mark.parametrize("n", [0, 1, 2, 3, 4, 7])
def test_ordered_pairs_hold_every_pair_in_both_orders(n):
    ids = [f"r{i}" for i in range(n)]
    pairs = pairwise_rules.ordered_pairs(ids)
    assert len(pairs) == n * (n - 1) == len(set(pairs))
    assert all(a != b and (b, a) in pairs for a, b in pairs)
    assert {frozenset(p) for p in pairs} == {frozenset((a, b)) for i, a in enumerate(ids) for b in ids[i + 1:]}


def test_ordered_pairs_refuse_a_response_twice():
    with pytest.raises(ValueError, match="'r1' is given twice"):
        pairwise_rules.ordered_pairs(["r1", "r2", "r1"])


# ------------------------------------------------------------------ ratings: the expectations, derived here
def sigma(x):
    return 1.0 / (1.0 + math.exp(-x))


def elo_of(eps):
    return 1000.0 + 400.0 * eps / math.log(10)


def root(f, low, high):
    """The root of a decreasing f on [low, high], by bisection."""
    for _ in range(200):
        mid = (low + high) / 2
        low, high = (mid, high) if f(mid) > 0 else (low, mid)
    return (low + high) / 2


def battle_matrix(ids, verdicts, w1, w2):
    """pipeline/elo.py's definition: B[m][n] = ω1·1[r_mn = 1] + ω2·1[r_nm = -1]."""
    return [[0.0 if m == n else w1 * (verdicts.get((m, n), 0) == 1) + w2 * (verdicts.get((n, m), 0) == -1)
             for n in ids] for m in ids]


def solve3(h, g):
    """h·x = g for a 3x3 system, by Cramer's rule."""
    def det(a):
        return (a[0][0] * (a[1][1] * a[2][2] - a[1][2] * a[2][1]) - a[0][1] * (a[1][0] * a[2][2] - a[1][2] * a[2][0])
                + a[0][2] * (a[1][0] * a[2][1] - a[1][1] * a[2][0]))
    d = det(h)
    return [det([[g[r] if c == k else h[r][c] for c in range(3)] for r in range(3)]) / d for k in range(3)]


def newton_bt3(b, l2, steps=30):
    """argmax Σ B[m][n]·log σ(ε_m − ε_n) − (l2/2)·‖ε‖² for three players, each pair's term differentiated alone."""
    eps = [0.0, 0.0, 0.0]
    for _ in range(steps):
        grad = [-l2 * e for e in eps]
        hess = [[-l2 if r == c else 0.0 for c in range(3)] for r in range(3)]
        for m in range(3):
            for n in range(3):
                if m == n or b[m][n] == 0:
                    continue
                d = eps[m] - eps[n]  # d/dd log σ(d) = σ(−d); d²/dd² = −σ(d)·σ(−d)
                grad[m] += b[m][n] * sigma(-d)
                grad[n] -= b[m][n] * sigma(-d)
                c = b[m][n] * sigma(d) * sigma(-d)
                hess[m][m] -= c
                hess[n][n] -= c
                hess[m][n] += c
                hess[n][m] += c
        step = solve3(hess, grad)
        eps = [e - s for e, s in zip(eps, step)]
    return eps


def test_two_responses_with_a_split_result_are_both_1000():
    for verdicts in ({("a", "b"): 1, ("b", "a"): 1}, {("a", "b"): -1, ("b", "a"): -1}, {("a", "b"): 0},
                     {}):
        assert pairwise_rules.ratings(["a", "b"], verdicts) == {"a": 1000.0, "b": 1000.0}


def test_two_responses_one_winning_both_orders():
    # B[a][b] = 0.5 + 0.5 = 1, B[b][a] = 0. With ε_a = x = −ε_b the objective is log σ(2x) − l2·x², whose
    # maximum solves σ(−2x) = l2·x.
    x = root(lambda x: sigma(-2 * x) - L2 * x, 0.0, 100.0)
    got = pairwise_rules.ratings(["a", "b"], {("a", "b"): 1, ("b", "a"): -1}, l2=L2)
    assert got["a"] == pytest.approx(elo_of(x), abs=1e-6) and got["b"] == pytest.approx(elo_of(-x), abs=1e-6)
    assert 1300 < got["a"] < 1400  # x ≈ 1.96: about 340 Elo points either side of 1000
    # one order only (the other verdict missing): B[a][b] = 0.5, so σ(−2x) = 2·l2·x
    x1 = root(lambda x: sigma(-2 * x) - 2 * L2 * x, 0.0, 100.0)
    got = pairwise_rules.ratings(["a", "b"], {("a", "b"): 1}, l2=L2)
    assert got["a"] == pytest.approx(elo_of(x1), abs=1e-6) and got["b"] == pytest.approx(elo_of(-x1), abs=1e-6)


def test_three_responses_one_beats_two_that_split():
    # a beats b and c in both orders; b and c each win once, as the first shown. B[a][b] = B[a][c] = 1,
    # B[b][c] = B[c][b] = 0.5. By symmetry ε_b = ε_c = y, and Σ ε = 0 at the optimum, so y = −x/2 and the
    # gradient in ε_a, 2·σ(−3x/2) − l2·x, is zero.
    verdicts = {("a", "b"): 1, ("b", "a"): -1, ("a", "c"): 1, ("c", "a"): -1, ("b", "c"): 1, ("c", "b"): 1}
    x = root(lambda x: 2 * sigma(-1.5 * x) - L2 * x, 0.0, 100.0)
    got = pairwise_rules.ratings(["a", "b", "c"], verdicts, l2=L2)
    assert got == pytest.approx({"a": elo_of(x), "b": elo_of(-x / 2), "c": elo_of(-x / 2)}, abs=1e-6)
    # the same numbers from this file's Newton solver: the two derivations agree
    eps = newton_bt3(battle_matrix("abc", verdicts, 0.5, 0.5), L2)
    assert [elo_of(e) for e in eps] == pytest.approx([elo_of(x), elo_of(-x / 2), elo_of(-x / 2)], abs=1e-9)


# b beats a in both orders, b and c split, c beats a once (the other order's judgment unread)
UNEVEN = {("a", "b"): -1, ("b", "a"): 1, ("b", "c"): 1, ("c", "b"): 1, ("c", "a"): 1, ("a", "c"): 0}


@pytest.mark.parametrize("weights", [(0.5, 0.5), (0.25, 0.75)])
def test_three_responses_uneven_match_an_independent_newton(weights):
    eps = newton_bt3(battle_matrix("abc", UNEVEN, *weights), L2)
    assert abs(sum(eps)) < 1e-12  # the penalised optimum is mean-zero
    got = pairwise_rules.ratings(["a", "b", "c"], UNEVEN, l2=L2, weights=weights)
    assert list(got) == ["a", "b", "c"]
    assert list(got.values()) == pytest.approx([elo_of(e) for e in eps], abs=1e-6)
    assert got["b"] > got["c"] > got["a"]


def test_the_default_weights_are_an_unbiased_judges():
    # the meta-judge's rule gives a judge with as many first- as second-position wins exactly these weights
    from pipeline import elo

    assert elo.position_weights([1, -1, 1, -1]) == pairwise_rules.NEUTRAL_WEIGHTS
    got = pairwise_rules.ratings(["a", "b"], {("a", "b"): 1, ("b", "a"): -1})
    assert got == pairwise_rules.ratings(["a", "b"], {("a", "b"): 1, ("b", "a"): -1}, weights=(0.5, 0.5))


def test_a_judge_that_always_names_the_first_rates_every_response_alike():
    ids = ["r1", "r2", "r3", "r4"]
    verdicts = {pair: 1 for pair in pairwise_rules.ordered_pairs(ids)}
    assert pairwise_rules.ratings(ids, verdicts) == pytest.approx({rid: 1000.0 for rid in ids}, abs=1e-9)


def test_ratings_of_one_and_of_no_response():
    assert pairwise_rules.ratings(["only"], {}) == {"only": 1000.0}
    assert pairwise_rules.ratings([], {}) == {}


@pytest.mark.parametrize("ids, verdicts, message", [
    (["a", "b"], {("a", "z"): 1}, "'z' is not one of this prompt's responses"),
    (["a", "b"], {("a", "a"): 1}, "never judged against itself"),
    (["a", "b"], {("a", "b"): 2}, "must be 1, -1 or 0"),
    (["a", "b", "a"], {}, "'a' is given twice"),
])
def test_ratings_refuse_verdicts_that_do_not_fit(ids, verdicts, message):
    with pytest.raises(ValueError, match=message):
        pairwise_rules.ratings(ids, verdicts)


# ------------------------------------------------------------------ the similar instruction, read strictly
X = "Name three rivers in Africa."
SIMILAR = [
    ("New instruction: Name three rivers in South America.", "Name three rivers in South America."),
    ("The original asks for rivers; I change the continent.\n\nNew instruction: Name three lakes in Africa.\n",
     "Name three lakes in Africa."),
    ("**New instruction:** Name the longest river in Africa.", "Name the longest river in Africa."),
    ("new instruction: Name three African deserts", "Name three African deserts"),
    ('New instruction: "Name three rivers in Asia."', "Name three rivers in Asia."),
    ("New instruction: \u201cName three rivers in Asia.\u201d", "Name three rivers in Asia."),
    ('New instruction: "Rivers" in Africa: name three that flood', '"Rivers" in Africa: name three that flood'),
    ("New instruction: Name a river.\nNew instruction: Name a lake in Africa.", "Name a lake in Africa."),
    # no use: no marker, not the last line, not at the line's start, empty, or the same instruction again
    ("Name three rivers in Asia.", None),
    ("New instruction: Name three rivers in Asia.\nI hope this helps!", None),
    ("Here is the new instruction: Name three rivers in Asia.", None),
    ("New instruction:", None),
    ("New instruction:   ", None),
    ("New instruction: **", None),
    ('New instruction: ""', None),
    ("", None),
    ("New instruction: Name three rivers in Africa.", None),
    ("New instruction: name three  RIVERS in africa!", None),
    ('New instruction: "Name three rivers in Africa."', None),
]


@pytest.mark.parametrize("text, expect", SIMILAR, ids=range(len(SIMILAR)))
def test_parse_similar_instruction(text, expect):
    assert pairwise_rules.parse_similar_instruction(text, X) == expect


def test_the_similar_instruction_template_asks_for_the_line_that_is_read():
    prompt = pairwise_rules.similar_instruction_conversation(X)[0]["content"]
    assert prompt.rstrip().endswith(f'starting with "{pairwise_rules.SIMILAR_LABEL}:".')
    assert pairwise_rules.parse_similar_instruction(f"{pairwise_rules.SIMILAR_LABEL}: Name a lake.", X) == (
        "Name a lake.")


# ------------------------------------------------------------------ a pure rule module
def test_doctests():
    result = doctest.testmod(pairwise_rules)
    assert result.failed == 0 and result.attempted > 0


def test_the_module_imports_no_engine_and_no_torch():
    tree = ast.parse(Path(pairwise_rules.__file__).read_text())
    imported = {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module} | {
        a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    imported |= {f"pipeline.{a.name}" for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)
                 and n.module == "pipeline" for a in n.names}
    bad = {m for m in imported if m.startswith(("torch", "transformers", "vllm", "pipeline.engines",
                                                "pipeline.generation", "pipeline.judging", "pipeline.meta_judging",
                                                "pipeline.evaluation", "pipeline.forcing"))}
    assert not bad, f"pipeline/pairwise_rules.py imports {bad}"
