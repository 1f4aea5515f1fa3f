"""A stand-in OpenAI-compatible chat server on 127.0.0.1 with a fixed latency per request, for the concurrency
benchmark (bench/openai_concurrency.py) and the tests: each answer echoes the last message; the server counts
requests and the most in flight at once, and can refuse the first attempts of every prompt with HTTP 503 (to
exercise per-request retries). Nothing in the pipeline's stages uses it; it lives in the package so that the
benchmark and the tests share one copy.

    with StubServer(latency=0.25) as url:        # url = "http://127.0.0.1:<port>/v1"
        ...
"""

from __future__ import annotations

import json
import threading
import time
from collections import Counter
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class StubServer:
    def __init__(self, latency: float = 0.25, model: str = "stub", fail_first: int = 0,
                 latency_of: Callable[[str], float] | None = None) -> None:
        self.latency, self.model, self.fail_first, self.latency_of = latency, model, fail_first, latency_of
        self.lock = threading.Lock()
        self.requests = 0
        self.in_flight = 0
        self.max_in_flight = 0
        self.attempts: Counter[str] = Counter()
        self._httpd: ThreadingHTTPServer | None = None

    # the handler calls these ------------------------------------------------------------------------------
    def answer(self, payload: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        last = str(payload["messages"][-1]["content"])
        with self.lock:
            self.requests += 1
            self.attempts[last] += 1
            attempt = self.attempts[last]
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            time.sleep(self.latency_of(last) if self.latency_of else self.latency)
            if attempt <= self.fail_first:
                return 503, {"error": {"message": "busy, try again"}}
            n = int(payload.get("n", 1))
            return 200, {"choices": [{"index": i, "message": {"role": "assistant", "content": f"echo {i}: {last}"},
                                      "finish_reason": "stop"} for i in range(n)],
                         "usage": {"completion_tokens": 3 * n}}
        finally:
            with self.lock:
                self.in_flight -= 1

    # lifecycle ----------------------------------------------------------------------------------------------
    def __enter__(self) -> str:
        stub = self

        class Handler(BaseHTTPRequestHandler):
            def _send(self, code: int, body: dict[str, Any]) -> None:
                data = json.dumps(body).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                if code == 503:
                    self.send_header("Retry-After", "0")
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self) -> None:
                self._send(200, {"data": [{"id": stub.model, "object": "model"}]})

            def do_POST(self) -> None:
                payload = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                self._send(*stub.answer(payload))

            def log_message(self, *args: Any) -> None:
                pass

        class Server(ThreadingHTTPServer):
            daemon_threads = True
            request_queue_size = 128

        self._httpd = Server(("127.0.0.1", 0), Handler)
        threading.Thread(target=self._httpd.serve_forever, daemon=True).start()
        return f"http://127.0.0.1:{self._httpd.server_address[1]}/v1"

    def __exit__(self, *exc: object) -> None:
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
