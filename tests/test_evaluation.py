"""Win-rate arithmetic, bootstrap determinism, length control, judge accuracy, and the OpenAI evaluator."""

import json
import math
import statistics
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer

import numpy as np
import pytest

from pipeline import evaluation, stats
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
    s = stats.win_rate_summary([1, 1, 0, -1], [10, 10, 10, 10], [10, 10, 10, 10], bootstrap=200)
    assert (s["wins"], s["ties"], s["losses"], s["n"]) == (2, 1, 1, 4)
    assert s["win_rate"] == 0.625
    # values 1, 1, .5, 0: sample std 0.4787, / sqrt(4)
    assert s["win_rate_se"] == pytest.approx(0.47871355 / 2, abs=1e-6)
    # Pinned for the default seed 0; a bracket around the mean would pass for any interval.
    assert (s["win_rate_ci95_low"], s["win_rate_ci95_high"]) == (0.25, 1.0)


def test_win_rate_summary_is_pinned_for_a_seed():
    outcomes = [1, 1, 0, -1, 1, 0, -1, 1, 1, -1, 0]
    model = [10, 30, 20, 5, 8, 40, 12, 9, 50, 7, 22]
    base = [12, 10, 20, 15, 8, 10, 30, 9, 20, 17, 25]
    s = stats.win_rate_summary(outcomes, model, base, bootstrap=1000, seed=7)
    assert {k: s[k] for k in ("n", "wins", "losses", "ties")} == {"n": 11, "wins": 5, "losses": 3, "ties": 3}
    assert s["win_rate"] == pytest.approx(6.5 / 11, abs=1e-12)
    assert (s["win_rate_ci95_low"], s["win_rate_ci95_high"]) == pytest.approx((3.5 / 11, 9 / 11), abs=1e-12)
    # The summary must pass its seed and sample count through to the bootstrap of the 1 / .5 / 0 values.
    values = [(o + 1) / 2 for o in outcomes]
    assert (s["win_rate_ci95_low"], s["win_rate_ci95_high"]) == pytest.approx(
        percentile_bootstrap(values, 1000, seed=7, level=0.95), abs=1e-12)
    assert s["length_adjusted_win_rate"] == pytest.approx(0.6301148787737739, abs=1e-9)
    assert s["length_adjusted_win_rate"] == pytest.approx(penalized_fit(outcomes, model, base), abs=1e-6)
    assert (s["model_mean_chars"], s["baseline_mean_chars"]) == pytest.approx((213 / 11, 16.0), abs=1e-12)


def percentile_bootstrap(values, samples, seed, level):
    """The percentile bootstrap of the mean, written out: resample rows, then interpolate linearly between
    order statistics (numpy's default quantile rule), without np.quantile."""
    v = np.asarray(values, dtype=float)
    idx = np.random.default_rng(seed).integers(0, len(v), size=(samples, len(v)))
    means = sorted(sum(v[i] for i in row) / len(v) for row in idx)

    def at(q):
        pos = q * (samples - 1)
        lo = math.floor(pos)
        hi = min(lo + 1, samples - 1)
        return means[lo] + (pos - lo) * (means[hi] - means[lo])

    alpha = (1 - level) / 2
    return at(alpha), at(1 - alpha)


CONTINUOUS = [0.9, 0.15, 0.5, 0.72, 1.0, 0.03, 0.66, 0.41, 0.0, 0.88, 0.27]


@pytest.mark.parametrize("samples, seed, level, expected", [
    (500, 0, 0.95, (0.29406818181818184, 0.6968409090909091)),
    (500, 3, 0.95, (0.32545454545454544, 0.6942954545454543)),
    (1000, 0, 0.90, (0.330909090909091, 0.6791363636363636)),
])
def test_bootstrap_interval_is_pinned(samples, seed, level, expected):
    # Continuous values, so the quantiles fall between order statistics and pin the interpolation too.
    a = stats.bootstrap_interval(CONTINUOUS, samples, seed=seed, level=level)
    assert (a.low, a.high) == pytest.approx(expected, abs=1e-12)
    assert (a.low, a.high) == pytest.approx(percentile_bootstrap(CONTINUOUS, samples, seed, level), abs=1e-12)


