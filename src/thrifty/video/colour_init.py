"""Data-driven start for the colour slots of the slot and silhouette stems: k-means over the distinct colours of
training frames, turned into the 1×1 convolution whose softmax assigns each pixel to its nearest centre. Pure
numpy, seeded; no knowledge of the generator's palette.

Pixels are binned (``bin_width`` levels per channel) and each occupied bin counts once, so a few small sprites
weigh as much as the large backgrounds that cover most pixels. Nearest-centre assignment is affine in the pixel:
‖x − c‖² = ‖x‖² − 2 x·c + ‖c‖², and ‖x‖² is the same for every centre, so logit_k = s·(2 x·c_k − ‖c_k‖²) gives
softmax shares that sharpen to the nearest centre as the sharpness s grows.
"""

from __future__ import annotations

import numpy as np

from thrifty.core.errors import ConfigError


def distinct_colours(frames: np.ndarray, bin_width: int = 16) -> np.ndarray:
    """(U, 3) float in [−0.5, 0.5]: the centre of every occupied colour bin of ``frames`` (…, 3) uint8."""
    if frames.ndim < 2 or frames.shape[-1] != 3 or not 1 <= bin_width <= 256:
        raise ConfigError(f"need (..., 3) RGB frames and a bin width in [1, 256], got {frames.shape}, {bin_width}")
    bins = np.unique(frames.reshape(-1, 3).astype(np.int64) // bin_width, axis=0)
    return (np.minimum(bins * bin_width + bin_width / 2, 255.0)) / 255.0 - 0.5


def kmeans(x: np.ndarray, k: int, rng: np.random.Generator, iters: int = 50) -> np.ndarray:
    """(k, D) centres of Lloyd's k-means from a k-means++ start; an empty cluster keeps its centre."""
    if len(x) < k or k < 1:
        raise ConfigError(f"k-means needs at least k = {k} points, got {len(x)}")
    centres = x[rng.integers(len(x))][None]
    for _ in range(k - 1):
        d = ((x[:, None] - centres[None]) ** 2).sum(-1).min(1)
        pick = rng.choice(len(x), p=d / d.sum()) if d.sum() > 0 else rng.integers(len(x))
        centres = np.vstack([centres, x[pick]])
    for _ in range(iters):
        label = ((x[:, None] - centres[None]) ** 2).sum(-1).argmin(1)
        new = np.stack([x[label == j].mean(0) if (label == j).any() else centres[j] for j in range(k)])
        if np.allclose(new, centres):
            break
        centres = new
    return centres


def nearest_centre_logits(centres: np.ndarray, sharpness: float) -> tuple[np.ndarray, np.ndarray]:
    """(weight (K, D), bias (K,)) with x @ weight.T + bias = s·(2 x·c_k − ‖c_k‖²): its argmax is the nearest centre."""
    if not sharpness > 0:
        raise ConfigError(f"sharpness must be positive, got {sharpness}")
    return 2.0 * sharpness * centres, -sharpness * (centres ** 2).sum(1)
