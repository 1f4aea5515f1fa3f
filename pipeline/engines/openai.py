"""An OpenAI-compatible chat-completions server as a generation backend (a strong evaluator, a fixed prompt
generator, a `vllm serve` endpoint).

Before any generation, :meth:`OpenAIEngine.preflight` checks what would otherwise fail only after every model
loaded: the URL is well formed, the API key variable is set, the server answers and lists the model. Requests
that fail for a reason that may pass (a timeout, a refused connection, HTTP 429 or 5xx) are retried with bounded
exponential backoff, honouring ``Retry-After``; a 4xx or an answer that is not the expected JSON fails at once
with one line (:class:`ServerError`). Every retry is counted (``retries``, ``retry_seconds``). Up to
``max_concurrency`` requests are in flight at once (threads: the work is waiting on the network), each retried on
its own; results come back in input order.

The API key is read from the environment variable named in params at call time; it is never written to any
output, log or metric. Forced verdicts need next-token log-probs of a given prefix, which chat servers do not
offer: :meth:`choice_logprobs` raises :class:`NoLogprobsError`, and callers count such a verdict as unparsed.
"""

from __future__ import annotations

import concurrent.futures
import email.utils
import json
import os
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from typing import Any

from pipeline.engines.base import (
    Completion,
    Conversation,
    Engine,
    NoLogprobsError,
    SamplingSettings,
    truncate_at_stop,
)
from pipeline.errors import StageError
from pipeline.knobs import url_check

__all__ = ["NoLogprobsError", "OpenAIEngine", "ServerError"]

RETRY_STATUS = {408, 409, 425, 429, 500, 502, 503, 504}


class ServerError(StageError):
    """The server refused a request for a reason a retry cannot fix, or answered something unreadable."""


def retry_after(header: str | None, now: float | None = None) -> float | None:
    """Seconds a ``Retry-After`` header asks to wait (a number of seconds or an HTTP date), or None."""
    if not header:
        return None
    try:
        return max(0.0, float(header))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(header).timestamp()
    except (TypeError, ValueError):
        return None
    return max(0.0, when - (time.time() if now is None else now))


