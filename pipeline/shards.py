"""Resumable generation: work is cut into shards, each saved atomically once finished.

DVC deletes a stage's declared outputs before running it again, so finished shards live under ``.work/``,
in a folder named after the stage, the iteration and a hash of everything the stage's output depends on
(model weights, params, templates, inputs). A re-run with the same inputs reuses every finished shard; a
shard's file name also carries the hash of its own requests, so a changed request is never served from an
old shard. :meth:`ShardCache.finish` removes the folder (and stale ones of the same stage) once the
stage's outputs are written.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pipeline.engines.base import Completion, Conversation, Engine, SamplingSettings
from pipeline.paths import WORK
from pipeline.records import _atomic_write

log = logging.getLogger("pipeline")


def digest(*parts: Any) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str, ensure_ascii=False).encode()).hexdigest()[:16]


def shard_seed(seed: int, name: str) -> int:
    """A per-shard seed: the same shard draws the same samples whether or not a run was interrupted."""
    return int(hashlib.sha256(f"{seed}:{name}".encode()).hexdigest()[:8], 16)


class ShardCache:
    def __init__(self, stage: str, key: str, inputs: Any, root: Path = WORK, enabled: bool = True) -> None:
        self.prefix = f"{stage}-{key}-"
        self.root = root
        self.dir = root / f"{self.prefix}{digest(inputs)}"
        self.enabled = enabled
        self.reused = 0
        self.generated = 0

    def generate(self, engine: Engine, conversations: Sequence[Conversation], settings: SamplingSettings,
                 shard_size: int, name: str = "shard", desc: str = "generate") -> list[list[Completion]]:
        """Like ``engine.generate``, in shards of ``shard_size`` conversations, each saved when done."""
        out: list[list[Completion]] = []
        total = (len(conversations) + shard_size - 1) // shard_size
        for s, start in enumerate(range(0, len(conversations), shard_size)):
            chunk = list(conversations[start:start + shard_size])
            shard_name = f"{name}-{s:05d}"
            seeded = dataclasses.replace(settings, seed=shard_seed(settings.seed, shard_name))
            path = self.dir / f"{shard_name}-{digest(chunk, dataclasses.asdict(seeded))}.jsonl"
            if self.enabled and path.exists():
                rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
                out.extend([Completion(**c) for c in row] for row in rows)
                self.reused += 1
                continue
            result = engine.generate(chunk, seeded, desc=f"{desc} [{s + 1}/{total}]")
            if self.enabled:
                lines = [json.dumps([dataclasses.asdict(c) for c in row], ensure_ascii=False) for row in result]
                _atomic_write(path, lambda fh, lines=lines: fh.write("\n".join(lines) + "\n"))
            self.generated += 1
            out.extend(result)
        return out

    def finish(self) -> None:
        """Forget this stage's shards (and stale ones of the same stage and iteration)."""
        if self.reused:
            log.info("%s: reused %d finished shard(s), generated %d", self.prefix.rstrip("-"), self.reused,
                     self.generated)
        for d in self.root.glob(f"{self.prefix}*"):
            shutil.rmtree(d, ignore_errors=True)
