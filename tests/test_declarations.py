"""A judge is data: the verdict declarations beside the templates, their readings, and their errors.

The shipped declarations must read every output exactly as the hand-written parsers they replaced did (value,
reading and offset); a user's template with its own declaration (another label, another scale) is scored by
the judge step with nothing changed in Python; a bad declaration is one line before any model loads.
"""

import doctest
import random
import re
import textwrap
from collections import Counter

import pytest

from pipeline import declarations, evaluation, judging, meta_judging, templates, verdicts, verifiable
from pipeline.config import ConfigError, JudgeConfig, load_params
from pipeline.generation import Generation
from tests.fakes import ScriptedEngine
from tests.helpers import MADE_BY, response

# ------------------------------------------------------------------ the parsers the declarations replaced
# As they stood in pipeline/judging.py, meta_judging.py and evaluation.py before the declarations (0894dba).
_QUOTES = "\"'\u201c\u201d\u2018\u2019*"
OLD_JUDGE = (re.compile(r"^[\s*_#]*Score\s*:[\s*_]*<?\s*([0-5])\s*>?(?:\s*(?:/|out of)\s*5)?[\s*_]*\.?\s*$",
                        re.IGNORECASE),
             [re.compile(r"score\s*(?:is|of|=|:)?\s*[" + _QUOTES + r"]*\s*([0-5])(?![\d.])(?:\s*(?:/|out of)\s*5)?",
                         re.IGNORECASE),
              re.compile(r"(?<![\d.])([0-5])\s*(?:/|out of)\s*5\b", re.IGNORECASE)],
             lambda v: v)
OLD_META = (re.compile(r"^[\s*_#]*Winner\s*:[\s*_]*\[?\s*Judge?ment\s+([AB])\s*\]?[\s*_]*\.?\s*$"),
            [re.compile(r"winner\W{0,3}\s*(?:is\s*)?(?:judge?ment\s*)?[\"'\u201c\u201d*\[]*\s*([AB])\b",
                        re.IGNORECASE),
             re.compile(r"judge?ment\s+([AB])\s+(?:is|was)\s+(?:more accurate|better|the winner)", re.IGNORECASE)],
            str.upper)
OLD_COMPARE = (re.compile(r"^[\s*_#]*Winner\s*:[\s*_]*\[?\s*(?:Response\s+)?(A|B|tie)\s*\]?[\s*_]*\.?\s*$",
                          re.IGNORECASE),
               [re.compile(r"winner\W{0,3}\s*(?:is\s*)?(?:response\s*)?[\"'\u201c\u201d*]*\s*(A|B|tie)\b",
                           re.IGNORECASE)],
               lambda v: "tie" if v.lower() == "tie" else v.upper())
OLD_FINAL = re.compile(r"^[\s*_#]*Final answer\s*:[\s*_]*(.+?)[\s*_]*$", re.IGNORECASE)


def old_parse(old, text):
    strict, flexible, norm = old
    for method, found in (("strict", verdicts.on_last_line(strict, text)),
                          ("flexible", verdicts.last_match(text, *flexible))):
        if found is not None:
            return norm(found[0]), method, found[1]
    return None


