"""Bad-input corpus rows for users' own judges: a template and the declaration of its verdict beside it.

Each row of CASES is a tests.corpus_kit.Case; tests/test_bad_input_corpus.py runs them all. Every one stops
while the params are checked, before any input is read or any model loads.
"""

from __future__ import annotations

from typing import Any

from tests.corpus_kit import Case, P, chain, params, write

JUDGE = "Rate the answer from 1 to 10.\nQuestion: {{ instruction }}\nAnswer: {{ response }}\nEnd with 'Rating: N'.\n"
META = ("Which judgment is right?\n{{ instruction }}\n{{ response }}\nA: {{ judgment_a }}\nB: {{ judgment_b }}\n"
        "End with 'Winner: Judgment A' or 'Winner: Judgment B'.\n")
COMPARE = "{{ instruction }}\nA: {{ response_a }}\nB: {{ response_b }}\nEnd with 'Better: A', 'Better: B' or 'Better: tie'.\n"
GOOD = "label: Rating\nvalues: 1-10\nflexible: [score_mention]\n"


def judge(declaration: str | None, template: str = JUDGE, role: str = "judge", key: str = "template") -> Any:
    """``my_judge.j2`` (and, unless None, ``my_judge.verdict.yaml``) named by ``<role>.<key>``."""
    files = [write("my_judge.j2", template)]
    if declaration is not None:
        files.append(write("my_judge.verdict.yaml", declaration))
    return chain(*files, params({role: {key: "my_judge.j2"}}))


J = P + "judge.template: 'my_judge.j2' — my_judge.verdict.yaml: "

CASES = [
    Case("declaration-unknown-key", "judge@M1", judge(GOOD.replace("values:", "value:")),
         J + "value: unknown key — did you mean 'values'?"),
    Case("declaration-empty-values", "judge@M1", judge(GOOD.replace("1-10", "[]")),
         J + "values: [] — must hold at least two values, or no verdict could tell responses apart"),
    Case("declaration-letters-for-a-score", "judge@M1", judge("label: Rating\nvalues: [good, bad]\n"),
         J + "values: ['good', 'bad'] — the judge role reads a score: integers, e.g. 0-5"),
    Case("declaration-prefix-never-asked-for", "judge@M1", judge(GOOD + "forced_prefix: 'Grade: '\n"),
         J + "forced_prefix: 'Grade: ' — my_judge.j2 never mentions 'Grade:'; a forced verdict must continue the "
         "format the template asks for"),
    Case("declaration-reading-typo", "judge@M1", judge(GOOD.replace("score_mention", "score_mentions")),
         J + "flexible: 'score_mentions' — not a reading; did you mean 'score_mention'?"),
    Case("declaration-not-yaml", "judge@M1", judge("label: Rating\nvalues: [1, 2\n"),
         (J.removesuffix(": ") + ":3: not valid YAML — ",)),
    Case("declaration-missing-for-another-format", "judge@M1", judge(None),
         P + "judge.template: 'my_judge.j2' — my_judge.j2: never mentions 'Score:', the verdict of "
         "prompts/judge.verdict.yaml (the judge role's default, for a template without a declaration of its own) — "
         "write my_judge.verdict.yaml beside it to declare this template's verdict"),
    Case("declaration-meta-judge-spelling", "meta_judge@M1", judge(None, META, "meta_judge"),
         (P + "meta_judge.template: 'my_judge.j2' — my_judge.j2: never mentions 'Winner: Judgement', the verdict of "
          "prompts/meta_judge.verdict.yaml", "write my_judge.verdict.yaml beside it")),
    Case("declaration-meta-judge-scores", "meta_judge@M1", judge("label: Winner\nvalues: 1-2\n", META, "meta_judge"),
         P + "meta_judge.template: 'my_judge.j2' — my_judge.verdict.yaml: values: '1-2' — the meta_judge role reads "
         "a choice: A and B (the first or the second shown), and maybe tie"),
    Case("declaration-evaluator-forced-tie", "evaluate@M1",
         judge("label: Better\nvalues: [A, B, tie]\nforced_options: [tie, A]\n", COMPARE, "evaluate",
               "compare_template"),
         P + "evaluate.compare_template: 'my_judge.j2' — my_judge.verdict.yaml: forced_options: ['tie', 'A'] — a "
         "choice is forced between A and B: write [A, B] or leave it out"),
]
