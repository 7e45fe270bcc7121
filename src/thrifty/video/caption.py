"""Dense "caption" targets for the visual stem: which sprites (shape × colour) and which background colour each
visual token sees. Pure numpy.

Tempo's compressor starts from a pretrained VLM that already perceives; ours is trained from scratch, so a
caption pre-stage teaches the stem to see before the compressor learns to pick what a query needs. A visual token
covers ``tubelet`` consecutive frames of a segment and one cell of a ``grid × grid`` split of the frame (the
compressor's token order: tubelet-major, then cells row-major). A sprite class is on for a token when at least
one pixel of that class is visible (after occlusion, in painting order) in the token's cell on one of its frames;
a background class is on when one of its frames belongs to that background phase.
"""

from __future__ import annotations

import numpy as np

from thrifty.core.errors import ConfigError
from thrifty.video.synth import BACKGROUNDS, COLOURS, SHAPES, NeedleVideo, shape_mask


def caption_classes() -> tuple[str, ...]:
    """``"<colour> <shape>"`` for every sprite kind, then ``"background <name>"`` for every background."""
    return (*(f"{c} {s}" for s in SHAPES for c in COLOURS), *(f"background {b}" for b in BACKGROUNDS))


def segment_rows(segments, n_frames: int) -> np.ndarray:
    """(S, n_frames) source-frame indices: each segment's frames, the last repeated (or the tail cut)."""
    rows = []
    for seg in segments:
        idx = np.asarray(seg, dtype=np.int64)[:n_frames]
        if idx.size == 0:
            raise ConfigError("a segment has no frames")
        rows.append(np.concatenate([idx, np.full(n_frames - idx.size, idx[-1])]))
    return np.stack(rows)


def sprite_map(video: NeedleVideo, sprite: int = 7) -> np.ndarray:
    """(T, H, W) int16: the sprite class visible at each pixel (index into :func:`caption_classes`), −1 for none."""
    t, h, w = video.frames.shape[:3]
    out = np.full((t, h, w), -1, dtype=np.int16)
    for tr in video.tracks:  # painting order: a later sprite covers an earlier one, as in the frames
        dy, dx = np.nonzero(shape_mask(tr.shape, sprite))
        cls = SHAPES.index(tr.shape) * len(COLOURS) + list(COLOURS).index(tr.colour)
        out[tr.ts[:, None], tr.ys[:, None] + dy[None, :], tr.xs[:, None] + dx[None, :]] = cls
    return out


def background_ids(video: NeedleVideo) -> np.ndarray:
    """(T,) index of each frame's background phase colour among BACKGROUNDS."""
    ids = np.full(video.n_frames, -1, dtype=np.int64)
    for name, start, stop in video.background:
        ids[start:stop] = list(BACKGROUNDS).index(name)
    return ids


def token_labels(video: NeedleVideo, n_frames: int = 8, tubelet: int = 2, grid: int = 2,
                 sprite: int = 7) -> np.ndarray:
    """(S, V, C) bool caption targets of every visual token of every segment (V = n_frames/tubelet · grid²)."""
    h, w = video.frames.shape[1:3]
    if n_frames % tubelet or h % grid or w % grid:
        raise ConfigError(f"{n_frames} frames must split into tubelets of {tubelet}, {h}×{w} pixels into a "
                          f"{grid}×{grid} grid")
    rows = segment_rows(video.plan.segments, n_frames)  # (S, F)
    s, n_sprite, n_cls = rows.shape[0], len(SHAPES) * len(COLOURS), len(caption_classes())
    n_tube, cells = n_frames // tubelet, grid * grid
    pix = sprite_map(video, sprite)[rows]  # (S, F, H, W)
    cell = (np.arange(h)[:, None] // (h // grid)) * grid + np.arange(w)[None, :] // (w // grid)  # (H, W)
    token = (np.arange(n_frames) // tubelet)[:, None, None] * cells + cell[None]  # (F, H, W)
    flat_token = (np.arange(s)[:, None, None, None] * (n_tube * cells) + token[None])  # (S, F, H, W)
    out = np.zeros(s * n_tube * cells * n_cls, dtype=bool)
    seen = pix >= 0
    out[flat_token[seen] * n_cls + pix[seen]] = True
    bg = background_ids(video)[rows]  # (S, F)
    tube_tokens = (np.arange(s)[:, None, None] * n_tube + (np.arange(n_frames) // tubelet)[None, :, None]) * cells
    bg_flat = (tube_tokens + np.arange(cells)[None, None, :]) * n_cls + n_sprite + bg[:, :, None]
    out[bg_flat.ravel()] = True
    return out.reshape(s, n_tube * cells, n_cls)
