"""selfreward: look at what an iteration trained on, row by row.

    selfreward list pairs -i M2 --where margin>=2 --sort -margin
    selfreward list judgments -i M1 --where method=forced --search python --page 2
    selfreward trace rp-13b3063c5ea8              # everything behind one pair (or prompt, response, judgment)
    selfreward list heldout -i M2 --where correct=false   # evaluation: eval_answers, eval_comparisons, eval_judge
    selfreward trace eval-001 -i M2               # an evaluation prompt, labelled pair or held-out task
    selfreward diff M1 M2                         # two iterations
    selfreward diff M1@HEAD~3 M1                  # one iteration at two git revisions / DVC experiments
    selfreward export M2 --out exports/M2 --format parquet
    selfreward page M2                            # reports/M2/index.html, the report page (also a DVC stage)

Run it in the project's root (or pass --root). ``KEY@REV`` reads an iteration as it was at a git revision or
DVC experiment, through dvc.api (outputs of past runs come from the DVC cache). Errors are one line, exit 2.
"""

from __future__ import annotations

import argparse
import csv
import json
import shlex
import sys
from pathlib import Path
from typing import Any, NoReturn

from pipeline import inspection
from pipeline.errors import PipelineError

TEXT_WIDTH = 60


# ------------------------------------------------------------------------------------------------ arguments
class Parser(argparse.ArgumentParser):
    """argparse, but a bad argument is one line ``error: ...`` (exit 2) like every other error of the command."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"error: {message} — see `{self.prog} --help`\n")


def build_parser() -> argparse.ArgumentParser:
    p = Parser(prog="selfreward", description=__doc__.split("\n\n")[0],
               formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    p.add_argument("--root", default=".", help="the project's root (default: the current folder)")
    sub = p.add_subparsers(dest="command", required=True)

    ls = sub.add_parser("list", help="list, filter, sort and page one table of an iteration")
    ls.add_argument("table", help=f"which rows: {', '.join(inspection.TABLES)}")
    ls.add_argument("-i", "--iteration", help="KEY or KEY@REV (default: the last iteration with data)")
    ls.add_argument("-w", "--where", action="append", default=[], metavar="COND",
                    help="COLUMN OP VALUE, OP one of = != > >= < <= ~ (contains); repeat to AND (e.g. "
                         "--where score>=4 --where method=strict)")
    ls.add_argument("-s", "--search", help="text any text column must contain (case-insensitive)")
    ls.add_argument("--sort", help="column to sort by (--sort=-column, or --desc, for descending)")
    ls.add_argument("--desc", action="store_true", help="sort in descending order")
    ls.add_argument("-n", "--limit", type=int, default=20, help="rows per page (default 20; 0: all)")
    ls.add_argument("-p", "--page", type=int, default=1, help="page number, from 1")
    ls.add_argument("-c", "--columns", help="comma-separated columns to show (default: all)")
    ls.add_argument("--format", choices=["table", "jsonl", "csv"], default="table",
                    help="table (default), or jsonl / csv of every matching row for other tools")

    tr = sub.add_parser("trace", help="everything behind one pair, prompt, response, judgment or meta-judgment")
    tr.add_argument("id", help="a row id (rp-…, vp-…, jp-…, fp-…, p-…, r-…, j-…, mj-…), or the id of an evaluation "
                               "prompt, labelled pair or held-out task")
    tr.add_argument("-i", "--iteration", help="KEY or KEY@REV (default: search every iteration with data)")
    tr.add_argument("--json", action="store_true", help="print the trace as JSON")
    tr.add_argument("--full", action="store_true", help="do not shorten long texts")

    df = sub.add_parser("diff", help="compare two iterations, or one iteration at two revisions")
    df.add_argument("a", help="KEY or KEY@REV, e.g. M1 or M1@HEAD~1 or M1@my-experiment")
    df.add_argument("b", help="KEY or KEY@REV")
    df.add_argument("--examples", type=int, default=5, help="how many new/gone/drifted items to name")
    df.add_argument("--json", action="store_true", help="print the diff as JSON")

    ex = sub.add_parser("export", help="an iteration's pairs as parquet or a Hugging Face dataset, with a card")
    ex.add_argument("iteration", help="KEY or KEY@REV")
    ex.add_argument("--out", required=True, help="folder to write (created; must be empty or absent)")
    ex.add_argument("--format", choices=["parquet", "hf"], default="parquet",
                    help="parquet: pairs.parquet + README.md; hf: datasets.save_to_disk + README.md")
    ex.add_argument("--kind", action="append", choices=["response", "verified", "judgment", "reflection",
                                                       "judge_training"],
                    help="only these pair kinds (repeat; default: all)")

    pg = sub.add_parser("page", help="build the report page reports/KEY/index.html")
    pg.add_argument("iteration", help="KEY or KEY@REV")
    pg.add_argument("--out", help="the HTML file (default: reports/KEY/index.html)")
    return p


def default_iteration(root: Path) -> str:
    keys = inspection.available_iterations(root)
    if not keys:
        raise inspection.InspectError(f"{root.resolve()}: no iteration has data yet (data/<key>/prompts.jsonl) — "
                                      "run `dvc repro` first, or pass --root")
    return keys[-1]


# ------------------------------------------------------------------------------------------------ rendering
def _console() -> Any:
    from rich.console import Console
    return Console(soft_wrap=False, width=None if sys.stdout.isatty() else 220)


def _cell(value: Any, width: int = TEXT_WIDTH) -> str:
    if value is None:
        return "—"
    if isinstance(value, float):
        return f"{value:.3g}" if abs(value) < 100 else f"{value:.0f}"
    text = " ".join(str(value).split())
    return text if len(text) <= width else text[: width - 1] + "…"


def print_rows(rows: list[dict[str, Any]], title: str, columns: list[str] | None, fmt: str) -> None:
    if fmt == "jsonl":
        for r in rows:
            print(json.dumps({k: r[k] for k in (columns or r)}, ensure_ascii=False))
        return
    if fmt == "csv":
        if rows:
            w = csv.DictWriter(sys.stdout, fieldnames=columns or list(rows[0]), extrasaction="ignore")
            w.writeheader()
            w.writerows(rows)
        return
    from rich.table import Table
    table = Table(title=title, show_lines=False, header_style="bold")
    cols = columns or (list(rows[0]) if rows else [])
    for c in cols:  # ids whole (they are what `trace` takes), numbers at header width, text takes the rest
        if c == "text":
            table.add_column(c, overflow="fold", ratio=1, min_width=20)
        elif c.endswith("_id") or c == "id":
            table.add_column(c, no_wrap=True, min_width=15)
        else:
            table.add_column(c, no_wrap=True, overflow="ellipsis", min_width=min(len(c), 12))
    for r in rows:
        table.add_row(*(_cell(r.get(c)) for c in cols))
    _console().print(table)


def _short(text: str | None, full: bool, width: int = 600) -> str:
    text = text or ""
    return text if full or len(text) <= width else text[:width] + f" … [{len(text) - width} more characters]"


def print_trace(t: dict[str, Any], full: bool) -> None:
    from rich.markup import escape
    from rich.panel import Panel
    from rich.tree import Tree

    con = _console()
    focus = t["focus"]
    con.print(f"[bold]{focus['id']}[/bold] ({focus['table']}) in {t['source']}")
    p = t["prompt"]
    if p:
        con.print(Panel(escape(_short(p["instruction"] + (f"\n\n{p['input']}" if p["input"] else ""), full)),
                        title=f"prompt {p['id']}", subtitle=escape(p["origin"]), subtitle_align="left"))
    for q in t["pairs"]:
        mark = "→ " if q["id"] == focus["id"] else ""
        tree = Tree(f"[bold]{mark}pair {q['id']}[/bold] ({q['kind']}): chosen {q['chosen_id']} "
                    f"({_cell(q['chosen_score'])}, {q['chosen_chars']} chars) over {q['rejected_id']} "
                    f"({_cell(q['rejected_score'])}, {q['rejected_chars']} chars), margin {_cell(q['margin'])}")
        why = q["why"]
        node = tree.add(f"why: {escape(why['rule'])}")
        if why.get("band"):
            node.add(f"rho {why['rho']}: chosen needs score >= {why['band']['chosen_at_least']:.3g}, "
                     f"rejected <= {why['band']['rejected_at_most']:.3g}")
        node.add("candidates: " + "; ".join(
            f"{c['id']} " + " ".join(f"{k} {_cell(v, 12)}" for k, v in c.items() if k != "id")
            for c in why["candidates"]))
        node.add("the rule re-applied to these rows picks this pair: " + ("yes" if why["agrees"] else
                                                                             f"NO (picks {why['reselected']})"))
        prov = {k: v for k, v in q["provenance"].items()}
        if prov:
            node.add("provenance: " + escape(json.dumps(prov, ensure_ascii=False)))
        ref = q["reference"]
        if ref:
            tree.add(f"DPO reference log-probs (from model {ref['model_sha256']}): chosen "
                     f"{_cell(ref['chosen']['logprob'])} over {ref['chosen']['tokens']} tokens, rejected "
                     f"{_cell(ref['rejected']['logprob'])} over {ref['rejected']['tokens']} tokens")
        else:
            tree.add("DPO reference log-probs: computed by dpo's reference pass (none stored with the pair)")
        con.print(tree)
    for r in t["responses"]:
        role = f" [bold]{r['role'].upper()}[/bold]" if r["role"] else ""
        v = r["verification"]
        verdict = "" if v is None else (f" · {'correct' if v['correct'] else 'wrong'} (level {v['level']}, read "
                                        f"{v['method']}: {v['extracted']!r})")
        tree = Tree(f"response {r['id']}{role} · sample {r['sample_index']} · score {_cell(r['score'])} · "
                    f"{r['tokens']} tokens · {r['finish_reason']}{verdict}")
        if r["thought"]:
            tree.add("[dim]thought:[/dim] " + escape(_short(r["thought"], full, 300)))
        tree.add(escape(_short(r["response"], full)))
        for o in (v or {}).get("constraints") or []:
            tree.add(_constraint_line(o))
        for j in r["judgments"]:
            elo = "" if j["elo"] is None else f" · Elo {j['elo']:.0f} ({j['wins']:.2g}-{j['losses']:.2g})"
            extra = " · extra (meta-judge)" if j["extra"] else ""
            jt = tree.add(f"judgment {j['id']} · score {_cell(j['score'])} ({j['method']}){elo}{extra}")
            jt.add("[dim]" + escape(_short(j["text"], full, 300)) + "[/dim]")
        for b in r["battles"]:
            tree.add(f"battle {b['id']}: {b['first']} vs {b['second']} → {b['verdict']} ({b['method']}"
                     + (f", margin {b['forced_margin']:.3g}" if b["forced_margin"] is not None else "") + ")")
        for x in r["reflections"]:
            tree.add(f"reflection {x['id']} (retry {'right' if x['retry_correct'] else 'wrong'}): "
                     + escape(_short(x["text"], full, 200)))
        con.print(tree)
    rollouts = t.get("rollouts") or []
    if rollouts:
        tree = Tree(f"GRPO rollouts of this prompt: {len(rollouts)} (reward: the verify step's level)")
        for ro in rollouts:
            mark = "→ " if ro["id"] == focus["id"] else ""
            why = f" · {escape(ro['detail'])}" if ro["detail"] else ""
            node = tree.add(f"{mark}rollout {ro['id']} · step {ro['step']} · reward {_cell(ro['reward'])} · "
                            f"{'correct' if ro['correct'] else 'wrong'} (read {ro['method']}: {ro['extracted']!r})"
                            f"{why}")
            node.add(escape(_short(ro["completion"], full, 300)))
        con.print(tree)
    if t["hashes"]:  # none for a prompt nothing has answered yet
        con.print("hashes: " + "; ".join(f"{k}: {', '.join(v)}" for k, v in t["hashes"].items()))


def print_eval_trace(t: dict[str, Any], full: bool) -> None:
    from rich.markup import escape
    from rich.panel import Panel
    from rich.tree import Tree

    con = _console()
    focus = t["focus"]
    con.print(f"[bold]{focus['id']}[/bold] ({focus['table']}) in {t['source']}")
    if "eval_prompt" in t:
        p = t["eval_prompt"]
        text = p["instruction"] + (f"\n\n{p['input']}" if p["input"] else "") if p["instruction"] else \
            "(not in the evaluation prompts file params.yaml names)"
        con.print(Panel(escape(_short(text, full)), title=f"evaluation prompt {p['id']}",
                        subtitle=escape(p["category"] or ""), subtitle_align="left"))
        for a in t["answers"]:
            tree = Tree(f"answer of {a['model']} ({a['model_dir']}) · {a['tokens']} tokens"
                        + ("" if a["parse_ok"] else " · not parsed"))
            tree.add(escape(_short(a["response"], full)))
            con.print(tree)
        for c in t["comparisons"]:
            tree = Tree(f"[bold]vs {c['baseline']}: {c['outcome']}[/bold]")
            for o in c["orders"]:
                shown = "current shown first (A)" if o["model_first"] else "baseline shown first (A)"
                node = tree.add(f"{shown}: {o['letter']} ({o['method']}) → verdict {o['verdict']:+d}")
                node.add("[dim]" + escape(_short(o["text"], full, 300)) + "[/dim]")
            con.print(tree)
    elif "labelled_pair" in t:
        lp = t["labelled_pair"]
        if lp["instruction"] is not None:
            con.print(Panel(escape(_short(lp["instruction"], full)), title=f"labelled pair {lp['id']}"))
            for side in ("a", "b"):
                con.print(Panel(escape(_short(lp[f"response_{side}"], full)), title=f"response {side.upper()}"))
        con.print(f"preferred {lp['preferred']}; the model scored A {_cell(lp['score_a'])}, B "
                  f"{_cell(lp['score_b'])}: judged {lp['judged'] or '—'} ({'right' if lp['correct'] else 'wrong'})")
    elif "constraint_task" in t:
        task = t["constraint_task"]
        con.print(Panel(escape(_short(task["prompt"], full)),
                        title=f"constraint instruction {task['id']} ({task['family']})"))
        for m in t["models"]:
            held = sum(o["strict"] for o in m["constraints"])
            tree = Tree(f"[bold]{m['model']}[/bold] ({m['model_dir']}): {held} of {len(m['constraints'])} constraints "
                        f"held (strict), {'followed' if m['followed_loose'] else 'not followed'} (loose) · "
                        f"{m['tokens']} tokens · {m['finish_reason']}")
            for o in m["constraints"]:
                tree.add(_constraint_line(o))
            tree.add(escape(_short(m["response"], full, 300)))
            con.print(tree)
    else:
        task = t["task"]
        con.print(Panel(escape(_short(task["prompt"] or "(not recorded: eval_heldout.jsonl written before rows "
                                                      "carried the prompt)", full)),
                        title=f"held-out task {task['id']} ({task['family']})",
                        subtitle=escape(f"gold answer: {task['answer']}" if task["answer"] is not None else ""),
                        subtitle_align="left"))
        for m in t["models"]:
            tree = Tree(f"[bold]{m['model']}[/bold] ({m['model_dir']}): {m['correct']} of {len(m['samples'])} "
                        "correct")
            for h in m["samples"]:
                node = tree.add(f"sample {h['index']} · {'correct' if h['correct'] else 'wrong'} · read {h['method']}: "
                                f"{h['extracted']!r} · {h['tokens']} tokens · {h['finish_reason']}")
                node.add(escape(_short(h["output"], full, 300)))
            con.print(tree)


def _constraint_line(o: dict[str, Any]) -> str:
    """One constraint's outcome: its id, strict and loose, and why (the measured quantity)."""
    from rich.markup import escape

    mark = "held" if o.get("strict") else "held only loosely" if o.get("loose") else "failed"
    return escape(f"constraint {o.get('instruction_id')}: {mark} — {o.get('detail')}")


