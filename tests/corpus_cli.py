"""Bad-input corpus rows for the `selfreward` command and scripts/use_preset.py (cases run them in-process).

Each row of CASES is a tests.corpus_kit.Case; tests/test_bad_input_corpus.py runs them all.
"""

from __future__ import annotations

from tests.corpus_kit import Case

CASES: list[Case] = [
]
