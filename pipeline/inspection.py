"""Reading an iteration's rows back: tables with filters, the trace behind one id, and diffs.

The ``selfreward`` command (selfreward/cli.py) and the report page (pipeline/page.py) are views of what this
module computes. An iteration is read from the working tree, or from a git revision or DVC experiment through
``dvc.api`` (past versions of DVC-tracked outputs come from the DVC cache), with the same validation as the
stages' own reads.
"""

from __future__ import annotations

import difflib
import json
import math
import os
import re
import statistics
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pipeline import judge_rules
from pipeline import pairs as pairs_rules
from pipeline.errors import OutputError, PipelineError, RecordError
from pipeline.records import (
    ConstraintAnswer,
    EvalAnswer,
    EvalComparison,
    EvalJudgment,
    EvalPrompt,
    HeldoutSample,
    Judgment,
    KnownJudgment,
    KnownPair,
    LabelledPair,
    MetaJudgment,
    PreferencePair,
    Prompt,
    Rating,
    Reflection,
    Response,
    Rollout,
    Row,
    Verification,
    iter_jsonl_lines,
)


class InspectError(PipelineError, ValueError):
    """A bad request to the inspection tools (unknown id, column, revision); the message says what to change."""


# What an iteration wrote, per table: its files under data/<key>/ and their row type.
FILES: dict[str, tuple[tuple[str, ...], type[Row]]] = {
    "prompts": (("prompts.jsonl",), Prompt),
    "responses": (("responses.jsonl",), Response),
    "verifications": (("verifications.jsonl",), Verification),
    "reflections": (("reflections.jsonl",), Reflection),
    "judgments": (("judgments.jsonl", "extra_judgments.jsonl"), Judgment),
    "meta_judgments": (("meta_judgments.jsonl",), MetaJudgment),
    "ratings": (("ratings.jsonl",), Rating),
    "pairs": (("response_pairs.jsonl", "judgment_pairs.jsonl", "reflection_pairs.jsonl",
               "judge_training_pairs.jsonl"), PreferencePair),
    "known_pairs": (("known_pairs.jsonl",), KnownPair),
    "known_judgments": (("known_judgments.jsonl",), KnownJudgment),
    "rollouts": (("rollouts.jsonl",), Rollout),  # grpo.enabled: every completion GRPO rewarded
}
# What the evaluate stage wrote: one file each, rows without ids of their own (a prompt, labelled pair or task
# id repeats across models, baselines and samples).
EVAL_FILES: dict[str, tuple[str, type[Row]]] = {
    "eval_answers": ("eval_answers.jsonl", EvalAnswer),
    "eval_comparisons": ("eval_comparisons.jsonl", EvalComparison),
    "eval_judge": ("eval_judge.jsonl", EvalJudgment),
    "heldout": ("eval_heldout.jsonl", HeldoutSample),
    "eval_constraints": ("eval_constraints.jsonl", ConstraintAnswer),
}
TABLES = (*FILES, *EVAL_FILES)  # what `selfreward list` shows
METRICS = ("self_instruct", "sample", "verify", "reflect", "judge", "meta_judge", "judge_training", "pairs", "dpo",
           "grpo", "eval")


# --------------------------------------------------------------------------------------------------- reading
Reader = Callable[[str], "bytes | None"]  # a repository-relative path -> its bytes, or None when absent


def local_reader(root: str | Path = ".") -> Reader:
    base = Path(root)

    def read(path: str) -> bytes | None:
        p = base / path
        return p.read_bytes() if p.is_file() else None
    return read


def revision_reader(root: str | Path, rev: str, key: str | None = None) -> Reader:
    """Files as they were at ``rev`` (a commit, branch, tag or DVC experiment name), through ``dvc.api``.

    The revision (and, with ``key``, that git or DVC tracks data/<key> there) is checked with git alone first:
    opening a DVC repository writes its scratch files (``.dvc/tmp``), and a request that fails should leave the
    repository as it was."""
    _check_revision(root, rev, key)
    import dvc.api
    from dvc.exceptions import DvcException
    from scmrepo.exceptions import SCMError

    def read(path: str) -> bytes | None:
        try:
            data = dvc.api.read(path, repo=str(root), rev=rev, mode="rb")
        except FileNotFoundError:
            return None
        except (DvcException, SCMError) as e:
            name = type(e).__name__
            if "PathMissing" in name or "OutputNotFound" in name or "NotFound" in name and "Revision" not in name:
                return None
            raise InspectError(f"{root}@{rev}: cannot read {path} — {e}") from None
        return data if isinstance(data, bytes) else data.encode()
    return read


def _check_revision(root: str | Path, rev: str, key: str | None = None) -> None:
    """That ``rev`` names a git revision or DVC experiment of the repository holding ``root``, and that data/<key>
    is there (files in git, a ``.dvc`` file, or an output in dvc.lock); read with git only, nothing written."""
    from dvc.scm import SCM, SCMError, resolve_rev
    where = Path(root).resolve()
    try:
        scm = SCM(str(root), search_parent_directories=True)
    except SCMError:
        raise InspectError(f"{where}: is not in a git repository — KEY@REVISION reads git revisions and DVC "
                           "experiments; write KEY alone for the working tree") from None
    try:
        try:
            sha = resolve_rev(scm, rev)
        except SCMError as e:  # RevError, or an ambiguous experiment name
            first = str(e).splitlines()[0] if str(e) else type(e).__name__
            raise InspectError(f'{where}: no git revision or DVC experiment "{rev}" ({first})') from None
        if key is None:
            return
        fs = scm.get_fs(sha)
        base = os.path.relpath(Path(root).resolve(), Path(scm.root_dir).resolve()).replace(os.sep, "/")
        prefix = "" if base == "." else base + "/"

        def exists(path: str) -> bool:
            return bool(fs.exists(prefix + path))
        names = [n for names, _ in FILES.values() for n in names] + [n for n, _ in EVAL_FILES.values()]
        if any(exists(f"data/{key}/{n}") for n in names) or exists(f"data/{key}.dvc") or exists("data.dvc"):
            return
        lock = prefix + "dvc.lock"
        text = fs.read_text(lock) if fs.exists(lock) else ""
        if re.search(rf"(?m)^[\s-]*path:\s*['\"]?data/{re.escape(key)}(/\S*)?['\"]?\s*$", text):
            return
        raise InspectError(f"{where}: no rows for iteration {key} at {rev} — neither git nor DVC (a .dvc file "
                           f"or dvc.lock) tracks data/{key}/ there")
    finally:
        scm.close()


