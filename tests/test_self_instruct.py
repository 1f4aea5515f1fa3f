"""Self-instruct: echoes of the request, the record of every candidate, near-misses, the error when nothing is
accepted, and the limits checked before generation (seed count, context). Fake engines, no model, except the
stage tests (the tiny workdir, a scripted engine)."""

from __future__ import annotations

import json
import random

import pytest
import yaml

from pipeline import self_instruct
from pipeline.config import ConfigError, SelfInstructConfig, parse_params
from pipeline.errors import StageError
from pipeline.generation import Generation
from pipeline.records import read_jsonl, stable_id
from pipeline.shards import ShardCache
from tests.fakes import ScriptedEngine
from tests.helpers import TINY_PARAMS
from tests.inprocess import run_stage

MADE_BY = {"model": "M0_sft", "model_sha256": "abc", "iteration": "M1"}
SEEDS = [f"Seed task number {i} about gardens." for i in range(10)]
ECHO = "To write a new task of your own, you can use the following steps:"


def scripted(*replies: str) -> ScriptedEngine:
    it = iter(replies)
    return ScriptedEngine(lambda prompt, i: next(it))


# ------------------------------------------------------------------------------------------ echoes
def test_the_request_text_is_the_template_without_its_examples():
    text = self_instruct.request_text(None, 8)
    assert text.startswith("Here are some tasks that users have given to an AI assistant:")
    assert "Write one new task of your own for the assistant." in text and text.count("<task>") == 9
    assert "\x00" not in text


def test_an_echo_of_the_request_is_rejected_not_a_task_that_shares_a_few_words():
    f = self_instruct.InstructionFilter(seed=SEEDS, held_out=[], request=self_instruct.request_text(None, 8))
    assert f.assess(ECHO).reason == "echo_of_request"  # "new task of your own": 5 words of the request in a row
    assert f.assess("Here are some tasks that users have given to me.").reason == "echo_of_request"
    assert f.assess("Explain to an AI assistant how the tides work.").reason is None  # 4 words in a row only
    assert f.assess("Write a new task list for my week.").reason is None
    off = self_instruct.InstructionFilter(seed=SEEDS, held_out=[], request=self_instruct.request_text(None, 8),
                                          echo_words=0)
    assert off.assess(ECHO).reason is None


def test_the_echo_rule_follows_a_users_template(workdir):
    (workdir / "mine.j2").write_text("Invent a fresh assignment in the style of these:\n"
                                     "{% for e in examples %}- {{ e }}\n{% endfor %}Answer inside <task></task>.\n")
    f = self_instruct.InstructionFilter(seed=SEEDS, held_out=[], request=self_instruct.request_text("mine.j2", 4))
    assert f.assess("Invent a fresh assignment in the style of a haiku.").reason == "echo_of_request"
    assert f.assess(ECHO).reason is None  # the shipped template's words are not this request's


# ------------------------------------------------------------------------------------------ candidates
def test_every_candidate_is_recorded_with_its_reason_and_closest_instruction():
    cfg = SelfInstructConfig(num_prompts=2, max_requests=4, shard_size=4)
    replies = ("List three uses of salt in cooking.</task>", ECHO + "</task>", "Seed task number 3 about gardens.</task>",
               "Explain why the sky looks blue at noon.</task>")
    out = self_instruct.generate_instructions(Generation(scripted(*replies)), SEEDS, [], cfg, MADE_BY)
    c = out.candidates
    assert [(x.request, x.accepted, x.reason) for x in c] == [(0, True, None), (1, False, "echo_of_request"),
                                                              (2, False, "similar_to_seed"), (3, True, None)]
    assert [x.prompt_id for x in c] == [out.prompts[0].prompt_id, None, None, out.prompts[1].prompt_id]
    assert c[1].text == ECHO and c[1].instruction == ECHO and c[1].rouge_l is None  # not measured: rejected first
    assert (c[2].rouge_l, c[2].closest, c[2].closest_source) == (1.0, "Seed task number 3 about gardens.", "seed")
    assert c[0].candidate_id == stable_id("c", "M1", 0, "List three uses of salt in cooking.")  # text before the stop
    assert c[0].provenance["request"] == 0 and c[0].provenance["model"] == "M0_sft"
    assert c[0].provenance["template_sha"] == out.prompts[0].provenance["template_sha"]
    assert out.prompts[0].provenance["candidate_id"] == c[0].candidate_id
    assert out.metrics["rejected"]["echo_of_request"] == 1 and out.metrics["rejected"]["similar_to_seed"] == 1


