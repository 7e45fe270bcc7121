"""Key/value caches for semi-autoregressive block decoding (Fast-dLLM style), for models with ``forward_kv``.

A block sampler decodes the answer one block at a time, running the whole sequence at every step. At a block's
first step (and every ``refresh`` steps within it, when set) :class:`BlockKVCache` runs the whole sequence once,
keeping every layer's keys and values; the block's other steps run fewer positions against those cached ones:

- ``prefix``: the prompt and committed blocks come from the cache; the current block and everything after it are
  run (their queries attend to the cached prefix keys and to their own fresh keys).
- ``dual``: the suffix (the later blocks, all masks) is cached too; only the current block is run.

The approximation (Fast-dLLM's): in a bidirectional model the cached positions' keys and values at layers above
the first depend on the whole sequence, the current block included; when the block commits tokens they would
change, but the cache keeps the ones from the refresh. Exact are: the first step after each refresh; every step
with ``refresh=1``; and a one-layer model whatever happens (its keys and values are functions of the token and
position alone, and cached positions keep their tokens until the next block boundary — committed prefix tokens
never change, suffix blocks stay masks). The logits of the prefix cache equal a full forward whenever the
sequence has not changed since the refresh.
"""

from __future__ import annotations

from typing import Any

import torch

from thrifty.core.errors import ConfigError, check_choice

CACHE_MODES = ("none", "prefix", "dual")


def check_mode(mode: str, refresh: int = 0) -> None:
    check_choice("cache", mode, CACHE_MODES)
    if refresh < 0:
        raise ConfigError(f"cache_refresh must be >= 0 (0: at block boundaries only), got {refresh}")


class BlockKVCache:
    """One sampling run's cache: ``logits(ids, block, block_step)`` gives the logits (B, block length, V) of the
    block's columns, from a full forward at a refresh and from the cached context otherwise. ``forwards`` counts
    full passes and ``partial`` the cached ones."""

    def __init__(self, model: Any, mode: str, refresh: int = 0) -> None:
        check_mode(mode, refresh)
        if mode == "none":
            raise ConfigError("a BlockKVCache needs mode 'prefix' or 'dual'")
        if not callable(getattr(model, "forward_kv", None)):
            raise ConfigError(f"{type(model).__name__} has no forward_kv(ids, positions, context): key/value caching "
                              "needs thrifty's DiffusionLM (see thrifty.dlm.kv_cache)")
        self.model, self.mode, self.refresh = model, mode, refresh
        self._key: tuple[int, int, int] | None = None
        self._context: list[tuple[torch.Tensor, torch.Tensor]] = []
        self.forwards = self.partial = 0

    def _stale(self, ids: torch.Tensor, block: tuple[int, int], block_step: int) -> bool:
        key = (ids.shape[0], block[0], block[1])
        return key != self._key or (self.refresh > 0 and block_step % self.refresh == 0)

    def logits(self, ids: torch.Tensor, block: tuple[int, int], block_step: int) -> torch.Tensor:
        lo, hi = block
        b, n = ids.shape
        if not 0 <= lo < hi <= n:
            raise ConfigError(f"block {block} is outside a sequence of {n} positions")
        positions = torch.arange(n, device=ids.device).expand(b, n)
        if self._stale(ids, block, block_step):
            logits, kv = self.model.forward_kv(ids, positions)
            if self.mode == "prefix":
                self._context = [(k[:, :, :lo], v[:, :, :lo]) for k, v in kv]
            else:
                def cut(t: torch.Tensor) -> torch.Tensor:  # every position but the block's
                    return torch.cat([t[:, :, :lo], t[:, :, hi:]], 2)

                self._context = [(cut(k), cut(v)) for k, v in kv]
            self._key = (b, lo, hi)
            self.forwards += 1
            return logits[:, lo:hi]
        end = n if self.mode == "prefix" else hi
        logits, _ = self.model.forward_kv(ids[:, lo:end], positions[:, lo:end], self._context)
        self.partial += 1
        return logits[:, :hi - lo]


__all__ = ["CACHE_MODES", "BlockKVCache", "check_mode"]
