"""Qwen2-VL / Qwen2.5-VL video input without the Hugging Face video processor (which needs torchvision): resize a
segment's frames to a multiple of patch × merge, normalise, and flatten them into the vision tower's patch rows.

The format (the model's own contract, checked against transformers' PIL image processor in the tests): frames are
grouped ``temporal_patch_size`` at a time (the last frame repeated to fill a group); each row is one
``patch × patch`` square of one group, its values ordered channel, frame, row, column; rows run over groups, then
over ``merge × merge`` blocks in raster order, then over the patches inside a block in raster order. One video of
grid (t, h, w) is t·h·w rows and becomes t·h·w / merge² tokens in the language model.

The sizes come from the checkpoint: patch sizes from ``config.vision_config``, mean, std and pixel bounds from its
``video_preprocessor_config.json`` or ``preprocessor_config.json`` (CLIP's mean and std where neither says).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from thrifty.core.errors import ConfigError


@dataclass(frozen=True)
class VisionSpec:
    """How frames become patch rows for one checkpoint."""

    patch_size: int
    temporal_patch_size: int
    merge_size: int
    mean: tuple[float, ...]
    std: tuple[float, ...]
    min_pixels: int | None = None
    max_pixels: int | None = None

    @property
    def factor(self) -> int:
        """Frame sides must be multiples of this (one merged token covers factor × factor pixels)."""
        return self.patch_size * self.merge_size

    def tokens(self, grid_thw: tuple[int, int, int]) -> int:
        """Language-model tokens of one video of this patch grid."""
        t, h, w = grid_thw
        return t * h * w // self.merge_size ** 2


def _pixels(conf: dict, key: str, size_key: str) -> int | None:
    value = conf.get(key, (conf.get("size") or {}).get(size_key))
    return int(value) if value is not None else None


def vision_spec(model_config, folder: str | Path | None = None) -> VisionSpec:
    """The spec of a loaded model's config, with normalisation and pixel bounds from ``folder``'s processor files."""
    from transformers.image_utils import OPENAI_CLIP_MEAN, OPENAI_CLIP_STD

    vc = model_config.vision_config
    kw: dict = {"patch_size": int(vc.patch_size), "temporal_patch_size": int(vc.temporal_patch_size),
                "merge_size": int(vc.spatial_merge_size), "mean": tuple(OPENAI_CLIP_MEAN),
                "std": tuple(OPENAI_CLIP_STD)}
    for name in ("video_preprocessor_config.json", "preprocessor_config.json"):
        path = Path(folder) / name if folder is not None else None
        if path is not None and path.is_file():
            conf = json.loads(path.read_text(encoding="utf-8"))
            if "image_mean" in conf and "image_std" in conf:
                kw["mean"], kw["std"] = tuple(map(float, conf["image_mean"])), tuple(map(float, conf["image_std"]))
            kw["min_pixels"] = _pixels(conf, "min_pixels", "shortest_edge")
            kw["max_pixels"] = _pixels(conf, "max_pixels", "longest_edge")
            break
    return VisionSpec(**kw)


def fit_size(height: int, width: int, spec: VisionSpec) -> tuple[int, int]:
    """(h, w) nearest to the frame's that are multiples of ``spec.factor`` and hold between min and max pixels."""
    f = spec.factor
    h, w = max(f, round(height / f) * f), max(f, round(width / f) * f)
    if spec.max_pixels is not None and h * w > spec.max_pixels:
        shrink = math.sqrt(height * width / spec.max_pixels)
        h, w = max(f, math.floor(height / shrink / f) * f), max(f, math.floor(width / shrink / f) * f)
    elif spec.min_pixels is not None and h * w < spec.min_pixels:
        grow = math.sqrt(spec.min_pixels / (height * width))
        h, w = math.ceil(height * grow / f) * f, math.ceil(width * grow / f) * f
    return h, w


def pack_video(frames: np.ndarray, spec: VisionSpec, size: tuple[int, int] | None = None
               ) -> tuple[torch.Tensor, tuple[int, int, int]]:
    """(T, H, W, 3) uint8 frames → (rows, 3 · temporal · patch²) float32 patch rows and the (t, h, w) grid.

    ``size`` (multiples of the factor) overrides :func:`fit_size`; frames of another size are resized bicubically
    (antialiased), then scaled to [0, 1] and normalised with the checkpoint's mean and std.
    """
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.shape[0] < 1:
        raise ConfigError(f"expected (frames, height, width, 3) pixels, got shape {frames.shape}")
    hh, ww = size or fit_size(frames.shape[1], frames.shape[2], spec)
    f, p, m, tp = spec.factor, spec.patch_size, spec.merge_size, spec.temporal_patch_size
    if hh % f or ww % f:
        raise ConfigError(f"frame size {hh}×{ww} is not a multiple of {f} (patch {p} × merge {m})")
    x = torch.from_numpy(np.ascontiguousarray(frames)).permute(0, 3, 1, 2).float()
    if x.shape[-2:] != (hh, ww):
        x = torch.nn.functional.interpolate(x, size=(hh, ww), mode="bicubic", antialias=True,
                                            align_corners=False).clamp_(0, 255)
    mean = torch.tensor(spec.mean).view(1, 3, 1, 1)
    std = torch.tensor(spec.std).view(1, 3, 1, 1)
    x = (x / 255.0 - mean) / std
    if x.shape[0] % tp:
        x = torch.cat([x, x[-1:].expand(tp - x.shape[0] % tp, -1, -1, -1)])
    gt, gh, gw = x.shape[0] // tp, hh // p, ww // p
    x = x.reshape(gt, tp, 3, gh // m, m, p, gw // m, m, p)
    x = x.permute(0, 3, 6, 4, 7, 2, 1, 5, 8)  # group, block row, block col, row in block, col in block | C, tp, p, p
    return x.reshape(gt * gh * gw, 3 * tp * p * p).contiguous(), (gt, gh, gw)