def test_near_misses_are_accepted_and_reported():
    cfg = SelfInstructConfig(num_prompts=2, max_requests=2, shard_size=2, near_miss=0.5)
    close = "Seed task number 3 about gardens, lakes and rivers in early spring."  # ROUGE-L 0.667 to seed 3
    out = self_instruct.generate_instructions(
        Generation(scripted(close + "</task>", "Explain why the sky looks blue at noon.</task>")), SEEDS, [], cfg,
        MADE_BY)
    assert [p.instruction for p in out.prompts] == [close, "Explain why the sky looks blue at noon."]
    near = out.metrics["near_misses"]
    assert near["threshold"] == 0.5 and near["count"] == 1
    assert near["top"] == [{"prompt_id": out.prompts[0].prompt_id, "instruction": close, "rouge_l": 0.6667,
                            "closest": "Seed task number 3 about gardens.", "closest_source": "seed"}]


def test_the_filter_measures_the_closest_instruction_of_every_set():
    f = self_instruct.InstructionFilter(seed=["Write a poem about the sea."], held_out=["Name three rivers in Asia."],
                                        accepted=["Name three rivers in Europe."])
    v = f.assess("Name three long rivers in Africa.")
    assert v.reason == "similar_to_accepted" and v.closest_source == "accepted"
    assert v.closest == "Name three rivers in Europe." and v.rouge_l == pytest.approx(f.rouge_l(
        "Name three rivers in Europe.", "Name three long rivers in Africa."))


# ------------------------------------------------------------------------------------------ nothing accepted
def test_nothing_accepted_names_the_dominant_reason_and_advice_that_applies():
    cfg = SelfInstructConfig(max_requests=3, shard_size=3)
    with pytest.raises(self_instruct.NothingAccepted) as e:
        self_instruct.generate_instructions(Generation(scripted("Hi</task>", "Hi you</task>", "never closed")), SEEDS,
                                            [], cfg, MADE_BY)
    assert str(e.value) == ("self_instruct: 0 of 3 requests gave an acceptable instruction — most were too_short "
                            "(2 of 3; unparseable 1); lower self_instruct.min_words (3)")
    assert "max_requests" not in str(e.value) and len(e.value.candidates) == 3


def test_outputs_cut_at_max_new_tokens_are_named_as_such():
    cfg = SelfInstructConfig(max_requests=2, shard_size=2, max_new_tokens=8)
    with pytest.raises(self_instruct.NothingAccepted, match=r"all 2 were unparseable; 2 of them stopped at "
                       r"self_instruct.max_new_tokens \(8\) before </task>: raise it"):
        self_instruct.generate_instructions(Generation(scripted("Write a long story", "Write a long poem")), SEEDS, [],
                                            cfg, MADE_BY)


# ------------------------------------------------------------------------------------------ limits
def test_num_examples_over_the_seeds_is_an_error_not_a_silent_cap():
    with pytest.raises(StageError, match=r"^self_instruct.num_examples: 11 — more than the 10 seed instructions in "
                       r"the seed file; show at most 10 or add seeds$"):
        self_instruct.generate_instructions(Generation(scripted()), SEEDS, [], SelfInstructConfig(num_examples=11),
                                            MADE_BY)
    with pytest.raises(ValueError):
        self_instruct.build_request(SEEDS, 11, random.Random(0))


class CharTokenizer:
    """One token per character: a tokenizer the context check can count with."""

    def __call__(self, text, add_special_tokens=False):
        return {"input_ids": [ord(c) for c in text]}

    def apply_chat_template(self, messages, tokenize=False, add_generation_prompt=True, continue_final_message=False):
        return "".join(m["content"] for m in messages)


def test_a_request_over_the_context_stops_before_anything_is_generated():
    engine = ScriptedEngine(lambda prompt, i: "List three uses of salt.</task>")
    engine.tokenizer = CharTokenizer()
    cfg = SelfInstructConfig(max_new_tokens=96)
    need = len(self_instruct.build_request(SEEDS, 8, random.Random(0))) + 96
    with pytest.raises(StageError, match=r"^self_instruct: the longest possible request \(8 longest seeds\) is \d+ "
                       r"tokens, which with self_instruct.max_new_tokens \(96\) exceeds engine.max_model_len \(300\)"):
        self_instruct.generate_instructions(Generation(engine), SEEDS, [], cfg, MADE_BY, max_model_len=300)
    assert engine.requests == 0
    out = self_instruct.generate_instructions(Generation(engine), SEEDS, [], SelfInstructConfig(num_prompts=1),
                                              MADE_BY, max_model_len=need + 50)
    assert len(out.prompts) == 1


