"""Win-rate arithmetic, bootstrap determinism, length control, judge accuracy, and the OpenAI evaluator."""

import json
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer

import pytest

from pipeline import evaluation
from pipeline.engines.base import SamplingSettings


def test_parse_compare():
    assert evaluation.parse_compare("A is better.\nWinner: B") == ("B", "strict")
    assert evaluation.parse_compare("Winner: tie") == ("tie", "strict")
    assert evaluation.parse_compare("The winner is Response A, clearly.") == ("A", "flexible")
    assert evaluation.parse_compare("Both are fine.") is None


def test_both_orders_and_disagreement():
    assert evaluation.model_verdict("A", model_is_a=True) == 1
    assert evaluation.model_verdict("A", model_is_a=False) == -1
    assert evaluation.model_verdict("tie", model_is_a=True) == 0
    assert evaluation.combine_orders(1, 1) == 1
    assert evaluation.combine_orders(-1, -1) == -1
    assert evaluation.combine_orders(1, -1) == 0  # the two orders disagree: a tie
    assert evaluation.combine_orders(1, 0) == 1 and evaluation.combine_orders(0, -1) == -1


def test_win_rate_counts_ties_half():
    s = evaluation.win_rate_summary([1, 1, 0, -1], [10, 10, 10, 10], [10, 10, 10, 10], bootstrap=200)
    assert (s["wins"], s["ties"], s["losses"], s["n"]) == (2, 1, 1, 4)
    assert s["win_rate"] == 0.625
    # values 1, 1, .5, 0: sample std 0.4787, / sqrt(4)
    assert s["win_rate_se"] == pytest.approx(0.47871355 / 2, abs=1e-6)
    assert s["win_rate_ci95_low"] <= 0.625 <= s["win_rate_ci95_high"]


def test_bootstrap_is_deterministic_for_a_seed():
    values = [1, 0, 0.5, 1, 1, 0, 1, 0.5, 0, 1]
    a = evaluation.bootstrap_interval(values, 500, seed=3)
    assert a == evaluation.bootstrap_interval(values, 500, seed=3)
    assert a != evaluation.bootstrap_interval(values, 500, seed=4)
    assert 0 <= a.low < 0.6 < a.high <= 1


def test_length_controlled_win_rate_moves_toward_half_when_longer_always_wins():
    # 15 prompts where the model's answer is longer and wins, 5 where it is shorter and loses.
    outcomes = [1] * 15 + [-1] * 5
    model = [300] * 15 + [100] * 5
    base = [100] * 15 + [300] * 5
    raw = evaluation.win_rate_summary(outcomes, model, base)["win_rate"]
    lc = evaluation.length_controlled_win_rate(outcomes, model, base)
    assert raw == 0.75
    assert abs(lc - 0.5) < abs(raw - 0.5) - 0.1
    # Equal lengths: nothing to control for, LC equals the raw rate (up to the small penalty).
    assert evaluation.length_controlled_win_rate([1, 1, 1, -1], [5] * 4, [5] * 4) == pytest.approx(0.75, abs=0.01)


def test_judge_accuracy_with_ties():
    s = evaluation.judge_accuracy([5, 1, 3, None, 2], [1, 4, 3, 2, 4], ["A", "B", "A", "A", "A"])
    assert s == {"pairs": 5, "correct": 2, "ties": 2, "accuracy": 0.4}


class _Stub(BaseHTTPRequestHandler):
    seen: list = []

    def do_POST(self):  # noqa: N802
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        _Stub.seen.append((self.path, self.headers.get("Authorization"), body))
        reply = {"choices": [{"message": {"content": "A is right.\nWinner: A"}, "finish_reason": "stop"}] * body["n"],
                 "usage": {"completion_tokens": 6 * body["n"]}}
        data = json.dumps(reply).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args):
        pass


def test_openai_evaluator_against_a_local_stub(monkeypatch, capsys):
    from pipeline.engines.openai import NoLogprobsError, OpenAIEngine

    server = HTTPServer(("127.0.0.1", 0), _Stub)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        monkeypatch.setenv("TEST_EVAL_KEY", "sk-secret-123")
        engine = OpenAIEngine(f"http://127.0.0.1:{server.server_port}/v1", "judge-model", "TEST_EVAL_KEY")
        conv = evaluation.compare_conversation("Name a prime.", "7", "8")
        out = engine.generate([conv], SamplingSettings(n=2, temperature=0.0, max_new_tokens=16))
        assert [c.text for c in out[0]] == ["A is right.\nWinner: A"] * 2
        assert evaluation.parse_compare(out[0][0].text) == ("A", "strict")
        path, auth, body = _Stub.seen[-1]
        assert path == "/v1/chat/completions" and auth == "Bearer sk-secret-123"
        assert body["model"] == "judge-model" and body["messages"] == conv
        with pytest.raises(NoLogprobsError):
            engine.choice_logprobs(["x"], ["A", "B"])
        assert "sk-secret-123" not in json.dumps(engine.__dict__, default=str)
        assert "sk-secret-123" not in capsys.readouterr().err
    finally:
        server.shutdown()


def test_iteration_summary_picks_headline_figures():
    from pipeline.summary import iteration_summary

    stage_metrics = {
        "self_instruct": {"accepted": 6, "acceptance_rate": 0.125, "seconds": 100.04, "rejected": {"duplicate": 3}},
        "sample": {"responses": 24, "parse_rate": 0.79166666, "mean_response_chars": 266.0, "seconds": 30.0},
        "judge": {"judgments": 57, "parse_rate": 0.8421, "mean_score": 2.7368421, "score_std": 0.9, "seconds": 90.0},
        "meta_judge": {"comparisons": 120, "parse_rate": 0.0, "position_bias": 0.5, "elo_spread_mean": 97.0,
                       "seconds": 300.0},
        "pairs": {"response_pairs": 6, "judgment_pairs": 4},
        "dpo": {"pairs": 10, "first_loss": 0.6931, "last_loss": 0.69, "mean_reward_accuracy": 0.5,
                "seconds": 40.0},
        "eval": {"baselines": {"M0": {"win_rate": 0.53125, "win_rate_se": 0.03, "lc_win_rate": 0.56,
                                      "model_mean_chars": 200.0, "baseline_mean_chars": 480.0}},
                 "judge_accuracy": {"accuracy": 0.4375}, "seconds": 380.0},
    }
    got = iteration_summary(stage_metrics)
    assert got["self_instruct"] == {"accepted": 6, "acceptance_rate": 0.125}
    assert got["sample"]["parse_rate"] == 0.7917 and got["judge"]["mean_score"] == 2.7368
    assert got["pairs"] == {"response_pairs": 6, "judgment_pairs": 4}
    assert got["dpo"]["mean_reward_margin"] is None  # missing: written as None, never invented
    assert got["eval"] == {"vs_M0": {"win_rate": 0.5312, "win_rate_se": 0.03, "lc_win_rate": 0.56,
                                     "model_mean_chars": 200.0, "baseline_mean_chars": 480.0},
                           "judge_accuracy": 0.4375}
    assert got["loop_stage_seconds"] == 560.0  # the loop stages only; evaluation is not part of the loop
