"""pipeline/synthetic.py (and its command, scripts/synthetic_iteration.py): a synthetic iteration validates,
links, pairs as the pipeline does, and is deterministic."""

from __future__ import annotations

import statistics
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

import pytest

from pipeline import records
from pipeline import synthetic as synth
from pipeline.judging import parse_score
from pipeline.records import (
    Judgment,
    KnownJudgment,
    KnownPair,
    MetaJudgment,
    PreferencePair,
    Prompt,
    Rating,
    Reflection,
    Response,
    Verification,
    stable_id,
)
from pipeline.verifiable import extract_answer

SCRIPT = Path(__file__).resolve().parent.parent / "scripts" / "synthetic_iteration.py"

CLASSES = {"prompts.jsonl": Prompt, "responses.jsonl": Response, "verifications.jsonl": Verification,
           "judgments.jsonl": Judgment, "extra_judgments.jsonl": Judgment, "meta_judgments.jsonl": MetaJudgment,
           "ratings.jsonl": Rating, "response_pairs.jsonl": PreferencePair, "judgment_pairs.jsonl": PreferencePair,
           "reflections.jsonl": Reflection, "reflection_pairs.jsonl": PreferencePair, "known_pairs.jsonl": KnownPair,
           "known_judgments.jsonl": KnownJudgment, "judge_training_pairs.jsonl": PreferencePair}
ARGS = {"key": "M1", "prompts": 20, "responses": 4, "judgments": 3, "meta_judged": 1, "verifiable": 0.25, "seed": 0}


@pytest.fixture(scope="module")
def it(tmp_path_factory):
    out = tmp_path_factory.mktemp("synth")
    counts = synth.write_iteration(out, **ARGS)
    folder = out / "data" / "M1"
    rows = {name: records.read_jsonl(folder / name, cls) for name, cls in CLASSES.items()}
    return out, counts, rows


def test_every_file_validates_and_counts_match(it):
    out, counts, rows = it
    assert set(counts) == set(CLASSES) == set(synth.FILES)
    for name, got in rows.items():
        assert len(got) == counts[name] > 0, name
    assert counts["prompts.jsonl"] == 20 and counts["responses.jsonl"] == 80
    assert sum(p.answer is not None for p in rows["prompts.jsonl"]) == 5  # exactly a quarter are tasks
    assert {p.name for p in (out / "metrics" / "M1").iterdir()} >= {"sample.json", "judge.json", "pairs.json"}


def test_links_resolve(it):
    _, _, rows = it
    prompts = {p.prompt_id for p in rows["prompts.jsonl"]}
    responses = {r.response_id: r for r in rows["responses.jsonl"]}
    judgments = {j.judgment_id: j for j in rows["judgments.jsonl"]}
    extra = {j.judgment_id: j for j in rows["extra_judgments.jsonl"]}
    assert not judgments.keys() & extra.keys()
    all_judgments = {**judgments, **extra}
    reflections = {r.reflection_id: r for r in rows["reflections.jsonl"]}
    for r in responses.values():
        assert r.prompt_id in prompts
    for j in all_judgments.values():
        assert responses[j.response_id].prompt_id == j.prompt_id
    for v in rows["verifications.jsonl"]:
        assert responses[v.response_id].prompt_id == v.prompt_id
    for m in rows["meta_judgments.jsonl"]:
        first, second = all_judgments[m.first_id], all_judgments[m.second_id]
        assert first.response_id == second.response_id == m.response_id and m.first_id != m.second_id
        assert responses[m.response_id].prompt_id == m.prompt_id
    for rt in rows["ratings.jsonl"]:
        assert all_judgments[rt.judgment_id].response_id == rt.response_id
    for p in rows["response_pairs.jsonl"]:
        c, rj = responses[p.chosen_id], responses[p.rejected_id]
        assert p.kind == "response" and c.prompt_id == rj.prompt_id == p.prompt_id
        assert p.chosen[0]["content"] == c.output and p.rejected[0]["content"] == rj.output
        assert p.prompt[0]["content"] == c.prompt_text
    for p in rows["judgment_pairs.jsonl"]:
        c, rj = all_judgments[p.chosen_id], all_judgments[p.rejected_id]
        assert p.kind == "judgment" and c.response_id == rj.response_id == p.provenance["response_id"]
        assert p.chosen[0]["content"] == c.text and p.rejected[0]["content"] == rj.text
    for rf in reflections.values():
        assert responses[rf.response_id].prompt_id == rf.prompt_id
    for p in rows["reflection_pairs.jsonl"]:
        assert p.kind == "reflection" and reflections[p.chosen_id].response_id == reflections[p.rejected_id].response_id
    # ids as the stages make them
    for r in responses.values():
        assert r.response_id == stable_id("r", r.prompt_id, r.sample_index, r.output)
    for j in all_judgments.values():
        assert j.judgment_id == stable_id("j", j.response_id, j.judge_index, j.text)
    for m in rows["meta_judgments.jsonl"]:
        assert m.meta_id == stable_id("mj", m.first_id, m.second_id, m.text)


