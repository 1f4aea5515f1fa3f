"""The win-rate notebook executes on a small fixture of real-format files and writes its figures; the figures
show the fixture's numbers (read back from the PNGs' pixels) and change when the numbers do."""

import json
from collections import defaultdict
from pathlib import Path

import pytest
from PIL import Image

from pipeline import stats as evaluation
from pipeline.records import write_json, write_jsonl


@pytest.fixture()
def eval_fixture(tmp_path):
    (tmp_path / "params.yaml").write_text("iterations:\n  M1: {prev: M0_sft}\n  M2: {prev: M1}\n")
    for k, outcomes in (("M1", [1, 0, -1, 1]), ("M2", [1, 1, 1, -1])):
        lens_m, lens_b = [100, 120, 90, 200], [110, 100, 95, 150]
        s = evaluation.win_rate_summary(outcomes, lens_m, lens_b, bootstrap=100)
        write_json(tmp_path / "metrics" / k / "eval.json", {
            "prompts": 4, "baselines": {"M0": {**s, "evaluator_position_bias": 0.5, "order_inconsistent_share": 0.25}},
            "judge_accuracy": {"pairs": 4, "correct": 3, "ties": 0, "accuracy": 0.75}})
        write_json(tmp_path / "metrics" / k / "judge.json", {"score_histogram": {str(d): d for d in range(6)}})
        write_jsonl(tmp_path / "data" / k / "eval_comparisons.jsonl", [
            {"prompt_id": f"e{i}", "baseline": "M0", "model_is_a": i % 2 == 0, "text": "Winner: A", "letter": "A",
             "method": "strict", "verdict": 1} for i in range(4)])
        write_jsonl(tmp_path / "data" / k / "eval_answers.jsonl", [
            {"prompt_id": f"e{i}", "response": "x", "parse_ok": True, "num_tokens": 1, "model": "current",
             "model_dir": "models/" + k} for i in range(4)])
    return tmp_path


NOTEBOOK = Path("notebooks/win_rates.py").resolve()
PLACEHOLDER = (500, 150)  # the notebook's "nothing to plot" figure: 5 x 1.5 inches at 100 dpi
GREEN, GREY, RED, BLUE = (44, 160, 44), (127, 127, 127), (214, 39, 40), (31, 119, 180)  # matplotlib's tab: colours


def bar_rows(png, colours=(GREEN, GREY, RED)):
    """The two stacked horizontal bars of a figure (of different counts), bottom first: for each, how many pixels
    of each colour one row across it holds. The two profiles that the most rows have are the bars' (rows where
    the legend or a tick covers part of a bar have other profiles)."""
    im = Image.open(png).convert("RGB")
    px = im.load()
    rows = defaultdict(list)  # profile -> the rows that have it
    for y in range(im.size[1]):
        row = [px[x, y] for x in range(im.size[0])]
        profile = tuple(row.count(c) for c in colours)
        if any(profile):
            rows[profile].append(y)
    bars = sorted(rows, key=lambda p: -len(rows[p]))[:2]
    return sorted(bars, key=lambda p: -sum(rows[p]) / len(rows[p]))


def errorbar_centres(png, colour=BLUE, min_run=30):
    """(x, y) of each error bar in a figure whose axes span y 0..1: an error bar is a vertical run of ``colour``
    at least ``min_run`` pixels long, its centre the plotted value, scaled by the axes' black frame lines."""
    im = Image.open(png).convert("RGB")
    w, h = im.size
    px = im.load()
    frame = [y for y in range(h) if sum(px[x, y] == (0, 0, 0) for x in range(w)) > w / 4]
    top, bottom = frame[0], frame[-1]
    runs = []
    for x in range(w):
        best, start = (0, 0, 0), None
        for y in range(h + 1):
            if y < h and px[x, y] == colour:
                start = y if start is None else start
            elif start is not None:
                best, start = max(best, (y - start, start, y - 1)), None
        if best[0] >= min_run:
            runs.append((x, best[1], best[2]))
    groups = []
    for run in runs:  # adjacent columns are one bar (its line and marker are several pixels wide)
        if groups and run[0] - groups[-1][-1][0] <= 1:
            groups[-1].append(run)
        else:
            groups.append([run])
    return [(sum(r[0] for r in g) / len(g),
             (bottom - (min(r[1] for r in g) + max(r[2] for r in g)) / 2) / (bottom - top)) for g in groups]


def pixels(png):
    im = Image.open(png).convert("RGB")
    return im.size, im.tobytes()