@dataclass
class Iteration:
    """Every row one iteration wrote, indexed by id, and its metrics."""

    key: str
    source: str  # where it was read: "data/M1" or "data/M1@HEAD~1"
    prompts: dict[str, Prompt] = field(default_factory=dict)
    responses: dict[str, Response] = field(default_factory=dict)
    verifications: dict[str, Verification] = field(default_factory=dict)
    reflections: dict[str, Reflection] = field(default_factory=dict)
    judgments: dict[str, Judgment] = field(default_factory=dict)
    meta_judgments: dict[str, MetaJudgment] = field(default_factory=dict)
    ratings: dict[str, Rating] = field(default_factory=dict)
    pairs: dict[str, PreferencePair] = field(default_factory=dict)
    known_pairs: dict[str, KnownPair] = field(default_factory=dict)
    known_judgments: dict[str, KnownJudgment] = field(default_factory=dict)
    rollouts: dict[str, Rollout] = field(default_factory=dict)
    # what the evaluate stage wrote, in file order, and the evaluation inputs its rows refer to by id
    eval_answers: list[EvalAnswer] = field(default_factory=list)
    eval_comparisons: list[EvalComparison] = field(default_factory=list)
    eval_judge: list[EvalJudgment] = field(default_factory=list)
    heldout: list[HeldoutSample] = field(default_factory=list)
    eval_constraints: list[ConstraintAnswer] = field(default_factory=list)
    eval_prompts: dict[str, EvalPrompt] = field(default_factory=dict)
    labelled_pairs: dict[str, LabelledPair] = field(default_factory=dict)
    metrics: dict[str, Any] = field(default_factory=dict)
    files: dict[str, str] = field(default_factory=dict)  # table -> the file(s) it came from, or "" when absent

    def __post_init__(self) -> None:
        self.index()

    def index(self) -> None:
        self.responses_of: dict[str, list[Response]] = defaultdict(list)
        for r in self.responses.values():
            self.responses_of[r.prompt_id].append(r)
        for rs in self.responses_of.values():
            rs.sort(key=lambda r: r.sample_index)
        self.judgments_of: dict[str, list[Judgment]] = defaultdict(list)
        for j in self.judgments.values():
            self.judgments_of[j.response_id].append(j)
        for js in self.judgments_of.values():
            js.sort(key=lambda j: j.judge_index)
        self.meta_of: dict[str, list[MetaJudgment]] = defaultdict(list)
        for m in self.meta_judgments.values():
            self.meta_of[m.response_id].append(m)
        self.reflections_of: dict[str, list[Reflection]] = defaultdict(list)
        for rf in self.reflections.values():
            self.reflections_of[rf.response_id].append(rf)
        self.ratings_of: dict[str, list[Rating]] = defaultdict(list)
        for rt in self.ratings.values():
            self.ratings_of[rt.response_id].append(rt)
        self.known_of: dict[str, list[KnownPair]] = defaultdict(list)  # prompt id -> its known pairs
        for kp in self.known_pairs.values():
            self.known_of[kp.prompt_id].append(kp)
        self.known_judgments_of: dict[str, list[KnownJudgment]] = defaultdict(list)  # known id -> judgments
        for kj in self.known_judgments.values():
            self.known_judgments_of[kj.known_id].append(kj)
        self.rollouts_of: dict[str, list[Rollout]] = defaultdict(list)  # prompt id -> its rollouts, by step
        for ro in self.rollouts.values():
            self.rollouts_of[ro.prompt_id].append(ro)
        for ros in self.rollouts_of.values():
            ros.sort(key=lambda ro: ro.step)
        self.pairs_of: dict[str, list[PreferencePair]] = defaultdict(list)  # any row id -> pairs using it
        for p in self.pairs.values():
            for rid in (p.chosen_id, p.rejected_id, p.prompt_id):
                self.pairs_of[rid].append(p)
        # the ids evaluation rows share: an evaluation prompt, a labelled pair, a held-out task
        self.eval_ids: dict[str, str] = {}
        for table, key in (("heldout", "task_id"), ("eval_constraints", "task_id"), ("eval_judge", "pair_id"),
                           ("eval_comparisons", "prompt_id"),
                           ("eval_answers", "prompt_id")):
            for row in getattr(self, table):
                self.eval_ids[getattr(row, key)] = table

    def score(self, response_id: str) -> float | None:
        """The response's score as pairs saw it: the mean of its judge.jsonl judgments (not the meta-judge's
        extra ones)."""
        return judge_rules.response_score([j.score for j in self.judgments_of.get(response_id, [])
                                       if not j.provenance.get("extra")])

    def kind_of(self, row_id: str) -> str | None:
        """The table a row id belongs to: one of FILES, or an evaluation table for an evaluation prompt id
        (eval_answers / eval_comparisons), a labelled pair id (eval_judge) or a held-out task id (heldout)."""
        for table in FILES:
            if row_id in getattr(self, table):
                return table
        return self.eval_ids.get(row_id)

    def known_ids(self) -> list[str]:
        return [i for t in FILES for i in getattr(self, t)] + list(self.eval_ids)


def load_iteration(key: str, root: str | Path = ".", rev: str | None = None,
                   reader: Reader | None = None, evaluation: bool = False) -> Iteration:
    """Read data/<key>/ and metrics/<key>/ at ``rev`` (None: the working tree). Missing files are empty tables
    (an iteration may not have run every stage); an iteration with no rows at all is an error.

    ``evaluation``: also the evaluate stage's rows (:data:`EVAL_FILES`) and the evaluation prompts and labelled
    pairs they refer to (params ``data``). Off by default: the page stage reads exactly what dvc.yaml declares."""
    read = reader or (revision_reader(root, rev, key) if rev else local_reader(root))
    source = f"data/{key}" + (f"@{rev}" if rev else "")
    it = Iteration.__new__(Iteration)
    it.key, it.source = key, source
    it.files, it.metrics = {}, {}
    it.eval_prompts, it.labelled_pairs = {}, {}  # read below only where evaluation rows refer to them
    found = False
    for table, (names, cls) in FILES.items():
        rows: dict[str, Row] = {}
        used = []
        for name in names:
            path = f"data/{key}/{name}"
            data = read(path)
            if data is None:
                continue
            used.append(path)
            found = True
            for row in iter_jsonl_lines(data.splitlines(), f"{path}" + (f"@{rev}" if rev else ""), cls,
                                        drop=("token_ids",)):
                rid = getattr(row, cls.ID_FIELD or "")
                if rid in rows:
                    raise RecordError(f'{path}: duplicate {cls.ID_FIELD} "{rid}" (also in {used[0]})')
                rows[rid] = row
        setattr(it, table, rows)
        it.files[table] = ", ".join(used)
    for table, (name, ecls) in EVAL_FILES.items():
        path = f"data/{key}/{name}"
        data = read(path) if evaluation else None
        erows = [] if data is None else list(iter_jsonl_lines(data.splitlines(), path + (f"@{rev}" if rev else ""),
                                                              ecls))
        setattr(it, table, erows)
        it.files[table] = path if data is not None else ""
        found = found or data is not None
    if it.eval_answers or it.eval_comparisons:
        it.eval_prompts = _eval_inputs(read, "eval_prompts", "data/eval/prompts.jsonl", EvalPrompt)
    if it.eval_judge:
        it.labelled_pairs = _eval_inputs(read, "labelled_pairs", "data/eval/labelled_pairs.jsonl", LabelledPair)
    if not found:
        where = f"{root}@{rev}" if rev else str(Path(root).resolve())
        have = available_iterations(root) if not rev else []
        raise InspectError(f"{where}: no rows for iteration {key} (data/{key}/ has none of "
                           f"{', '.join(n for names, _ in FILES.values() for n in names)}, eval_*.jsonl) — did "
                           "`dvc repro` run it?" + (f" Iterations with data: {', '.join(have)}" if have else ""))
    for stage in METRICS:
        data = read(f"metrics/{key}/{stage}.json")
        if data is not None:
            try:
                it.metrics[stage] = json.loads(data)
            except ValueError:
                it.metrics[stage] = {}
    it.index()
    return it


def _eval_inputs(read: Reader, name: str, default: str, cls: type[Row]) -> dict[str, Any]:
    """The evaluation prompts or labelled pairs (params ``data.<name>``) by id, to show the texts evaluation rows
    refer to. Only a JSONL file without a field mapping is read here; any other source (or a file that no longer
    reads) leaves the texts out, and the rows still show."""
    import yaml
    path = default
    try:
        raw = read("params.yaml")
        src = ((yaml.safe_load(raw) or {}).get("data") or {}).get(name) if raw is not None else None
    except (ValueError, AttributeError, yaml.YAMLError):
        src = None
    if isinstance(src, str):
        path = src
    elif isinstance(src, dict):
        if src.get("fields"):
            return {}
        path = str(src.get("path") or default)
    if not path.endswith(".jsonl"):
        return {}
    try:
        data = read(path)
        return {} if data is None else {r.id: r for r in iter_jsonl_lines(data.splitlines(), path, cls)}
    except (PipelineError, OSError):
        return {}