class OpenAIEngine(Engine):
    backend = "openai"

    def __init__(self, url: str, model: str, api_key_env: str | None = "OPENAI_API_KEY", timeout: float = 120.0,
                 retries: int = 5, backoff: float = 1.0, max_backoff: float = 60.0,
                 sleep: Callable[[float], None] = time.sleep, max_concurrency: int = 8) -> None:
        super().__init__(model, tokenizer=None)
        if max_concurrency < 1:
            raise ValueError(f"max_concurrency must be at least 1, got {max_concurrency}")
        self.max_concurrency = max_concurrency  # requests in flight at once (each with its own retries)
        self._lock = threading.Lock()
        self.url = url.rstrip("/")
        self.model = model
        self.api_key_env = api_key_env
        self.timeout = timeout
        self.max_retries = retries
        self.backoff = backoff
        self.max_backoff = max_backoff
        self.sleep = sleep
        self.retries = 0  # requests sent again after a failure that may pass
        self.retry_seconds = 0.0  # time spent waiting before those

    # ------------------------------------------------------------------------------------------ requests
    def _headers(self) -> dict[str, str]:
        headers = {"Content-Type": "application/json"}
        key = os.environ.get(self.api_key_env) if self.api_key_env else None
        if key:
            headers["Authorization"] = f"Bearer {key}"
        return headers

    def _request(self, path: str, payload: dict[str, Any] | None = None, timeout: float | None = None,
                 retries: int | None = None, base: str | None = None) -> Any:
        """One JSON request to ``base`` (default: the engine's URL), retried while the failure may pass
        (``retries`` times, default the engine's)."""
        max_retries = self.max_retries if retries is None else retries
        data = None if payload is None else json.dumps(payload).encode()
        url = base or self.url
        request = urllib.request.Request(f"{url}{path}", data=data, headers=self._headers(),
                                         method="GET" if payload is None else "POST")
        for attempt in range(max_retries + 1):
            wait: float | None = None
            try:
                with urllib.request.urlopen(request, timeout=timeout or self.timeout) as resp:
                    body = resp.read()
                break
            except urllib.error.HTTPError as e:
                detail = e.read()[:200].decode("utf-8", "replace").strip()
                if e.code not in RETRY_STATUS:
                    raise ServerError(f"{url}{path}: HTTP {e.code} — {detail or e.reason} (not retried: the "
                                      "request itself is refused; check the URL, the model name and the key)") from None
                failure = f"HTTP {e.code}"
                wait = retry_after(e.headers.get("Retry-After"))
            except (urllib.error.URLError, TimeoutError, ConnectionError) as e:
                failure = str(getattr(e, "reason", e))
            if attempt == max_retries:
                raise ServerError(f"{url}{path}: no answer after {max_retries + 1} attempts (last: "
                                  f"{failure}) — is the server up?") from None
            delay = min(self.max_backoff, wait if wait is not None else self.backoff * 2 ** attempt)
            with self._lock:
                self.retries += 1
                self.retry_seconds += delay
            self.sleep(delay)
        try:
            return json.loads(body.decode("utf-8"))
        except (UnicodeDecodeError, ValueError):
            raise ServerError(f"{url}{path}: the answer is not JSON ({body[:80]!r}) — is this an "
                              "OpenAI-compatible API? (the URL usually ends in /v1)") from None

    def preflight(self, where: str = "evaluate") -> None:
        """Fail now, with one line, if generation could not work: URL, key variable, server, model."""
        problem = url_check(self.url)
        if problem:
            raise ServerError(f"{where}.openai_url: {self.url!r} — {problem}")
        if self.api_key_env and not os.environ.get(self.api_key_env):
            raise ServerError(f"{where}.api_key_env: the variable {self.api_key_env} is not set — export it, or set "
                              f"{where}.api_key_env: null for a server that needs no key")
        # A short check: two attempts, not the full backoff a long generation deserves.
        listing = self._request("/models", timeout=min(self.timeout, 10.0), retries=1)
        try:
            ids = [m["id"] for m in listing["data"]]
        except (KeyError, TypeError):
            raise ServerError(f"{self.url}/models: not an OpenAI-style model list") from None
        if self.model not in ids:
            raise ServerError(f"{where}.openai_model: {self.model!r} — not served at {self.url} (it serves: "
                              f"{', '.join(map(str, ids[:8])) or 'nothing'})")

    # ------------------------------------------------------------------------------------------ engine
    def format_chat(self, conversation: Conversation) -> str:
        return json.dumps(list(conversation))

    def generate(self, conversations: Sequence[Conversation], settings: SamplingSettings,
                 desc: str = "generate") -> list[list[Completion]]:
        """One request per conversation, up to ``max_concurrency`` in flight; results in input order."""

        def one(conv: Conversation) -> list[Completion]:
            body = self._request("/chat/completions", {
                "model": self.model, "messages": list(conv), "n": settings.n, "temperature": settings.temperature,
                "top_p": settings.top_p, "max_tokens": settings.max_new_tokens, "seed": settings.seed,
                **({"stop": list(settings.stop)} if settings.stop else {})})
            return self._completions(body, settings)

        return self._in_flight(one, conversations, desc)

    def _in_flight(self, one: Callable[[Any], Any], items: Sequence[Any], desc: str) -> list[Any]:
        """``one(item)`` for every item, up to ``max_concurrency`` at once, results in input order. A request
        that still fails after its retries stops the batch: the requests not yet sent are cancelled, those in
        flight are awaited, and the first failure is raised (finished shards of the stage are kept)."""
        from tqdm.auto import tqdm

        out: list[Any] = [None] * len(items)
        bar = tqdm(total=len(items), desc=desc, leave=False, unit="req")
        with concurrent.futures.ThreadPoolExecutor(max_workers=min(self.max_concurrency, max(1, len(items))),
                                                   thread_name_prefix="openai") as pool:
            futures = {pool.submit(one, item): i for i, item in enumerate(items)}
            try:
                for fut in concurrent.futures.as_completed(futures):
                    out[futures[fut]] = fut.result()
                    bar.update(1)
            except BaseException:
                for f in futures:
                    f.cancel()
                raise
            finally:
                bar.close()
        return out

    def _completions(self, body: Any, settings: SamplingSettings) -> list[Completion]:
        try:
            choices = body["choices"]
            usage = (body.get("usage") or {}).get("completion_tokens", 0)
            row = []
            for choice in choices:
                text, stop = truncate_at_stop(choice["message"]["content"] or "", settings.stop)
                row.append(Completion(text=text, num_tokens=usage // max(1, len(choices)), stop_string=stop,
                                      finish_reason="length" if choice.get("finish_reason") == "length" else "stop"))
        except (KeyError, TypeError, AttributeError):
            raise ServerError(f"{self.url}/chat/completions: the answer has no choices[].message.content — not an "
                              "OpenAI-compatible chat completion") from None
        if len(row) != settings.n:
            raise ServerError(f"{self.url}/chat/completions: asked for n={settings.n} completions, got {len(row)} "
                              "(does the server support n?)")
        return row

    def choice_logprobs(self, contexts: Sequence[str], options: Sequence[str]) -> list[list[float]]:
        raise NoLogprobsError("an OpenAI-compatible chat server gives no log-probs for a given prefix")

    def _score_sequences(self, sequences: list[tuple[list[int], int]]) -> list[float]:
        raise NoLogprobsError("an OpenAI-compatible chat server gives no log-probs for a given prefix")