def test_scores_and_pair_rules(it):
    _, _, rows = it
    responses = {r.response_id: r for r in rows["responses.jsonl"]}
    scores = defaultdict(list)
    for j in rows["judgments.jsonl"]:
        scores[j.response_id].append(j.score)
    methods = {j.method for j in rows["judgments.jsonl"]}
    assert {"strict", "flexible"} <= methods <= {"strict", "flexible", "forced", "dropped"}
    for j in [*rows["judgments.jsonl"], *rows["extra_judgments.jsonl"]]:
        assert 300 <= len(j.text) <= 1000
        assert (j.score is None) == (j.method == "dropped")
        parsed = parse_score(j.text)
        if j.method in ("strict", "flexible"):
            assert parsed is not None and (parsed.method, float(parsed.value)) == (j.method, j.score)
        else:
            assert parsed is None
        if j.method == "strict":
            assert j.text.endswith(f"Score: {int(j.score)}")
        if j.score is not None:
            assert 0 <= j.score <= 5
    means = {rid: statistics.fmean(v) for rid, s in scores.items() if (v := [x for x in s if x is not None])}
    by_prompt = defaultdict(dict)
    for rid, m in means.items():
        assert responses[rid].parse_ok
        by_prompt[responses[rid].prompt_id][rid] = m
    # response pairs (rp-): the highest mean score against the lowest; ties give none
    rp = [p for p in rows["response_pairs.jsonl"] if p.pair_id.startswith("rp-")]
    paired = {p.prompt_id for p in rp}
    for p in rp:
        m = by_prompt[p.prompt_id]
        assert p.chosen_score == m[p.chosen_id] == max(m.values())
        assert p.rejected_score == m[p.rejected_id] == min(m.values())
        assert p.chosen_score > p.rejected_score
        assert p.provenance["chosen_chars"] == len(responses[p.chosen_id].response)
    for prompt_id, m in by_prompt.items():
        if prompt_id not in paired:
            assert len(set(m.values())) == 1
    assert rp
    # verified pairs (vp-): the best reward level against a lower one
    levels = {v.response_id: v.level for v in rows["verifications.jsonl"]}
    for p in rows["response_pairs.jsonl"]:
        if p.pair_id.startswith("vp-"):
            assert levels[p.chosen_id] == p.chosen_score > p.rejected_score == levels[p.rejected_id]
    assert not scores.keys() & levels.keys()  # verified responses are not judged
    for v in rows["verifications.jsonl"]:
        found = extract_answer(responses[v.response_id].output)
        assert (found.answer, found.method) == (v.extracted, v.method)
    # meta-judging: one response per prompt, every ordered pair of its 5 judgments; judgment pair by Elo
    per_response = defaultdict(list)
    for m in rows["meta_judgments.jsonl"]:
        per_response[m.response_id].append((m.first_id, m.second_id))
        assert m.verdict in (-1, 0, 1) and (m.verdict == 0) == (m.method in ("tie", "no_win", "unparsed"))
    judged_prompts = {responses[rid].prompt_id for rid in per_response}
    assert len(judged_prompts) == len(per_response) == len(by_prompt)
    for pairs in per_response.values():
        assert len(pairs) == len(set(pairs)) == 5 * 4
    elo = defaultdict(dict)
    for rt in rows["ratings.jsonl"]:
        elo[rt.response_id][rt.judgment_id] = rt.elo
    assert set(elo) == set(per_response) and all(len(v) == 5 for v in elo.values())
    for p in rows["judgment_pairs.jsonl"]:
        e = elo[p.provenance["response_id"]]
        assert p.chosen_score == e[p.chosen_id] == max(e.values())
        assert p.rejected_score == e[p.rejected_id] == min(e.values()) < p.chosen_score
    reflections = {r.reflection_id: r for r in rows["reflections.jsonl"]}
    for p in rows["reflection_pairs.jsonl"]:
        assert reflections[p.chosen_id].retry_correct and not reflections[p.rejected_id].retry_correct


