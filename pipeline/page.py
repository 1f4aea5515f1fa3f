"""The report page of one iteration: ``reports/<key>/index.html``, one self-contained HTML file.

It opens from ``file://`` with no server and no network: the CSS and JS (``pipeline/page_assets/``) are inlined,
the figures are inline SVG drawn here, and the pairs are embedded as JSON in
``<script type="application/json" id="data">`` that the page's script renders, 50 cards a page, with search,
filters, sorting and deep links (``index.html#<pair id>``, or the id of any row a pair shows).

Python computes everything; the page only filters and draws. Model text is data: it goes into the JSON (with
``</`` written ``<\\/`` so no text can end the script element) and the script puts it into the DOM with
``textContent`` only. The embedded data is lean: each response, judgment and reflection a pair card shows is
stored once, by id, and the pairs refer to them; a response's thought and final text are stored as offsets into
its raw output (the DPO completion) when they are parts of it. Above :data:`COMPRESS_ABOVE` bytes of JSON
(paper scale: ~65 MB) the data is embedded gzip+base64 instead (``<script id="data-gz">``, ~22 MB), which the
page inflates with the browser's own DecompressionStream; :func:`read_embedded` reads either form back.

    from pipeline import inspection, page
    page.write_page(inspection.load_iteration("M1"), Path("reports/M1/index.html"))
"""

from __future__ import annotations

import base64
import gzip
import json
import math
import os
import re
import tempfile
from collections import defaultdict
from pathlib import Path
from typing import Any

import jinja2
from markupsafe import Markup, escape

from pipeline.errors import OutputError
from pipeline.inspection import (
    FILES,
    Iteration,
    make_parents,
    output_error,
    pair_kind,
    pair_view,
    profile,
    remove_folders,
    verification_view,
)
from pipeline.records import Response

ASSETS = Path(__file__).resolve().parent / "page_assets"
PAGE_SIZE = 50  # cards per page (the page's script reads it from the data)
# Above this many bytes of JSON the data is embedded gzip-compressed and base64-encoded (the page inflates it with
# the browser's DecompressionStream): paper scale (5,000 prompts x 7 responses) is ~65 MB of JSON, ~22 MB so.
COMPRESS_ABOVE = 10_000_000
KIND_ORDER = ("response", "verified", "judgment", "reflection", "judge_training")


# ------------------------------------------------------------------------------------------------------ data
def _utf16_len(text: str) -> int:
    """Length in UTF-16 code units: what JavaScript's String.slice counts."""
    return len(text.encode("utf-16-le")) // 2


def _span(whole: str, part: str, start: int = 0) -> str | list[int]:
    """``part`` as [begin, end] UTF-16 offsets into ``whole`` when it occurs there (at or after ``start``),
    else ``part`` itself. Empty text stays ""."""
    if not part:
        return ""
    i = whole.find(part, start)
    if i < 0:
        i = whole.find(part)
    if i < 0:
        return part
    a = _utf16_len(whole[:i])
    return [a, a + _utf16_len(part)]


def _response(it: Iteration, r: Response, with_judgments: bool) -> dict[str, Any]:
    out = r.output or ""
    thought = _span(out, r.thought)
    after = out.find(r.thought) + len(r.thought) if isinstance(thought, list) else 0
    text = _span(out, r.response, after)  # the final text usually follows the thought
    return {"prompt_id": r.prompt_id, "sample_index": r.sample_index, "output": out, "thought": thought,
            "response": text, "parse_ok": r.parse_ok, "finish_reason": r.finish_reason, "tokens": r.num_tokens,
            "score": it.score(r.response_id), "verification": verification_view(it.verifications.get(r.response_id)),
            "judgments": ([j.judgment_id for j in it.judgments_of.get(r.response_id, [])] if with_judgments
                          else None)}


