"""The one small interface every generation backend implements."""

from __future__ import annotations

import abc
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

Conversation = Sequence[dict[str, str]]


class NoLogprobsError(NotImplementedError):
    """The engine cannot score a given continuation (an OpenAI-compatible chat server)."""


@dataclass(frozen=True)
class SamplingSettings:
    n: int = 1
    temperature: float = 1.0  # 0 means greedy
    top_p: float = 1.0
    max_new_tokens: int = 256
    stop: tuple[str, ...] = ()
    seed: int = 0
    logprobs: bool = False  # return the raw (untempered) log-prob of every generated token
    # (suffix, options): after each completion, the log-prob of each option following ``suffix`` (a forced
    # verdict such as "\nWinner: Judgment " + A|B), read from the generation's own KV cache where the
    # engine can (hf); Completion.choice_logprobs stays None where it cannot.
    force_choice: tuple[str, tuple[str, ...]] | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"n": self.n, "temperature": self.temperature, "top_p": self.top_p,
                "max_new_tokens": self.max_new_tokens, "stop": list(self.stop), "seed": self.seed}


@dataclass
class Completion:
    text: str  # without the stop string
    num_tokens: int
    finish_reason: str  # "stop" (end of sequence or a stop string) or "length"
    num_prompt_tokens: int = 0
    stop_string: str | None = None  # the stop string that ended it, if any
    token_ids: list[int] = field(default_factory=list)  # without the end-of-sequence token
    logprobs: list[float] | None = None
    # logprobs on: raw log p(tokenizer's EOS | prompt + completion), the token TRL appends: at the step that
    # ended it (whichever EOS id did), or, for a completion cut at max_new_tokens, at the next position (hf
    # engine; vLLM gives it only when the tokenizer's EOS itself ended the completion)
    stop_logprob: float | None = None
    choice_logprobs: list[float] | None = None  # settings.force_choice: one log-prob per option

    def generated_fields(self) -> dict[str, Any]:
        """Token ids and raw log-probs as row fields (the dpo stage reuses them as reference log-probs)."""
        return {"token_ids": list(self.token_ids),
                "logprob": float(sum(self.logprobs)) if self.logprobs is not None else None,
                "stop_logprob": self.stop_logprob}


class Engine(abc.ABC):
    """Loads one model once; generates completions for chat conversations and scores continuations."""

    backend: str = ""

    def __init__(self, model_path: str, tokenizer: Any) -> None:
        self.model_path = model_path
        self.tokenizer = tokenizer

    def format_chat(self, conversation: Conversation) -> str:
        """The conversation as the raw text the model sees, ending inside the assistant's turn."""
        messages = list(conversation)
        if messages and messages[-1]["role"] == "assistant":  # a prefilled answer: continue it
            return self.tokenizer.apply_chat_template(messages, tokenize=False, continue_final_message=True)
        return self.tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)

    def encode(self, text: str) -> list[int]:
        # The chat template already writes the special tokens it needs.
        return list(self.tokenizer(text, add_special_tokens=False)["input_ids"])

    @abc.abstractmethod
    def generate(self, conversations: Sequence[Conversation], settings: SamplingSettings,
                 desc: str = "generate") -> list[list[Completion]]:
        """``settings.n`` completions for every conversation, in input order."""

    @abc.abstractmethod
    def _score_sequences(self, sequences: list[tuple[list[int], int]]) -> list[float]:
        """For each (token ids, start), the summed log-prob of ids[start:] given ids[:start]."""

    def choice_logprobs(self, contexts: Sequence[str], options: Sequence[str]) -> list[list[float]]:
        """For each raw-text context, the log-prob of each option as its continuation.

        The option is tokenized together with the context (``Score: `` + ``3`` may merge differently than
        apart); the continuation scored is what follows the longest common token prefix.
        """
        requests: list[tuple[list[int], int]] = []
        for ctx in contexts:
            ctx_ids = self.encode(ctx)
            for opt in options:
                full = self.encode(ctx + opt)
                common = min(common_prefix_length(ctx_ids, full), len(full) - 1)
                requests.append((full, common))
        scores = self._score_requests(requests)
        k = len(options)
        return [scores[i * k:(i + 1) * k] for i in range(len(contexts))]

    def _score_requests(self, requests: list[tuple[list[int], int]]) -> list[float]:
        """Score continuations; one-token continuations that share a prefix share one forward pass.

        Forced verdicts (``Score: `` + one of six digits, ``Winner: Judgment `` + A or B) are all one-token
        continuations of the same context, so this turns 6 (or 2) passes over a long prompt into one.
        """
        out: list[float] = [0.0] * len(requests)
        groups: dict[tuple[int, ...], list[int]] = {}
        rest: list[int] = []
        for i, (seq, begin) in enumerate(requests):
            if len(seq) - begin == 1:
                groups.setdefault(tuple(seq[:begin]), []).append(i)
            else:
                rest.append(i)
        if groups:
            prefixes = list(groups)
            for prefix, logps in zip(prefixes, self._next_token_logprobs(
                    [list(p) for p in prefixes], [[requests[i][0][-1] for i in groups[p]] for p in prefixes])):
                for i, value in zip(groups[prefix], logps):
                    out[i] = value
        if rest:
            for i, value in zip(rest, self._score_sequences([requests[i] for i in rest])):
                out[i] = value
        return out

    def _next_token_logprobs(self, prefixes: list[list[int]], tokens: list[list[int]]) -> list[list[float]]:
        """For each prefix, the log-prob of each of its candidate next tokens (default: one sequence each)."""
        flat = [(prefix + [tok], len(prefix)) for prefix, toks in zip(prefixes, tokens) for tok in toks]
        scores = iter(self._score_sequences(flat))
        return [[next(scores) for _ in toks] for toks in tokens]

    def report(self) -> dict[str, Any]:
        """What the stage's metrics should say about this engine (servers: requests, retries, fallbacks)."""
        return {}

    def close(self) -> None:
        pass


