"""Running model servers as the generation backend (``engine.backend: server``): one or more ``vllm serve``
endpoints (or any server with vLLM's OpenAI-compatible completions API) serving the model a stage needs under
its key (``--served-model-name M1``).

The prompt is sent as token ids, made by the model's own tokenizer and chat template from its local directory,
so a served model sees exactly what the local engines give it. Each request asks vLLM for the completion's token
ids (``return_token_ids``) and, where the stage needs them, the sampled tokens' raw log-probs (``logprobs: 0``),
so the dpo stage can reuse them as reference log-probs; forced verdicts score a continuation with
``prompt_logprobs``. A server that leaves any of these out still works: the completion keeps its text, the
missing part is counted in :attr:`ServerEngine.fallbacks` (and the stage's metrics), and the consumers fall back
as they do for the chat engine (DPO recomputes the reference, a verdict that needs scoring counts as unparsed).

Requests are spread round-robin over the servers that list the model (several replicas, or one ``vllm serve
--data-parallel-size N``), up to ``max_concurrency`` in flight, each retried on its own (:class:`OpenAIEngine`).
"""

from __future__ import annotations

import itertools
import time
from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from pipeline.engines.base import (
    Completion,
    Conversation,
    Engine,
    NoLogprobsError,
    SamplingSettings,
    generation_eos_ids,
    vllm_completion,
)
from pipeline.engines.openai import OpenAIEngine, ServerError
from pipeline.knobs import url_check

__all__ = ["ServerEngine"]