def _judgment(it: Iteration, jid: str) -> dict[str, Any]:
    j = it.judgments[jid]
    rt = it.ratings.get(jid)
    return {"response_id": j.response_id, "index": j.judge_index, "score": j.score, "method": j.method,
            "text": j.text, "extra": bool(j.provenance.get("extra")), "elo": rt.elo if rt else None,
            "wins": rt.wins if rt else None, "losses": rt.losses if rt else None}


def _reflection(it: Iteration, fid: str) -> dict[str, Any]:
    rf = it.reflections[fid]
    return {"response_id": rf.response_id, "index": rf.reflection_index, "text": rf.text, "retry": rf.retry,
            "retry_answer": rf.retry_extracted, "retry_method": rf.retry_method, "retry_correct": rf.retry_correct}


def _prompt(it: Iteration, pid: str) -> dict[str, Any]:
    p = it.prompts[pid]
    return {"instruction": p.instruction, "input": p.input, "source": p.source, "answer": p.answer,
            "verifier": p.verifier, "category": str(p.provenance.get("category") or "")}


def page_data(it: Iteration) -> dict[str, Any]:
    """What the page's script needs: every pair (pair_view without the texts its rows hold) and, once each, the
    prompts, responses, judgments and reflections the cards show."""
    pairs: list[dict[str, Any]] = []
    prompts: dict[str, Any] = {}
    responses: dict[str, Any] = {}
    judgments: dict[str, Any] = {}
    reflections: dict[str, Any] = {}

    def add_response(rid: str, with_judgments: bool) -> bool:
        r = it.responses.get(rid)
        if r is None:
            return False
        have = responses.get(rid)
        if have is None or (with_judgments and have["judgments"] is None):
            responses[rid] = _response(it, r, with_judgments)
            if with_judgments:
                for jid in responses[rid]["judgments"]:
                    judgments.setdefault(jid, _judgment(it, jid))
        return True

    ordered = sorted(it.pairs.values(), key=lambda p: (KIND_ORDER.index(pair_kind(p))
                                                        if pair_kind(p) in KIND_ORDER else len(KIND_ORDER)))
    for p in ordered:
        view = pair_view(it, p)
        kind = view["kind"]
        rec = {k: view[k] for k in ("id", "kind", "prompt_id", "chosen_id", "rejected_id", "chosen_score",
                                    "rejected_score", "margin", "chosen_chars", "rejected_chars", "provenance",
                                    "reference", "why")}
        if p.prompt_id in it.prompts:
            prompts.setdefault(p.prompt_id, _prompt(it, p.prompt_id))
        if p.prompt_id not in it.prompts or kind == "judge_training":  # a judge-training pair's prompt: the judge's
            rec["prompt_text"] = view["prompt"]
        found = {}
        for side in ("chosen", "rejected"):
            sid = view[f"{side}_id"]
            if kind in ("response", "verified"):
                found[side] = add_response(sid, with_judgments=True)
            elif kind == "judgment":
                found[side] = sid in it.judgments
                if found[side]:
                    judgments.setdefault(sid, _judgment(it, sid))
            elif kind == "reflection":
                found[side] = sid in it.reflections
                if found[side]:
                    reflections.setdefault(sid, _reflection(it, sid))
            else:
                found[side] = False
            if not found[side]:  # the side's row is missing: show the pair's own text
                rec[f"{side}_text"] = view[side]
        context = None
        if kind == "judgment":
            context = str(p.provenance.get("response_id") or "")
        elif kind == "reflection":
            context = str(p.provenance.get("attempt_id") or "")
        if context and add_response(context, with_judgments=False):
            rec["context_id"] = context
        pairs.append(rec)
    kinds = sorted({p["kind"] for p in pairs}, key=lambda k: (KIND_ORDER.index(k) if k in KIND_ORDER else 99, k))
    return {"key": it.key, "source": it.source, "page_size": PAGE_SIZE, "kinds": kinds, "prompts": prompts,
            "responses": responses, "judgments": judgments, "reflections": reflections, "pairs": pairs}


def _finite(obj: Any) -> Any:
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: _finite(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_finite(v) for v in obj]
    return obj


