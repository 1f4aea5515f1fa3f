"""How long the report page takes to build and to open, for an iteration on disk and a synthetic paper-scale one.

    python -m bench.page --iteration M1                         # the demo's iteration (run `make demo` first)
    python -m bench.page --iteration M1 --synthetic 5000x7x3    # and 5,000 prompts x 7 responses x 3 judgments

Per iteration: seconds to read its rows (pipeline.inspection.load_iteration), seconds to build and write the
page, its size, and seconds for headless Chromium to open it from file:// until the first page of pairs is on
screen (median of --opens runs, each in a fresh browser page); a screenshot of each goes beside the result.
Writes bench/results/page-<machine>.json and bench/results/page-<key>.png.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.common import write_report
from pipeline import inspection, page


def open_times(html: Path, opens: int, screenshot: Path | None) -> dict[str, Any]:
    from playwright.sync_api import sync_playwright

    from tests.browser import chromium_executable

    exe = chromium_executable()
    if exe is None:
        raise SystemExit("no chromium found (apt-get install chromium, or set SELFREWARD_CHROMIUM)")
    times, errors = [], []
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=exe, headless=True, args=["--no-sandbox", "--disable-gpu"])
        for i in range(opens):
            context = browser.new_context(viewport={"width": 1280, "height": 900})
            tab = context.new_page()
            tab.on("pageerror", lambda e: errors.append(str(e)))
            tab.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
            start = time.perf_counter()
            tab.goto(html.resolve().as_uri(), timeout=120_000)
            tab.wait_for_selector("article.pair", timeout=120_000)  # the first page of pairs is rendered
            times.append(time.perf_counter() - start)
            if screenshot is not None and i == 0:  # the controls and the first cards, the page's working part
                tab.locator("#search").evaluate("e => e.closest('section, div').scrollIntoView()")
                tab.screenshot(path=str(screenshot))
            context.close()
        browser.close()
    return {"open_seconds_median": statistics.median(times), "open_seconds": times, "console_errors": errors}


def measure(key: str, root: Path, opens: int, screenshot: Path | None) -> dict[str, Any]:
    start = time.perf_counter()
    it = inspection.load_iteration(key, root)
    loaded = time.perf_counter() - start
    out = root / "reports" / key / "index.html"
    start = time.perf_counter()
    size = page.write_page(it, out)
    built = time.perf_counter() - start
    return {"root": str(root), "pairs": len(it.pairs), "responses": len(it.responses),
            "judgments": len(it.judgments), "load_seconds": round(loaded, 2), "build_seconds": round(built, 2),
            "bytes": size, **open_times(out, opens, screenshot)}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], epilog=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--iteration", default="M1", help="an iteration of this project (default M1); '' to skip")
    p.add_argument("--synthetic", help="PROMPTSxRESPONSESxJUDGMENTS of a synthetic iteration, e.g. 5000x7x3")
    p.add_argument("--opens", type=int, default=3, help="browser opens per page (median reported)")
    args = p.parse_args()
    report: dict[str, Any] = {}
    results = Path("bench/results")
    if args.iteration:
        report["demo"] = measure(args.iteration, Path("."), args.opens, results / f"page-{args.iteration}.png")
    if args.synthetic:
        from pipeline.synthetic import write_iteration

        n_prompts, n_responses, n_judgments = (int(x) for x in args.synthetic.split("x"))
        with tempfile.TemporaryDirectory() as tmp:
            start = time.perf_counter()
            write_iteration(Path(tmp), "M1", n_prompts, n_responses, n_judgments, 1, 0.0, 0)
            made = time.perf_counter() - start
            report["synthetic"] = {"shape": args.synthetic, "generate_seconds": round(made, 1),
                                   **measure("M1", Path(tmp), args.opens, results / "page-synthetic.png")}
    write_report("page", report)


if __name__ == "__main__":
    main()
