"""Still frames of a few scattered sprites with the (shape, colour) kinds they show: the cheapest lesson in seeing,
for the stem before any video (training stage ``sprites``). Pure numpy, seeded.

Each frame is one background colour of the needle generator with a random brightness offset and a spatial ramp,
and 1–``max_sprites`` sprites of random shape, colour and place, painted in order (a later one covers an earlier
one). A kind is labelled present when at least ``visible`` of its sprite's pixels are still visible, so a sprite
mostly hidden by another does not count. Labels are indices into the first 30 entries of
:func:`thrifty.video.caption.caption_classes` (shape-major, then colour).
"""

from __future__ import annotations

import numpy as np

from thrifty.core.errors import ConfigError
from thrifty.video.synth import BACKGROUNDS, COLOURS, SHAPES, shape_mask


def sprite_frames(n: int, rng: np.random.Generator, size: int = 32, sprite: int = 7, max_sprites: int = 3,
                  visible: float = 0.6) -> tuple[np.ndarray, np.ndarray]:
    """(frames (n, size, size, 3) uint8, labels (n, shapes·colours) bool)."""
    if n < 0 or max_sprites < 1 or size < sprite or not 0 < visible <= 1:
        raise ConfigError(f"need n >= 0, max_sprites >= 1, size >= sprite and visible in (0, 1], got {n}, "
                          f"{max_sprites}, {size}/{sprite}, {visible}")
    palette, backgrounds = np.array(list(COLOURS.values())), np.array(list(BACKGROUNDS.values()))
    masks = [shape_mask(s, sprite) for s in SHAPES]
    n_col = len(COLOURS)
    frames = np.empty((n, size, size, 3), dtype=np.float32)
    labels = np.zeros((n, len(SHAPES) * n_col), dtype=bool)
    ramp = np.linspace(-10.0, 10.0, size, dtype=np.float32)
    for i in range(n):
        grad = ramp[None, :, None] if rng.random() < 0.5 else ramp[:, None, None]
        frames[i] = backgrounds[rng.integers(len(backgrounds))] + rng.uniform(-8.0, 8.0) + grad
        owner = np.full((size, size), -1)
        kinds = []
        for j in range(int(rng.integers(1, max_sprites + 1))):
            s, c = int(rng.integers(len(SHAPES))), int(rng.integers(n_col))
            y, x = (int(v) for v in rng.integers(0, size - sprite + 1, 2))
            region = frames[i, y:y + sprite, x:x + sprite]
            region[masks[s]] = palette[c]
            owner[y:y + sprite, x:x + sprite][masks[s]] = j
            kinds.append(s * n_col + c)
        shown = np.bincount(owner[owner >= 0], minlength=len(kinds))
        for j, kind in enumerate(kinds):
            if shown[j] >= visible * masks[kind // n_col].sum():
                labels[i, kind] = True
    return np.clip(frames, 0, 255).astype(np.uint8), labels