def parse_ref(text: str) -> tuple[str, str | None]:
    """``M2`` -> ("M2", None); ``M2@HEAD~1`` or ``M2@exp-name`` -> ("M2", rev)."""
    key, at, rev = text.partition("@")
    if not key:
        raise InspectError(f'"{text}": expected an iteration key such as M1, optionally @REVISION')
    if at and not rev.strip():
        raise InspectError(f'"{text}": no revision after @ — write {key} for the working tree, or {key}@REVISION')
    return key, (rev or None)


# ---------------------------------------------------------------------------------------------------- tables
def _chars(text: str | None) -> int:
    return len(text or "")


def _category(prompt: Prompt | None) -> str:
    if prompt is None:
        return ""
    return str(prompt.provenance.get("category") or prompt.source)


def _verdict_name(v: int) -> str:
    return {1: "first", -1: "second", 0: "tie"}[v]


# The columns of each table, in order (what --where, --sort and --columns accept, even when a table is empty).
COLUMNS: dict[str, tuple[str, ...]] = {
    "prompts": ("prompt_id", "category", "source", "responses", "pairs", "correct", "answer", "verifier", "chars",
                "text"),
    "responses": ("response_id", "prompt_id", "category", "sample", "score", "judgments", "correct", "level",
                  "answer_method", "parse_ok", "finish", "tokens", "chars", "thought_chars", "pairs", "text"),
    "verifications": ("response_id", "prompt_id", "verifier", "method", "correct", "level", "extracted", "failed",
                      "text"),
    "reflections": ("reflection_id", "response_id", "prompt_id", "index", "retry_correct", "retry_method",
                    "retry_answer", "chars", "tokens", "text"),
    "judgments": ("judgment_id", "response_id", "prompt_id", "category", "index", "score", "method", "extra", "elo",
                  "tokens", "chars", "pairs", "text"),
    "meta_judgments": ("meta_id", "response_id", "prompt_id", "first_id", "second_id", "verdict", "method",
                       "forced_margin", "chars", "text"),
    "ratings": ("judgment_id", "response_id", "prompt_id", "elo", "wins", "losses", "score"),
    "pairs": ("pair_id", "kind", "prompt_id", "category", "chosen_id", "rejected_id", "chosen_score",
              "rejected_score", "margin", "chosen_chars", "rejected_chars", "reference", "text"),
    "known_pairs": ("known_id", "prompt_id", "source", "split", "better_id", "worse_id", "better_chars",
                    "worse_chars", "judgments", "correct", "pairs", "reason", "text"),
    "known_judgments": ("judgment_id", "known_id", "prompt_id", "source", "mode", "shown", "index", "verdict",
                        "score", "method", "correct", "tokens", "chars", "pairs", "text"),
    "rollouts": ("rollout_id", "prompt_id", "step", "reward", "correct", "method", "extracted", "answer", "chars",
                 "detail", "text"),
    "eval_answers": ("prompt_id", "category", "model", "parse_ok", "tokens", "chars", "text"),
    "eval_comparisons": ("prompt_id", "category", "baseline", "model_first", "letter", "method", "verdict",
                         "outcome", "chars", "text"),
    "eval_judge": ("pair_id", "category", "preferred", "score_a", "score_b", "judged", "correct", "text"),
    "heldout": ("task_id", "family", "model", "sample", "correct", "method", "extracted", "answer", "tokens",
                "finish", "chars", "prompt", "text"),
    "eval_constraints": ("task_id", "family", "model", "followed", "followed_loose", "constraints", "failed",
                         "detail", "words", "tokens", "finish", "prompt", "text"),
}


def _outcome(verdicts: Sequence[int]) -> str:
    """A prompt's result against one baseline from its orders' verdicts (evaluation.combine_orders: the sign of
    their sum)."""
    total = sum(verdicts)
    return "win" if total > 0 else "loss" if total < 0 else "tie"


def _judged(a: float | None, b: float | None) -> str | None:
    return None if a is None or b is None else "A" if a > b else "B" if b > a else "tie"


def eval_table_rows(it: Iteration, table: str) -> list[dict[str, Any]]:
    """The evaluation tables: answers, the evaluator's verdicts (with the prompt's outcome against that baseline),
    the model as judge on labelled pairs, and held-out task samples."""
    out: list[dict[str, Any]] = []
    cat = {i: p.category for i, p in it.eval_prompts.items()}
    if table == "eval_answers":
        for a in it.eval_answers:
            out.append({"prompt_id": a.prompt_id, "category": cat.get(a.prompt_id), "model": a.model,
                        "parse_ok": a.parse_ok, "tokens": a.num_tokens, "chars": _chars(a.response),
                        "text": a.response})
    elif table == "eval_comparisons":
        orders: dict[tuple[str, str], list[int]] = defaultdict(list)
        for c in it.eval_comparisons:
            orders[(c.prompt_id, c.baseline)].append(c.verdict)
        for c in it.eval_comparisons:
            out.append({"prompt_id": c.prompt_id, "category": cat.get(c.prompt_id), "baseline": c.baseline,
                        "model_first": c.model_is_a, "letter": c.letter, "method": c.method, "verdict": c.verdict,
                        "outcome": _outcome(orders[(c.prompt_id, c.baseline)]), "chars": _chars(c.text),
                        "text": c.text})
    elif table == "eval_judge":
        for j in it.eval_judge:
            lp = it.labelled_pairs.get(j.pair_id)
            judged = _judged(j.score_a, j.score_b)
            out.append({"pair_id": j.pair_id, "category": lp.category if lp else None, "preferred": j.preferred,
                        "score_a": j.score_a, "score_b": j.score_b, "judged": judged,
                        "correct": judged == j.preferred, "text": lp.instruction if lp else None})
    elif table == "heldout":
        for h in it.heldout:
            out.append({"task_id": h.task_id, "family": h.family, "model": h.model, "sample": h.sample_index,
                        "correct": h.correct, "method": h.method, "extracted": h.extracted, "answer": h.answer,
                        "tokens": h.num_tokens, "finish": h.finish_reason, "chars": _chars(h.output),
                        "prompt": h.prompt or None, "text": h.output})
    elif table == "eval_constraints":
        for c in it.eval_constraints:
            failed = [o for o in c.constraints if not o.get("strict")]
            out.append({"task_id": c.task_id, "family": c.family, "model": c.model, "followed": c.followed,
                        "followed_loose": c.followed_loose, "constraints": len(c.constraints),
                        "failed": ", ".join(str(o.get("instruction_id")) for o in failed) or None,
                        "detail": "; ".join(str(o.get("detail")) for o in failed) or None,
                        "words": len(c.response.split()), "tokens": c.num_tokens, "finish": c.finish_reason,
                        "prompt": c.prompt, "text": c.response})
    return out


