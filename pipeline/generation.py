"""What every generating step shares: how it generates (resumably or not) and the counts it reports."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from pipeline.engines.base import Completion, Conversation, Engine, SamplingSettings
from pipeline.shards import ShardCache


@dataclass
class Generation:
    """An engine, and the shard cache that makes a stage's generation resumable (None: generate directly).

    Step functions take this instead of an engine, so that a stage gets crash-safe generation and a test can
    pass an engine alone.
    """

    engine: Engine
    cache: ShardCache | None = None
    shard_size: int = 64

    def generate(self, conversations: Sequence[Conversation], settings: SamplingSettings, name: str = "shard",
                 desc: str = "generate", shard_size: int | None = None) -> list[list[Completion]]:
        """Like ``engine.generate``; with a cache, in shards named ``name-00000``, ... saved as they finish."""
        if self.cache is None:
            return self.engine.generate(conversations, settings, desc=desc)
        return self.cache.generate(self.engine, conversations, settings, shard_size or self.shard_size, name=name,
                                   desc=desc)

    def finish(self) -> None:
        """Call once the stage's outputs are written: its finished shards are no longer needed."""
        if self.cache is not None:
            self.cache.finish()


def token_stats(completions: Iterable[Sequence[Completion]]) -> dict[str, int]:
    """Generated and prompt tokens, sequences and how many were cut at max_new_tokens."""
    flat = [c for row in completions for c in row]
    return {"generated_tokens": sum(c.num_tokens for c in flat),
            "prompt_tokens": sum(c.num_prompt_tokens for c in flat),
            "sequences": len(flat),
            "truncated": sum(c.finish_reason == "length" for c in flat)}


def histogram(values: Iterable[Any], bins: Iterable[Any]) -> dict[str, int]:
    """Counts per bin (every bin present, zero or not); values outside the bins get their own entry."""
    out = {str(b): 0 for b in bins}
    for v in values:
        out[str(v)] = out.get(str(v), 0) + 1
    return out