def outputs(n, seed=0):
    """Texts built from the pieces verdicts are written with, and the near-misses around them: each piece is
    mostly a common spelling (first list), sometimes a rare one or a near-miss (second list)."""
    rng = random.Random(seed)

    def pick(common, rare):
        return rng.choice(common if rng.random() < 0.8 else rare)

    lead = (["", "The response is fine.\n", "Judgment A is closer.\n"], ["A longer answer, and", "\n\n", "B: 3/5\n"])
    mark = (["", ""], ["**", "### ", " ", "_", "# "])
    label = (["Score", "Winner"], ["score", "SCORE", "**Score", "winner", "**Winner", "WINNER", "Total",
                                   "the winner is", "my score of", "The final score is", "Rating"])
    sep = ([":", ": "], [" :", " is ", " of ", " = ", " - ", "", ":**", ": **", " \u2014 ", "::"])
    opening = ([""], ["<", "[", "\"", "\u201c", "'", "\u2018", "*", "**", "[[", "< "])
    name = (["", "Judgment ", "Judgement ", "Response "], ["judgment ", "JUDGMENT ", "response ", "Judgments ",
                                                           "Judge ment ", "Judgement\n"])
    value = (["0", "1", "2", "3", "4", "5", "A", "B", "tie"], ["6", "7", "10", "4.5", "3.", "a", "b", "C", "Tie",
                                                               "TIE", "AB", "Both", "-1", "05"])
    closing = ([""], [">", "]", "\"", "\u201d", "'", "**", ".", " >", "]]", "*", "..", ". "])
    after = ([""], ["/5", " out of 5", "/10", " / 5", " is more accurate", " is better", " was the winner",
                    " points", " because it is precise", "5", ".5"])
    tail = (["", "\n", " ", "\n\n"], ["\nThanks.", ".", "!", "\nScore:", "**", "\nWinner: Judgment"])

    def verdict() -> str:
        return "".join(pick(*piece) for piece in (mark, label, sep, opening, name, value, closing, after))

    texts = []
    for _ in range(n):
        parts = [pick(*lead)]
        for _ in range(rng.randint(0, 2)):
            parts.append(verdict() + rng.choice(["\n", " ", "\n\n", ". "]))
        parts.append(verdict() + pick(*tail))  # the last line: strict when it is exactly a verdict
        texts.append("".join(parts))
    return texts


TEXTS = outputs(30000)


@pytest.mark.parametrize("chain, old", [
    (judging.chain_for(None), OLD_JUDGE), (judging.chain_for("judge_compact.j2"), OLD_JUDGE),
    (meta_judging.chain_for(None), OLD_META), (meta_judging.chain_for("meta_judge_compact.j2"), OLD_META),
    (evaluation.chain_for(None), OLD_COMPARE)], ids=["judge", "judge_compact", "meta", "meta_compact", "compare"])
def test_the_shipped_declarations_read_as_the_parsers_they_replaced(chain, old):
    methods = Counter()
    for text in TEXTS:
        p = chain.parse(text)
        got = None if p is None else (p.value, p.method, p.start)
        assert got == old_parse(old, text), text
        methods[None if p is None else p.method] += 1
    assert min(methods[m] for m in ("strict", "flexible", None)) > 200  # every reading is reached, and failures


def test_the_forced_prefixes_and_options_are_the_ones_the_steps_used():
    assert (judging.chain_for(None).prefix, judging.chain_for(None).options) == ("Score: ", tuple("012345"))
    assert judging.chain_for("judge_compact.j2").prefix == "Score: "
    assert (meta_judging.chain_for(None).prefix, meta_judging.chain_for(None).options) == ("Winner: Judgement ",
                                                                                           ("A", "B"))
    assert meta_judging.chain_for("meta_judge_compact.j2").prefix == "Winner: Judgment "
    assert (evaluation.chain_for(None).prefix, evaluation.chain_for(None).options) == ("Winner: ", ("A", "B"))


def test_one_helper_builds_every_strict_line():
    assert verifiable._FINAL.pattern == OLD_FINAL.pattern and verifiable._FINAL.flags == OLD_FINAL.flags
    strict = judging.declaration_for(None).strict_pattern()
    assert strict.pattern.startswith(r"^[\s*_#]*Score\s*:[\s*_]*") and strict.pattern.endswith(r"[\s*_]*\.?\s*$")


@pytest.mark.parametrize("module", [declarations, verdicts])
def test_doctests(module):
    result = doctest.testmod(module)
    assert result.failed == 0 and result.attempted > 0


def test_the_rules_import_no_engine():
    import ast
    from pathlib import Path

    for name in ("verdicts", "declarations", "judge_rules", "meta_judge_rules", "compare_rules", "elo", "pairs"):
        tree = ast.parse(Path(f"pipeline/{name}.py").read_text())
        imported = {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module} | {
            a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
        imported |= {f"pipeline.{a.name}" for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)
                     and n.module == "pipeline" for a in n.names}
        bad = {m for m in imported if m.startswith(("pipeline.engines", "pipeline.generation", "pipeline.judging",
                                                    "pipeline.meta_judging", "pipeline.evaluation",
                                                    "pipeline.forcing"))}
        assert not bad, f"pipeline/{name}.py imports {bad}"