def test_bootstrap_is_deterministic_for_a_seed():
    values = [1, 0, 0.5, 1, 1, 0, 1, 0.5, 0, 1]
    a = stats.bootstrap_interval(values, 500, seed=3)
    assert a == stats.bootstrap_interval(values, 500, seed=3)
    assert a != stats.bootstrap_interval(values, 500, seed=4)
    assert (a.low, a.high) == pytest.approx((0.3, 0.9), abs=1e-12)


def penalized_fit(outcomes, model_lengths, baseline_lengths, l2=1e-2):
    """The same model fitted another way: BFGS on the penalized negative log-likelihood of
    P(win) = sigmoid(t0 + t1 * tanh(delta / sd(delta))), soft labels y = (outcome + 1) / 2, penalty
    l2 / 2 * |t|^2; returns sigmoid(t0)."""
    from scipy.optimize import minimize  # scipy comes with scikit-learn, a direct dependency

    delta = [m - b for m, b in zip(model_lengths, baseline_lengths)]
    sd = statistics.pstdev(delta)
    z = np.array([math.tanh(d / sd) if sd > 0 else 0.0 for d in delta])
    y = (np.asarray(outcomes, dtype=float) + 1) / 2

    def loss(t):
        logit = t[0] + t[1] * z
        # -log sigmoid(s) = logaddexp(0, -s); -log(1 - sigmoid(s)) = logaddexp(0, s)
        nll = np.sum(y * np.logaddexp(0, -logit) + (1 - y) * np.logaddexp(0, logit))
        return nll + l2 / 2 * (t @ t)

    def grad(t):
        r = 1 / (1 + np.exp(-(t[0] + t[1] * z))) - y
        return np.array([r.sum(), r @ z]) + l2 * t

    res = minimize(loss, np.zeros(2), jac=grad, method="BFGS", options={"gtol": 1e-11, "maxiter": 10000})
    assert np.abs(grad(res.x)).max() < 1e-8, res.message  # converged, or the comparison means nothing
    return 1 / (1 + math.exp(-res.x[0]))


LC_DATASETS = {
    # longer always wins, shorter always loses: length separates the outcomes perfectly
    "separated": ([1] * 15 + [-1] * 5, [300] * 15 + [100] * 5, [100] * 15 + [300] * 5),
    "equal_lengths_with_a_tie": ([1, 1, 0, -1, 1], [5] * 5, [5] * 5),
    "ties_and_mixed_lengths": ([1, 0, -1, 0, 1, 1, -1, 0, 1, -1, 0, 1],
                               [120, 80, 300, 95, 410, 60, 150, 200, 90, 30, 75, 260],
                               [100, 85, 120, 90, 200, 140, 160, 210, 100, 90, 70, 110]),
    "all_ties": ([0] * 6, [10, 20, 30, 40, 50, 60], [35] * 6),
    "random_200": (np.random.default_rng(5).integers(-1, 2, size=200).tolist(),
                   np.random.default_rng(6).integers(20, 900, size=200).tolist(),
                   np.random.default_rng(7).integers(20, 900, size=200).tolist()),
}


@pytest.mark.parametrize("name", LC_DATASETS)
def test_length_adjusted_win_rate_matches_an_independent_fit(name):
    outcomes, model, base = LC_DATASETS[name]
    assert stats.length_adjusted_win_rate(outcomes, model, base) == pytest.approx(
        penalized_fit(outcomes, model, base), abs=1e-6)


