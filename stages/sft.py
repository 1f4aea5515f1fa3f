"""Seed SFT: M0 -> M0_sft on the IFT and EFT seeds; reports the judge's strict-parse rate before and after.

    python -m stages.sft

Reads: models/M0, data/seed/instructions.jsonl, data/seed/judgments.jsonl, params (sft, judge).
Writes: models/M0_sft/, metrics/M0_sft/sft.json. With sft.enabled: false, M0_sft is a copy of M0.
"""

from __future__ import annotations

import shutil
import statistics
import time
from typing import Any

from pipeline import judging, models, paths, records, sft
from pipeline.engines.base import SamplingSettings
from pipeline.records import JudgeExample, SeedInstruction
from pipeline.shards import digest
from stages import _common


def judge_check(model_dir: Any, examples: list[JudgeExample], params: Any) -> dict[str, Any]:
    """Greedy judgments of the held-back EFT examples: strict-parse rate and mean absolute score error."""
    if not examples:
        return {"examples": 0}
    from pipeline.engines.hf import HFEngine

    engine = HFEngine(str(model_dir), batch_size=params.engine.batch_size)
    convs = [judging.judge_conversation(e.instruction, e.response) for e in examples]
    outs = engine.generate(convs, SamplingSettings(n=1, temperature=0.0, max_new_tokens=params.sft.eval_max_new_tokens),
                           desc="judge check")
    texts = [row[0].text for row in outs]
    verdicts = judging.judge_verdicts(engine, convs, texts, "parsed")
    strict = [judging.parse_score_strict(t) for t in texts]
    return {"examples": len(examples), "strict_parse_rate": sum(s is not None for s in strict) / len(examples),
            "any_parse_rate": sum(v.method != "forced" for v in verdicts) / len(examples),
            "mean_abs_error": statistics.fmean(abs(v.score - e.score) for v, e in zip(verdicts, examples)),
            "sample_output": texts[0][:400]}


def main() -> None:
    args = _common.parser(__doc__, iteration=False).parse_args()
    params = _common.load(args)
    cfg = params.sft
    m0, out = paths.model_dir("M0"), paths.model_dir("M0_sft")
    metrics_path = paths.metrics_dir("M0_sft") / "sft.json"
    start = time.time()
    if not cfg.enabled:
        models.copy_model(m0, out, {"name": "M0_sft", "parent": "M0", "sft": "disabled: a copy of M0"})
        records.write_json(metrics_path, {"enabled": False})
        return
    ift = records.read_jsonl(paths.SEED_INSTRUCTIONS, SeedInstruction)
    eft = records.read_jsonl(paths.SEED_JUDGMENTS, JudgeExample)
    eft_train, heldout = sft.split_eft(eft, cfg.heldout_eft, cfg.seed)
    thoughts = params.sample.thoughts if cfg.ift_format != "plain" else "none"
    if cfg.ift_format == "thoughts" and thoughts == "none":
        thoughts = "generic"
    rows = sft.sft_examples(ift, eft_train, cfg.data, cfg.max_examples, cfg.seed, thoughts)
    before = judge_check(m0, heldout, params)
    work = paths.WORK / f"sft-{digest(models.read_card(m0).get('weights_sha256'), cfg.__dict__, rows)}"
    model, tok, summary = sft.train_sft(m0, rows, cfg, work)
    card = models.save_model(model, tok, out, {
        "name": "M0_sft", "parent": "M0", "parent_sha256": models.read_card(m0).get("weights_sha256"),
        "data_sha256": {"ift": models.sha256_file(paths.SEED_INSTRUCTIONS),
                        "eft": models.sha256_file(paths.SEED_JUDGMENTS)},
        "training": {"examples": len(rows), **{k: v for k, v in cfg.__dict__.items()}}})
    del model
    after = judge_check(out, heldout, params)
    records.write_json(metrics_path, {
        "enabled": True, "examples": len(rows), "heldout_eft": len(heldout), "ift_thoughts": thoughts,
        "judge_before": before, "judge_after": after,
        "first_loss": summary["first_loss"], "last_loss": summary["last_loss"], "steps": summary["steps"],
        "seconds": round(time.time() - start, 1), "weights_sha256": card["weights_sha256"]})
    for stale in paths.WORK.glob("sft-*"):
        shutil.rmtree(stale, ignore_errors=True)
    _common.log.info("sft: judge strict-parse rate %.0f%% -> %.0f%% on %d held-back EFT examples",
                     100 * before.get("strict_parse_rate", 0), 100 * after.get("strict_parse_rate", 0), len(heldout))


if __name__ == "__main__":
    _common.run(main)