def table_rows(it: Iteration, table: str) -> list[dict[str, Any]]:
    """One flat dict per row of ``table`` (its columns: :data:`COLUMNS`): the columns users filter and sort on
    (ids, scores, methods, lengths, verifier results, margins) and a short text column."""
    if table not in TABLES:
        raise InspectError(_unknown("table", table, list(TABLES)))
    if table in EVAL_FILES:
        return eval_table_rows(it, table)
    prompts = it.prompts
    out: list[dict[str, Any]] = []
    if table == "prompts":
        for p in prompts.values():
            rs = it.responses_of.get(p.prompt_id, [])
            checked = [it.verifications[r.response_id] for r in rs if r.response_id in it.verifications]
            out.append({"prompt_id": p.prompt_id, "category": _category(p), "source": p.source,
                        "responses": len(rs), "pairs": len(it.pairs_of.get(p.prompt_id, [])),
                        "correct": (sum(v.correct for v in checked) / len(checked)) if checked else None,
                        "answer": p.answer, "verifier": p.verifier, "chars": _chars(p.instruction),
                        "text": p.instruction})
    elif table == "responses":
        for r in it.responses.values():
            v = it.verifications.get(r.response_id)
            js = it.judgments_of.get(r.response_id, [])
            out.append({"response_id": r.response_id, "prompt_id": r.prompt_id,
                        "category": _category(prompts.get(r.prompt_id)), "sample": r.sample_index,
                        "score": it.score(r.response_id), "judgments": len(js),
                        "correct": v.correct if v else None, "level": v.level if v else None,
                        "answer_method": v.method if v else None, "parse_ok": r.parse_ok,
                        "finish": r.finish_reason, "tokens": r.num_tokens, "chars": _chars(r.response),
                        "thought_chars": _chars(r.thought),
                        "pairs": len(it.pairs_of.get(r.response_id, [])), "text": r.response})
    elif table == "verifications":
        for v in it.verifications.values():
            out.append({"response_id": v.response_id, "prompt_id": v.prompt_id, "verifier": v.verifier,
                        "method": v.method, "correct": v.correct, "level": v.level, "extracted": v.extracted,
                        "failed": ", ".join(str(o.get("instruction_id")) for o in v.constraints or []
                                            if not o.get("strict")) or None,
                        "text": v.detail})
    elif table == "reflections":
        for rf in it.reflections.values():
            out.append({"reflection_id": rf.reflection_id, "response_id": rf.response_id,
                        "prompt_id": rf.prompt_id, "index": rf.reflection_index, "retry_correct": rf.retry_correct,
                        "retry_method": rf.retry_method, "retry_answer": rf.retry_extracted,
                        "chars": _chars(rf.text), "tokens": rf.num_tokens, "text": rf.text})
    elif table == "judgments":
        for j in it.judgments.values():
            rt = it.ratings.get(j.judgment_id)
            out.append({"judgment_id": j.judgment_id, "response_id": j.response_id, "prompt_id": j.prompt_id,
                        "category": _category(prompts.get(j.prompt_id)), "index": j.judge_index,
                        "score": j.score, "method": j.method, "extra": bool(j.provenance.get("extra")),
                        "elo": rt.elo if rt else None, "tokens": j.num_tokens, "chars": _chars(j.text),
                        "pairs": len(it.pairs_of.get(j.judgment_id, [])), "text": j.text})
    elif table == "meta_judgments":
        for m in it.meta_judgments.values():
            out.append({"meta_id": m.meta_id, "response_id": m.response_id, "prompt_id": m.prompt_id,
                        "first_id": m.first_id, "second_id": m.second_id, "verdict": _verdict_name(m.verdict),
                        "method": m.method, "forced_margin": m.forced_margin, "chars": _chars(m.text),
                        "text": m.text})
    elif table == "ratings":
        for rt in it.ratings.values():
            out.append({"judgment_id": rt.judgment_id, "response_id": rt.response_id, "prompt_id": rt.prompt_id,
                        "elo": rt.elo, "wins": rt.wins, "losses": rt.losses,
                        "score": (it.judgments[rt.judgment_id].score if rt.judgment_id in it.judgments else None)})
    elif table == "pairs":
        for p in it.pairs.values():
            out.append({"pair_id": p.pair_id, "kind": pair_kind(p), "prompt_id": p.prompt_id,
                        "category": _category(prompts.get(p.prompt_id)), "chosen_id": p.chosen_id,
                        "rejected_id": p.rejected_id, "chosen_score": p.chosen_score,
                        "rejected_score": p.rejected_score, "margin": p.chosen_score - p.rejected_score,
                        "chosen_chars": _chars(p.chosen[-1]["content"]),
                        "rejected_chars": _chars(p.rejected[-1]["content"]),
                        "reference": "reused" if p.generated else "computed",
                        "text": prompts[p.prompt_id].instruction if p.prompt_id in prompts
                        else p.prompt[-1]["content"]})
    elif table == "known_pairs":
        for k in it.known_pairs.values():
            js = it.known_judgments_of.get(k.known_id, [])
            out.append({"known_id": k.known_id, "prompt_id": k.prompt_id, "source": k.source, "split": k.split,
                        "better_id": k.better_id, "worse_id": k.worse_id, "better_chars": _chars(k.better),
                        "worse_chars": _chars(k.worse), "judgments": len(js),
                        "correct": (sum(j.correct for j in js) / len(js)) if js else None,
                        "pairs": sum(len(it.pairs_of.get(j.judgment_id, [])) for j in js), "reason": k.reason,
                        "text": k.instruction})
    elif table == "known_judgments":
        for j in it.known_judgments.values():
            out.append({"judgment_id": j.judgment_id, "known_id": j.known_id, "prompt_id": j.prompt_id,
                        "source": j.source, "mode": j.mode, "shown": j.shown, "index": j.judge_index,
                        "verdict": j.verdict, "score": j.score, "method": j.method, "correct": j.correct,
                        "tokens": j.num_tokens, "chars": _chars(j.text),
                        "pairs": len(it.pairs_of.get(j.judgment_id, [])), "text": j.text})
    elif table == "rollouts":
        for ro in it.rollouts.values():
            task = prompts.get(ro.prompt_id)
            out.append({"rollout_id": ro.rollout_id, "prompt_id": ro.prompt_id, "step": ro.step, "reward": ro.reward,
                        "correct": ro.correct, "method": ro.method, "extracted": ro.extracted,
                        "answer": task.answer if task else None, "chars": _chars(ro.completion),
                        "detail": ro.detail or None, "text": ro.completion})
    return out


def pair_kind(p: PreferencePair) -> str:
    """response (judge-scored), verified (a verifier's levels), judgment (Elo), reflection (retry verified) or
    judge_training (a judgment right about a known pair over one that is wrong)."""
    if p.kind == "response" and str(p.provenance.get("reward", "")).startswith("verifier:"):
        return "verified"
    return p.kind


def _unknown(what: str, name: str, known: Sequence[str]) -> str:
    near = difflib.get_close_matches(name, known, n=1)
    hint = f'did you mean "{near[0]}"?' if near else f"known: {', '.join(known)}"
    return f'unknown {what} "{name}" — {hint}'


# ------------------------------------------------------------------------------------------------- filtering
OPERATORS = ("!=", ">=", "<=", "=", ">", "<", "~")
ORDERING = (">", ">=", "<", "<=")
_NUMERIC = "> >= < <= compare numbers"


@dataclass(frozen=True)
class Condition:
    """``column OP value``: = != > >= < <= compare (numbers as numbers, true/false/none as such); ~ finds text
    case-insensitively."""

    column: str
    op: str
    value: str

    @classmethod
    def parse(cls, text: str) -> Condition:
        for op in OPERATORS:  # two-character operators first
            col, sep, value = text.partition(op)
            if sep and col.strip():
                col, value = col.strip(), value.strip()
                if not value:  # most often a shell variable that was empty: matching nothing would hide it
                    example = {"~": "word", "=": "none (an empty cell)", "!=": "none"}.get(op, "2")
                    raise InspectError(f'--where "{text}": no value after {op} (e.g. {col}{op}{example})')
                if op in ORDERING and not _is_number(_literal(value)):
                    raise InspectError(f'--where "{text}": {_NUMERIC}, and "{value}" is not a number')
                return cls(col, op, value)
        raise InspectError(f'"{text}": a condition is COLUMN OP VALUE with OP one of {" ".join(OPERATORS)} '
                           "(e.g. score>=4, method=strict, text~python)")

    def check(self, rows: Sequence[dict[str, Any]], text: str) -> None:
        """An ordering on a column of text or true/false matches nothing: say so instead."""
        if self.op not in ORDERING:
            return
        cells = [r.get(self.column) for r in rows if r.get(self.column) is not None]
        if any(isinstance(c, bool) for c in cells):
            raise InspectError(f'--where "{text}": column "{self.column}" holds true/false — {_NUMERIC}; '
                               "use = or !=")
        if any(isinstance(c, str) for c in cells):
            raise InspectError(f'--where "{text}": column "{self.column}" holds text — {_NUMERIC}; use = != or ~ '
                               "(contains)")

    def test(self, row: dict[str, Any]) -> bool:
        cell = row.get(self.column)
        if self.op == "~":
            return self.value.lower() in ("" if cell is None else str(cell)).lower()
        want = _literal(self.value)
        if self.op in ("=", "!="):
            same = _equal(cell, want)
            return same if self.op == "=" else not same
        if cell is None or isinstance(cell, str) != isinstance(want, str) or want is None:
            return False
        try:
            return {">": cell > want, ">=": cell >= want, "<": cell < want, "<=": cell <= want}[self.op]
        except TypeError:
            return False


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _literal(text: str) -> Any:
    low = text.lower()
    if low in ("true", "false"):
        return low == "true"
    if low in ("none", "null", ""):
        return None
    try:
        return float(text)
    except ValueError:
        return text


