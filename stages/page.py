"""The report page of one iteration: every pair side by side with its judgments, searchable, offline.

    python -m stages.page --iteration M1      (the same as `selfreward page M1`)

Reads: data/<key>/*.jsonl (every row the iteration wrote), metrics/<key>/*.json.
Writes: reports/<key>/index.html, one self-contained file that opens from disk with no server and no network.
"""

from __future__ import annotations

import time
from pathlib import Path

from pipeline import inspection, page
from stages import _common


def main() -> None:
    args = _common.parser(__doc__).parse_args()
    start = time.time()
    it = inspection.load_iteration(args.iteration)
    out = Path("reports") / args.iteration / "index.html"
    size = page.write_page(it, out)
    _common.log.info("page %s: %s, %.2f MB, %d pairs, %.1f s", args.iteration, out, size / 1e6, len(it.pairs),
                     time.time() - start)


if __name__ == "__main__":
    _common.run(main)