def _fmt(x: Any) -> str:
    return _cell(x, 30)


def print_diff(d: dict[str, Any]) -> None:
    from rich.table import Table
    con = _console()
    pa, pb = d["profile"]["a"], d["profile"]["b"]
    t = Table(title=f"{d['a']} → {d['b']}", header_style="bold")
    for c in ("", "A", "B", "change"):
        t.add_column(c)

    def row(name: str, x: Any, y: Any) -> None:
        change = (y - x) if isinstance(x, (int, float)) and isinstance(y, (int, float)) else None
        t.add_row(name, _fmt(x), _fmt(y), "" if change is None else (f"{change:+.3g}" if change else "0"))
    for table in inspection.FILES:
        row(f"{table} (rows)", pa["counts"][table], pb["counts"][table])
    for kind in sorted(set(pa["pairs_by_kind"]) | set(pb["pairs_by_kind"])):
        row(f"{kind} pairs", pa["pairs_by_kind"].get(kind, 0), pb["pairs_by_kind"].get(kind, 0))
    for name, key in (("judge score", "judge_score"), ("response chars", "response_chars"),
                      ("chosen chars", "chosen_chars"), ("rejected chars", "rejected_chars"), ("Elo", "elo")):
        for stat in ("mean", "sd", "median"):
            if pa[key].get(stat) is not None or pb[key].get(stat) is not None:
                row(f"{name} {stat}", pa[key].get(stat), pb[key].get(stat))
    for kind in sorted(set(pa["pair_margin"]) | set(pb["pair_margin"])):
        row(f"{kind} pair margin mean", pa["pair_margin"].get(kind, {}).get("mean"),
            pb["pair_margin"].get(kind, {}).get("mean"))
    for m in sorted(set(pa["judge_methods"]) | set(pb["judge_methods"])):
        row(f"judgments parsed {m}", pa["judge_methods"].get(m, 0.0), pb["judge_methods"].get(m, 0.0))
    row("responses parsed", pa["response_parse_rate"], pb["response_parse_rate"])
    row("responses correct", pa["correct_rate"], pb["correct_rate"])
    row("meta-judge: first shown wins", pa["position_bias"]["first_wins"], pb["position_bias"]["first_wins"])
    con.print(t)
    for what in ("prompts", "pairs"):
        x = d[what]
        con.print(f"[bold]{what}[/bold]: {x['shared']} shared, {x['new']} new, {x['gone']} gone")
        for label in ("new", "gone"):
            for e in x[f"{label}_examples"]:
                con.print(f"  {label}: " + (_cell(f"{e[0]} {e[1]}", 110) if isinstance(e, (list, tuple)) else e))
    dr = d["judge_drift"]
    con.print(f"[bold]judge drift[/bold] on {dr['scored_in_both']} responses scored in both "
              f"({dr['shared_responses']} shared): mean change {_fmt(dr['mean_change'])}, mean |change| "
              f"{_fmt(dr['mean_abs_change'])}, {dr['changed_by_1_or_more']} moved by 1 point or more, correlation "
              f"{_fmt(dr['correlation'])}; {dr['judgments_changed']} of {dr['judgments_compared']} judgments in the "
              "same slot (response, judge index) scored differently")
    for e in dr["largest"]:
        con.print(f"  {e['a']} {e['score_a']:.3g} → {e['b']} {e['score_b']:.3g}")
    if d["metrics"]:
        con.print(f"[bold]metrics that changed[/bold] ({len(d['metrics'])}):")
        for k, (x, y) in list(d["metrics"].items())[:40]:
            con.print(f"  {k}: {_fmt(x)} → {_fmt(y)}")