def _equal(cell: Any, want: Any) -> bool:
    if isinstance(want, float) and isinstance(cell, (int, float)):  # bools count as 0 / 1
        return math.isclose(float(cell), want, abs_tol=1e-9)
    if want is None or isinstance(want, bool) or cell is None or isinstance(cell, bool):
        return cell == want
    as_int = str(int(want)) if isinstance(want, float) and want.is_integer() else str(want)  # "3" = 3.0
    return str(cell) in (as_int, str(want))


def select(rows: list[dict[str, Any]], where: Sequence[str] = (), search: str | None = None,
           sort: str | None = None, columns: Sequence[str] | None = None) -> list[dict[str, Any]]:
    """Rows passing every condition and containing ``search`` in any text cell, sorted by ``sort`` (``-col``
    for descending; empty cells last). ``columns``: the table's columns (:data:`COLUMNS`), so that an unknown
    one is an error even when there are no rows; without it, the first row's."""
    conds = [Condition.parse(w) for w in where]
    columns = list(columns) if columns is not None else list(rows[0]) if rows else []
    for c, text in zip(conds, where):
        if columns and c.column not in columns:
            raise InspectError(_unknown("column", c.column, columns))
        c.check(rows, text)
    out = [r for r in rows if all(c.test(r) for c in conds)]
    if search:
        needle = search.lower()
        out = [r for r in out if any(needle in str(v).lower() for v in r.values() if isinstance(v, str))]
    if sort:
        desc = sort.startswith("-")
        col = sort.lstrip("-")
        if columns and col not in columns:
            raise InspectError(_unknown("column", col, columns))
        present = [r for r in out if r.get(col) is not None]
        missing = [r for r in out if r.get(col) is None]
        present.sort(key=lambda r: (isinstance(r[col], str), r[col]), reverse=desc)
        out = present + missing
    return out


def page(rows: list[Any], number: int, size: int) -> tuple[list[Any], int]:
    """Rows of page ``number`` (from 1) and how many pages there are."""
    if size < 0:
        raise InspectError(f"--limit {size}: must be 0 (every row on one page) or more")
    pages = max(1, math.ceil(len(rows) / size)) if size > 0 else 1
    if number < 1:
        raise InspectError(f"--page {number}: pages count from 1")
    if number > pages:
        raise InspectError(f"page {number} does not exist — there {'is 1 page' if pages == 1 else f'are {pages} pages'}"
                           f" of {size or len(rows)} rows ({len(rows)} row{'' if len(rows) == 1 else 's'} in all)")
    return (rows[(number - 1) * size: number * size] if size > 0 else rows), pages


# ---------------------------------------------------------------------------------------------------- trace
def prompt_origin(p: Prompt) -> str:
    """Where a prompt came from, in words: a task file, a self-instruct request, or a seed file."""
    pv = p.provenance
    if p.source.startswith("task:"):
        return (f"task {pv.get('task_id', '?')} of family {p.source[5:]} from {pv.get('task_source', 'a task file')}"
                f" (answer {p.answer!r}, verifier {p.verifier})")
    if p.source == "self_instruct":
        return (f"self-instruct: request {pv.get('request', '?')} of iteration {pv.get('iteration', '?')}, written "
                f"by {pv.get('model', '?')} (sha256 {pv.get('model_sha256', '?')}) with template "
                f"{pv.get('template_sha', '?')}")
    return f"{p.source}" + (f" ({pv.get('file') or pv.get('path')})" if pv.get("file") or pv.get("path") else "")


def explain_pair(it: Iteration, p: PreferencePair) -> dict[str, Any]:
    """Why this pair: the rule that made it, every candidate it chose among, and whether re-applying the rule
    to the rows on disk picks the same two (a check that the rows and the pair agree)."""
    kind = pair_kind(p)
    pv = p.provenance
    if kind == "response":
        rho = float(pv.get("length_rho", 0.0))
        cands = []
        for r in it.responses_of.get(p.prompt_id, []):
            s = it.score(r.response_id)
            if r.parse_ok and s is not None:
                cands.append(pairs_rules.Candidate(r.response_id, s, len(r.response)))
            elif not r.parse_ok and pv.get("unparsed_response") == "reject":
                cands.append(pairs_rules.Candidate(r.response_id, pairs_rules.UNPARSED_SCORE, len(r.output)))
        normalized = pv.get("length_control") == "normalized"
        rule = pairs_rules.select_response_pair_normalized if normalized else pairs_rules.select_response_pair
        picked = rule(cands, rho) if cands else None
        scores = [c.score for c in cands]
        band = None
        if scores and not normalized:
            hi, lo = max(scores), min(scores)
            band = {"chosen_at_least": (1 - rho) * hi + rho * lo, "rejected_at_most": (1 - rho) * lo + rho * hi}
        return {"rule": ("TPO length control: highest z(score) - rho*z(length) chosen, lowest rejected" if normalized
                         else "highest mean judge score chosen (shortest within the rho band), lowest rejected "
                              "(longest within its band)"),
                "rho": rho, "band": band,
                "candidates": [{"id": c.id, "score": c.score, "chars": c.length} for c in cands],
                "reselected": None if picked is None else [picked[0].id, picked[1].id],
                "agrees": picked is not None and (picked[0].id, picked[1].id) == (p.chosen_id, p.rejected_id)}
    if kind == "verified":
        levels = [(r.response_id, it.verifications[r.response_id].level)
                  for r in it.responses_of.get(p.prompt_id, []) if r.response_id in it.verifications]
        per_prompt = len({q.pair_id for q in it.pairs_of.get(p.prompt_id, [])
                          if q.prompt_id == p.prompt_id and pair_kind(q) == "verified"})
        picked = pairs_rules.select_verified_pairs(levels, per_prompt)
        return {"rule": "verifier levels: highest level chosen, lower levels rejected, lowest first (IRPO)",
                "candidates": [{"id": rid, "level": lv} for rid, lv in levels],
                "reselected": [list(x) for x in picked],
                "agrees": (p.chosen_id, p.rejected_id) in picked}
    if kind == "judgment":
        rid = str(pv.get("response_id", ""))
        rated = [pairs_rules.RatedJudgment(rt.judgment_id, rt.elo, len(it.judgments[rt.judgment_id].text))
                 for rt in it.ratings_of.get(rid, []) if rt.judgment_id in it.judgments]
        picked = pairs_rules.select_judgment_pair(rated, int(pv.get("max_judgment_chars", 1100)))
        return {"rule": "meta-judge Elo: highest-rated judgment chosen, lowest rejected (judgments longer than "
                        f"{pv.get('max_judgment_chars', 1100)} characters left out)",
                "candidates": [{"id": j.id, "elo": j.elo, "chars": j.chars} for j in rated],
                "reselected": None if picked is None else [picked[0].id, picked[1].id],
                "agrees": picked is not None and (picked[0].id, picked[1].id) == (p.chosen_id, p.rejected_id)}
    if kind == "judge_training":
        group = [j for j in it.known_judgments_of.get(str(pv.get("known_id", "")), [])
                 if j.shown == pv.get("shown")]
        by_id = {j.judgment_id: j for j in group}
        c, r = by_id.get(p.chosen_id), by_id.get(p.rejected_id)
        return {"rule": "the judge learns from the truth: a judgment that prefers the known-better response (its "
                        "verdict written, not forced) chosen over one that does not, of the same known pair and "
                        f"order or side (judgments longer than {pv.get('max_chars', 1100)} characters left "
                        "out)",
                "candidates": [{"id": j.judgment_id, "correct": j.correct, "method": j.method, "verdict": j.verdict,
                                "score": j.score, "chars": len(j.text)} for j in group],
                "reselected": None,
                "agrees": c is not None and r is not None and c.correct and not r.correct}
    rfs = it.reflections_of.get(str(pv.get("attempt_id", "")), [])
    return {"rule": "Reflect, Retry, Reward: a reflection whose retry was right chosen over one whose retry was "
                    "wrong; the completion is the reflection only",
            "candidates": [{"id": r.reflection_id, "retry_correct": r.retry_correct} for r in rfs],
            "reselected": None, "agrees": any(r.reflection_id == p.chosen_id and r.retry_correct for r in rfs)}


