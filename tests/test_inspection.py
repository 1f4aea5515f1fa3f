"""The inspection tools (pipeline/inspection.py, pipeline/export.py, the `selfreward` command) on the rows real
stage entry points wrote (scripted generation, as in test_presets), and on a fixture git + DVC repository whose
data changed between two commits."""

import contextlib
import io
import json
import os
import re
import shutil
import subprocess
import sys

import pytest
import yaml

from pipeline import inspection
from pipeline.inspection import Condition, InspectError, load_iteration, select, table_rows, trace
from pipeline.records import Rollout, write_jsonl
from tests.helpers import REPO, SIZES, choice, scripted_model, shrunk
from tests.inprocess import run_stage


def _prompts(root, key, numbers):
    from pipeline.records import Prompt, write_jsonl
    write_jsonl(root / f"data/{key}/prompts.jsonl", [
        Prompt(prompt_id=f"p{i}", instruction=f"Write one sentence about the number {i}.", source="test")
        for i in numbers])


def _project(root, tiny_model_dir, preset, keys, stages, sizes, reply=scripted_model):
    """Run ``stages`` of ``preset`` for each iteration key (every key's predecessor is M0_sft: no DPO needed)."""
    from stages import _generate
    from tests.fakes import ScriptedEngine

    for name in ("prompts", "data/seed", "data/eval", "data/tasks"):
        shutil.copytree(REPO / name, root / name)
    shutil.copytree(tiny_model_dir, root / "models" / "M0_sft")
    params = shrunk(preset, sizes) if preset else _shrunk_default(sizes)
    params["iterations"] = {k: {"prev": "M0_sft"} for k in keys}
    (root / "params.yaml").write_text(yaml.safe_dump(params))
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(root)
        mp.setattr(_generate, "open_engine", lambda params, *a, **k: lambda d: ScriptedEngine(reply, choice))
        for key in keys:
            for stage in stages(key):
                proc = run_stage(stage, "--iteration", key)
                assert proc.returncode == 0, f"{stage}@{key}: {proc.stderr}"
    return root


def _shrunk_default(sizes):
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    for section, values in sizes.items():
        params.setdefault(section, {}).update(values)
    return params


@pytest.fixture(scope="module")
def project(tmp_path_factory, tiny_model_dir):
    """The demo's params (Meta-Rewarding with calibrated forced verdicts): M1 on prompts 0-2, M2 on prompts 1-3
    (two shared), sample to pairs; K = 3 judgments, 3 meta-judged."""
    root = tmp_path_factory.mktemp("project")
    _prompts(root, "M1", [0, 1, 2])
    _prompts(root, "M2", [1, 2, 3])
    sizes = {**SIZES, "sample": {"max_new_tokens": 200, "n": 4}, "judge": {"max_new_tokens": 60},
             "meta_judge": {"num_judgments": 3, "max_new_tokens": 40}}
    return _project(root, tiny_model_dir, None, ["M1", "M2"],
                    lambda key: ("sample", "verify", "reflect", "judge", "meta_judge", "pairs"), sizes, meta_reply)


@pytest.fixture(scope="module")
def irpo_project(tmp_path_factory, tiny_model_dir):
    """IRPO rules on 3 arithmetic tasks, 8 scripted answers each (right and wrong, in format or not)."""
    root = tmp_path_factory.mktemp("irpo")
    sizes = {**SIZES, "sample": {"max_new_tokens": 200, "n": 8}, "self_instruct": {"tasks": 3},
             "judge": {"max_new_tokens": 60, "verifiable_prompts": 2}, "pairs": {"verified_per_prompt": 4}}
    return _project(root, tiny_model_dir, "irpo", ["M1"],
                    lambda key: ("self_instruct", "sample", "verify", "reflect", "judge", "meta_judge", "pairs"),
                    sizes)


def meta_reply(prompt, i):
    """The scripted model, but as a meta-judge it prefers the judgment with the higher score whichever side it
    is shown on (ties: no winner), so Elo ratings spread and judgment pairs exist."""
    if "Judgment A:" in prompt:
        a, b = prompt.split("Judgment A:")[-1].split("Judgment B:")
        sa, sb = (re.findall(r"Score: (\d)", x) for x in (a, b))
        if sa and sb and sa[-1] != sb[-1]:
            return "Winner: Judgement " + ("A" if sa[-1] > sb[-1] else "B")
        return "Hard to say."
    return scripted_model(prompt, i)


