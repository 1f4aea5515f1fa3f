"""Collect one iteration's headline metrics into metrics/<key>/summary.json.

    python -m stages.summarize --iteration M1

Reads: metrics/<key>/{self_instruct,sample,verify,reflect,judge,meta_judge,pairs,dpo,grpo,eval}.json.
Writes: metrics/<key>/summary.json, the file `dvc metrics show` prints (one row per iteration).
"""

from __future__ import annotations

import json

from pipeline import records, summary
from stages import _common


def main() -> None:
    args = _common.parser(__doc__).parse_args()
    it = _common.Iteration(args, "summarize")
    stage_metrics = {}
    for stage in summary.METRIC_FILES:
        path = it.metrics / f"{stage}.json"
        if not path.exists():
            producer = {"grpo": "dpo", "eval": "evaluate"}.get(stage, stage)
            raise _common.StageError(f"summarize {it.key}: {path} is missing — run `dvc repro {producer}@{it.key}` "
                                     "first")
        try:
            stage_metrics[stage] = json.loads(path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as e:
            raise _common.StageError(f"{path}:{e.lineno}: invalid JSON ({e.msg})") from e
    records.write_json(it.metrics / "summary.json", summary.iteration_summary(stage_metrics))


if __name__ == "__main__":
    _common.run(main)
