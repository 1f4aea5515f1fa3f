"""Temperature and top-p sampling without sorting the vocabulary, for generation on a CPU.

transformers samples a step by sorting all 49,152 scores of every row (``TopPLogitsWarper``) and drawing with
``torch.multinomial``, which makes one exponential random number per vocabulary entry. Profiled on the sample
workload of ``bench.profile_hf`` (32 rows, bfloat16, a 2-core AMD EPYC, 2026-12-04), the sort was 25% and the
draw 15% of the wall time: more than the model's forward pass.

:class:`NucleusSampler` draws from the same distribution: the softmax of the scores over the temperature,
restricted to the nucleus (a token is kept when the probability of the tokens ranked above it is below
``top_p``, transformers' rule, at least one token kept) and renormalised. It finds the nucleus among the
``torch.topk`` largest probabilities, widening k until every row's nucleus ends inside it, and draws by inverting
the cumulative distribution with one uniform number per row (token i when cdf[i-1] <= u * mass < cdf[i]). It runs as the last logits processor of a greedy
``generate``: it returns scores whose maximum is the drawn token, so the greedy pick is the sample. The random
numbers come from torch's global generator, which the engine seeds per call; the draws differ from
``torch.multinomial``'s for the same seed, the distribution does not.
"""

from __future__ import annotations

import torch
from transformers import LogitsProcessor

FIRST_K = 64  # tokens examined first; doubled until every row's nucleus fits


def nucleus_sample(scores: torch.Tensor, temperature: float, top_p: float,
                   generator: torch.Generator | None = None) -> torch.Tensor:
    """One token id per row of ``scores`` (rows x vocabulary), drawn at ``temperature`` from the top-p nucleus."""
    probs = torch.softmax(scores.float() / temperature, dim=-1)
    rows, vocab = probs.shape
    u = torch.rand(rows, 1, generator=generator, device=probs.device, dtype=probs.dtype)
    if top_p >= 1.0:
        cdf = probs.cumsum(-1)
        picked = torch.searchsorted(cdf, u * cdf[:, -1:], right=True).clamp(max=vocab - 1)
        return picked.squeeze(1)
    k = min(FIRST_K, vocab)
    while True:
        top, ids = torch.topk(probs, k, dim=-1)  # descending
        above = top.cumsum(-1) - top  # probability of the tokens ranked above each one
        keep = above < top_p
        keep[:, 0] = True
        if k == vocab or not bool(keep[:, -1].any()):  # every nucleus ends inside the k examined
            break
        k = min(2 * k, vocab)
    kept = torch.where(keep, top, torch.zeros_like(top))
    cdf = kept.cumsum(-1)
    picked = torch.searchsorted(cdf, u * cdf[:, -1:], right=True).clamp(max=k - 1)
    return ids.gather(-1, picked).squeeze(1)


class NucleusSampler(LogitsProcessor):
    """The last processor of a greedy ``generate``: draws each row's token and makes it the row's maximum."""

    def __init__(self, temperature: float, top_p: float) -> None:
        if temperature <= 0:
            raise ValueError(f"temperature must be positive, got {temperature}")
        self.temperature, self.top_p = float(temperature), float(top_p)

    def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
        token = nucleus_sample(scores, self.temperature, self.top_p)
        return scores.scatter(-1, token.unsqueeze(-1), float("inf"))
