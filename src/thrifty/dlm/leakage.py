"""Train/test assignment by a hash of a canonical key, so one problem (grid, number set, operand pair) can never be
in both splits whatever the seed or the number of examples drawn."""

from __future__ import annotations

import hashlib


def split_of(key: str, test_share: float) -> str:
    """``"test"`` for a fixed ``test_share`` of keys, ``"train"`` for the rest; depends on the key alone."""
    h = int.from_bytes(hashlib.sha256(key.encode()).digest()[:8], "big") / 2.0**64
    return "test" if h < test_share else "train"


__all__ = ["split_of"]