@pytest.mark.parametrize("section, message", [
    ({"min_words": 9, "max_words": 4}, "self_instruct.min_words: 9 — above self_instruct.max_words (4)"),
    ({"rouge_threshold": 0.0}, "self_instruct.rouge_threshold: 0.0 — must be in (0, 1]"),
    ({"min_words": 100}, "self_instruct.min_words: 100 — above self_instruct.max_new_tokens (96)"),
    ({"near_miss": 0.7}, "self_instruct.near_miss: 0.7 — must be below self_instruct.rouge_threshold (0.7)"),
    ({"echo_words": 2}, "self_instruct.echo_words: 2 — must be 0 (off) or at least 3"),
])
def test_settings_that_reject_everything_fail_when_params_load(section, message):
    with pytest.raises(ConfigError) as e:
        parse_params({"self_instruct": section})
    assert str(e.value).startswith("params.yaml: " + message)


# ------------------------------------------------------------------------------------------ the stage
def _scripted_stage(monkeypatch, tiny_workdir, reply, **si):
    from stages import _generate

    monkeypatch.setattr(_generate, "open_engine", lambda params, *a, **k: lambda d: ScriptedEngine(reply))
    params = {**TINY_PARAMS, "self_instruct": {**TINY_PARAMS["self_instruct"], **si}}
    (tiny_workdir / "params.yaml").write_text(yaml.safe_dump(params))


WORDS = ("rivers", "poems", "budget", "garden", "planets", "history", "recipe", "chess", "email", "train")


def _varied(prompt, i):
    h = sum(map(ord, prompt[-300:]))
    return f"Explain {WORDS[h % 10]} and {WORDS[(h // 10) % 10]} to a {WORDS[(h // 100) % 10]} fan.</task>"


def test_the_stage_writes_the_candidates_and_near_misses(monkeypatch, tiny_workdir):
    _scripted_stage(monkeypatch, tiny_workdir, _varied)
    proc = run_stage("self_instruct", "--iteration", "M1")
    assert proc.returncode == 0, proc.stderr
    rows = read_jsonl(tiny_workdir / "data/M1/instruction_candidates.jsonl", self_instruct.InstructionCandidate)
    prompts = [json.loads(line) for line in (tiny_workdir / "data/M1/prompts.jsonl").read_text().splitlines()]
    assert {r.prompt_id for r in rows if r.prompt_id} == {p["prompt_id"] for p in prompts}
    assert all(r.provenance["iteration"] == "M1" and r.provenance["model"] == "M0_sft" for r in rows)
    metrics = json.loads((tiny_workdir / "metrics/M1/self_instruct.json").read_text())
    assert metrics["near_misses"]["threshold"] == 0.5 and "echo_of_request" in metrics["rejected"]
    assert not list((tiny_workdir / ".work").glob("*"))


def test_a_stage_that_accepts_nothing_leaves_its_candidates_in_the_work_folder(monkeypatch, tiny_workdir):
    _scripted_stage(monkeypatch, tiny_workdir, lambda prompt, i: ECHO + "</task>", max_new_tokens=96)
    proc = run_stage("self_instruct", "--iteration", "M1")
    assert proc.returncode == 2
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith("error: self_instruct: 0 of 8 requests gave an acceptable instruction — all 8 were "
                           "echo_of_request; the generator repeats the request's own words")
    where = last.rsplit(": ", 1)[1]
    assert where.startswith(".work/self_instruct-M1-") and where.endswith("/instruction_candidates.jsonl")
    rows = read_jsonl(tiny_workdir / where, self_instruct.InstructionCandidate)
    assert [r.reason for r in rows] == ["echo_of_request"] * 8
    assert not (tiny_workdir / "data/M1").exists()


def test_candidates_are_the_same_when_a_run_resumes_from_its_shards(tmp_path):
    cfg = SelfInstructConfig(num_prompts=3, max_requests=8, shard_size=2)

    def go(die_after=None):
        calls = []

        def reply(prompt, i):
            calls.append(1)
            if die_after is not None and len(calls) > die_after:
                raise KeyboardInterrupt
            return _varied(prompt, i)

        gen = Generation(ScriptedEngine(reply), ShardCache("self_instruct", "M1", ["x"], root=tmp_path))
        return self_instruct.generate_instructions(gen, SEEDS, [], cfg, MADE_BY), len(calls)

    with pytest.raises(KeyboardInterrupt):
        go(die_after=3)  # the first round (2 requests) is saved, the second dies
    resumed, generated = go()
    other = ShardCache("self_instruct", "M1", ["y"], root=tmp_path / "other")
    fresh = self_instruct.generate_instructions(Generation(ScriptedEngine(_varied), other), SEEDS, [], cfg,
                                                MADE_BY)
    assert resumed.candidates == fresh.candidates and resumed.prompts == fresh.prompts
    assert generated == len(fresh.candidates) - 2  # the saved round was read back, not generated again