def verification_view(v: Verification | None) -> dict[str, Any] | None:
    if v is None:
        return None
    return {"correct": v.correct, "level": v.level, "method": v.method, "extracted": v.extracted,
            "verifier": v.verifier, "detail": v.detail, "constraints": v.constraints}


def response_view(it: Iteration, r: Response, role: str = "") -> dict[str, Any]:
    return {"id": r.response_id, "role": role, "sample_index": r.sample_index, "thought": r.thought,
            "response": r.response, "parse_ok": r.parse_ok, "finish_reason": r.finish_reason,
            "tokens": r.num_tokens, "score": it.score(r.response_id),
            "verification": verification_view(it.verifications.get(r.response_id)),
            "judgments": [judgment_view(it, j) for j in it.judgments_of.get(r.response_id, [])],
            "battles": [battle_view(m) for m in it.meta_of.get(r.response_id, [])],
            "reflections": [{"id": rf.reflection_id, "text": rf.text, "retry": rf.retry,
                             "retry_correct": rf.retry_correct} for rf in it.reflections_of.get(r.response_id, [])],
            "model": r.provenance.get("model"), "model_sha256": r.provenance.get("model_sha256"),
            "template": r.provenance.get("template"), "template_sha": r.provenance.get("template_sha"),
            "sampling": r.provenance.get("sampling")}


def rollout_view(ro: Rollout) -> dict[str, Any]:
    return {"id": ro.rollout_id, "step": ro.step, "reward": ro.reward, "correct": ro.correct, "method": ro.method,
            "extracted": ro.extracted, "detail": ro.detail, "completion": ro.completion, "model": ro.model}


def known_judgment_view(j: KnownJudgment) -> dict[str, Any]:
    return {"id": j.judgment_id, "mode": j.mode, "shown": j.shown, "index": j.judge_index, "verdict": j.verdict,
            "score": j.score, "method": j.method, "correct": j.correct, "text": j.text,
            "template_sha": j.provenance.get("template_sha"), "model_sha256": j.provenance.get("model_sha256")}


def known_pair_view(it: Iteration, k: KnownPair) -> dict[str, Any]:
    """A known pair (which side is better, and why) and every judgment of it, each marked correct or not."""
    js = it.known_judgments_of.get(k.known_id, [])
    return {"id": k.known_id, "source": k.source, "split": k.split, "better_id": k.better_id,
            "worse_id": k.worse_id, "reason": k.reason, "better": k.better, "worse": k.worse,
            "correct": (sum(j.correct for j in js) / len(js)) if js else None,
            "judgments": [known_judgment_view(j) for j in js], "provenance": k.provenance}


def judgment_view(it: Iteration, j: Judgment) -> dict[str, Any]:
    rt = it.ratings.get(j.judgment_id)
    return {"id": j.judgment_id, "index": j.judge_index, "score": j.score, "method": j.method, "text": j.text,
            "extra": bool(j.provenance.get("extra")), "elo": rt.elo if rt else None,
            "wins": rt.wins if rt else None, "losses": rt.losses if rt else None,
            "template_sha": j.provenance.get("template_sha"), "model_sha256": j.provenance.get("model_sha256")}


def battle_view(m: MetaJudgment) -> dict[str, Any]:
    return {"id": m.meta_id, "first": m.first_id, "second": m.second_id, "verdict": _verdict_name(m.verdict),
            "method": m.method, "forced_margin": m.forced_margin, "text": m.text,
            "template_sha": m.provenance.get("template_sha")}


def _reference_view(p: PreferencePair) -> dict[str, Any] | None:
    """The DPO reference log-probs the pair carries (reused by dpo instead of a reference forward pass)."""
    g = p.generated
    if not g:
        return None
    side = {}
    for name in ("chosen", "rejected"):
        s = g.get(name) or {}
        side[name] = {"logprob": s.get("logprob"), "stop_logprob": s.get("stop_logprob"),
                      "tokens": len(s.get("token_ids") or [])}
    return {"model_sha256": g.get("model_sha256"), **side}


def pair_view(it: Iteration, p: PreferencePair) -> dict[str, Any]:
    return {"id": p.pair_id, "kind": pair_kind(p), "prompt_id": p.prompt_id, "chosen_id": p.chosen_id,
            "rejected_id": p.rejected_id, "chosen_score": p.chosen_score, "rejected_score": p.rejected_score,
            "margin": p.chosen_score - p.rejected_score, "prompt": p.prompt[-1]["content"],
            "chosen": p.chosen[-1]["content"], "rejected": p.rejected[-1]["content"],
            "chosen_chars": len(p.chosen[-1]["content"]), "rejected_chars": len(p.rejected[-1]["content"]),
            "provenance": p.provenance, "reference": _reference_view(p), "why": explain_pair(it, p)}


