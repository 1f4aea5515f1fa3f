"""An OpenAI-compatible chat-completions server as a generation backend (e.g. a strong external evaluator).

The API key is read from the environment variable named in params (``evaluate.api_key_env``) at call time;
it is never written to any output, log or metric. Forced verdicts need next-token log-probs of a given
prefix, which chat servers do not offer: :meth:`choice_logprobs` raises, and callers count such a verdict
as a tie.
"""

from __future__ import annotations

import json
import os
import time
import urllib.error
import urllib.request
from collections.abc import Sequence

from pipeline.engines.base import (Completion, Conversation, Engine, NoLogprobsError, SamplingSettings,
                                   truncate_at_stop)

__all__ = ["NoLogprobsError", "OpenAIEngine"]


class OpenAIEngine(Engine):
    backend = "openai"

    def __init__(self, url: str, model: str, api_key_env: str = "OPENAI_API_KEY", timeout: float = 120.0,
                 retries: int = 3) -> None:
        super().__init__(model, tokenizer=None)
        self.url = url.rstrip("/")
        self.model = model
        self.api_key_env = api_key_env
        self.timeout = timeout
        self.retries = retries

    def _post(self, payload: dict) -> dict:
        headers = {"Content-Type": "application/json"}
        key = os.environ.get(self.api_key_env)
        if key:
            headers["Authorization"] = f"Bearer {key}"
        request = urllib.request.Request(f"{self.url}/chat/completions", data=json.dumps(payload).encode(),
                                         headers=headers, method="POST")
        for attempt in range(self.retries):
            try:
                with urllib.request.urlopen(request, timeout=self.timeout) as resp:
                    return json.loads(resp.read().decode())
            except (urllib.error.URLError, TimeoutError) as e:
                if attempt == self.retries - 1:
                    raise RuntimeError(f"evaluator at {self.url} did not answer: {getattr(e, 'reason', e)}") from None
                time.sleep(2 ** attempt)
        raise AssertionError("unreachable")

    def format_chat(self, conversation: Conversation) -> str:
        return json.dumps(list(conversation))

    def generate(self, conversations: Sequence[Conversation], settings: SamplingSettings,
                 desc: str = "generate") -> list[list[Completion]]:
        from tqdm.auto import tqdm

        out = []
        for conv in tqdm(conversations, desc=desc, leave=False):
            body = self._post({"model": self.model, "messages": list(conv), "n": settings.n,
                               "temperature": settings.temperature, "top_p": settings.top_p,
                               "max_tokens": settings.max_new_tokens, "seed": settings.seed,
                               **({"stop": list(settings.stop)} if settings.stop else {})})
            row = []
            for choice in body["choices"]:
                text, stop = truncate_at_stop(choice["message"]["content"] or "", settings.stop)
                tokens = body.get("usage", {}).get("completion_tokens", 0) // max(1, len(body["choices"]))
                row.append(Completion(text=text, num_tokens=tokens, stop_string=stop,
                                      finish_reason="length" if choice.get("finish_reason") == "length" else "stop"))
            out.append(row)
        return out

    def choice_logprobs(self, contexts: Sequence[str], options: Sequence[str]) -> list[list[float]]:
        raise NoLogprobsError("an OpenAI-compatible chat server gives no log-probs for a given prefix")

    def _score_sequences(self, sequences: list[tuple[list[int], int]]) -> list[float]:
        raise NoLogprobsError("an OpenAI-compatible chat server gives no log-probs for a given prefix")
