"""The OpenAI-compatible engine with several requests in flight, against pipeline/engines/openai_stub.py on
127.0.0.1."""

import threading

import pytest

from pipeline.engines.base import SamplingSettings
from pipeline.engines.openai import OpenAIEngine, ServerError
from pipeline.engines.openai_stub import StubServer

SETTINGS = SamplingSettings(n=2, temperature=0.0, top_p=1.0, max_new_tokens=8, seed=0)


def convs(n):
    return [[{"role": "user", "content": f"prompt {i}"}] for i in range(n)]


def test_results_keep_input_order_when_later_requests_finish_first():
    # prompt i waits (20 - i) * 10 ms: the last ones answer first
    with StubServer(latency_of=lambda text: (20 - int(text.split()[1])) * 0.01) as url:
        engine = OpenAIEngine(url, "stub", api_key_env=None, max_concurrency=8)
        out = engine.generate(convs(20), SETTINGS)
    assert [[c.text for c in row] for row in out] == [[f"echo 0: prompt {i}", f"echo 1: prompt {i}"]
                                                      for i in range(20)]


@pytest.mark.parametrize("limit", [1, 3, 8])
def test_never_more_requests_in_flight_than_the_limit(limit):
    stub = StubServer(latency=0.05)
    with stub as url:
        OpenAIEngine(url, "stub", api_key_env=None, max_concurrency=limit).generate(convs(24), SETTINGS)
    assert stub.requests == 24 and stub.max_in_flight == limit


def test_each_request_is_retried_on_its_own():
    stub = StubServer(latency=0.01, fail_first=2)  # every prompt: 503, 503, then an answer
    with stub as url:
        engine = OpenAIEngine(url, "stub", api_key_env=None, max_concurrency=4, sleep=lambda s: None)
        out = engine.generate(convs(10), SETTINGS)
    assert [row[0].text for row in out] == [f"echo 0: prompt {i}" for i in range(10)]
    assert stub.requests == 30 and engine.retries == 20 and engine.retry_seconds == 0.0  # Retry-After: 0


class Gathering(StubServer):
    """Answers no request until ``parties`` of them are in flight together, then all of them at once: a client that
    keeps fewer in flight never gets an answer. After ``patience`` seconds of waiting a request is refused with
    HTTP 400 (not retried), so such a client fails with the count instead of hanging; the clock decides only
    when the test has already failed."""

    def __init__(self, parties, patience=30.0):
        super().__init__(latency=0.0)
        self.barrier = threading.Barrier(parties, timeout=patience)
        self.waiting = self.most_waiting = 0

    def answer(self, payload):
        with self.lock:
            self.waiting += 1
            self.most_waiting = max(self.most_waiting, self.waiting)
        try:
            self.barrier.wait()
        except threading.BrokenBarrierError:
            return 400, {"error": {"message": f"fewer than {self.barrier.parties} requests in flight at once"}}
        finally:
            with self.lock:
                self.waiting -= 1
        return super().answer(payload)


@pytest.mark.parametrize("limit", [2, 8])
def test_concurrency_overlaps_the_waiting(limit):
    stub = Gathering(limit)
    with stub as url:
        out = OpenAIEngine(url, "stub", api_key_env=None, max_concurrency=limit).generate(convs(4 * limit), SETTINGS)
    assert [row[0].text for row in out] == [f"echo 0: prompt {i}" for i in range(4 * limit)]
    assert stub.requests == 4 * limit and stub.most_waiting == limit  # never more than the limit either


class Refusing(StubServer):
    """Refuses prompt 0 with HTTP 400 (not retried); the rest answer after the latency."""

    def answer(self, payload):
        if payload["messages"][-1]["content"] == "prompt 0":
            with self.lock:
                self.requests += 1
            return 400, {"error": {"message": "bad request"}}
        return super().answer(payload)


def test_a_request_that_cannot_succeed_stops_the_batch_and_cancels_the_rest():
    stub = Refusing(latency=0.1)
    with stub as url:
        engine = OpenAIEngine(url, "stub", api_key_env=None, max_concurrency=2)
        with pytest.raises(ServerError, match=r"/chat/completions: HTTP 400 — .*bad request.* \(not retried"):
            engine.generate(convs(40), SETTINGS)
    assert stub.requests < 10  # the queued requests were cancelled, not sent


def test_max_concurrency_is_a_validated_param():
    from pipeline.config import parse_params
    from pipeline.errors import ConfigError

    with pytest.raises(ConfigError, match="evaluate.openai_max_concurrency"):
        parse_params({"evaluate": {"openai_max_concurrency": 0}})
    with pytest.raises(ValueError, match="at least 1"):
        OpenAIEngine("http://127.0.0.1:1/v1", "m", api_key_env=None, max_concurrency=0)
