"""Preference pairs: responses by judge score (length-controlled), judgments by meta-judge Elo.

    python -m stages.pairs --iteration M1

Reads: data/<key>/responses.jsonl, judgments.jsonl, extra_judgments.jsonl, ratings.jsonl.
Writes: data/<key>/response_pairs.jsonl, data/<key>/judgment_pairs.jsonl (TRL conversational preference
format plus provenance; `datasets.load_dataset("json", data_files=...)` loads them), metrics/<key>/pairs.json.
"""

from __future__ import annotations

import statistics
from collections import defaultdict

from pipeline import judging, pairs, records
from pipeline.records import Judgment, PreferencePair, Rating, Response
from stages import _common


def main() -> None:
    args = _common.parser(__doc__).parse_args()
    it = _common.Iteration(args)
    cfg = it.params.pairs
    responses = records.read_jsonl(it.data / "responses.jsonl", Response)
    judgments = records.read_jsonl(it.data / "judgments.jsonl", Judgment)
    extra_path = it.data / "extra_judgments.jsonl"
    extra = list(records.iter_jsonl(extra_path, Judgment)) if extra_path.exists() else []
    scores: dict[str, list[float | None]] = defaultdict(list)
    for j in judgments:
        scores[j.response_id].append(j.score)

    by_prompt: dict[str, list[Response]] = defaultdict(list)
    for r in responses:
        by_prompt[r.prompt_id].append(r)
    response_pairs = []
    dropped_equal = 0
    for prompt_id, rs in by_prompt.items():
        cands = []
        for r in rs:
            s = judging.response_score(scores.get(r.response_id, []))
            if r.parse_ok and s is not None:
                cands.append(pairs.Candidate(r.response_id, s, len(r.response)))
            elif not r.parse_ok and cfg.unparsed_response == "reject":
                cands.append(pairs.Candidate(r.response_id, pairs.UNPARSED_SCORE, len(r.output)))
        picked = pairs.select_response_pair(cands, cfg.length_rho)
        if picked is None:
            dropped_equal += 1
            continue
        chosen, rejected = picked
        rmap = {r.response_id: r for r in rs}
        c, rj = rmap[chosen.id], rmap[rejected.id]
        response_pairs.append(PreferencePair(
            pair_id=records.stable_id("rp", chosen.id, rejected.id), kind="response",
            prompt=[{"role": "user", "content": c.prompt_text}],
            chosen=[{"role": "assistant", "content": c.output}],
            rejected=[{"role": "assistant", "content": rj.output}],
            prompt_id=prompt_id, chosen_id=chosen.id, rejected_id=rejected.id, chosen_score=chosen.score,
            rejected_score=rejected.score, iteration=it.key,
            provenance={"length_rho": cfg.length_rho, "unparsed_response": cfg.unparsed_response,
                        "chosen_chars": chosen.length, "rejected_chars": rejected.length},
            generated=pairs.generation_record(c, rj)))
    if len(response_pairs) < cfg.min_pairs:
        raise _common.StageError(
            f"pairs {it.key}: {len(response_pairs)} response pairs, fewer than pairs.min_pairs={cfg.min_pairs}: "
            f"{dropped_equal} of {len(by_prompt)} prompts had all scores equal — see metrics/{it.key}/judge.json; "
            "try judge.scoring: expected, more judge.k or sample.n")

    judgment_pairs = []
    too_long = 0
    if cfg.judge_pairs:
        ratings = records.read_jsonl(it.data / "ratings.jsonl", Rating)
        jmap = {j.judgment_id: j for j in [*judgments, *extra]}
        rmap = {r.response_id: r for r in responses}
        per_response: dict[str, list[Rating]] = defaultdict(list)
        for rt in ratings:
            per_response[rt.response_id].append(rt)
        for rid, rts in per_response.items():
            rated = [pairs.RatedJudgment(rt.judgment_id, rt.elo, len(jmap[rt.judgment_id].text)) for rt in rts]
            too_long += sum(j.chars > cfg.max_judgment_chars for j in rated)
            picked_j = pairs.select_judgment_pair(rated, cfg.max_judgment_chars)
            if picked_j is None:
                continue
            cj, rj = picked_j
            r = rmap[rid]
            judgment_pairs.append(PreferencePair(
                pair_id=records.stable_id("jp", cj.id, rj.id), kind="judgment",
                prompt=judging.judge_conversation(r.instruction, r.response),
                chosen=[{"role": "assistant", "content": jmap[cj.id].text}],
                rejected=[{"role": "assistant", "content": jmap[rj.id].text}],
                prompt_id=r.prompt_id, chosen_id=cj.id, rejected_id=rj.id, chosen_score=cj.elo,
                rejected_score=rj.elo, iteration=it.key,
                provenance={"response_id": rid, "max_judgment_chars": cfg.max_judgment_chars},
                generated=pairs.generation_record(jmap[cj.id], jmap[rj.id])))
    records.write_jsonl(it.data / "response_pairs.jsonl", response_pairs)
    records.write_jsonl(it.data / "judgment_pairs.jsonl", judgment_pairs)

    def mean_len(ps, side):
        return statistics.fmean(len(getattr(p, side)[0]["content"]) for p in ps) if ps else 0.0

    metrics = {"prompts": len(by_prompt), "response_pairs": len(response_pairs),
               "dropped_equal_scores": dropped_equal, "judgment_pairs": len(judgment_pairs),
               "judgments_too_long": too_long, "length_rho": cfg.length_rho,
               "response_chosen_chars": mean_len(response_pairs, "chosen"),
               "response_rejected_chars": mean_len(response_pairs, "rejected"),
               "judgment_chosen_chars": mean_len(judgment_pairs, "chosen"),
               "judgment_rejected_chars": mean_len(judgment_pairs, "rejected"),
               "score_margin_mean": statistics.fmean(p.chosen_score - p.rejected_score for p in response_pairs)}
    records.write_json(it.metrics / "pairs.json", metrics)
    _common.log.info("pairs %s: %d response pairs, %d judgment pairs", it.key, len(response_pairs),
                     len(judgment_pairs))


if __name__ == "__main__":
    _common.run(main)
