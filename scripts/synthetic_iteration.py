"""Write a synthetic but schema-valid iteration (every data file of one key) at any scale, fast and without models.

    python scripts/synthetic_iteration.py /tmp/synth --key M1 --prompts 5000 --responses 7 --judgments 3 \
        --meta-judged 1 --seed 0                   # the Meta-Rewarding paper's 5,000 prompts x 7 responses
    python scripts/synthetic_iteration.py /tmp/synth --verifiable 0.2   # a fifth of the prompts with known answers

writes OUT_DIR/data/<key>/*.jsonl (the files a real iteration's self_instruct .. pairs stages write) and a
plausible subset of OUT_DIR/metrics/<key>/*.json, then prints each file's rows and size. What the rows hold
and how they link: pipeline/synthetic.py, whose write_iteration() this calls.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from pipeline.synthetic import write_iteration  # after the sys.path line above


def main(argv: list[str] | None = None) -> int:
    # ------------------------------------------------------------------------------------------- arguments
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("out_dir", type=Path, help="writes OUT_DIR/data/<key>/ and OUT_DIR/metrics/<key>/")
    ap.add_argument("--key", default="M1", help="the iteration (default M1)")
    ap.add_argument("--prompts", type=int, default=5000, help="prompts (default 5000, the Meta-Rewarding paper's)")
    ap.add_argument("--responses", type=int, default=7, help="responses per prompt (default 7)")
    ap.add_argument("--judgments", type=int, default=3, help="judgments per response (default 3; the paper: 11)")
    ap.add_argument("--meta-judged", type=int, default=1, help="meta-judged responses per prompt (default 1)")
    ap.add_argument("--meta-judgments", type=int, default=5,
                    help="judgments compared per meta-judged response, extra ones drawn as needed (default 5)")
    ap.add_argument("--verifiable", type=float, default=0.0, metavar="FRACTION",
                    help="fraction of prompts that are tasks with known answers (default 0)")
    ap.add_argument("--reflect-attempts", type=int, default=32, help="failed attempts reflected on (default 32)")
    ap.add_argument("--no-token-ids", action="store_true", help="leave out token ids and log-probs")
    ap.add_argument("--no-metrics", action="store_true", help="write no metrics files")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    # ------------------------------------------------------------------------------------------- work
    start = time.perf_counter()
    try:
        counts = write_iteration(args.out_dir, args.key, args.prompts, args.responses, args.judgments,
                                 args.meta_judged, args.verifiable, args.seed, meta_judgments=args.meta_judgments,
                                 token_ids=not args.no_token_ids, reflect_attempts=args.reflect_attempts,
                                 metrics=not args.no_metrics)
    except ValueError as e:
        ap.error(str(e))
    seconds = time.perf_counter() - start
    folder = args.out_dir / "data" / args.key
    total = 0
    for name, rows in counts.items():
        size = (folder / name).stat().st_size
        total += size
        print(f"{name:24} {rows:>9,} rows {size / 2**20:>10.1f} MiB")
    print(f"{'total':24} {sum(counts.values()):>9,} rows {total / 2**20:>10.1f} MiB  in {seconds:.1f} s -> {folder}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