# ------------------------------------------------------------------ a user's judge, declared
RATING_TEMPLATE = ("Rate the response to the question from 1 to 10.\nQuestion: {{ instruction }}\n"
                   "Response: {{ response }}\nEnd with a last line 'Rating: N'.\n")
RATING = """\
label: Rating
values: 1-10
strict: {brackets: "[]"}
flexible: [score_mention]
"""


@pytest.fixture()
def user_judge(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "my_judge.j2").write_text(RATING_TEMPLATE)
    (tmp_path / "my_judge.verdict.yaml").write_text(RATING)
    return tmp_path


def rating_reply(prompt, i):
    if "Response: good" in prompt:
        return ["Clear and right.\nRating: [9]", "I give it a rating of 10 overall."][i]
    return "Score: 4"  # the default judge's format: not this judge's verdict


def prefer_seven(context, options):
    return [-1.0 if o == "7" else -4.0 for o in options]


def test_a_user_judge_with_its_own_scale_is_scored_in_process(user_judge):
    engine = ScriptedEngine(rating_reply, prefer_seven)
    cfg = JudgeConfig(k=2, template="my_judge.j2")
    rows, metrics = judging.judge_responses(Generation(engine), [response("r1", "p1", "good"),
                                                                 response("r2", "p1", "bad")], cfg, MADE_BY)
    assert [(j.score, j.method) for j in rows] == [(9.0, "strict"), (10.0, "flexible"), (7.0, "forced"),
                                                    (7.0, "forced")]
    assert len(rows[2].digit_probs) == 10  # one probability per declared value
    assert all(c.endswith("<assistant>Score: 4\nRating: ") for c in engine.contexts)
    assert metrics["score_histogram"] == {**{str(v): 0 for v in range(1, 11)}, "7": 2, "9": 1, "10": 1}
    assert rows[0].provenance["template_sha"] == templates.template_hash("my_judge.j2")


def test_a_user_judge_expected_score_weighs_its_own_values(user_judge):
    engine = ScriptedEngine(rating_reply, lambda ctx, opts: [0.0 if o in ("2", "10") else -1e9 for o in opts])
    rows, _ = judging.judge_responses(Generation(engine), [response("r1", "p1", "good")],
                                      JudgeConfig(k=1, template="my_judge.j2", scoring="expected"), MADE_BY)
    assert rows[0].method == "strict" and rows[0].score == pytest.approx(6.0)  # (2 + 10) / 2
    assert engine.contexts == [engine.contexts[0]] and engine.contexts[0].endswith("Clear and right.\nRating: [")


def test_the_declaration_stays_out_of_the_templates_hash(user_judge):
    before = templates.template_hash("my_judge.j2")
    (user_judge / "my_judge.verdict.yaml").write_text(RATING.replace("1-10", "0-10"))
    assert templates.template_hash("my_judge.j2") == before
    assert judging.chain_for("my_judge.j2").options[0] == "0"  # the edited declaration is read again


def test_a_template_without_a_declaration_is_read_by_the_roles_default(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "mine.j2").write_text("{{ instruction }} {{ response }} End with 'Score: N'.")
    assert judging.declaration_for("mine.j2").path == "prompts/judge.verdict.yaml"
    (tmp_path / "other.j2").write_text("{{ instruction }} {{ response }} End with 'Rating: N'.")
    with pytest.raises(ConfigError, match=r"^other.j2: never mentions 'Score:', the verdict of "
                                          r"prompts/judge.verdict.yaml \(the judge role's default, .*\) — write "
                                          r"other.verdict.yaml beside it"):
        judging.declaration_for("other.j2")


