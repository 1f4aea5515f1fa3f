"""Bad-input corpus rows for the `selfreward` command and scripts/use_preset.py (the command runs in-process,
the script as a subprocess).

Each row of CASES is a tests.corpus_kit.Case; tests/test_bad_input_corpus.py runs them all. The `selfreward`
rows read a small iteration M1 (:func:`iteration`: one prompt, two responses, their judgments, one pair and a
few evaluation rows), so that each row fails on the input it names and not on missing data.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

from tests.corpus_kit import GOOD, JUDGMENTS, PROMPTS, RESPONSES, Case, Setup, chain, jsonl, write

R2 = {**GOOD[RESPONSES], "response_id": "r1", "sample_index": 1, "output": "Hello there, friend.",
      "response": "Hello there, friend."}
J2 = {**GOOD[JUDGMENTS], "judgment_id": "j1", "response_id": "r1", "text": "Score: 1", "score": 1.0}
PAIR = {"pair_id": "rp-0", "kind": "response", "prompt": [{"role": "user", "content": "Say hi."}],
        "chosen": [{"role": "assistant", "content": "Hi."}],
        "rejected": [{"role": "assistant", "content": "Hello there, friend."}],
        "prompt_id": "p0", "chosen_id": "r0", "rejected_id": "r1", "chosen_score": 3.0, "rejected_score": 1.0,
        "iteration": "M1"}
ANSWER = {"prompt_id": "eval-001", "response": "A pen.", "parse_ok": True, "num_tokens": 3, "model": "current",
          "model_dir": "models/M1"}
HELDOUT = {"task_id": "t0", "family": "arithmetic", "sample_index": 0, "output": "Answer: 4", "extracted": "4",
           "method": "strict", "correct": True, "num_tokens": 3, "finish_reason": "stop", "model": "current",
           "model_dir": "models/M1", "prompt": "What is 2 + 2?", "answer": "4"}


def iteration() -> Setup:
    """data/M1 with valid rows of the tables the rows below read."""
    return chain(jsonl(PROMPTS, GOOD[PROMPTS]), jsonl(RESPONSES, GOOD[RESPONSES], R2),
                 jsonl(JUDGMENTS, GOOD[JUDGMENTS], J2), jsonl("data/M1/response_pairs.jsonl", PAIR),
                 jsonl("data/M1/eval_answers.jsonl", ANSWER), jsonl("data/M1/eval_heldout.jsonl", HELDOUT))


def git_dvc_repo() -> Setup:
    """iteration() in a git + DVC repository with one commit (data/M1 committed to git as plain files)."""
    def setup(wd: Path, ctx: dict[str, Any]) -> None:
        iteration()(wd, ctx)
        env = {**os.environ, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t", "GIT_COMMITTER_NAME": "t",
               "GIT_COMMITTER_EMAIL": "t@t", "DVC_NO_ANALYTICS": "1"}
        for cmd in (["git", "init", "-q"], [sys.executable, "-m", "dvc", "init", "-q"], ["git", "add", "-A"],
                    ["git", "commit", "-qm", "v1"]):
            subprocess.run(cmd, cwd=wd, check=True, capture_output=True, env=env)
        shutil.rmtree(wd / ".dvc" / "tmp")  # as in a fresh clone (git ignores it): a failed read must not make it
    return setup


IT = iteration()
SR = "selfreward "
LIST = SR + "list pairs -i M1 "
NUMERIC = "> >= < <= compare numbers"

CASES: list[Case] = [
    # list: --where, --sort, --columns, --limit, --page, --format, the table
    Case("where-number-column-word-value", LIST + "--where margin>=abc", IT,
         f'--where "margin>=abc": {NUMERIC}, and "abc" is not a number'),
    Case("where-text-column-ordered", LIST + "--where kind>3", IT,
         f'--where "kind>3": column "kind" holds text — {NUMERIC}; use = != or ~ (contains)'),
    Case("where-text-column-word-value", LIST + "--where kind<response", IT,
         f'--where "kind<response": {NUMERIC}, and "response" is not a number'),
    Case("where-bool-column-ordered", SR + "list responses -i M1 --where parse_ok>0", IT,
         f'--where "parse_ok>0": column "parse_ok" holds true/false — {NUMERIC}; use = or !='),
    Case("where-no-value", LIST + "--where margin>=", IT,
         '--where "margin>=": no value after >= (e.g. margin>=2)'),
    Case("where-no-operator", LIST + "--where margin", IT,
         ('"margin": a condition is COLUMN OP VALUE',)),
    Case("where-unknown-column", LIST + "--where margn>1", IT, 'unknown column "margn" — did you mean "margin"?'),
    Case("where-unknown-column-empty-table", SR + "list verifications -i M1 --where corect=true", IT,
         'unknown column "corect" — did you mean "correct"?'),
    Case("sort-unknown-column", LIST + "--sort=-margn", IT, 'unknown column "margn" — did you mean "margin"?'),
    Case("sort-unknown-column-empty-table", SR + "list ratings -i M1 --sort elo_x", IT,
         'unknown column "elo_x" — did you mean "elo"?'),
    Case("columns-unknown", LIST + "-c pair_id,margn", IT, 'unknown column "margn" — did you mean "margin"?'),
    Case("columns-empty-name", LIST + "-c pair_id,", IT, ('--columns "pair_id,": an empty column name',)),
    Case("limit-negative", LIST + "--limit -5", IT, "--limit -5: must be 0 (every row on one page) or more"),
    Case("page-zero", LIST + "--page 0", IT, "--page 0: pages count from 1"),
    Case("page-negative", LIST + "--page -2", IT, "--page -2: pages count from 1"),
    Case("page-negative-csv", LIST + "--page -2 --format csv", IT, "--page -2: pages count from 1"),
    Case("page-past-the-end", LIST + "--page 3", IT, "page 3 does not exist — there is 1 page of 20 rows (1 row in all)"),
    Case("limit-a-word", LIST + "--limit many", IT, ("argument -n/--limit: invalid int value: 'many'",)),
    Case("format-unknown", LIST + "--format xml", IT,
         ("argument --format: invalid choice: 'xml'", "table", "jsonl", "csv")),
    Case("table-unknown", SR + "list pair -i M1", IT, 'unknown table "pair" — did you mean "pairs"?'),
    Case("table-eval-typo", SR + "list heldot -i M1", IT, 'unknown table "heldot" — did you mean "heldout"?'),
    Case("heldout-unknown-column", SR + "list heldout -i M1 --where corect=true", IT,
         'unknown column "corect" — did you mean "correct"?'),
    Case("heldout-text-column-ordered", SR + "list heldout -i M1 --where family>=2", IT,
         f'--where "family>=2": column "family" holds text — {NUMERIC}; use = != or ~ (contains)'),
    Case("subcommand-unknown", SR + "lsit pairs", IT, ("argument command: invalid choice: 'lsit'",)),
    # iterations and revisions
    Case("iteration-missing", SR + "list pairs -i M9", IT, ("", "no rows for iteration M9", "Iterations with data: M1")),
    Case("iteration-empty-key", SR + "list pairs -i @HEAD", IT, '"@HEAD": expected an iteration key such as M1, '
         "optionally @REVISION"),
    Case("revision-empty", SR + "diff M1@ M1", IT,
         '"M1@": no revision after @ — write M1 for the working tree, or M1@REVISION'),
    Case("revision-not-a-git-repo", SR + "list pairs -i M1@HEAD", IT,
         ("", "is not in a git repository — KEY@REVISION reads git revisions and DVC experiments")),
    Case("revision-unknown", SR + "list pairs -i M1@nope", git_dvc_repo(),
         ("", 'no git revision or DVC experiment "nope"')),
    Case("revision-without-the-iteration", SR + "trace p0 -i M9@HEAD", git_dvc_repo(),
         ("", "no rows for iteration M9 at HEAD", "data/M9")),
    Case("diff-iteration-missing", SR + "diff M1 M9", IT, ("", "no rows for iteration M9")),
    Case("diff-examples-negative", SR + "diff M1 M1 --examples -1", IT, "--examples -1: must be 0 or more"),
    # trace
    Case("trace-unknown-id", SR + "trace rp-000000000000", IT,
         ("no iteration under ", 'has a row with id "rp-000000000000"')),
    Case("trace-unknown-id-in-iteration", SR + "trace r-nope -i M1", IT,
         ('data/M1: no row with id "r-nope" — ',)),
    Case("trace-near-id", SR + "trace rp-00 -i M1", IT, 'data/M1: no row with id "rp-00" — did you mean "rp-0"?'),
    # export and page: where they write
    Case("export-kind-unknown", SR + "export M1 --out exports/M1 --kind answers", IT,
         ("argument --kind: invalid choice: 'answers'", "response", "judgment")),
    Case("export-format-unknown", SR + "export M1 --out exports/M1 --format csv", IT,
         ("argument --format: invalid choice: 'csv'",)),
    Case("export-out-is-a-file", SR + "export M1 --out notes.txt", chain(IT, write("notes.txt", "x")),
         "notes.txt: exists and is not an empty folder — choose a new --out"),
    Case("export-out-under-a-file", SR + "export M1 --out notes.txt/M1", chain(IT, write("notes.txt", "x")),
         ("notes.txt/M1: cannot write — ", "notes.txt is a file, not a folder")),
    Case("export-out-deep-under-a-file", SR + "export M1 --out notes.txt/a/b", chain(IT, write("notes.txt", "x")),
         ("notes.txt/a/b: cannot write — ", "notes.txt is a file, not a folder")),
    Case("export-no-pairs-of-kind", SR + "export M1 --out exports/M1 --kind judgment", IT,
         "data/M1: no pairs of kind judgment to export"),
    Case("page-out-under-a-file", SR + "page M1 --out notes.txt/index.html", chain(IT, write("notes.txt", "x")),
         ("notes.txt/index.html: cannot write — ", "notes.txt is a file, not a folder")),
    Case("page-out-is-a-folder", SR + "page M1 --out reports", chain(IT, write("reports/keep.txt", "x")),
         ("reports: cannot write — ", "is a folder")),
    Case("page-reports-is-a-file", SR + "page M1", chain(IT, write("reports", "x")),
         ("reports/M1/index.html: cannot write — ", "reports is a file, not a folder")),
    # --root
    Case("root-missing", SR + "--root nowhere list pairs", IT, ("--root nowhere: no such folder",)),
    Case("root-a-file", SR + "--root notes.txt trace rp-0", chain(IT, write("notes.txt", "x")),
         ("--root notes.txt: not a folder",)),
]
