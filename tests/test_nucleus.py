"""The hf engine's CPU sampler (pipeline/engines/nucleus.py) draws from the distribution transformers' temperature
and top-p warpers define: never a token outside transformers' nucleus, frequencies within sampling error of the
nucleus probabilities (including a nucleus wider than the first k examined), and as the last processor of a
greedy generate it produces the drawn token."""

import pytest
import torch
from transformers import TemperatureLogitsWarper, TopPLogitsWarper

from pipeline.engines.nucleus import FIRST_K, NucleusSampler, nucleus_sample, token_uniforms


def reference_probs(scores: torch.Tensor, temperature: float, top_p: float) -> torch.Tensor:
    """The distribution transformers samples from: its warpers, then softmax."""
    warped = TemperatureLogitsWarper(temperature)(None, scores.clone())
    if top_p < 1.0:
        warped = TopPLogitsWarper(top_p)(None, warped)
    return torch.softmax(warped, dim=-1)


def draws(scores_row: torch.Tensor, temperature: float, top_p: float, count: int) -> torch.Tensor:
    torch.manual_seed(0)
    return nucleus_sample(scores_row.expand(count, -1), temperature, top_p)


@pytest.mark.parametrize(("temperature", "top_p"), [(1.0, 1.0), (0.7, 1.0), (0.7, 0.9), (1.3, 0.5)])
def test_frequencies_match_transformers_distribution(temperature, top_p):
    scores = torch.tensor([2.0, 1.5, 1.0, 0.3, 0.0, -0.5, -1.0, -3.0])
    want = reference_probs(scores.unsqueeze(0), temperature, top_p)[0]
    count = 40_000
    got = torch.bincount(draws(scores, temperature, top_p, count), minlength=len(scores)).float() / count
    assert torch.all(got[want == 0] == 0), (got, want)  # nothing outside the nucleus
    se = torch.sqrt(want * (1 - want) / count)
    assert torch.all((got - want).abs() <= 5 * se + 1e-9), (got, want)


def test_a_nucleus_wider_than_the_first_k():
    """A nearly flat distribution over 1,000 tokens (distinct scores: no ties at the nucleus's edge): top_p 0.5
    keeps about 460, far more than the first 64 examined."""
    scores = torch.linspace(0.0, 0.5, 1000)
    picked = draws(scores, 1.0, 0.5, 20_000)
    nucleus = reference_probs(scores.unsqueeze(0), 1.0, 0.5)[0] > 0
    assert FIRST_K < int(nucleus.sum()) < 1000
    assert bool(nucleus[picked].all())
    assert len(set(picked.tolist())) > 4 * FIRST_K  # tokens beyond the first k are drawn


def test_rows_are_independent():
    """Each row keeps its own nucleus: a peaked row always gives its top token, a flat row spreads."""
    peaked = torch.full((50,), -20.0)
    peaked[7] = 10.0
    flat = torch.zeros(50)
    torch.manual_seed(1)
    out = nucleus_sample(torch.stack([peaked, flat] * 500), 1.0, 0.95)
    assert set(out[0::2].tolist()) == {7}
    assert len(set(out[1::2].tolist())) > 30


def test_processor_makes_the_drawn_token_the_maximum():
    scores = torch.randn(4, 100, generator=torch.Generator().manual_seed(3))
    torch.manual_seed(5)
    out = NucleusSampler(0.8, 0.9)(None, scores.clone())
    torch.manual_seed(5)
    want = nucleus_sample(scores, 0.8, 0.9)
    assert torch.equal(out.argmax(-1), want)
    assert torch.all(torch.isinf(out).sum(-1) == 1)


def test_zero_temperature_is_refused():
    with pytest.raises(ValueError):
        NucleusSampler(0.0, 0.9)



def test_draws_do_not_move_when_the_scores_change_in_their_last_bits():
    """Another thread count sums the same scores in another order: a draw must not depend on the last bits (the
    replicas write what one process writes). A nearly flat distribution is the hardest case: its near-equal tokens
    swap ranks (a race over ranks kept 276 of these 500 draws, inverting the cumulative sum over ranks did no
    better on the tiny model's replicas)."""
    scores = torch.randn(500, 20_000, generator=torch.Generator().manual_seed(7)) * 0.1
    nudged = scores + 1e-5 * torch.randn(scores.shape, generator=torch.Generator().manual_seed(8))
    for top_p in (0.9, 1.0):
        torch.manual_seed(0)
        a = nucleus_sample(scores, 1.0, top_p)
        torch.manual_seed(0)
        b = nucleus_sample(nudged, 1.0, top_p)
        assert int((a == b).sum()) >= 495, top_p


def test_token_uniforms_are_uniform_and_belong_to_the_token():
    keys = torch.tensor([[123], [456]])
    ids = torch.arange(100_000).expand(2, -1)
    u = token_uniforms(keys, ids)
    assert float(u.min()) > 0 and float(u.max()) < 1
    assert abs(float(u.mean()) - 0.5) < 0.005 and abs(float(u.std()) - (1 / 12) ** 0.5) < 0.005
    assert not torch.equal(u[0], u[1])  # another row key, other numbers
    shuffled = torch.randperm(100_000, generator=torch.Generator().manual_seed(0))
    assert torch.equal(token_uniforms(keys[:1], shuffled.unsqueeze(0))[0], u[0][shuffled])  # order does not matter
