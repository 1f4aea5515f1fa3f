"""Bad-input corpus rows for tasks, verifiers and answers (regexes, tests that do not compile, GSM8K rows).

Each row of CASES is a tests.corpus_kit.Case; tests/test_bad_input_corpus.py runs them all.
"""

from __future__ import annotations

from tests.corpus_kit import Case

CASES: list[Case] = [
]