# ------------------------------------------------------------------------------------------------- commands
def cmd_list(args: argparse.Namespace, root: Path) -> None:
    if args.table not in inspection.TABLES:  # before reading anything
        raise inspection.InspectError(inspection._unknown("table", args.table, list(inspection.TABLES)))
    if args.limit < 0:
        raise inspection.InspectError(f"--limit {args.limit}: must be 0 (every row on one page) or more")
    if args.page < 1:
        raise inspection.InspectError(f"--page {args.page}: pages count from 1")
    known = inspection.COLUMNS[args.table]
    columns = [c.strip() for c in args.columns.split(",")] if args.columns is not None else None
    for c in columns or ():
        if not c:
            raise inspection.InspectError(f'--columns "{args.columns}": an empty column name — name them with '
                                          "commas between, e.g. -c pair_id,margin")
        if c not in known:
            raise inspection.InspectError(inspection._unknown("column", c, known))
    key, rev = inspection.parse_ref(args.iteration or default_iteration(root))
    it = inspection.load_iteration(key, root, rev, evaluation=True)
    sort = f"-{args.sort.lstrip('-')}" if args.sort and args.desc else args.sort
    rows = inspection.select(inspection.table_rows(it, args.table), args.where, args.search, sort, columns=known)
    if args.format != "table":
        print_rows(rows, "", columns, args.format)
        return
    shown, pages = inspection.page(rows, args.page, args.limit)
    title = (f"{args.table} of {it.source}: {len(rows)} rows" + (" matching" if args.where or args.search else "")
             + (f", page {args.page} of {pages}" if pages > 1 else ""))
    print_rows(shown, title, columns, "table")


