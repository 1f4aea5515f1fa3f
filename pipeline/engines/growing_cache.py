"""A key/value cache that grows in blocks, for generation on a CPU.

transformers' ``DynamicCache`` appends each decode step's keys and values with ``torch.cat``: every step copies
the whole cache of every layer. For a judge request (a few hundred prompt tokens, 32 rows) that copy moves about as
many bytes per step as the attention itself reads. Here each layer keeps a buffer with room for ``block`` more
tokens; a step writes its keys and values into the buffer in place, and the layer's ``keys`` / ``values`` are views
of the filled part. The buffer is reallocated (one copy) only when it is full, so a 256-token completion costs
one or two copies instead of 256. The numbers are the same as ``DynamicCache``'s: only where they are stored
changes.

:func:`growing_cache` builds a ``DynamicCache`` for a model with its plain full-attention layers replaced; layers
of other kinds (sliding windows, linear attention) are left as transformers makes them.
"""

from __future__ import annotations

from typing import Any

import torch
from transformers import DynamicCache
from transformers.cache_utils import DynamicLayer

BLOCK = 128  # tokens of room added when a buffer is full


class GrowingLayer(DynamicLayer):
    """``DynamicLayer`` whose keys and values are views of a buffer with spare room on the sequence axis."""

    def __init__(self, block: int = BLOCK, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.block = block
        self._k: torch.Tensor | None = None
        self._v: torch.Tensor | None = None

    def _buffered(self) -> bool:
        """Whether ``keys`` is still the filled part of the buffer (a crop keeps it so; a batch reorder, which
        makes new tensors, does not)."""
        return (self._k is not None and self.keys is not None and self.keys.numel() > 0
                and self.keys.data_ptr() == self._k.data_ptr() and self.keys.shape[:2] == self._k.shape[:2]
                and self.keys.stride() == self._k.stride())

    def update(self, key_states: torch.Tensor, value_states: torch.Tensor, *args: Any, **kwargs: Any
               ) -> tuple[torch.Tensor, torch.Tensor]:
        if not self.is_initialized:
            self.lazy_initialization(key_states, value_states)
        old = self.get_seq_length()
        new = old + key_states.shape[-2]
        if not self._buffered() or new > self._k.shape[-2]:
            room = new + self.block
            shape_k = (*key_states.shape[:2], room, key_states.shape[-1])
            shape_v = (*value_states.shape[:2], room, value_states.shape[-1])
            k = key_states.new_empty(shape_k)
            v = value_states.new_empty(shape_v)
            if old:
                k[:, :, :old].copy_(self.keys)
                v[:, :, :old].copy_(self.values)
            self._k, self._v = k, v
        self._k[:, :, old:new].copy_(key_states)
        self._v[:, :, old:new].copy_(value_states)
        self.keys, self.values = self._k[:, :, :new], self._v[:, :, :new]
        return self.keys, self.values

    def reset(self) -> None:
        self._k = self._v = None
        super().reset()


def growing_cache(config: Any, block: int = BLOCK) -> DynamicCache:
    """A ``DynamicCache`` for ``config`` whose full-attention layers are :class:`GrowingLayer`."""
    cache = DynamicCache(config=config)
    cache.layers = [GrowingLayer(block=block) if type(layer) is DynamicLayer else layer for layer in cache.layers]
    return cache