def script_json(obj: Any) -> str:
    """JSON safe inside a <script> element: ``</`` becomes ``<\\/`` (no text can close the element) and ``<!--``
    becomes ``<\\u0021--`` (no text can switch the HTML parser into its escaped-script states). Both are valid
    JSON escapes, so JSON.parse returns the original strings. NaN and infinities become null."""
    try:
        text = json.dumps(obj, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    except ValueError:
        text = json.dumps(_finite(obj), ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    return text.replace("</", "<\\/").replace("<!--", "<\\u0021--")


# --------------------------------------------------------------------------------------------------- figures
def _fmt(x: float | None) -> str:
    if x is None:
        return "–"
    if isinstance(x, bool):
        return "yes" if x else "no"
    if isinstance(x, int) or float(x).is_integer() and abs(x) < 1e15:
        return f"{int(x):,}"
    ax = abs(x)
    if ax >= 1000:
        return f"{x:,.0f}"
    if ax >= 10:
        return f"{x:.1f}"
    return f"{x:.3g}" if ax < 0.01 else f"{x:.3f}".rstrip("0").rstrip(".")


def _tick(x: float) -> str:
    ax = abs(x)
    if ax >= 10_000:
        return f"{x / 1000:.0f}k"
    if ax >= 100 or float(x).is_integer():
        return f"{x:.0f}"
    return f"{x:.2g}" if ax < 1 else f"{x:.1f}"


def histogram_svg(values: list[float], xlabel: str, *, integer_bins: tuple[int, int] | None = None,
                  bins: int | None = None) -> Markup:
    """A bar chart of ``values`` as inline SVG: integer bins lo..hi (values rounded), or ``bins`` equal-width
    bins over the range (default: about sqrt(n), at most 24)."""
    W, H, L, R, T, B = 380, 210, 46, 12, 12, 44
    pw, ph = W - L - R, H - T - B
    values = [float(v) for v in values if v is not None and math.isfinite(v)]
    n = len(values)
    if integer_bins:
        lo, hi = integer_bins
        counts = [0] * (hi - lo + 1)
        for v in values:
            counts[min(hi, max(lo, round(v))) - lo] += 1
        labels = [str(k) for k in range(lo, hi + 1)]
        edges = None
    else:
        vmin, vmax = (min(values), max(values)) if values else (0.0, 1.0)
        k = bins or max(1, min(24, math.ceil(math.sqrt(n)) if n else 1))
        if vmax == vmin:
            k = 1
        width = (vmax - vmin) / k if k and vmax > vmin else 1.0
        counts = [0] * k
        for v in values:
            counts[min(k - 1, int((v - vmin) / width)) if vmax > vmin else 0] += 1
        edges = [vmin + i * width for i in range(k + 1)]
        labels = [f"{_tick(edges[i])}–{_tick(edges[i + 1])}" for i in range(k)]
    top = max(counts) if counts and max(counts) > 0 else 1
    bw = pw / max(1, len(counts))
    # no xmlns: inline SVG in HTML needs none
    parts = [(f'<svg class="hist" viewBox="0 0 {W} {H}" width="{W}" height="{H}" role="img" '
              f'aria-label="{escape(xlabel)} histogram">')]
    # axes
    parts.append(f'<line class="axis" x1="{L}" y1="{T + ph}" x2="{L + pw}" y2="{T + ph}"/>')
    parts.append(f'<line class="axis" x1="{L}" y1="{T}" x2="{L}" y2="{T + ph}"/>')
    for frac in (0.0, 0.5, 1.0):
        y = T + ph - frac * ph
        val = top * frac
        parts.append(f'<line class="grid" x1="{L}" y1="{y:.1f}" x2="{L + pw}" y2="{y:.1f}"/>')
        parts.append(f'<text class="tick" x="{L - 4}" y="{y + 3:.1f}" text-anchor="end">'
                     f'{escape(_tick(val) if val == int(val) else f"{val:.1f}")}</text>')
    for i, c in enumerate(counts):
        h = ph * c / top
        x = L + i * bw
        parts.append(f'<rect class="bar" x="{x + 1:.1f}" y="{T + ph - h:.1f}" width="{max(1.0, bw - 2):.1f}" '
                     f'height="{h:.1f}"><title>{escape(labels[i])}: {c:,}</title></rect>')
    # x ticks: every integer bin, or the range's ends and middle edges
    if edges is None:
        for i, lab in enumerate(labels):
            parts.append(f'<text class="tick" x="{L + (i + 0.5) * bw:.1f}" y="{T + ph + 14}" '
                         f'text-anchor="middle">{escape(lab)}</text>')
    else:
        step = max(1, len(counts) // 4)
        for i in range(0, len(edges), step):
            parts.append(f'<text class="tick" x="{L + i * bw:.1f}" y="{T + ph + 14}" '
                         f'text-anchor="middle">{escape(_tick(edges[i]))}</text>')
        if (len(edges) - 1) % step:
            parts.append(f'<text class="tick" x="{L + pw:.1f}" y="{T + ph + 14}" '
                         f'text-anchor="middle">{escape(_tick(edges[-1]))}</text>')
    parts.append(f'<text class="label" x="{L + pw / 2:.1f}" y="{H - 6}" text-anchor="middle">'
                 f'{escape(xlabel)}</text>')
    parts.append(f'<text class="label" transform="translate(12 {T + ph / 2:.1f}) rotate(-90)" '
                 f'text-anchor="middle">count</text>')
    parts.append("</svg>")
    return Markup("".join(parts))


def figures(it: Iteration) -> list[dict[str, Any]]:
    """Histograms of what exists: judge scores, response lengths, Elo ratings, pair margins per kind."""
    figs = []
    scores = [j.score for j in it.judgments.values() if j.score is not None]
    unscored = sum(j.score is None for j in it.judgments.values())
    if it.judgments:
        fractional = any(not float(s).is_integer() for s in scores)
        note = f"{len(scores):,} judgments with a score" + (f"; {unscored:,} without" if unscored else "") + (
            "; rounded to the nearest integer" if fractional else "")
        figs.append({"title": "Judge scores", "note": note,
                     "svg": histogram_svg(scores, "score (0–5)", integer_bins=(0, 5))})
    if it.responses:
        lengths = [len(r.response) for r in it.responses.values()]
        figs.append({"title": "Response lengths", "note": f"{len(lengths):,} responses (final text, no thought)",
                     "svg": histogram_svg(lengths, "characters")})
    if it.ratings:
        elo = [rt.elo for rt in it.ratings.values()]
        figs.append({"title": "Elo ratings of judgments", "note": f"{len(elo):,} rated judgments",
                     "svg": histogram_svg(elo, "Elo")})
    by_kind: dict[str, list[float]] = defaultdict(list)
    for p in it.pairs.values():
        by_kind[pair_kind(p)].append(p.chosen_score - p.rejected_score)
    units = {"response": "mean judge score", "verified": "reward level", "judgment": "Elo",
             "reflection": "retry correct"}
    for kind in sorted(by_kind, key=lambda k: KIND_ORDER.index(k) if k in KIND_ORDER else 99):
        xs = by_kind[kind]
        figs.append({"title": f"Margins of {kind} pairs", "note": f"{len(xs):,} pairs; chosen − rejected",
                     "svg": histogram_svg(xs, f"margin ({units.get(kind, 'score')})")})
    if it.rollouts:
        rewards = [ro.reward for ro in it.rollouts.values()]
        steps = len({ro.step for ro in it.rollouts.values()})
        figs.append({"title": "Rewards of GRPO rollouts", "note": f"{len(rewards):,} completions over {steps} "
                     "steps; 2 right in the asked format, 1 right, 0 wrong",
                     "svg": histogram_svg(rewards, "reward (verify level)", integer_bins=(0, 2))})
    return figs


ROLLOUT_TEXT = 400  # characters of a completion the rollouts table shows (the whole row: `selfreward trace ID`)


def rollout_tables(it: Iteration) -> dict[str, Any] | None:
    """grpo.enabled: TRL's figures per step (grpo.json) and every rollout, in step order, for the page."""
    if not it.rollouts:
        return None
    names = ("reward_mean", "reward_std", "groups_zero_spread", "kl", "completion_length", "loss")
    per_step = [{"step": s.get("step"), **{n: _fmt(s.get(n)) for n in names}}
                for s in (it.metrics.get("grpo") or {}).get("per_step") or []]
    rows = [{"id": ro.rollout_id, "step": ro.step, "prompt_id": ro.prompt_id, "reward": _fmt(ro.reward),
             "correct": ro.correct, "read": f"{ro.method}: {ro.extracted!r}", "detail": ro.detail,
             "completion": ro.completion[:ROLLOUT_TEXT] + ("…" if len(ro.completion) > ROLLOUT_TEXT else "")}
            for ro in sorted(it.rollouts.values(), key=lambda ro: (ro.step, ro.prompt_id, ro.rollout_id))]
    return {"columns": names, "per_step": per_step, "rows": rows}


# --------------------------------------------------------------------------------------------------- metrics
HEADLINE = ("parse_rate", "strict_rate", "mean_score", "score_std", "position_bias", "elo_spread_mean",
            "response_pairs", "verified_pairs", "judgment_pairs", "reflection_pairs", "score_margin_mean",
            "acceptance_rate", "accuracy", "correct_strict_rate", "win_rate", "length_adjusted_win_rate",
            "first_loss", "last_loss", "mean_reward_accuracy", "pass_at_1", "pass@1", "heldout_pass_at_1",
            "prompt_strict", "prompt_loose", "instruction_strict", "instruction_loose")


def _flatten(obj: Any, prefix: str = "", depth: int = 0) -> list[tuple[str, Any]]:
    out: list[tuple[str, Any]] = []
    if isinstance(obj, dict) and depth < 4:
        for k, v in obj.items():
            out.extend(_flatten(v, f"{prefix}{k}.", depth + 1))
    elif obj is None or isinstance(obj, (bool, int, float)) or isinstance(obj, str) and len(obj) <= 80:
        out.append((prefix.rstrip("."), obj))
    return out


def metric_tables(it: Iteration) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(headline rows, per-stage tables) from metrics/<key>/*.json: every scalar, nested keys dotted (lists,
    such as dpo's training log, left out)."""
    headline, stages = [], []
    for stage, m in it.metrics.items():
        rows = [(k, v) for k, v in _flatten(m) if k]
        if not rows:
            continue
        stages.append({"stage": stage, "rows": [(k, _fmt(v) if not isinstance(v, str) else v) for k, v in rows]})
        for k, v in rows:
            last = k.rsplit(".", 1)[-1]
            if (last in HEADLINE or "pass@" in last or "pass_at" in last) and isinstance(v, (int, float)) \
                    and not isinstance(v, bool):
                headline.append({"name": f"{stage}.{k}", "value": _fmt(v)})
    return headline, stages


def _summary_rows(prof: dict[str, Any]) -> list[dict[str, Any]]:
    rows = []
    named = [("judge score", prof["judge_score"]), ("response characters", prof["response_chars"]),
             ("Elo", prof["elo"]), ("chosen characters", prof["chosen_chars"]),
             ("rejected characters", prof["rejected_chars"])]
    named += [(f"margin, {k} pairs", s) for k, s in prof["pair_margin"].items()]
    for name, s in named:
        if s.get("n"):
            rows.append({"name": name, **{k: _fmt(s[k]) for k in ("n", "mean", "sd", "min", "median", "max")}})
    return rows


# ------------------------------------------------------------------------------------------------------ page
def _asset(name: str) -> str:
    return (ASSETS / name).read_text(encoding="utf-8")


def _environment() -> jinja2.Environment:
    return jinja2.Environment(loader=jinja2.FileSystemLoader(str(ASSETS)), undefined=jinja2.StrictUndefined,
                              autoescape=True, trim_blocks=True, lstrip_blocks=True, keep_trailing_newline=True)


def embed(data: dict[str, Any], compress: bool | None = None) -> Markup:
    """The data's <script> element: JSON (``#data``), or gzip+base64 (``#data-gz``) when ``compress`` is True, or
    None and the JSON is over :data:`COMPRESS_ABOVE` bytes."""
    text = script_json(data)
    raw = text.encode("utf-8")
    if compress is None:
        compress = len(raw) > COMPRESS_ABOVE
    if not compress:
        return Markup(f'<script type="application/json" id="data">{text}</script>')
    packed = base64.b64encode(gzip.compress(raw, compresslevel=6, mtime=0)).decode("ascii")
    return Markup(f'<script type="application/octet-stream" id="data-gz" data-encoding="gzip+base64" '
                  f'data-bytes="{len(raw)}">{packed}</script>')


def read_embedded(html: str) -> dict[str, Any]:
    """The data a page embeds, read back (either form): what the page's script parses."""
    m = re.search(r'<script type="application/json" id="data">(.*?)</script>', html, re.DOTALL)
    if m:
        return json.loads(m.group(1))
    m = re.search(r'<script type="application/octet-stream" id="data-gz"[^>]*>(.*?)</script>', html, re.DOTALL)
    if m is None:
        raise ValueError("no embedded data (#data or #data-gz) in this page")
    return json.loads(gzip.decompress(base64.b64decode(m.group(1))).decode("utf-8"))


def build_page(it: Iteration, *, compress: bool | None = None) -> str:
    """The report page of ``it`` as one HTML string (no external references). ``compress``: embed the data
    gzip+base64 (True), as plain JSON (False), or by size (None: above :data:`COMPRESS_ABOVE` bytes)."""
    js, css = _asset("page.js"), _asset("page.css")
    if "</script" in js.lower() or "</style" in css.lower():
        raise ValueError("page_assets: page.js may not contain </script, page.css not </style")
    prof = profile(it)
    data = page_data(it)
    headline, stages = metric_tables(it)
    position = prof["position_bias"]
    facts = [("response parse rate", _fmt(prof["response_parse_rate"])),
             ("verifier correct rate", _fmt(prof["correct_rate"])),
             ("meta-judge: share of decisive verdicts for the first judgment",
              "–" if position["first_wins"] is None else
              f"{_fmt(position['first_wins'])} ± {_fmt(position['se'])} of {position['decisive']:,}")]
    facts += [(f"judge method: {m}", _fmt(share)) for m, share in prof["judge_methods"].items()]
    html = _environment().get_template("page.html.j2").render(
        key=it.key, source=it.source,
        counts=[(t, prof["counts"][t], it.files.get(t, "")) for t in FILES],
        pairs_by_kind=list(prof["pairs_by_kind"].items()), total_pairs=len(it.pairs),
        facts=facts, summaries=_summary_rows(prof), headline=headline, stages=stages, figures=figures(it),
        rollouts=rollout_tables(it),
        page_size=PAGE_SIZE, data=embed(data, compress), css=Markup(css), js=Markup(js))
    return html


def write_page(it: Iteration, out: Path, *, compress: bool | None = None) -> int:
    """Write the page to ``out`` atomically (a temporary file beside it, then os.replace); returns its size in
    bytes. A path that cannot be written (a folder, under a file, read-only) is one line; nothing is left."""
    out = Path(out)
    if out.is_dir():
        raise OutputError(f"{out}: cannot write — it is a folder; name the HTML file, e.g. {out / 'index.html'}")
    data = build_page(it, compress=compress).encode("utf-8")
    made = make_parents(out)
    tmp: str | None = None
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.parent)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.chmod(tmp, 0o644)
        os.replace(tmp, out)
    except BaseException as e:
        if tmp is not None:
            try:
                os.unlink(tmp)
            except FileNotFoundError:
                pass
        remove_folders(made)
        if isinstance(e, OSError):
            raise output_error(out, e) from None
        raise
    return len(data)
