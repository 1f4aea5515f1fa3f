"""An iteration's pairs as a dataset others can load: parquet or a Hugging Face dataset on disk, with a card.

Columns are TRL's conversational preference format (``prompt``, ``chosen``, ``rejected`` as message lists) plus
the ids and scores that tie each row back to the pipeline's files (``selfreward trace <pair_id>``), and the
reference log-probs the pair carried. The card (README.md) says how many pairs of each kind, where the prompts
came from, which models and params made them, and the command that wrote the export.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import os
import shutil
import tempfile
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pipeline.inspection import (
    InspectError,
    Iteration,
    local_reader,
    make_parents,
    output_error,
    pair_kind,
    remove_folders,
    revision_reader,
)

KINDS = ("response", "verified", "judgment", "reflection", "judge_training")


def pair_records(it: Iteration, kinds: Sequence[str] | None = None) -> list[dict[str, Any]]:
    """One flat row per pair (of ``kinds``; default all), in pair-id order."""
    rows = []
    for p in sorted(it.pairs.values(), key=lambda q: q.pair_id):
        kind = pair_kind(p)
        if kinds and kind not in kinds:
            continue
        prompt = it.prompts.get(p.prompt_id)
        g = p.generated or {}
        rows.append({
            "pair_id": p.pair_id, "kind": kind, "iteration": p.iteration,
            "prompt": p.prompt, "chosen": p.chosen, "rejected": p.rejected,
            "prompt_id": p.prompt_id, "chosen_id": p.chosen_id, "rejected_id": p.rejected_id,
            "chosen_score": float(p.chosen_score), "rejected_score": float(p.rejected_score),
            "instruction": prompt.instruction if prompt else None,
            "prompt_source": prompt.source if prompt else None,
            "answer": prompt.answer if prompt else None,
            "reference_chosen_logprob": (g.get("chosen") or {}).get("logprob"),
            "reference_rejected_logprob": (g.get("rejected") or {}).get("logprob"),
            "reference_model_sha256": g.get("model_sha256"),
            "provenance": json.dumps(p.provenance, ensure_ascii=False, sort_keys=True),  # varies by kind
        })
    return rows


def _sha256(data: bytes | None) -> str | None:
    return hashlib.sha256(data).hexdigest()[:16] if data is not None else None


def card(it: Iteration, rows: list[dict[str, Any]], fmt: str, command: str, params_sha: str | None) -> str:
    """The dataset card: YAML metadata the Hub reads, then what the rows are and where they came from."""
    kinds = Counter(r["kind"] for r in rows)
    sources = Counter(r["prompt_source"] or "unknown" for r in rows)
    models: Counter[str] = Counter()
    for r in it.responses.values():
        if r.provenance.get("model_sha256"):
            models[f"{r.provenance.get('model', '?')} (sha256 {r.provenance['model_sha256']})"] += 1
    data_files = "pairs.parquet" if fmt == "parquet" else "data-*.arrow"
    load = ('datasets.load_dataset("parquet", data_files="pairs.parquet", split="train")' if fmt == "parquet"
            else 'datasets.load_from_disk("<this folder>")')
    lines = [
        "---",
        "tags: [dpo, preference, self-rewarding, selfreward]",
        "configs:",
        "- config_name: default",
        f"  data_files: {data_files}",
        "---",
        "",
        f"# Preference pairs of iteration {it.key}",
        "",
        f"Written by selfreward from `{it.source}` on {_dt.datetime.now(_dt.UTC).strftime('%Y-%m-%d %H:%M UTC')}.",
        "",
        f"Command: `{command}`",
        "",
        f"Load: `{load}`; TRL's DPOTrainer takes the `prompt`, `chosen` and `rejected` columns as they are.",
        "",
        f"## Counts ({len(rows)} pairs)",
        "",
        "| kind | pairs |",
        "|---|---|",
        *[f"| {k} | {n} |" for k, n in sorted(kinds.items())],
        "",
        ("Kinds: response = best vs worst judge score; verified = a verifier's reward levels (IRPO); judgment = "
         "best vs worst meta-judge Elo; reflection = Reflect, Retry, Reward."),
        "",
        "## Where the prompts came from",
        "",
        "| source | pairs |",
        "|---|---|",
        *[f"| {s} | {n} |" for s, n in sorted(sources.items())],
        "",
        f"Files read: {'; '.join(f for f in it.files.values() if f)}.",
        "",
        "## Models and params",
        "",
        *([f"- responses sampled by {m}: {n} responses" for m, n in sorted(models.items())] or ["- (no responses)"]),
        f"- params.yaml sha256 (first 16 hex digits): {params_sha or 'not found'}",
        "",
        ("Columns: pair_id, kind, iteration, prompt/chosen/rejected (message lists), prompt_id, chosen_id, "
         "rejected_id (row ids in the pipeline's files: `selfreward trace <pair_id>` shows everything behind a "
         "pair), chosen_score/rejected_score (judge score, verifier level, or Elo by kind), instruction, "
         "prompt_source, answer, reference_*_logprob (the generator's log-probs DPO reused as reference), "
         "provenance (JSON text)."),
        "",
    ]
    return "\n".join(lines)


def export_pairs(it: Iteration, out: Path, fmt: str, kinds: Sequence[str] | None = None, root: str | Path = ".",
                 command: str = "", rev: str | None = None) -> dict[str, Any]:
    """Write ``out`` (a new or empty folder) with the pairs and README.md; written whole or not at all."""
    if fmt not in ("parquet", "hf"):
        raise InspectError(f'export format "{fmt}": expected parquet or hf')
    for k in kinds or ():
        if k not in KINDS:
            raise InspectError(f'pair kind "{k}": expected one of {", ".join(KINDS)}')
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise InspectError(f"{out}: exists and is not an empty folder — choose a new --out")
    rows = pair_records(it, kinds)
    if not rows:
        raise InspectError(f"{it.source}: no pairs" + (f" of kind {', '.join(kinds)}" if kinds else "")
                           + " to export")
    read = revision_reader(root, rev) if rev else local_reader(root)
    params_sha = _sha256(read("params.yaml"))
    made = make_parents(out)  # a file in the way, or a folder that cannot be written: one line, nothing made
    tmp: Path | None = None
    try:
        tmp = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}.", suffix=".tmp"))
        if fmt == "parquet":
            import pyarrow as pa
            import pyarrow.parquet as pq
            pq.write_table(pa.Table.from_pylist(rows), tmp / "pairs.parquet")
        else:
            import datasets
            datasets.Dataset.from_list(rows).save_to_disk(str(tmp))
        (tmp / "README.md").write_text(card(it, rows, fmt, command, params_sha), encoding="utf-8")
        if out.exists():
            out.rmdir()
        os.replace(tmp, out)
    except BaseException as e:
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)
        remove_folders(made)
        if isinstance(e, OSError):
            raise output_error(out, e) from None
        raise
    return {"pairs": len(rows), "card": str(out / "README.md"), "kinds": dict(Counter(r["kind"] for r in rows))}
