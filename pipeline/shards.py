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
from pipeline.records import _atomic_write, digest

log = logging.getLogger("pipeline")


def shard_seed(seed: int, name: str) -> int:
    """A per-shard seed: the same shard draws the same samples whether or not a run was interrupted."""
    return int(hashlib.sha256(f"{seed}:{name}".encode()).hexdigest()[:8], 16)


def _read_shard(path: Path) -> list[list[Completion]]:
    """A finished shard: one line of completions per conversation."""
    return [[Completion(**c) for c in json.loads(line)] for line in path.read_text(encoding="utf-8").splitlines()]


class ShardCache:
    """``replica``: (r, n, run) when the stage runs as one of n engine replicas (``engine.data_parallel_size``):
    each replica claims the shards nobody has started (a ``.claim-<run>`` file made atomically), generates those,
    and reads the others' from disk once they are written; shards keep their own seeds, so the rows are the same
    as one process makes. A claim of another run (a killed one) is ignored."""

    def __init__(self, stage: str, key: str, inputs: Any, root: Path = WORK, enabled: bool = True,
                 replica: tuple[int, int, str] | None = None) -> None:
        self.prefix = f"{stage}-{key}-"
        self.root = root
        self.dir = root / f"{self.prefix}{digest(inputs)}"
        self.enabled = enabled
        self.replica = replica if enabled else None
        self.reused = 0
        self.generated = 0
        self.waited = 0  # shards another replica generated

    def _claim(self, path: Path) -> bool:
        """Whether this replica takes the shard (always, outside replicas)."""
        if self.replica is None:
            return True
        import os

        self.dir.mkdir(parents=True, exist_ok=True)
        try:
            os.close(os.open(path.with_name(f"{path.name}.claim-{self.replica[2]}"), os.O_CREAT | os.O_EXCL | os.O_WRONLY))
        except FileExistsError:
            return False
        return True

    def _wait_for(self, path: Path, desc: str) -> list[list[Completion]]:
        """A shard another replica claimed, once it is on disk (the launcher stops every replica if one fails)."""
        import time

        next_note = time.time() + 600
        while not path.exists():
            time.sleep(0.2)
            if time.time() > next_note:
                log.info("%s: still waiting for %s from another replica", desc, path.name)
                next_note += 600
        self.waited += 1
        return _read_shard(path)

    def generate(self, engine: Engine, conversations: Sequence[Conversation], settings: SamplingSettings,
                 shard_size: int, name: str = "shard", desc: str = "generate") -> list[list[Completion]]:
        """Like ``engine.generate``, in shards of ``shard_size`` conversations, each saved when done."""
        shards: dict[int, list[list[Completion]]] = {}
        elsewhere: list[tuple[int, Path]] = []
        total = (len(conversations) + shard_size - 1) // shard_size
        for s, start in enumerate(range(0, len(conversations), shard_size)):
            chunk = list(conversations[start:start + shard_size])
            shard_name = f"{name}-{s:05d}"
            seeded = dataclasses.replace(settings, seed=shard_seed(settings.seed, shard_name))
            path = self.dir / f"{shard_name}-{digest(chunk, dataclasses.asdict(seeded))}.jsonl"
            if self.enabled and path.exists():
                shards[s] = _read_shard(path)
                self.reused += 1
                continue
            if not self._claim(path):
                elsewhere.append((s, path))
                continue
            result = engine.generate(chunk, seeded, desc=f"{desc} [{s + 1}/{total}]")
            if self.enabled:
                lines = [json.dumps([dataclasses.asdict(c) for c in row], ensure_ascii=False) for row in result]
                _atomic_write(path, lambda fh, lines=lines: fh.write("\n".join(lines) + "\n"))
            self.generated += 1
            shards[s] = result
        for s, path in elsewhere:
            shards[s] = self._wait_for(path, desc)
        if self.replica is not None:
            log.info("%s: replica %d of %d generated %d shard(s), read %d from the others", desc, self.replica[0],
                     self.replica[1], self.generated, self.waited)
        return [row for s in sorted(shards) for row in shards[s]]

    def finish(self) -> None:
        """Forget this stage's shards (and stale ones of the same stage and iteration); under replicas, the
        launching process does it once every replica is done."""
        if self.replica is not None:
            return
        if self.reused:
            log.info("%s: reused %d finished shard(s), generated %d", self.prefix.rstrip("-"), self.reused,
                     self.generated)
        for d in self.root.glob(f"{self.prefix}*"):
            shutil.rmtree(d, ignore_errors=True)