def test_length_adjusted_win_rate_moves_toward_half_when_longer_always_wins():
    outcomes, model, base = LC_DATASETS["separated"]
    raw = stats.win_rate_summary(outcomes, model, base)["win_rate"]
    lc = stats.length_adjusted_win_rate(outcomes, model, base)
    assert raw == 0.75
    assert abs(lc - 0.5) < abs(raw - 0.5) - 0.1
    assert lc == pytest.approx(0.6201846781749658, abs=1e-9)  # pinned: Newton's method to its 1e-10 step
    # Equal lengths: nothing to control for, LC equals the raw rate (up to the small penalty).
    assert stats.length_adjusted_win_rate([1, 1, 1, -1], [5] * 4, [5] * 4) == pytest.approx(0.75, abs=0.01)
    # All ties: every label is 1/2, so the fit is exactly even whatever the lengths.
    assert stats.length_adjusted_win_rate(*LC_DATASETS["all_ties"]) == pytest.approx(0.5, abs=1e-12)


def test_judge_accuracy_with_ties():
    s = stats.judge_accuracy([5, 1, 3, None, 2], [1, 4, 3, 2, 4], ["A", "B", "A", "A", "A"])
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
        "eval": {"baselines": {"M0": {"win_rate": 0.53125, "win_rate_se": 0.03, "length_adjusted_win_rate": 0.56,
                                      "model_mean_chars": 200.0, "baseline_mean_chars": 480.0}},
                 "judge_accuracy": {"accuracy": 0.4375}, "seconds": 380.0},
    }
    got = iteration_summary(stage_metrics)
    assert got["self_instruct"] == {"accepted": 6, "acceptance_rate": 0.125}
    assert got["sample"]["parse_rate"] == 0.7917 and got["judge"]["mean_score"] == 2.7368
    assert got["pairs"] == {"response_pairs": 6, "judgment_pairs": 4, "verified_pairs": None, "reflection_pairs": None}
    assert got["dpo"]["mean_reward_margin"] is None  # missing: written as None, never invented
    assert got["verify"] == dict.fromkeys(("verified", "accuracy", "strict_rate", "prompts_all_correct",
                                           "prompts_all_wrong"))
    assert got["eval"] == {"vs_M0": {"win_rate": 0.5312, "win_rate_se": 0.03, "length_adjusted_win_rate": 0.56,
                                     "model_mean_chars": 200.0, "baseline_mean_chars": 480.0},
                           "judge_accuracy": 0.4375}
    assert got["loop_stage_seconds"] == 560.0  # the loop stages only; evaluation is not part of the loop


def test_iteration_summary_of_verifiable_tasks():
    """Held-out task figures per model and the judge against the truth reach the headline; nothing else added."""
    from pipeline.summary import iteration_summary

    held = {"all": {"pass@1": 0.41234, "pass@1_se": 0.05, "format_rate": 0.9, "format_rate_se": 0.02,
                    "mean_tokens": 30.0, "pass@4": 0.6, "maj@4": 0.5, "pass@1_strict": 0.4},
            "arithmetic-1digit": {"pass@1": 0.8}}
    got = iteration_summary({
        "verify": {"verified": 64, "accuracy": 0.5, "strict_rate": 0.25, "prompts_all_correct": 1,
                   "prompts_all_wrong": 2, "seconds": 1.0},
        "judge": {"judgments": 16, "judge_vs_truth": {"pairwise_accuracy": 0.61111, "auc": 0.55, "answers": 16}},
        "eval": {"baselines": {}, "judge_accuracy": None,
                 "heldout": {"tasks": 128, "k": 4, "models": {"current": held, "M0": held}}}})
    assert got["verify"] == {"verified": 64, "accuracy": 0.5, "strict_rate": 0.25, "prompts_all_correct": 1,
                             "prompts_all_wrong": 2}
    assert got["judge"]["vs_truth_pairwise_accuracy"] == 0.6111 and got["judge"]["vs_truth_auc"] == 0.55
    want = {"pass@1": 0.4123, "pass@1_se": 0.05, "format_rate": 0.9, "format_rate_se": 0.02, "mean_tokens": 30.0,
            "pass@4": 0.6, "maj@4": 0.5}
    assert got["eval"] == {"judge_accuracy": None, "heldout_current": want, "heldout_M0": want}