def cli(*args):
    """The `selfreward` command in-process: (exit code, stdout, stderr)."""
    from selfreward.cli import main
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(list(args))
    return code, out.getvalue(), err.getvalue()


# ------------------------------------------------------------------------------------------------ reading
def test_load_iteration_reads_every_table(project):
    it = load_iteration("M1", project)
    assert len(it.prompts) == 3 and len(it.responses) == 3 * 4
    raw = [json.loads(x) for name in ("judgments.jsonl", "extra_judgments.jsonl")
           for x in (project / "data/M1" / name).read_text().splitlines()]
    assert set(it.judgments) == {j["judgment_id"] for j in raw}  # both files, one table
    pairs_on_disk = sum(len((project / "data/M1" / f).read_text().splitlines())
                        for f in ("response_pairs.jsonl", "judgment_pairs.jsonl", "reflection_pairs.jsonl"))
    assert len(it.pairs) == pairs_on_disk > 0
    assert {inspection.pair_kind(p) for p in it.pairs.values()} == {"response", "judgment"}
    assert set(it.metrics) >= {"sample", "judge", "meta_judge", "pairs"}
    assert inspection.available_iterations(project) == ["M1", "M2"]  # params order; data/seed is not one


def test_load_iteration_errors_name_the_problem(project, tmp_path):
    with pytest.raises(InspectError, match=r"no rows for iteration M9 .* did `dvc repro` run it\?"):
        load_iteration("M9", project)
    shutil.copytree(project / "data/M1", tmp_path / "data/M1")
    with (tmp_path / "data/M1/judgments.jsonl").open("a") as fh:
        fh.write('{"judgment_id": "j-x"}\n')
    n = len((tmp_path / "data/M1/judgments.jsonl").read_text().splitlines())
    with pytest.raises(Exception, match=rf'data/M1/judgments.jsonl:{n}: missing field "response_id"'):
        load_iteration("M1", tmp_path)


# ------------------------------------------------------------------------------------------------ filtering
def test_conditions_compare_numbers_booleans_and_text():
    row = {"score": 4.0, "method": "strict", "correct": True, "text": "The Answer is 7", "elo": None}
    assert Condition.parse("score>=4").test(row) and not Condition.parse("score>4").test(row)
    assert Condition.parse("score=4").test(row) and Condition.parse("score!=3.5").test(row)
    assert Condition.parse("method=strict").test(row) and not Condition.parse("method=forced").test(row)
    assert Condition.parse("correct=true").test(row) and not Condition.parse("correct=false").test(row)
    assert Condition.parse("text~answer IS").test(row)  # case-insensitive substring
    assert Condition.parse("elo=none").test(row) and not Condition.parse("elo>0").test(row)  # empty cells
    assert Condition.parse("method>=3").test(row) is False  # text against a number: no match, no crash
    with pytest.raises(InspectError, match="a condition is COLUMN OP VALUE"):
        Condition.parse("score")