def find_iteration(root: Path, row_id: str) -> inspection.Iteration:
    """The last iteration of the working tree (params.yaml's order) with a row, or evaluation result, of that id."""
    keys = inspection.available_iterations(root)
    for key in reversed(keys):
        it = inspection.load_iteration(key, root, evaluation=True)
        if it.kind_of(row_id):
            return it
    searched = f" (searched {', '.join(keys)})" if keys else " (none has data yet)"
    raise inspection.InspectError(f'no iteration under {root.resolve()}/data has a row with id "{row_id}"{searched} '
                                  "— pass -i KEY[@REV] to look in a past revision")


def cmd_trace(args: argparse.Namespace, root: Path) -> None:
    if args.iteration:
        key, rev = inspection.parse_ref(args.iteration)
        it = inspection.load_iteration(key, root, rev, evaluation=True)
    else:
        it = find_iteration(root, args.id)
    t = inspection.trace(it, args.id)
    if args.json:
        print(json.dumps(t, indent=2, ensure_ascii=False))
    elif t["focus"]["table"] in inspection.EVAL_FILES:
        print_eval_trace(t, args.full)
    else:
        print_trace(t, args.full)


def cmd_diff(args: argparse.Namespace, root: Path) -> None:
    if args.examples < 0:
        raise inspection.InspectError(f"--examples {args.examples}: must be 0 or more")
    (ka, ra), (kb, rb) = inspection.parse_ref(args.a), inspection.parse_ref(args.b)
    a, b = inspection.load_iteration(ka, root, ra), inspection.load_iteration(kb, root, rb)
    d = inspection.diff(a, b, args.examples)
    if args.json:
        print(json.dumps(d, indent=2, ensure_ascii=False, default=list))
    else:
        print_diff(d)


