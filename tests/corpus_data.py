"""Bad-input corpus rows for users' data files and the data: section (sources, task files, field mappings).

Each row of CASES is a tests.corpus_kit.Case; tests/test_bad_input_corpus.py runs them all.
"""

from __future__ import annotations

from tests.corpus_kit import Case

CASES: list[Case] = [
]