def common_prefix_length(a: Sequence[int], b: Sequence[int]) -> int:
    """How many leading token ids two sequences share."""
    n = 0
    for x, y in zip(a, b):
        if x != y:
            break
        n += 1
    return n


def truncate_at_stop(text: str, stop: Sequence[str]) -> tuple[str, str | None]:
    """Cut ``text`` at the first stop string; return the kept text and the stop string found."""
    best: tuple[int, str] | None = None
    for s in stop:
        i = text.find(s)
        if i >= 0 and (best is None or i < best[0]):
            best = (i, s)
    if best is None:
        return text, None
    return text[: best[0]], best[1]


def generation_eos_ids(model_path: str) -> list[int]:
    """The end-of-sequence ids of a model directory's generation config (vLLM stops on these too)."""
    from transformers import GenerationConfig

    try:
        eos = GenerationConfig.from_pretrained(str(model_path)).eos_token_id
    except (OSError, ValueError):
        return []
    return [] if eos is None else (list(eos) if isinstance(eos, list) else [eos])


def vllm_completion(text: str, token_ids: Sequence[int], logprobs: list[float] | None, finish_reason: str | None,
                    stop_reason: Any, stop: Sequence[str], num_prompt_tokens: int, eos_ids: set[int],
                    tokenizer_eos: int | None) -> Completion:
    """A completion as vLLM reports it (offline or served), in this interface's terms: the ids without the
    end-of-sequence token that ended it, and that token's log-prob kept only when it is the tokenizer's EOS (the
    token TRL appends)."""
    text, stop_string = truncate_at_stop(text, stop)
    if stop_string is None and isinstance(stop_reason, str):
        stop_string = stop_reason
    ids = list(token_ids)
    logps = None if logprobs is None else list(logprobs)
    stop_logprob = None
    if ids and ids[-1] in eos_ids and finish_reason != "length":
        ended_by = ids.pop()
        if logps is not None:
            last = logps.pop()
            stop_logprob = last if ended_by == tokenizer_eos else None
    return Completion(text=text, num_tokens=len(ids), finish_reason="length" if finish_reason == "length" else "stop",
                      num_prompt_tokens=num_prompt_tokens, stop_string=stop_string, token_ids=ids, logprobs=logps,
                      stop_logprob=stop_logprob)
