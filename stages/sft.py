"""Seed SFT: M0 -> M0_sft on the IFT and EFT seeds; reports the judge's strict-parse rate before and after.

    python -m stages.sft

Reads: models/M0, params data.seed_instructions and data.seed_judgments, params (sft, sample.thoughts, engine).
Writes: models/M0_sft/, metrics/M0_sft/sft.json. With sft.enabled: false, M0_sft is a copy of M0.
With sft.launch (processes > 1) it runs itself again under torchrun or accelerate launch; process 0 writes.
"""

from __future__ import annotations

import time

from pipeline import launch, models, paths, records, sft
from pipeline.records import JudgeExample, SeedInstruction
from stages import _common, _data, _generate


def main() -> None:
    params = _common.load(_common.parser(__doc__, iteration=False).parse_args())
    start, cfg = time.time(), params.sft
    if cfg.enabled and _common.relaunched(cfg.launch, "sft", "sft"):  # sft.launch: process 0 of those wrote
        return
    m0, out = paths.model_dir("M0"), paths.model_dir("M0_sft")
    metrics_path = paths.metrics_dir("M0_sft") / "sft.json"
    if not cfg.enabled:
        _common.require_model(m0, "M0")
        models.copy_model(m0, out, {"name": "M0_sft", "parent": "M0", "sft": "disabled: a copy of M0"})
        records.write_json(metrics_path, {"enabled": False})
        return
    ift = _data.read(params.data.seed_instructions, SeedInstruction)
    eft = _data.read(params.data.seed_judgments, JudgeExample)
    _common.require_model(m0, "M0")
    hashes = {"ift": _data.digest(params.data.seed_instructions), "eft": _data.digest(params.data.seed_judgments)}
    metrics = sft.seed_sft(m0, out, ift, eft, cfg, params.sample, params.judge.template,
                           _generate.open_engine(params, local=True), paths.WORK, hashes)
    if not launch.is_main():
        return
    records.write_json(metrics_path, {**metrics, "seconds": round(time.time() - start, 1)})
    _common.log.info("sft: judge strict-parse rate %.0f%% -> %.0f%% on %d held-back EFT examples",
                     100 * metrics["judge_before"].get("strict_parse_rate", 0),
                     100 * metrics["judge_after"].get("strict_parse_rate", 0), metrics["heldout_eft"])


if __name__ == "__main__":
    _common.run(main)