def trace(it: Iteration, row_id: str) -> dict[str, Any]:
    """Everything behind one row id (a pair, prompt, response, judgment, meta-judgment, reflection or rating):
    its prompt and origin, every response to that prompt with its judgments, battles and ratings, the pairs
    made from it and why, and the hashes of the models and templates involved."""
    table = it.kind_of(row_id)
    if table is None:
        near = difflib.get_close_matches(row_id, it.known_ids(), n=1, cutoff=0.8)
        hint = f' — did you mean "{near[0]}"?' if near else (
            " — ids start with p- (prompt), r- (response), j- (judgment), mj- (meta-judgment), rp-/vp-/jp-/fp-/tp- "
            "(pairs), kp- (known pair), kj- (judgment of a known pair), ro- (GRPO rollout); an evaluation prompt, labelled pair or held-out task has the id of its input file")
        raise InspectError(f'{it.source}: no row with id "{row_id}"{hint}')
    if table in EVAL_FILES:
        return eval_trace(it, row_id, table)
    focus: dict[str, Any] = {"id": row_id, "table": table}
    if table == "pairs":
        prompt_id = it.pairs[row_id].prompt_id
    elif table == "known_judgments":
        prompt_id = it.known_judgments[row_id].prompt_id
        focus["known_judgment"] = known_judgment_view(it.known_judgments[row_id])
    elif table == "prompts":
        prompt_id = row_id
    elif table == "rollouts":
        prompt_id = it.rollouts[row_id].prompt_id
        focus["rollout"] = rollout_view(it.rollouts[row_id])
    else:
        prompt_id = getattr(it, table)[row_id].prompt_id
    p = it.prompts.get(prompt_id)
    pairs = sorted({q.pair_id: q for q in it.pairs_of.get(prompt_id, [])}.values(), key=lambda q: q.pair_id)
    roles: dict[str, str] = {}
    for q in pairs:
        if q.pair_id == row_id or table != "pairs":
            roles.setdefault(q.chosen_id, "chosen")
            roles.setdefault(q.rejected_id, "rejected")
    responses = [response_view(it, r, roles.get(r.response_id, "")) for r in it.responses_of.get(prompt_id, [])]
    if table == "pairs":
        focus["pair"] = pair_view(it, it.pairs[row_id])
    hashes: dict[str, set[str]] = defaultdict(set)
    for rows in (it.responses_of.get(prompt_id, []),
                 [j for r in it.responses_of.get(prompt_id, []) for j in it.judgments_of.get(r.response_id, [])],
                 [m for r in it.responses_of.get(prompt_id, []) for m in it.meta_of.get(r.response_id, [])]):
        for row in rows:
            pv = row.provenance
            if pv.get("model_sha256"):
                hashes[f"model {pv.get('model', '?')}"].add(str(pv["model_sha256"]))
            if pv.get("template_sha"):
                hashes[f"template {pv.get('template') or type(row).__name__.lower()}"].add(str(pv["template_sha"]))
    for q in pairs:
        if q.generated and q.generated.get("model_sha256"):
            hashes["reference log-probs from model"].add(str(q.generated["model_sha256"]))
    return {"iteration": it.key, "source": it.source, "focus": focus,
            "prompt": None if p is None else {"id": p.prompt_id, "instruction": p.instruction, "input": p.input,
                                              "source": p.source, "origin": prompt_origin(p), "answer": p.answer,
                                              "verifier": p.verifier, "provenance": p.provenance},
            "responses": responses,
            "known_pairs": [known_pair_view(it, k) for k in it.known_of.get(prompt_id, [])],
            "rollouts": [rollout_view(ro) for ro in it.rollouts_of.get(prompt_id, [])],
            "pairs": [pair_view(it, q) for q in pairs],
            "hashes": {k: sorted(v) for k, v in sorted(hashes.items())}}


def eval_trace(it: Iteration, row_id: str, table: str) -> dict[str, Any]:
    """Everything the evaluate stage wrote about one evaluation prompt (each model's answer, the evaluator's
    verdict in both orders per baseline and the outcome), labelled pair (the pair, the scores the model gave
    each side, whether it agrees with the label) or held-out task (the task, its gold answer, every model's
    samples checked by the verifier)."""
    out: dict[str, Any] = {"iteration": it.key, "source": it.source, "focus": {"id": row_id, "table": table}}
    if table in ("eval_answers", "eval_comparisons"):
        p = it.eval_prompts.get(row_id)
        out["eval_prompt"] = {"id": row_id, "category": p.category if p else None,
                              "instruction": p.instruction if p else None, "input": p.input if p else ""}
        out["answers"] = [{"model": a.model, "model_dir": a.model_dir, "response": a.response,
                           "parse_ok": a.parse_ok, "tokens": a.num_tokens}
                          for a in it.eval_answers if a.prompt_id == row_id]
        baselines: dict[str, list[EvalComparison]] = defaultdict(list)
        for c in it.eval_comparisons:
            if c.prompt_id == row_id:
                baselines[c.baseline].append(c)
        out["comparisons"] = [{"baseline": b, "outcome": _outcome([c.verdict for c in cs]),
                               "orders": [{"model_first": c.model_is_a, "letter": c.letter, "method": c.method,
                                           "verdict": c.verdict, "text": c.text} for c in cs]}
                              for b, cs in baselines.items()]
    elif table == "eval_judge":
        j = next(x for x in it.eval_judge if x.pair_id == row_id)
        lp = it.labelled_pairs.get(row_id)
        judged = _judged(j.score_a, j.score_b)
        out["labelled_pair"] = {"id": row_id, "preferred": j.preferred, "score_a": j.score_a, "score_b": j.score_b,
                                "judged": judged, "correct": judged == j.preferred,
                                "category": lp.category if lp else None,
                                "instruction": lp.instruction if lp else None,
                                "response_a": lp.response_a if lp else None,
                                "response_b": lp.response_b if lp else None}
    elif table == "eval_constraints":
        answers = [c for c in it.eval_constraints if c.task_id == row_id]
        out["constraint_task"] = {"id": row_id, "family": answers[0].family, "prompt": answers[0].prompt}
        out["models"] = [{"model": c.model, "model_dir": c.model_dir, "followed": c.followed,
                          "followed_loose": c.followed_loose, "tokens": c.num_tokens, "finish_reason": c.finish_reason,
                          "response": c.response, "constraints": c.constraints} for c in answers]
    else:
        samples = [h for h in it.heldout if h.task_id == row_id]
        first = samples[0]
        by_model: dict[str, list[HeldoutSample]] = defaultdict(list)
        for h in samples:
            by_model[h.model].append(h)
        out["task"] = {"id": row_id, "family": first.family,
                       "prompt": next((h.prompt for h in samples if h.prompt), None),
                       "answer": next((h.answer for h in samples if h.answer is not None), None)}
        out["models"] = [{"model": m, "model_dir": hs[0].model_dir, "correct": sum(h.correct for h in hs),
                          "samples": [{"index": h.sample_index, "correct": h.correct, "method": h.method,
                                       "extracted": h.extracted, "tokens": h.num_tokens,
                                       "finish_reason": h.finish_reason, "output": h.output} for h in hs]}
                         for m, hs in by_model.items()]
    return out


def linked_ids(t: dict[str, Any]) -> set[str]:
    """Every row id a trace names (tests check each resolves)."""
    ids: set[str] = set()
    if t["focus"]["table"] in EVAL_FILES:
        return {t["focus"]["id"]}
    if t["prompt"]:
        ids.add(t["prompt"]["id"])
    for r in t["responses"]:
        ids.add(r["id"])
        ids.update(j["id"] for j in r["judgments"])
        for b in r["battles"]:
            ids.update((b["id"], b["first"], b["second"]))
        ids.update(x["id"] for x in r["reflections"])
    for q in t["pairs"]:
        ids.update((q["id"], q["chosen_id"], q["rejected_id"], q["prompt_id"]))
    ids.update(ro["id"] for ro in t.get("rollouts", []))
    return ids


# ----------------------------------------------------------------------------------------------------- diff
def _summary(values: Iterable[float | None]) -> dict[str, Any]:
    xs = sorted(float(v) for v in values if v is not None)
    if not xs:
        return {"n": 0}
    q = statistics.quantiles(xs, n=4) if len(xs) >= 2 else [xs[0]] * 3
    return {"n": len(xs), "mean": statistics.fmean(xs), "sd": statistics.pstdev(xs) if len(xs) > 1 else 0.0,
            "min": xs[0], "p25": q[0], "median": q[1], "p75": q[2], "max": xs[-1]}


def position_bias(meta: Iterable[MetaJudgment]) -> dict[str, Any]:
    """Of the meta-judge's decisive verdicts, the share that went to the judgment shown first (0.5 = none)."""
    verdicts = [m.verdict for m in meta if m.verdict != 0]
    first = sum(v == 1 for v in verdicts)
    n = len(verdicts)
    share = first / n if n else None
    se = math.sqrt(share * (1 - share) / n) if n else None
    return {"decisive": n, "first_wins": share, "se": se}