def test_notebook_executes_and_writes_figures(eval_fixture):
    from stages.report import execute

    out = eval_fixture / "reports"
    execute(NOTEBOOK, out / "win_rates.ipynb", root=str(eval_fixture), out_dir=str(out))
    for name in ("win_rates.ipynb", "summary.csv", "win_tie_loss.png", "win_rate_length.png", "judge.png"):
        assert (out / name).stat().st_size > 0, name
    import pandas as pd

    table = pd.read_csv(out / "summary.csv")
    assert list(table["iteration"]) == ["M1", "M2"] and list(table["wins"]) == [2, 3]
    nb = json.loads((out / "win_rates.ipynb").read_text())
    assert any(c.get("outputs") for c in nb["cells"] if c["cell_type"] == "code")
    # the bars are the fixture's counts: M1 2 wins, 1 tie, 1 loss (bottom); M2 3 wins, 0 ties, 1 loss
    (m1, m2) = bar_rows(out / "win_tie_loss.png")
    unit = m1[2]  # pixels per prompt: one loss each
    assert unit > 50 and m2[2] == pytest.approx(unit, abs=2)
    assert [n / unit for n in m1] == pytest.approx([2, 1, 1], abs=0.03)
    assert [n / unit for n in m2] == pytest.approx([3, 0, 1], abs=0.03)
    assert Image.open(out / "heldout.png").size == PLACEHOLDER  # no held-out tasks in this fixture
    assert all(Image.open(out / n).size != PLACEHOLDER for n in ("win_rate_length.png", "judge.png"))
    # other numbers, other figures: M2 now loses three of four, its judge scores and answer lengths differ
    before = {n: pixels(out / n) for n in ("win_tie_loss.png", "win_rate_length.png", "judge.png", "heldout.png")}
    s = evaluation.win_rate_summary([-1, -1, -1, 1], [300, 320, 290, 400], [110, 100, 95, 150], bootstrap=100)
    ev = json.loads((eval_fixture / "metrics/M2/eval.json").read_text())
    ev["baselines"]["M0"].update(s)
    ev["judge_accuracy"]["accuracy"] = 0.25
    write_json(eval_fixture / "metrics/M2/eval.json", ev)
    write_json(eval_fixture / "metrics/M2/judge.json", {"score_histogram": {str(d): 5 - d for d in range(6)}})
    out2 = eval_fixture / "reports2"
    execute(NOTEBOOK, out2 / "win_rates.ipynb", root=str(eval_fixture), out_dir=str(out2))
    after = {n: pixels(out2 / n) for n in before}
    assert [n for n in before if after[n] != before[n]] == ["win_tie_loss.png", "win_rate_length.png", "judge.png"]
    assert [n / unit for n in bar_rows(out2 / "win_tie_loss.png")[1]] == pytest.approx([1, 0, 3], abs=0.03)


def test_notebook_on_a_run_with_held_out_tasks_and_no_win_rates(tmp_path):
    """The IRPO shape: no win rates or labelled pairs, held-out tasks per model; M0 is kept from M1 only."""
    from stages.report import execute

    (tmp_path / "params.yaml").write_text("iterations:\n  M1: {prev: M0_sft}\n  M2: {prev: M1}\n")

    def figures(p1):
        return {"tasks": 2, "samples": 8, "pass@1": p1, "pass@1_se": 0.1, "pass@1_strict": p1 / 2, "pass@4": 0.9,
                "pass@4_se": 0.05, "maj@4": 0.5, "maj@4_se": 0.2, "format_rate": p1, "format_rate_se": 0.1,
                "mean_tokens": 20.0}

    for k, models in (("M1", {"current": 0.5, "M0": 0.25}), ("M2", {"current": 0.75, "M0": 0.3})):
        write_json(tmp_path / "metrics" / k / "eval.json", {
            "prompts": 0, "baselines": {}, "judge_accuracy": None,
            "heldout": {"tasks": 2, "k": 4, "models": {n: {"all": figures(p)} for n, p in models.items()}}})
        write_jsonl(tmp_path / "data" / k / "eval_comparisons.jsonl", [])
    out = tmp_path / "reports"
    execute(NOTEBOOK, out / "win_rates.ipynb", root=str(tmp_path), out_dir=str(out))
    for name in ("summary.csv", "heldout.csv", "heldout.png", "win_tie_loss.png", "win_rate_length.png", "judge.png"):
        assert (out / name).stat().st_size > 0, name
    assert all(Image.open(out / n).size == PLACEHOLDER for n in ("win_tie_loss.png", "win_rate_length.png", "judge.png"))
    # pass@1 (left) and format rate (right) of M0, M1, M2, each read from its error bar's centre
    centres = errorbar_centres(out / "heldout.png")
    assert len(centres) == 6 and [x for x, _ in centres] == sorted(x for x, _ in centres)
    assert [v for _, v in centres] == pytest.approx([0.25, 0.5, 0.75, 0.25, 0.5, 0.75], abs=0.01)
    import pandas as pd

    held = pd.read_csv(out / "heldout.csv")
    assert list(held["model"]) == ["M0", "M1", "M2"] and list(held["pass@1"]) == [0.25, 0.5, 0.75]
    assert list(held["maj@k"]) == [0.5] * 3 and set(held["k"]) == {4}