def test_text_lengths_and_topics(it):
    _, _, rows = it
    for p in rows["prompts.jsonl"]:
        if p.answer is None:
            assert 40 <= len(p.instruction) <= 400
            assert set(p.instruction.replace(",", " ").split()) & set(synth.TOPICS)
    for r in rows["responses.jsonl"]:
        if r.parse_ok and r.prompt_id in {p.prompt_id for p in rows["prompts.jsonl"] if p.answer is None}:
            assert 200 <= len(r.response) <= 3000
    assert any(r.thought for r in rows["responses.jsonl"]) and any(not r.thought for r in rows["responses.jsonl"])


def test_deterministic_and_prefix_stable(it, tmp_path):
    out, _, _ = it
    synth.write_iteration(tmp_path / "a", **ARGS)
    for name in synth.FILES:
        assert (tmp_path / "a" / "data" / "M1" / name).read_bytes() == (out / "data" / "M1" / name).read_bytes(), name
    for path in (out / "metrics" / "M1").iterdir():
        assert (tmp_path / "a" / "metrics" / "M1" / path.name).read_bytes() == path.read_bytes()
    synth.write_iteration(tmp_path / "b", **{**ARGS, "seed": 1, "prompts": 4})
    assert (tmp_path / "b" / "data" / "M1" / "prompts.jsonl").read_bytes() != \
        (out / "data" / "M1" / "prompts.jsonl").read_bytes()
    synth.write_iteration(tmp_path / "c", **{**ARGS, "prompts": 8})
    small = (tmp_path / "c" / "data" / "M1" / "responses.jsonl").read_bytes()
    assert (out / "data" / "M1" / "responses.jsonl").read_bytes().startswith(small)


def test_without_verifiable_or_meta_those_files_are_empty(tmp_path):
    counts = synth.write_iteration(tmp_path, "M2", 5, 3, 2, 0, 0.0, 0, token_ids=False, metrics=False)
    folder = tmp_path / "data" / "M2"
    for name in ("verifications.jsonl", "reflections.jsonl", "reflection_pairs.jsonl", "meta_judgments.jsonl",
                 "ratings.jsonl", "judgment_pairs.jsonl", "extra_judgments.jsonl"):
        assert counts[name] == 0 and (folder / name).read_bytes() == b""
    responses = records.read_jsonl(folder / "responses.jsonl", Response)
    assert all(r.token_ids is None for r in responses)
    assert responses[0].provenance["model"] == "M1"
    assert not (tmp_path / "metrics").exists()
    assert not [p for p in folder.iterdir() if p.name.startswith(".")]  # no temporary files left


def test_cli(tmp_path):
    proc = subprocess.run([sys.executable, str(SCRIPT), str(tmp_path), "--prompts", "3", "--responses", "2",
                           "--judgments", "2"], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert "responses.jsonl" in proc.stdout and "total" in proc.stdout
    assert len(records.read_jsonl(tmp_path / "data" / "M1" / "responses.jsonl", Response)) == 6
    proc = subprocess.run([sys.executable, str(SCRIPT), str(tmp_path), "--verifiable", "2"], capture_output=True,
                          text=True)
    assert proc.returncode == 2 and "error:" in proc.stderr