def profile(it: Iteration) -> dict[str, Any]:
    """Counts, distributions and rates of one iteration: what ``diff`` compares."""
    judgments = list(it.judgments.values())
    methods = Counter(j.method for j in judgments)
    checked = list(it.verifications.values())
    pairs = list(it.pairs.values())
    kinds = Counter(pair_kind(p) for p in pairs)
    return {
        "counts": {t: len(getattr(it, t)) for t in FILES},
        "pairs_by_kind": dict(sorted(kinds.items())),
        "judge_score": _summary(j.score for j in judgments),
        "judge_methods": {m: c / len(judgments) for m, c in sorted(methods.items())} if judgments else {},
        "response_chars": _summary(len(r.response) for r in it.responses.values()),
        "response_parse_rate": (sum(r.parse_ok for r in it.responses.values()) / len(it.responses)
                                if it.responses else None),
        "correct_rate": (sum(v.correct for v in checked) / len(checked)) if checked else None,
        "pair_margin": {k: _summary(p.chosen_score - p.rejected_score for p in pairs if pair_kind(p) == k)
                        for k in sorted(kinds)},
        "chosen_chars": _summary(len(p.chosen[-1]["content"]) for p in pairs),
        "rejected_chars": _summary(len(p.rejected[-1]["content"]) for p in pairs),
        "elo": _summary(rt.elo for rt in it.ratings.values()),
        "position_bias": position_bias(it.meta_judgments.values()),
        "rollout_reward": _summary(ro.reward for ro in it.rollouts.values()),
        "rollout_correct_rate": (sum(ro.correct for ro in it.rollouts.values()) / len(it.rollouts)
                                 if it.rollouts else None),
    }


def _prompt_key(p: Prompt) -> str:
    return " ".join(p.instruction.split()).lower()


def _response_key(it: Iteration, r: Response) -> tuple[str, str]:
    p = it.prompts.get(r.prompt_id)
    return (_prompt_key(p) if p else r.prompt_id, " ".join(r.response.split()))


def diff(a: Iteration, b: Iteration, examples: int = 5) -> dict[str, Any]:
    """What changed from ``a`` to ``b``: profiles side by side, prompts and pairs new and gone (prompts matched
    by their instruction text, pairs by id), and judge drift on the responses both judged (matched by prompt
    text and response text, so the same answer judged in two iterations or two revisions counts)."""
    pa, pb = {_prompt_key(p): p for p in a.prompts.values()}, {_prompt_key(p): p for p in b.prompts.values()}
    new_prompts = [pb[k].prompt_id for k in pb if k not in pa]
    gone_prompts = [pa[k].prompt_id for k in pa if k not in pb]
    new_pairs = sorted(set(b.pairs) - set(a.pairs))
    gone_pairs = sorted(set(a.pairs) - set(b.pairs))
    ra = {_response_key(a, r): r for r in a.responses.values()}
    rb = {_response_key(b, r): r for r in b.responses.values()}
    shared = [(ra[k], rb[k]) for k in ra if k in rb]
    drift = []
    for x, y in shared:
        sx, sy = a.score(x.response_id), b.score(y.response_id)
        if sx is not None and sy is not None:
            drift.append((x.response_id, y.response_id, sx, sy))
    deltas = [sy - sx for _, _, sx, sy in drift]
    judged_a = {(_response_key(a, a.responses[j.response_id]), j.judge_index, bool(j.provenance.get("extra"))): j
                for j in a.judgments.values() if j.response_id in a.responses}
    judged_b = {(_response_key(b, b.responses[j.response_id]), j.judge_index, bool(j.provenance.get("extra"))): j
                for j in b.judgments.values() if j.response_id in b.responses}
    same_judgments = [(judged_a[k], judged_b[k]) for k in judged_a if k in judged_b]
    corr = None
    if len(drift) >= 3:
        xs, ys = [d[2] for d in drift], [d[3] for d in drift]
        if statistics.pstdev(xs) > 0 and statistics.pstdev(ys) > 0:
            corr = statistics.correlation(xs, ys)
    metric_changes = {}
    for stage in sorted(set(a.metrics) | set(b.metrics)):
        fa, fb = _flatten(a.metrics.get(stage, {})), _flatten(b.metrics.get(stage, {}))
        for k in sorted(set(fa) | set(fb)):
            if k.endswith("seconds") or fa.get(k) == fb.get(k):
                continue
            metric_changes[f"{stage}.{k}"] = (fa.get(k), fb.get(k))
    return {
        "a": a.source, "b": b.source, "profile": {"a": profile(a), "b": profile(b)},
        "prompts": {"shared": len(set(pa) & set(pb)), "new": len(new_prompts), "gone": len(gone_prompts),
                    "new_examples": [(i, b.prompts[i].instruction) for i in new_prompts[:examples]],
                    "gone_examples": [(i, a.prompts[i].instruction) for i in gone_prompts[:examples]]},
        "pairs": {"shared": len(set(a.pairs) & set(b.pairs)), "new": len(new_pairs), "gone": len(gone_pairs),
                  "new_examples": new_pairs[:examples], "gone_examples": gone_pairs[:examples]},
        "judge_drift": {
            "shared_responses": len(shared), "scored_in_both": len(drift),
            "mean_change": statistics.fmean(deltas) if deltas else None,
            "mean_abs_change": statistics.fmean(abs(d) for d in deltas) if deltas else None,
            "changed_by_1_or_more": sum(abs(d) >= 1 for d in deltas),
            "correlation": corr,
            # the same judgment slot (response text, judge index) in both: how many scores differ
            "judgments_compared": len(same_judgments),
            "judgments_changed": sum(x.score != y.score for x, y in same_judgments),
            "largest": [{"a": x, "b": y, "score_a": sx, "score_b": sy}
                        for x, y, sx, sy in sorted(drift, key=lambda d: -abs(d[3] - d[2]))[:examples]
                        if sx != sy]},
        "metrics": metric_changes,
    }


def _flatten(obj: Any, prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    if isinstance(obj, dict):
        for k, v in obj.items():
            out.update(_flatten(v, f"{prefix}{k}."))
    elif isinstance(obj, (int, float, str, bool)) or obj is None:
        out[prefix.rstrip(".")] = obj
    return out


def available_iterations(root: str | Path = ".") -> list[str]:
    """Iteration keys with data in the working tree, in params.yaml's order (then any others, sorted).

    A folder of data/ counts when it holds a file only a stage writes (responses, pairs, evaluation results: so
    M0_sft evaluated alone counts); an iteration params.yaml names counts with any of its files (prompts.jsonl
    alone, after self_instruct). data/seed and data/eval hold files of the same names in their own formats."""
    base = Path(root)
    every = {n for names, _ in FILES.values() for n in names} | {n for n, _ in EVAL_FILES.values()}
    markers = every - {"prompts.jsonl", "judgments.jsonl"}
    order: list[str] = []
    try:
        import yaml
        order = [str(k) for k in (yaml.safe_load((base / "params.yaml").read_text()) or {}).get("iterations") or {}]
    except (OSError, ValueError, AttributeError, yaml.YAMLError):
        pass
    present = sorted(d.name for d in (base / "data").glob("*/") if d.is_dir()
                     and any((d / n).is_file() for n in (every if d.name in order else markers)))
    return [k for k in order if k in present] + [k for k in present if k not in order]


# --------------------------------------------------------------------------------------------------- writing
def make_parents(out: Path) -> list[Path]:
    """Make the missing folders above ``out`` (what ``export`` and ``page`` write); returns the ones it made, to
    remove again if the write fails. A file in the way or a folder that cannot be written is one line."""
    made: list[Path] = []
    try:
        for folder in reversed(out.parents):
            if not folder.is_dir():
                folder.mkdir()
                made.append(folder)
    except OSError as e:
        remove_folders(made)
        raise output_error(out, e) from None
    return made


def remove_folders(made: Sequence[Path]) -> None:
    for folder in reversed(made):
        try:
            folder.rmdir()
        except OSError:
            pass


def output_error(out: Path, e: OSError) -> OutputError:
    """One line for a failed write of ``out``: the file that stands where a folder should be, or the OS's reason."""
    if isinstance(e, OutputError):
        return e
    for above in out.parents:
        if os.path.lexists(above):
            if not above.is_dir():
                return OutputError(f"{out}: cannot write — {above} is a file, not a folder; choose another path")
            break
    return OutputError.of(out, e)
