"""A stand-in for `vllm serve` on 127.0.0.1: vLLM's completions API over token-id prompts, with a made-up model
whose log-probs a test can compute by hand (:func:`logp`). It answers every prompt with the prompt's first
``reply`` ids followed by the end-of-sequence id, records every request, and can leave out what another server
would not return (``omit``: token_ids, logprobs, prompt_logprobs)."""

from __future__ import annotations

from typing import Any

from pipeline.engines.openai_stub import StubServer


def logp(token_id: int, position: int) -> float:
    """The stub model's log-prob of ``token_id`` at ``position`` (any number that a test can recompute)."""
    return -0.1 * (token_id % 10) - 0.01 * position - 0.5


class VLLMStub(StubServer):
    def __init__(self, model: str, eos: int, reply: int = 3, omit: tuple[str, ...] = (), latency: float = 0.0) -> None:
        super().__init__(latency=latency, model=model)
        self.eos, self.reply, self.omit = eos, reply, set(omit)
        self.payloads: list[dict[str, Any]] = []

    def answer(self, payload: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        with self.lock:
            self.requests += 1
            self.payloads.append(payload)
        prompt = [int(t) for t in payload["prompt"]]
        if payload.get("prompt_logprobs") is not None:
            steps = [None] + [{str(t): {"logprob": logp(t, pos), "rank": 1}} for pos, t in enumerate(prompt) if pos]
            choice = {"index": 0, "text": "x", "finish_reason": "length", "token_ids": [7]}
            if "prompt_logprobs" not in self.omit:
                choice["prompt_logprobs"] = steps
            return 200, {"choices": [choice], "usage": {"completion_tokens": 1}}
        choices = []
        for i in range(int(payload.get("n", 1))):
            ids = prompt[i:i + self.reply]
            ended = "length" if len(ids) >= int(payload["max_tokens"]) else "stop"
            ids = ids[:int(payload["max_tokens"])] + ([self.eos] if ended == "stop" else [])
            choice: dict[str, Any] = {"index": i, "text": " ".join(map(str, ids[:self.reply])),
                                      "finish_reason": ended, "stop_reason": None}
            if "token_ids" not in self.omit:
                choice["token_ids"] = ids
            if payload.get("logprobs") is not None and "logprobs" not in self.omit:
                start = len(prompt)
                choice["logprobs"] = {"tokens": [f"t{t}" for t in ids],
                                      "token_logprobs": [logp(t, start + k) for k, t in enumerate(ids)]}
            choices.append(choice)
        return 200, {"choices": list(reversed(choices)), "usage": {"completion_tokens": sum(
            len(c.get("token_ids", [])) for c in choices)}}
