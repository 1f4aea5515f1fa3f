"""The win-rate notebook executes on a small fixture of real-format files and writes its figures."""

import json

import pytest

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


def test_notebook_executes_and_writes_figures(eval_fixture):
    from stages.report import execute

    out = eval_fixture / "reports"
    execute(__import__("pathlib").Path("notebooks/win_rates.py").resolve(), out / "win_rates.ipynb",
            root=str(eval_fixture), out_dir=str(out))
    for name in ("win_rates.ipynb", "summary.csv", "win_tie_loss.png", "win_rate_length.png", "judge.png"):
        assert (out / name).stat().st_size > 0, name
    import pandas as pd

    table = pd.read_csv(out / "summary.csv")
    assert list(table["iteration"]) == ["M1", "M2"] and list(table["wins"]) == [2, 3]
    nb = json.loads((out / "win_rates.ipynb").read_text())
    assert any(c.get("outputs") for c in nb["cells"] if c["cell_type"] == "code")


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
    execute(__import__("pathlib").Path("notebooks/win_rates.py").resolve(), out / "win_rates.ipynb",
            root=str(tmp_path), out_dir=str(out))
    for name in ("summary.csv", "heldout.csv", "heldout.png", "win_tie_loss.png", "win_rate_length.png", "judge.png"):
        assert (out / name).stat().st_size > 0, name
    import pandas as pd

    held = pd.read_csv(out / "heldout.csv")
    assert list(held["model"]) == ["M0", "M1", "M2"] and list(held["pass@1"]) == [0.25, 0.5, 0.75]
    assert list(held["maj@k"]) == [0.5] * 3 and set(held["k"]) == {4}
