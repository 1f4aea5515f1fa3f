"""The verdict chains on a table of outputs as models write them, and the papers' way of handling a failure."""

import math

import pytest

from pipeline import evaluation, forcing, judging, meta_judging, verdicts
from pipeline.config import JudgeConfig, MetaJudgeConfig
from pipeline.generation import Generation
from tests.fakes import FakeEngine, ScriptedEngine
from tests.helpers import MADE_BY, meta_setup, response

# (text, value, parser) — None: no parser reads it, the chain's failure rule decides
JUDGE_OUTPUTS = [
    ("The response is relevant and answers the question.\nScore: 4", "4", "strict"),
    ("Justification: relevant, helpful.\n\nScore: <3>", "3", "strict"),  # the paper's placeholder, filled in
    ("Good answer overall.\n**Score: 5**", "5", "strict"),
    ("Partly answered.\nScore: 2.", "2", "strict"),
    ("Clear and useful.\nscore: 4/5", "4", "strict"),
    ("### Score: 1", "1", "strict"),
    ("Score: 4\nI hope this helps!", "4", "flexible"),
    ("I would award a score of 3 points.", "3", "flexible"),
    ("Total: 2 out of 5", "2", "flexible"),
    ("The final score is \u201c5\u201d.", "5", "flexible"),
    ("Score: 7", None, None),
    ("Score: 4.5", None, None),
    ("A helpful answer, well written.", None, None),
    ("", None, None),
]

META_OUTPUTS = [
    ("Judgement A is closer to the rubric.\nWinner: Judgement A", "A", "strict"),  # the paper's spelling
    ("B misses a point.\nWinner: Judgment B", "B", "strict"),
    ("Winner: [Judgement B]", "B", "strict"),
    ("**Winner: Judgement A**", "A", "strict"),
    ("Winner: Judgement B.", "B", "strict"),
    ("After comparing, the winner is Judgement A.\nThanks.", "A", "flexible"),
    ("winner: judgment b", "B", "flexible"),
    ("Judgement B is more accurate than A.", "B", "flexible"),
    ("Both judgments are reasonable.", None, None),
    ("Winner: Judgement C", None, None),
]

COMPARE_OUTPUTS = [
    ("A is more complete.\nWinner: A", "A", "strict"),
    ("**Winner: tie**", "tie", "strict"),
    ("Winner: Response B.", "B", "strict"),
    ("Winner: [B]", "B", "strict"),
    ("The winner is response A because it is correct.", "A", "flexible"),
    ("Neither is clearly better.", None, None),
]


@pytest.mark.parametrize("chain, table", [(judging.chain_for(None), JUDGE_OUTPUTS),
                                          (meta_judging.chain_for(None), META_OUTPUTS),
                                          (evaluation.chain_for(None), COMPARE_OUTPUTS)], ids=["judge", "meta", "compare"])
def test_chain_reads_the_table(chain, table):
    for text, value, method in table:
        parsed = chain.parse(text)
        got = None if parsed is None else (parsed.value, parsed.method)
        assert got == (None if value is None else (value, method)), text
        if parsed is not None:  # the offset points at the value as written
            assert text[parsed.start].upper() == value[0].upper(), text


def test_forced_verdict_continues_in_the_templates_spelling(tmp_path, monkeypatch):
    assert meta_judging.chain_for(None).prefix == "Winner: Judgement "  # the default: the paper's format
    assert meta_judging.chain_for("meta_judge_compact.j2").prefix == "Winner: Judgment "
    monkeypatch.chdir(tmp_path)
    (tmp_path / "mine.j2").write_text("{{ instruction }} {{ response }} A: {{ judgment_a }} B: {{ judgment_b }}\n"
                                      "End with Winner: Judgement A or Winner: Judgement B.")
    chain = meta_judging.chain_for("mine.j2")
    assert chain.prefix == "Winner: Judgement " and chain.forced_context("P", "hmm ") == "Phmm\nWinner: Judgement "


def test_judge_drops_what_does_not_parse_when_asked():
    engine = FakeEngine({str(d): -1.0 for d in range(6)})
    conv = [{"role": "user", "content": "Q"}]
    found = judging.judge_verdicts(engine, [conv, conv], ["Fine.\nScore: 4", "no score"], "parsed", "drop")
    assert [(v.score, v.method) for v in found] == [(4.0, "strict"), (None, "dropped")]
    assert engine.contexts == []  # nothing forced
    found = judging.judge_verdicts(engine, [conv, conv], ["Fine.\nScore: 4", "no score"], "expected", "drop")
    assert [(v.score, v.method) for v in found] == [(pytest.approx(2.5), "strict"), (None, "dropped")]
    assert len(engine.contexts) == 1


def test_judge_step_with_dropped_scores_leaves_them_out_of_the_mean():
    def reply(prompt, i):
        return ["Score: 4", "no verdict"][i]

    rows, metrics = judging.judge_responses(Generation(ScriptedEngine(reply, lambda c, o: [0.0] * 6)),
                                            [response("r1", "p1", "good")], JudgeConfig(k=2, on_unparsed="drop"),
                                            MADE_BY)
    assert [(j.score, j.method) for j in rows] == [(4.0, "strict"), (None, "dropped")]
    assert (metrics["dropped"], metrics["forced"], metrics["mean_score"]) == (1, 0, 4.0)


def test_meta_judge_counts_an_unparsed_verdict_as_no_win_when_asked():
    responses, judgments, engine = meta_setup()
    out = meta_judging.meta_judge(Generation(engine), responses, judgments,
                                  MetaJudgeConfig(num_judgments=3, on_unparsed="no_win"), JudgeConfig(), MADE_BY)
    r3 = [m for m in out.meta if m.response_id == "r3"]
    assert [(m.verdict, m.method, m.forced_margin) for m in r3] == [(0, "no_win", None)] * 6
    assert (out.metrics["no_win"], out.metrics["forced"], out.metrics["strict"]) == (6, 0, 6)
    assert [r.elo for r in out.ratings if r.response_id == "r3"] == [pytest.approx(1000.0)] * 3  # no battle won
    assert engine.contexts == []


def test_pairwise_verdicts_no_win_never_asks_the_engine():
    chain = verdicts.Chain("t", meta_judging.chain_for(None).parsers, "Winner: Judgment ", ("A", "B"),
                           on_unparsed="no_win")
    engine = FakeEngine({"A": 0.0, "B": -math.inf})
    got, offset = forcing.pairwise_verdicts(chain, engine, [[{"role": "user", "content": "Q"}]] * 2,
                                            ["Winner: Judgment A", "?"], 0.05)
    assert got == [verdicts.PairVerdict("A", "strict"), verdicts.PairVerdict("tie", "no_win")] and offset == 0.0
    assert engine.contexts == []
