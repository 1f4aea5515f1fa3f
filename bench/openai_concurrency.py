"""Throughput of the OpenAI-compatible engine against a local stub server with a fixed latency per request.

    python -m bench.openai_concurrency                        # 128 requests, 0.25 s each, at 1, 8 and 32 in flight
    python -m bench.openai_concurrency --requests 256 --latency 0.5 --concurrency 1 8 32 64

The stub (pipeline/engines/openai_stub.py) answers every request after the same delay, as a hosted judge would,
so the figures measure the engine's overlap of waiting, not a model. Writes
bench/results/openai_concurrency-<machine>.json with requests per second at each level and the ratio to one
request at a time.
"""

from __future__ import annotations

import argparse
import time

from bench.common import write_report
from pipeline.engines.base import SamplingSettings
from pipeline.engines.openai import OpenAIEngine
from pipeline.engines.openai_stub import StubServer


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], epilog=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--requests", type=int, default=128, help="requests per level (default 128)")
    p.add_argument("--latency", type=float, default=0.25, help="seconds the stub waits per request (default 0.25)")
    p.add_argument("--concurrency", type=int, nargs="+", default=[1, 8, 32], help="levels (default 1 8 32)")
    args = p.parse_args()
    convs = [[{"role": "user", "content": f"prompt {i}"}] for i in range(args.requests)]
    settings = SamplingSettings(n=1, temperature=0.0, top_p=1.0, max_new_tokens=16, seed=0)
    levels = {}
    for c in args.concurrency:
        with StubServer(latency=args.latency) as url:
            engine = OpenAIEngine(url, "stub", api_key_env=None, max_concurrency=c)
            start = time.perf_counter()
            out = engine.generate(convs, settings, desc=f"{c} in flight")
            seconds = time.perf_counter() - start
        assert [row[0].text for row in out] == [f"echo 0: prompt {i}" for i in range(args.requests)]
        levels[str(c)] = {"seconds": round(seconds, 3), "requests_per_second": round(args.requests / seconds, 2)}
    base = levels[str(args.concurrency[0])]["requests_per_second"]
    for v in levels.values():
        v["ratio"] = round(v["requests_per_second"] / base, 2)
    write_report("openai_concurrency", {"requests": args.requests, "latency_seconds": args.latency,
                                        "levels": levels})


if __name__ == "__main__":
    main()