def cmd_export(args: argparse.Namespace, root: Path) -> None:
    from pipeline import export
    key, rev = inspection.parse_ref(args.iteration)
    it = inspection.load_iteration(key, root, rev)
    command = "selfreward " + shlex.join(args._argv)
    written = export.export_pairs(it, Path(args.out), args.format, kinds=args.kind, root=root, command=command,
                                  rev=rev)
    print(f"{written['pairs']} pairs of {it.source} -> {args.out} ({args.format}; card: {written['card']})")


def cmd_page(args: argparse.Namespace, root: Path) -> None:
    from pipeline import page
    key, rev = inspection.parse_ref(args.iteration)
    it = inspection.load_iteration(key, root, rev)
    out = Path(args.out) if args.out else root / "reports" / key / "index.html"
    size = page.write_page(it, out)
    print(f"{out} ({size / 1e6:.2f} MB): open it in a browser, no server needed")


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    args._argv = list(argv if argv is not None else sys.argv[1:])
    root = Path(args.root)
    try:
        if not root.is_dir():
            raise inspection.InspectError(f"--root {args.root}: " + ("not a folder" if root.exists() else
                                                                      "no such folder") + " — the project's root")
        {"list": cmd_list, "trace": cmd_trace, "diff": cmd_diff, "export": cmd_export,
         "page": cmd_page}[args.command](args, root)
    except PipelineError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # `selfreward list ... | head`
        return 0
    return 0


if __name__ == "__main__":
    sys.exit(main())