def test_a_user_meta_judge_and_evaluator_declare_their_spelling(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "meta.j2").write_text("{{ instruction }} {{ response }} 1: {{ judgment_a }} 2: {{ judgment_b }}\n"
                                      "End with 'Better: Judge A' or 'Better: Judge B'.")
    (tmp_path / "meta.verdict.yaml").write_text("label: Better\nvalues: [A, B]\nnames: [Judge]\n"
                                                "flexible: [choice_mention, choice_is_better]\n"
                                                "forced_prefix: 'Better: Judge '\n")
    chain = meta_judging.chain_for("meta.j2")
    assert chain.parse("Hmm.\nbetter: judge b").value == "B" and chain.parse("Judge A was better.").value == "A"
    assert chain.forced_context("P", "hmm") == "Phmm\nBetter: Judge "
    (tmp_path / "cmp.j2").write_text("{{ instruction }} {{ response_a }} {{ response_b }} End with 'Verdict: A'.")
    (tmp_path / "cmp.verdict.yaml").write_text("label: Verdict\nvalues: [A, B, tie]\n")
    assert evaluation.parse_compare("Verdict: TIE", "cmp.j2") == ("tie", "strict")
    assert evaluation.chain_for("cmp.j2").options == ("A", "B")


def test_a_user_meta_judge_step_forces_in_its_declared_format(tmp_path, monkeypatch):
    from pipeline.config import MetaJudgeConfig
    from tests.helpers import QUALITY, meta_setup

    monkeypatch.chdir(tmp_path)
    (tmp_path / "meta.j2").write_text("Q: {{ instruction }} R: {{ response }}\nJudgment A:\n{{ judgment_a }}\n"
                                      "Judgment B:\n{{ judgment_b }}\nEnd with 'Better: Judge A' or 'Better: Judge B'.")
    (tmp_path / "meta.verdict.yaml").write_text("label: Better\nvalues: [A, B]\nnames: [Judge]\n"
                                                "forced_prefix: 'Better: Judge '\n")
    responses, judgments, _ = meta_setup()

    def reply(prompt, i):
        if "Judgment A:" not in prompt:
            return "q5 middling\nScore: 3"
        if "R: gamma" in prompt:
            return "Winner: Judgment A"  # the default format, not this template's: forced
        a, b = map(int, QUALITY.search(prompt).groups())
        return "Better: Judge A" if a > b else "Better: Judge B"

    seen = []
    engine = ScriptedEngine(reply, lambda ctx, opts: seen.append(ctx) or [1.0, 0.0], cache_choices=True)
    out = meta_judging.meta_judge(Generation(engine), responses, judgments,
                                  MetaJudgeConfig(num_judgments=3, template="meta.j2"), JudgeConfig(), MADE_BY)
    methods = Counter(m.method for m in out.meta)
    assert methods == {"strict": 6, "forced": 6}
    assert {m.verdict for m in out.meta if m.response_id == "r3"} == {1}  # forced: log p(A) > log p(B)
    assert seen and all(c.endswith("\nBetter: Judge ") for c in seen)  # the engine reads the declared prefix
    assert out.meta[0].provenance["template_sha"] == templates.template_hash("meta.j2")


# ------------------------------------------------------------------ bad declarations: one line, before a model
def params_error(tmp_path, section, template, declaration=None, source=RATING_TEMPLATE):
    (tmp_path / template).write_text(source)
    if declaration is not None:
        (tmp_path / template.replace(".j2", ".verdict.yaml")).write_text(textwrap.dedent(declaration))
    (tmp_path / "params.yaml").write_text(f"{section}:\n  {'compare_template' if section == 'evaluate' else 'template'}: "
                                          f"{template}\n")
    with pytest.raises(ConfigError) as e:
        load_params(tmp_path / "params.yaml")
    message = str(e.value)
    assert "\n" not in message
    return message