class ServerEngine(OpenAIEngine):
    backend = "server"

    def __init__(self, model_dir: str | Path, urls: Sequence[str], api_key_env: str | None = None,
                 max_concurrency: int = 64, timeout: float = 600.0, retries: int = 5,
                 trust_remote_code: bool = False, sleep: Callable[[float], None] = time.sleep) -> None:
        from transformers import AutoTokenizer

        if not urls:
            raise ServerError("engine.servers: empty — list the base URLs of the servers (http://HOST:PORT/v1)")
        model_dir = Path(model_dir)
        super().__init__(urls[0], model_dir.name, api_key_env, timeout=timeout, retries=retries,
                         max_concurrency=max_concurrency, sleep=sleep)
        self.model_path = str(model_dir)
        self.tokenizer = AutoTokenizer.from_pretrained(str(model_dir), trust_remote_code=trust_remote_code)
        self.urls = [u.rstrip("/") for u in urls]
        self.serving: list[str] = []  # the servers that list the model (preflight)
        self._turn = itertools.count()
        self._eos_ids = {self.tokenizer.eos_token_id, *generation_eos_ids(str(model_dir))} - {None}
        self.requests = 0
        # what a server left out of its answers: token_ids (completions), logprobs (completions that asked for
        # them), prompt_logprobs (scoring requests)
        self.fallbacks: Counter[str] = Counter()

    # ------------------------------------------------------------------------------------------ set-up
    def preflight(self, where: str = "engine") -> None:
        """Before any generation: every URL well formed, the key variable set, every server answering; the model
        served by at least one of them (those that do not serve it get no request)."""
        import os

        for url in self.urls:
            problem = url_check(url)
            if problem:
                raise ServerError(f"{where}.servers: {url!r} — {problem}")
        if self.api_key_env and not os.environ.get(self.api_key_env):
            raise ServerError(f"{where}.server_api_key_env: the variable {self.api_key_env} is not set")
        listed: dict[str, list[str]] = {}
        for url in self.urls:
            body = self._request("/models", timeout=min(self.timeout, 10.0), retries=1, base=url)
            try:
                listed[url] = [str(m["id"]) for m in body["data"]]
            except (KeyError, TypeError):
                raise ServerError(f"{url}/models: not an OpenAI-style model list") from None
        self.serving = [u for u in self.urls if self.model in listed[u]]
        if not self.serving:
            seen = ", ".join(f"{u}: {', '.join(ids) or 'nothing'}" for u, ids in listed.items())
            raise ServerError(
                f"{where}.servers: no server serves {self.model!r} ({seen}) — start one on the model's folder under "
                f"its key, e.g. `vllm serve {self.model_path} --served-model-name {self.model}`")

    def _base(self) -> str:
        with self._lock:
            self.requests += 1
            return self.serving[next(self._turn) % len(self.serving)] if self.serving else self.url

    # ------------------------------------------------------------------------------------------ engine
    def format_chat(self, conversation: Conversation) -> str:
        return Engine.format_chat(self, conversation)

    def generate(self, conversations: Sequence[Conversation], settings: SamplingSettings,
                 desc: str = "generate") -> list[list[Completion]]:
        """One completions request per conversation (its ``n`` samples together), spread over the servers."""
        prompts = [self.encode(self.format_chat(c)) for c in conversations]
        greedy = settings.temperature == 0

        def one(item: tuple[int, list[int]]) -> list[Completion]:
            i, ids = item
            payload: dict[str, Any] = {
                "model": self.model, "prompt": ids, "n": settings.n, "temperature": settings.temperature,
                "top_p": 1.0 if greedy else settings.top_p, "max_tokens": settings.max_new_tokens,
                "seed": (settings.seed + i) % 2**31,  # per conversation: the same shard draws the same samples
                "return_token_ids": True}
            if settings.stop:
                payload["stop"] = list(settings.stop)
            if settings.logprobs:
                payload["logprobs"] = 0  # the sampled token's own log-prob
            return self._parse(self._request("/completions", payload, base=self._base()), settings, len(ids))

        return self._in_flight(one, list(enumerate(prompts)), desc)

    def _parse(self, body: Any, settings: SamplingSettings, num_prompt_tokens: int) -> list[Completion]:
        try:
            choices = sorted(body["choices"], key=lambda c: c.get("index", 0))
            usage = (body.get("usage") or {}).get("completion_tokens", 0)
            row = []
            for ch in choices:
                ids = ch.get("token_ids")
                logps = (ch.get("logprobs") or {}).get("token_logprobs") if settings.logprobs else None
                missing = []
                if ids is None:
                    missing.append("token_ids")
                if settings.logprobs and (ids is None or logps is None or len(logps) != len(ids)
                                          or any(v is None for v in logps)):
                    missing.append("logprobs")
                    logps = None
                c = vllm_completion(ch["text"] or "", ids or [], logps, ch.get("finish_reason"), ch.get("stop_reason"),
                                    settings.stop, num_prompt_tokens, self._eos_ids, self.tokenizer.eos_token_id)
                if ids is None:
                    c.num_tokens = usage // max(1, len(choices))
                with self._lock:
                    self.fallbacks.update(missing)
                row.append(c)
        except (KeyError, TypeError, AttributeError):
            raise ServerError(f"{self.url}/completions: the answer has no choices[].text — not an OpenAI-compatible "
                              "completions API") from None
        if len(row) != settings.n:
            raise ServerError(f"{self.url}/completions: asked for n={settings.n} completions, got {len(row)}")
        return row

    choice_logprobs = Engine.choice_logprobs  # scoring works here (the chat engine refuses it)

    def _score_sequences(self, sequences: list[tuple[list[int], int]]) -> list[float]:
        """Each continuation's summed log-prob from vLLM's ``prompt_logprobs`` of the whole sequence."""

        def one(item: tuple[list[int], int]) -> float:
            seq, begin = item
            body = self._request("/completions", {"model": self.model, "prompt": seq, "max_tokens": 1,
                                                  "temperature": 0.0, "prompt_logprobs": 0}, base=self._base())
            try:
                steps = body["choices"][0].get("prompt_logprobs")
                if not steps:
                    raise KeyError("prompt_logprobs")
                return float(sum(steps[pos][str(seq[pos])]["logprob"] for pos in range(begin, len(seq))))
            except (KeyError, TypeError, IndexError):
                with self._lock:
                    self.fallbacks["prompt_logprobs"] += 1
                raise NoLogprobsError(f"{self.url}/completions: no prompt_logprobs in the answer (a vLLM server "
                                      "gives them)") from None

        return self._in_flight(one, sequences, "score")

    def report(self) -> dict[str, Any]:
        return {"backend": self.backend, "model": self.model, "servers": list(self.serving), "requests": self.requests,
                "retries": self.retries, "retry_seconds": round(self.retry_seconds, 1),
                "fallbacks": dict(sorted(self.fallbacks.items()))}