def test_select_filters_sorts_and_pages_judgments(project):
    it = load_iteration("M1", project)
    rows = table_rows(it, "judgments")
    got = select(rows, ["score>=2", "extra=false"], sort="-score")
    expected = sorted((r for r in rows if r["score"] is not None and r["score"] >= 2 and not r["extra"]),
                      key=lambda r: -r["score"])
    assert [r["judgment_id"] for r in got] == [r["judgment_id"] for r in expected] and got
    assert [r["score"] for r in got] == sorted((r["score"] for r in got), reverse=True)
    forced = select(rows, ["method=forced"])
    assert {r["judgment_id"] for r in forced} == {j.judgment_id for j in it.judgments.values()
                                                  if j.method == "forced"}
    first, pages = inspection.page(got, 1, 2)
    assert first == got[:2] and pages == -(-len(got) // 2)
    with pytest.raises(InspectError, match="page 99 does not exist"):
        inspection.page(got, 99, 2)
    with pytest.raises(InspectError, match='unknown column "scroe" — did you mean "score"\\?'):
        select(rows, ["scroe>=2"])


def test_pair_table_columns_and_filters(project):
    it = load_iteration("M1", project)
    rows = table_rows(it, "pairs")
    for r in rows:
        p = it.pairs[r["pair_id"]]
        assert r["margin"] == p.chosen_score - p.rejected_score
        assert r["chosen_chars"] == len(p.chosen[-1]["content"])
    judgment_pairs = select(rows, ["kind=judgment"])
    assert judgment_pairs and all(it.pairs[r["pair_id"]].kind == "judgment" for r in judgment_pairs)
    wide = select(rows, ["kind=response", f"margin>={max(r['margin'] for r in rows if r['kind'] == 'response')}"])
    assert len(wide) >= 1 and all(r["kind"] == "response" for r in wide)


# ---------------------------------------------------------------------------------------------------- trace
def test_trace_of_every_pair_resolves_every_linked_id_and_its_rule(project):
    it = load_iteration("M1", project)
    for pair_id, p in it.pairs.items():
        t = trace(it, pair_id)
        assert t["focus"]["pair"]["id"] == pair_id and t["prompt"]["id"] == p.prompt_id
        unresolved = {i for i in inspection.linked_ids(t) if it.kind_of(i) is None}
        assert not unresolved, (pair_id, unresolved)
        why = t["focus"]["pair"]["why"]
        assert why["agrees"], (pair_id, why)  # the selection rule re-applied to the rows picks this pair
        if p.kind == "response":
            assert {c["id"] for c in why["candidates"]} >= {p.chosen_id, p.rejected_id}
            roles = {r["id"]: r["role"] for r in t["responses"]}
            assert roles[p.chosen_id] == "chosen" and roles[p.rejected_id] == "rejected"
            # every judgment of every response to the prompt is in the trace
            assert sum(len(r["judgments"]) for r in t["responses"]) == sum(
                1 for j in it.judgments.values() if j.prompt_id == p.prompt_id)
        else:
            rid = p.provenance["response_id"]
            response = next(r for r in t["responses"] if r["id"] == rid)
            assert response["battles"] and {b["id"] for b in response["battles"]} == {
                m.meta_id for m in it.meta_judgments.values() if m.response_id == rid}
            assert all(j["elo"] is not None for j in response["judgments"] if j["id"] in (p.chosen_id,
                                                                                       p.rejected_id))
        ref = t["focus"]["pair"]["reference"]
        assert ref is not None and ref["chosen"]["logprob"] == p.generated["chosen"]["logprob"]
        assert t["hashes"]  # model and template hashes of what made the rows


def test_trace_of_any_row_leads_to_its_prompt(project):
    it = load_iteration("M1", project)
    j = next(iter(it.judgments.values()))
    m = next(iter(it.meta_judgments.values()))
    for row_id in (j.judgment_id, j.response_id, m.meta_id, j.prompt_id):
        t = trace(it, row_id)
        assert t["prompt"]["id"] == j.prompt_id if row_id != m.meta_id else t["prompt"]["id"] == m.prompt_id
        assert t["focus"]["id"] == row_id
    with pytest.raises(InspectError, match=r'no row with id "r-nope" — ids start with p- \(prompt\)'):
        trace(it, "r-nope")
    near = j.judgment_id[:-1] + ("0" if j.judgment_id[-1] != "0" else "1")
    with pytest.raises(InspectError, match=f'did you mean "{j.judgment_id}"'):
        trace(it, near)


def test_trace_of_verified_pairs_shows_levels_and_answers(irpo_project):
    it = load_iteration("M1", irpo_project)
    verified = [p for p in it.pairs.values() if inspection.pair_kind(p) == "verified"]
    assert len(verified) == 3 * 4
    for p in verified:
        t = trace(it, p.pair_id)
        why = t["focus"]["pair"]["why"]
        assert why["agrees"] and [p.chosen_id, p.rejected_id] in why["reselected"]
        levels = {c["id"]: c["level"] for c in why["candidates"]}
        assert levels[p.chosen_id] == p.chosen_score > levels[p.rejected_id] == p.rejected_score
        chosen = next(r for r in t["responses"] if r["id"] == p.chosen_id)
        assert chosen["verification"]["correct"] and chosen["role"] == "chosen"
        assert t["prompt"]["origin"].startswith("task ") and t["prompt"]["answer"] is not None


# ----------------------------------------------------------------------------------------------------- diff
def test_diff_between_two_iterations(project):
    a, b = load_iteration("M1", project), load_iteration("M2", project)
    d = inspection.diff(a, b)
    assert d["prompts"]["shared"] == 2 and d["prompts"]["new"] == 1 and d["prompts"]["gone"] == 1
    assert d["prompts"]["new_examples"] == [("p3", "Write one sentence about the number 3.")]
    assert d["pairs"]["new"] == len(set(b.pairs) - set(a.pairs))
    assert d["pairs"]["gone"] == len(set(a.pairs) - set(b.pairs))
    assert d["profile"]["a"]["counts"]["responses"] == 12 == d["profile"]["b"]["counts"]["responses"]
    # The scripted model answers a prompt the same way in both iterations: the shared prompts' responses are
    # the same texts, judged the same: no drift.
    assert d["judge_drift"]["shared_responses"] == 8 and d["judge_drift"]["mean_abs_change"] == 0.0
    pb = d["profile"]["a"]["position_bias"]
    decisive = [m.verdict for m in a.meta_judgments.values() if m.verdict]
    assert pb["decisive"] == len(decisive) and pb["first_wins"] == sum(v == 1 for v in decisive) / len(decisive)


def _git(repo, *args):
    env = {**os.environ, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t", "GIT_COMMITTER_NAME": "t",
           "GIT_COMMITTER_EMAIL": "t@t"}
    subprocess.run(["git", *args], cwd=repo, check=True, capture_output=True, env=env)


def _dvc(repo, *args):
    proc = subprocess.run([sys.executable, "-m", "dvc", *args], cwd=repo, capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stderr


@pytest.fixture(scope="module")
def versioned(project, tmp_path_factory):
    """A git + DVC repository: data/M1 tracked by DVC; commit v1, then v2 with one judgment's score raised by 2
    and one response pair dropped. The working tree holds v2; v1 lives only in the DVC cache."""
    repo = tmp_path_factory.mktemp("versioned")
    _git(repo, "init", "-q")
    _dvc(repo, "init", "-q")
    shutil.copytree(project / "data/M1", repo / "data/M1")
    (repo / "params.yaml").write_text("iterations: {M1: {prev: M0}}\n")
    _dvc(repo, "add", "-q", "data/M1")
    _git(repo, "add", "-A")
    _git(repo, "commit", "-qm", "v1")
    _git(repo, "tag", "v1")
    path = repo / "data/M1/judgments.jsonl"
    rows = [json.loads(x) for x in path.read_text().splitlines()]
    target = next(r for r in rows if r["score"] is not None and r["score"] <= 3)
    target["score"] += 2
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    pairs_path = repo / "data/M1/response_pairs.jsonl"
    pairs = pairs_path.read_text().splitlines()
    pairs_path.write_text("".join(x + "\n" for x in pairs[1:]))
    _dvc(repo, "add", "-q", "data/M1")
    _git(repo, "add", "-A")
    _git(repo, "commit", "-qm", "v2")
    return repo, target, json.loads(pairs[0])["pair_id"]


def test_diff_between_two_git_revisions_reads_the_old_one_from_the_dvc_cache(versioned):
    repo, changed, dropped_pair = versioned
    old = load_iteration("M1", repo, "v1")
    new = load_iteration("M1", repo, "HEAD")
    assert old.source == "data/M1@v1" and dropped_pair in old.pairs and dropped_pair not in new.pairs
    assert old.judgments[changed["judgment_id"]].score == changed["score"] - 2
    assert new.judgments[changed["judgment_id"]].score == changed["score"]
    assert load_iteration("M1", repo, "HEAD~1").judgments[changed["judgment_id"]].score == changed["score"] - 2
    d = inspection.diff(old, new)
    assert d["pairs"]["gone"] == 1 and d["pairs"]["gone_examples"] == [dropped_pair] and d["pairs"]["new"] == 0
    drift = d["judge_drift"]
    assert drift["shared_responses"] == len(new.responses) and drift["judgments_changed"] == 1
    assert drift["judgments_compared"] == len(new.judgments)
    n = drift["scored_in_both"]
    k = sum(1 for j in new.judgments.values() if j.response_id == changed["response_id"]
            and not j.provenance.get("extra") and j.score is not None)
    assert drift["mean_change"] == pytest.approx(2 / k / n)  # one response's mean moved by 2/k
    assert drift["largest"][0]["a"] == changed["response_id"]


def test_an_unknown_revision_is_one_clear_error(versioned):
    repo, _, _ = versioned
    with pytest.raises(InspectError, match='no git revision or DVC experiment "nope"'):
        load_iteration("M1", repo, "nope")


# ------------------------------------------------------------------------------------------------ command
def test_cli_list_filters_and_prints_jsonl_csv_and_tables(project):
    code, out, err = cli("--root", str(project), "list", "pairs", "-i", "M1", "--where", "kind=judgment",
                         "--format", "jsonl")
    assert code == 0, err
    got = [json.loads(x) for x in out.splitlines()]
    it = load_iteration("M1", project)
    assert {r["pair_id"] for r in got} == {p.pair_id for p in it.pairs.values() if p.kind == "judgment"}
    code, out, _ = cli("--root", str(project), "list", "judgments", "-i", "M1", "--sort", "score", "--desc",
                       "-c", "judgment_id,score", "--format", "csv")
    lines = out.splitlines()
    assert lines[0] == "judgment_id,score" and len(lines) == 1 + len(it.judgments)
    scores = [float(x.split(",")[1]) for x in lines[1:] if x.split(",")[1]]
    assert scores == sorted(scores, reverse=True)
    code, out, _ = cli("--root", str(project), "list", "responses", "-n", "5", "-p", "2")  # default: last key
    assert code == 0 and "responses of data/M2: 12 rows, page 2 of 3" in " ".join(out.split())
    code, _, err = cli("--root", str(project), "list", "pairs", "--where", "margn>1")
    assert code == 2 and err == 'error: unknown column "margn" — did you mean "margin"?\n'


def test_cli_trace_and_diff_print_and_json(project):
    it = load_iteration("M1", project)
    pair = next(p for p in it.pairs.values() if p.kind == "response")
    code, out, err = cli("--root", str(project), "trace", pair.pair_id)  # found without -i
    assert code == 0, err
    text = " ".join(out.split())
    for must in (pair.pair_id, pair.chosen_id, pair.rejected_id, pair.prompt_id, "picks this pair: yes",
                 "DPO reference log-probs"):
        assert must in text
    code, out, _ = cli("--root", str(project), "trace", pair.pair_id, "-i", "M1", "--json")
    assert json.loads(out)["focus"]["pair"]["chosen_id"] == pair.chosen_id
    code, out, _ = cli("--root", str(project), "diff", "M1", "M2")
    assert code == 0 and "prompts: 2 shared, 1 new, 1 gone" in out and "judge drift on" in out
    code, out, _ = cli("--root", str(project), "diff", "M1", "M2", "--json")
    assert json.loads(out)["prompts"]["new"] == 1
    code, _, err = cli("--root", str(project), "trace", "rp-000000000000")
    assert code == 2 and err.startswith('error: no iteration under ') and "rp-000000000000" in err


def test_cli_diff_of_revisions(versioned):
    repo, _, dropped = versioned
    code, out, err = cli("--root", str(repo), "diff", "M1@v1", "M1")
    assert code == 0, err
    assert "pairs: " in out and f"gone: {dropped}" in out and "1 of " in " ".join(out.split())


# ---------------------------------------------------------------------------------------------------- export
def test_export_parquet_and_hf_dataset_with_a_card(project, tmp_path):
    import datasets

    it = load_iteration("M1", project)
    code, _, err = cli("--root", str(project), "export", "M1", "--out", str(tmp_path / "pq"))
    assert code == 0, err
    ds = datasets.load_dataset("parquet", data_files=str(tmp_path / "pq/pairs.parquet"), split="train")
    assert sorted(ds["pair_id"]) == sorted(it.pairs) and ds[0]["chosen"][0]["role"] == "assistant"
    row = next(r for r in ds if r["pair_id"] == min(it.pairs))
    p = it.pairs[row["pair_id"]]
    assert (row["prompt"], row["chosen"], row["rejected"]) == (p.prompt, p.chosen, p.rejected)
    assert json.loads(row["provenance"]) == p.provenance
    card = (tmp_path / "pq/README.md").read_text()
    kinds = {k: sum(1 for q in it.pairs.values() if q.kind == k) for k in ("response", "judgment")}
    assert f"## Counts ({len(it.pairs)} pairs)" in card and f"| judgment | {kinds['judgment']} |" in card
    assert f"Command: `selfreward --root {project} export M1 --out {tmp_path / 'pq'}`" in card
    assert "params.yaml sha256" in card and "M0_sft (sha256 " in card
    code, _, err = cli("--root", str(project), "export", "M1", "--out", str(tmp_path / "hf"), "--format", "hf",
                       "--kind", "judgment")
    assert code == 0, err
    hf = datasets.load_from_disk(str(tmp_path / "hf"))
    assert len(hf) == kinds["judgment"] and set(hf["kind"]) == {"judgment"}
    code, _, err = cli("--root", str(project), "export", "M1", "--out", str(tmp_path / "hf"))
    assert code == 2 and "exists and is not an empty folder" in err
    code, _, err = cli("--root", str(project), "export", "M1", "--out", str(tmp_path / "none"), "--kind",
                       "reflection")
    assert code == 2 and "no pairs of kind reflection to export" in err and not (tmp_path / "none").exists()


def test_diff_against_a_dvc_experiment(project, tmp_path):
    """`dvc exp run -S ...` makes an experiment; KEY@<experiment name> reads its outputs (dvc.api, DVC cache)."""
    repo = tmp_path / "exp"
    repo.mkdir()
    _git(repo, "init", "-q")
    _dvc(repo, "init", "-q")
    shutil.copytree(project / "data/M1", repo / "source")
    (repo / "make.py").write_text(
        "import json, pathlib, shutil, yaml\n"
        "bump = yaml.safe_load(open('params.yaml'))['bump']\n"
        "out = pathlib.Path('data/M1'); shutil.rmtree(out, ignore_errors=True); shutil.copytree('source', out)\n"
        "rows = [json.loads(x) for x in (out / 'judgments.jsonl').read_text().splitlines()]\n"
        "rows[0]['score'] = None if bump is None else float(bump)\n"
        "rows[0]['method'] = 'dropped' if bump is None else 'strict'\n"
        "(out / 'judgments.jsonl').write_text(''.join(json.dumps(r) + '\\n' for r in rows))\n")
    (repo / "params.yaml").write_text("bump: 0\niterations: {M1: {prev: M0}}\n")
    (repo / "dvc.yaml").write_text("stages:\n  make:\n    cmd: python make.py\n    deps: [make.py, source]\n"
                                   "    params: [bump]\n    outs: [data/M1]\n")
    _git(repo, "add", "-A")
    _git(repo, "commit", "-qm", "init")
    _dvc(repo, "repro", "-q")
    _git(repo, "add", "-A")
    _git(repo, "commit", "-qm", "bump 0")
    _dvc(repo, "exp", "run", "-q", "-S", "bump=5", "-n", "bump-five")
    _git(repo, "checkout", "-q", "--", ".")  # the workspace back to the commit; the experiment stays in the cache
    first = json.loads((project / "data/M1/judgments.jsonl").read_text().splitlines()[0])["judgment_id"]
    base, exp = load_iteration("M1", repo, "HEAD"), load_iteration("M1", repo, "bump-five")
    assert (base.judgments[first].score, exp.judgments[first].score) == (0.0, 5.0)
    d = inspection.diff(base, exp)
    assert d["judge_drift"]["judgments_changed"] == 1 and d["a"] == "data/M1@HEAD" and d["b"] == "data/M1@bump-five"


# ------------------------------------------------------------------------------------------------ evaluation
@pytest.fixture(scope="module")
def evaluated(tmp_path_factory, tiny_model_dir):
    """The evaluate stage itself (scripted models) on M1: 2 prompts against previous, 2 labelled pairs, 2
    held-out arithmetic tasks with 2 samples each for current and previous."""
    from stages import _generate
    from tests.fakes import ScriptedEngine

    root = tmp_path_factory.mktemp("evaluated")
    _prompts(root, "M1", [0])
    root = _project(root, tiny_model_dir, None, ["M1"], lambda key: (), SIZES)
    shutil.copytree(tiny_model_dir, root / "models" / "M1")
    params = yaml.safe_load((root / "params.yaml").read_text())
    params["evaluate"].update({"baselines": ["previous"], "evaluator": "current", "max_prompts": 2,
                               "max_labelled_pairs": 2, "heldout_tasks": 2, "heldout_samples": 2, "bootstrap": 10,
                               "max_new_tokens": 40, "compare_max_new_tokens": 20, "heldout_max_new_tokens": 40})
    (root / "params.yaml").write_text(yaml.safe_dump(params))
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(root)
        mp.setattr(_generate, "open_engine", lambda params, *a, **k: lambda d: ScriptedEngine(scripted_model, choice))
        proc = run_stage("evaluate", "--iteration", "M1")
    assert proc.returncode == 0, proc.stderr
    return root


def test_heldout_rows_carry_the_prompt_and_the_gold_answer(evaluated):
    from pipeline.tasks import load_tasks
    tasks = {t.task_id: t for t in load_tasks(str(evaluated / "data/tasks/arithmetic/heldout.jsonl"))}
    rows = [json.loads(x) for x in (evaluated / "data/M1/eval_heldout.jsonl").read_text().splitlines()]
    assert len(rows) == 2 * 2 * 2  # tasks x samples x models
    for r in rows:
        assert (r["prompt"], r["answer"]) == (tasks[r["task_id"]].prompt, tasks[r["task_id"]].answer)


def test_evaluation_tables_list_and_filter(evaluated):
    it = load_iteration("M1", evaluated, evaluation=True)
    assert len(it.eval_answers) == 4 and len(it.eval_comparisons) == 4 and len(it.eval_judge) == 2
    for table in inspection.EVAL_FILES:
        rows = table_rows(it, table)
        assert rows and all(list(r) == list(inspection.COLUMNS[table]) for r in rows), table
    held = table_rows(it, "heldout")
    wrong = select(held, ["correct=false"])
    assert [r["sample"] for r in wrong] == [h.sample_index for h in it.heldout if not h.correct]
    assert all(r["prompt"] and r["answer"] for r in held)
    comps = table_rows(it, "eval_comparisons")
    for r in comps:  # both orders of a prompt share the outcome: the sign of their verdicts' sum
        total = sum(c.verdict for c in it.eval_comparisons if c.prompt_id == r["prompt_id"])
        assert r["outcome"] == ("win" if total > 0 else "loss" if total < 0 else "tie")
    judged = table_rows(it, "eval_judge")
    assert [r["text"] for r in judged] == [it.labelled_pairs[j.pair_id].instruction for j in it.eval_judge]
    code, out, err = cli("--root", str(evaluated), "list", "heldout", "-i", "M1", "--where", "model=previous",
                         "--format", "jsonl")
    assert code == 0, err
    assert [json.loads(x)["model"] for x in out.splitlines()] == ["previous"] * 4
    read, base = [], inspection.local_reader(evaluated)  # the page stage reads no more than dvc.yaml declares
    it = load_iteration("M1", evaluated, reader=lambda p: read.append(p) or base(p), evaluation=False)
    assert not it.eval_answers and not [p for p in read if p.startswith("data/") and "eval" in p]


def test_trace_resolves_evaluation_ids(evaluated):
    it = load_iteration("M1", evaluated, evaluation=True)
    prompt_id, task_id, pair_id = it.eval_answers[0].prompt_id, it.heldout[0].task_id, it.eval_judge[0].pair_id
    code, out, err = cli("--root", str(evaluated), "trace", prompt_id, "--json")  # found without -i
    assert code == 0, err
    t = json.loads(out)
    assert t["focus"] == {"id": prompt_id, "table": "eval_answers"}
    assert t["eval_prompt"]["instruction"] == it.eval_prompts[prompt_id].instruction
    assert {a["model"] for a in t["answers"]} == {"current", "previous"}
    assert [len(c["orders"]) for c in t["comparisons"]] == [2] and t["comparisons"][0]["baseline"] == "previous"
    t = trace(it, task_id)
    samples = [h for h in it.heldout if h.task_id == task_id]
    assert t["task"]["prompt"] == samples[0].prompt and t["task"]["answer"] == samples[0].answer
    assert {m["model"]: m["correct"] for m in t["models"]} == {
        m: sum(h.correct for h in samples if h.model == m) for m in ("current", "previous")}
    assert trace(it, pair_id)["labelled_pair"]["response_a"] == it.labelled_pairs[pair_id].response_a
    for row_id in (prompt_id, task_id, pair_id):
        code, out, err = cli("--root", str(evaluated), "trace", row_id, "-i", "M1")
        assert code == 0 and row_id in out and "Traceback" not in err, err
    code, out, _ = cli("--root", str(evaluated), "trace", task_id)
    assert f"gold answer: {samples[0].answer}" in " ".join(out.split())


def test_old_heldout_rows_without_prompt_still_read(evaluated, tmp_path):
    shutil.copytree(evaluated / "data/M1", tmp_path / "data/M1")
    path = tmp_path / "data/M1/eval_heldout.jsonl"
    rows = [json.loads(x) for x in path.read_text().splitlines()]
    path.write_text("".join(json.dumps({k: v for k, v in r.items() if k not in ("prompt", "answer")}) + "\n"
                            for r in rows))
    code, out, err = cli("--root", str(tmp_path), "trace", rows[0]["task_id"], "-i", "M1")
    assert code == 0, err
    assert "not recorded" in out


def test_every_table_has_its_declared_columns(project, tmp_path):
    """COLUMNS (what --where, --sort and --columns accept on an empty table) is what table_rows makes; the
    synthetic iteration (pipeline/synthetic.py) has rows in every table."""
    from pipeline import synthetic as synth

    synth.write_iteration(tmp_path, "M1", prompts=40, responses=4, judgments=3, meta_judged=1, verifiable=0.3,
                          seed=3, token_ids=False)  # as tests/test_page.py: pairs of all four kinds
    prompt_id = json.loads((tmp_path / "data/M1/prompts.jsonl").read_text().splitlines()[0])["prompt_id"]
    write_jsonl(tmp_path / "data/M1/rollouts.jsonl", [  # what grpo.enabled adds
        Rollout(rollout_id=f"ro-{i}", iteration="M1", step=1 + i // 2, prompt_id=prompt_id, completion=f"It is {i}.",
                reward=float(i % 3), extracted=str(i), method="flexible", correct=i % 3 > 0) for i in range(4)])
    seen = set()
    for it in (load_iteration("M1", project), load_iteration("M1", tmp_path)):
        for table in inspection.FILES:
            rows = table_rows(it, table)
            seen.update([table] if rows else [])
            assert all(list(r) == list(inspection.COLUMNS[table]) for r in rows), table
    assert seen == set(inspection.FILES)


def test_trace_of_a_prompt_without_responses_searches_the_working_tree(tmp_path):
    """An iteration after self_instruct only (prompts.jsonl): its prompts are found without -i, and a trace with
    nothing to hash prints no empty hashes line."""
    _prompts(tmp_path, "M3", [0])
    (tmp_path / "params.yaml").write_text("iterations: {M3: {prev: M0_sft}}\n")
    assert inspection.available_iterations(tmp_path) == ["M3"]
    code, out, err = cli("--root", str(tmp_path), "trace", "p0")
    assert code == 0, err
    assert "Write one sentence about the number 0." in out and "hashes" not in out
    (tmp_path / "params.yaml").write_text("iterations: {M1: {prev: M0_sft}}\n")  # not an iteration params name
    assert inspection.available_iterations(tmp_path) == []


def _tree(root):
    return sorted(str(p.relative_to(root)) for p in root.rglob("*"))


def test_a_failed_revision_read_writes_nothing(versioned):
    """Opening a DVC repository makes .dvc/tmp (btime, lock); absent in a fresh clone, it must stay absent when
    the revision or the iteration does not exist there."""
    repo, _, _ = versioned
    shutil.rmtree(repo / ".dvc" / "tmp", ignore_errors=True)
    before = _tree(repo)
    with pytest.raises(InspectError, match="no rows for iteration M9 at HEAD"):
        load_iteration("M9", repo, "HEAD")
    with pytest.raises(InspectError, match='no git revision or DVC experiment "nope"'):
        load_iteration("M1", repo, "nope")
    code, _, err = cli("--root", str(repo), "trace", "p0", "-i", "M9@HEAD")
    assert code == 2 and "no rows for iteration M9 at HEAD" in err
    assert _tree(repo) == before


def test_list_arguments_out_of_range_are_errors(project):
    for args, message in ((["--limit", "-5"], "--limit -5: must be 0"), (["--page", "0"], "--page 0: pages count"),
                          (["--where", "margin>=abc"], '"abc" is not a number'),
                          (["--where", "kind>1"], 'column "kind" holds text')):
        code, out, err = cli("--root", str(project), "list", "pairs", "-i", "M1", *args)
        assert (code, out) == (2, "") and err.startswith("error: ") and message in err, (args, err)
    rows = table_rows(load_iteration("M1", project), "pairs")
    assert len(select(rows, ["margin>=-100"])) == len(rows)  # a negative number is a number
    with pytest.raises(InspectError, match='no revision after @'):
        inspection.parse_ref("M1@")


def test_an_export_that_cannot_be_written_is_one_line_and_leaves_nothing(project, tmp_path, monkeypatch):
    """Read-only (faked: tests may run as root, whom permissions do not stop) or under a file: one line that
    names the path, and no folder made on the way stays."""
    import errno

    from pipeline import export

    def denied(*args, **kwargs):
        raise PermissionError(errno.EACCES, os.strerror(errno.EACCES))

    monkeypatch.setattr(export.tempfile, "mkdtemp", denied)
    out = tmp_path / "exports" / "M1"
    code, _, err = cli("--root", str(project), "export", "M1", "--out", str(out))
    assert code == 2 and err.startswith(f"error: {out}: cannot write — Permission denied — ") and err.count("\n") == 1
    assert list(tmp_path.iterdir()) == []
    monkeypatch.undo()
    (tmp_path / "notes.txt").write_text("x")
    code, _, err = cli("--root", str(project), "export", "M1", "--out", str(tmp_path / "notes.txt" / "M1"))
    assert code == 2 and err == (f"error: {tmp_path / 'notes.txt' / 'M1'}: cannot write — {tmp_path / 'notes.txt'} "
                                 "is a file, not a folder; choose another path\n")
