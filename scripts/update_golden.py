"""Rewrite the golden prompt files (tests/golden/*.txt) from what the templates render now.

    python scripts/update_golden.py              # every golden file
    python scripts/update_golden.py judge compare  # only these

Run it after an intended change to a template or to the code that fills one, then review
`git diff tests/golden`: the diff is the prompt change the models will see. The prompts rendered are the
RENDERED table of tests/test_templates.py, the one list the golden test checks; the test itself never writes
these files.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from tests.test_templates import GOLDEN, RENDERED  # after the sys.path line above


def main() -> None:
    # ------------------------------------------------------------------------------------------- arguments
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("names", nargs="*", metavar="NAME",
                        help=f"golden files to rewrite (default: all of {', '.join(sorted(RENDERED))})")
    args = parser.parse_args()
    unknown = sorted(set(args.names) - set(RENDERED))
    if unknown:
        parser.error(f"no golden file named {', '.join(unknown)} (known: {', '.join(sorted(RENDERED))})")
    # -------------------------------------------------------------------------------------------------------
    for name in args.names or sorted(RENDERED):
        path = GOLDEN / f"{name}.txt"
        text = RENDERED[name]()
        changed = not path.exists() or path.read_text() != text
        if changed:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
        print(f"{'rewrote' if changed else 'unchanged'}  {path.relative_to(REPO)}")


if __name__ == "__main__":
    main()