META_TEMPLATE = "{{ instruction }} {{ response }} {{ judgment_a }} {{ judgment_b }} Winner: Judgment A?"
BAD = [
    ("unknown-key", "judge", RATING.replace("label:", "lable:"), None,
     "my_judge.verdict.yaml: lable: unknown key — did you mean 'label'?"),
    ("empty-values", "judge", RATING.replace("1-10", "[]"), None,
     "my_judge.verdict.yaml: values: [] — must hold at least two values, or no verdict could tell responses apart"),
    ("falling-range", "judge", RATING.replace("1-10", "10-1"), None,
     "my_judge.verdict.yaml: values: '10-1' — the range must rise: 10 to 1 holds fewer than two values"),
    ("letters-for-a-score", "judge", RATING.replace("1-10", "[A, B]").replace("[score_mention]", "[]"), None,
     "my_judge.verdict.yaml: values: ['A', 'B'] — the judge role reads a score: integers, e.g. 0-5"),
    ("value-twice", "judge", RATING.replace("1-10", "[1, 2, 2]"), None,
     "my_judge.verdict.yaml: values: [1, 2, 2] — '2' is given twice (the readings ignore case)"),
    ("prefix-never-asked-for", "judge", RATING + "forced_prefix: 'Grade: '\n", None,
     ("my_judge.verdict.yaml: forced_prefix: 'Grade: ' — my_judge.j2 never mentions 'Grade:'; a forced verdict must "
     "continue the format the template asks for")),
    ("unknown-reading", "judge", RATING.replace("score_mention", "score_mentoin"), None,
     "my_judge.verdict.yaml: flexible: 'score_mentoin' — not a reading; did you mean 'score_mention'?"),
    ("unknown-reading-option", "judge", RATING.replace("[score_mention]", "[{score_mention: {quote: '*'}}]"), None,
     "my_judge.verdict.yaml: flexible.score_mention.quote: unknown option — score_mention takes: quotes"),
    ("bad-brackets", "judge", RATING.replace('"[]"', '"("'), None,
     ("my_judge.verdict.yaml: strict.brackets: '(' — must be two characters, the opening and the closing bracket, "
     "e.g. '<>' or '[]'")),
    ("not-yaml", "judge", "label: Rating\nvalues: [1, 2\n", None, "my_judge.verdict.yaml:3: not valid YAML — "),
    ("not-a-mapping", "judge", "- Rating\n", None, "my_judge.verdict.yaml: ['Rating'] — a declaration is a mapping"),
    ("missing-label", "judge", "values: 1-10\n", None, "my_judge.verdict.yaml: label: missing — required"),
    ("no-declaration", "judge", None, None,
     ("my_judge.j2: never mentions 'Score:', the verdict of prompts/judge.verdict.yaml (the judge role's default, for a "
     "template without a declaration of its own) — write my_judge.verdict.yaml beside it to declare this template's "
     "verdict")),
    ("scores-for-a-choice", "meta_judge", "label: Winner\nvalues: [1, 2]\n", META_TEMPLATE,
     ("my_judge.verdict.yaml: values: [1, 2] — the meta_judge role reads a choice: A and B (the first or the second "
     "shown), and maybe tie")),
    ("choice-forced-on-tie", "evaluate", "label: Winner\nvalues: [A, B, tie]\nforced_options: [A, tie]\n",
     "{{ instruction }} {{ response_a }} {{ response_b }} Winner: A?",
     "my_judge.verdict.yaml: forced_options: ['A', 'tie'] — a choice is forced between A and B"),
    ("meta-other-spelling", "meta_judge", None, META_TEMPLATE,
     "my_judge.j2: never mentions 'Winner: Judgement', the verdict of prompts/meta_judge.verdict.yaml"),
]


@pytest.mark.parametrize("section, declaration, source, expect", [b[1:] for b in BAD], ids=[b[0] for b in BAD])
def test_a_bad_declaration_is_one_line_before_any_model_loads(tmp_path, monkeypatch, section, declaration, source,
                                                              expect):
    monkeypatch.chdir(tmp_path)
    key = "compare_template" if section == "evaluate" else "template"
    message = params_error(tmp_path, section, "my_judge.j2", declaration, source or RATING_TEMPLATE)
    assert message.startswith(f"{tmp_path / 'params.yaml'}: {section}.{key}: 'my_judge.j2' — " + expect), message


def test_a_good_user_declaration_passes_the_params_check(user_judge):
    (user_judge / "params.yaml").write_text("judge:\n  template: my_judge.j2\n")
    assert load_params(user_judge / "params.yaml").judge.template == "my_judge.j2"
