"""bench/grpo_vs_irpo.py: the points it plots are the runs' own figures (M0 from the first iteration's baseline,
each iteration at the cumulative seconds of its training stages, evaluation left out)."""

import json

import pytest
import yaml

from bench import grpo_vs_irpo


def heldout(p1, se):
    return {"all": {"pass@1": p1 / 2, "pass@1_se": se, "tasks": 128},
            "arithmetic-1digit": {"pass@1": p1, "pass@1_se": se, "tasks": 64}}


def write_run(root, seconds):
    (root / "params.yaml").write_text(yaml.safe_dump({"iterations": {"M1": {"prev": "M0_sft"}, "M2": {"prev": "M1"},
                                                                    "M3": {"prev": "M2"}}}))
    for i, key in enumerate(("M1", "M2")):  # M3 not evaluated yet: left out
        m = root / "metrics" / key
        m.mkdir(parents=True)
        for stage, s in seconds[i].items():
            (m / f"{stage}.json").write_text(json.dumps({"seconds": s}))
        models = {"current": heldout(0.5 + 0.2 * i, 0.04)}
        if key == "M1":
            models["M0"] = heldout(0.2, 0.03)
        (m / "eval.json").write_text(json.dumps({"seconds": 99.0, "heldout": {"k": 4, "models": models}}))


def test_points_are_cumulative_training_seconds_and_the_runs_pass_at_1(tmp_path):
    write_run(tmp_path, [{"sample": 60.0, "verify": 0.5, "pairs": 0.5, "dpo": 100.0},
                         {"sample": 50.0, "dpo": 90.0, "judge": 10.0}])
    points = grpo_vs_irpo.series(tmp_path)
    assert [p["model"] for p in points] == ["M0", "M1", "M2"]
    assert [p["seconds"] for p in points] == [0.0, 161.0, 311.0]
    assert [p["heldout"]["arithmetic-1digit"]["pass@1"] for p in points] == [0.2, 0.5, 0.7]
    assert points[0]["heldout"]["arithmetic-1digit"]["pass@1_se"] == 0.03


def test_the_command_writes_the_json_and_the_figure(tmp_path, capsys):
    for name in ("a", "b"):
        (tmp_path / name).mkdir()
        write_run(tmp_path / name, [{"dpo": 30.0}, {"dpo": 30.0}])
    out = tmp_path / "out" / "cmp"
    assert grpo_vs_irpo.main(["--run", f"irpo={tmp_path / 'a'}", "--run", f"grpo={tmp_path / 'b'}",
                              "--out", str(out)]) == 0
    data = json.loads(out.with_suffix(".json").read_text())
    assert set(data["runs"]) == {"irpo", "grpo"} and out.with_suffix(".png").stat().st_size > 1000
    assert "irpo: M0 0.200 at 0.0 min, M1 0.500 at 0.5 min, M2 0.700 at 1.0 min" in capsys.readouterr().out


def test_a_run_without_an_m0_baseline_is_one_line(tmp_path):
    write_run(tmp_path, [{"dpo": 1.0}, {"dpo": 1.0}])
    e = tmp_path / "metrics/M1/eval.json"
    e.write_text(json.dumps({"heldout": {"models": {"current": heldout(0.5, 0.1)}}}))
    with pytest.raises(SystemExit, match="has no M0 baseline"):
        grpo_vs_irpo.series(tmp_path)
