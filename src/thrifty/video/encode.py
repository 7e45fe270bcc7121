"""Writing frames as a real encoded video file with PyAV — H.264 in .mp4, VP9 in .webm — so generated needle
videos reach the models through the same decode path as a camera's file.

``lossless``: 4:4:4 chroma at quantiser 0 (x264 ``qp=0``, VP9 ``lossless=1``) — exact in YUV; the RGB → YUV → RGB
conversion alone leaves at most 1 grey level per channel (mean 0.33 on needle frames). ``standard``: 4:2:0 at the
codecs' everyday quality (x264 crf 23, VP9 crf 32), what a phone or a default ffmpeg run gives and any player
plays; at 32 px the halved chroma smears 7-px sprites, so pair it with ``scale`` (nearest-neighbour upscaling).
The file appears under its name only once complete (written beside it, then renamed). PyAV is imported lazily.
"""

from __future__ import annotations

import os
from fractions import Fraction
from pathlib import Path

import numpy as np

from thrifty.core.errors import ConfigError, DataError

FORMATS = {"mp4": "libx264", "webm": "libvpx-vp9"}  # container → encoder
QUALITIES = {
    ("mp4", "lossless"): ("yuv444p", {"qp": "0", "preset": "medium"}),
    ("mp4", "standard"): ("yuv420p", {"crf": "23", "preset": "medium"}),
    ("webm", "lossless"): ("yuv444p", {"lossless": "1", "cpu-used": "4"}),
    ("webm", "standard"): ("yuv420p", {"crf": "32", "b": "0", "cpu-used": "4"}),
}


def upscale(frames: np.ndarray, scale: int) -> np.ndarray:
    """Each pixel repeated ``scale`` × ``scale`` times (nearest neighbour)."""
    if scale < 1:
        raise ConfigError(f"scale must be a whole number >= 1, got {scale}")
    return frames if scale == 1 else np.repeat(np.repeat(frames, scale, axis=1), scale, axis=2)


def write_video(frames: np.ndarray, path: str | Path, fps: float, quality: str = "lossless", scale: int = 1,
                faststart: bool = False) -> Path:
    """Encode (T, H, W, 3) uint8 RGB frames at ``fps`` into ``path`` (.mp4 or .webm); frame i gets pts i / fps.
    ``faststart`` puts an mp4's index before the frames (for streaming) instead of after them."""
    from thrifty.video.decode import reason, require_av

    path = Path(path)
    fmt = path.suffix.lstrip(".").lower()
    if fmt not in FORMATS:
        raise ConfigError(f"{path}: write .mp4 or .webm (choose from: {', '.join(FORMATS)})")
    if (fmt, quality) not in QUALITIES:
        raise ConfigError(f"unknown quality {quality!r}; choose lossless or standard")
    frames = np.asarray(frames)
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8 or not frames.shape[0]:
        raise ConfigError(f"frames must be a non-empty (T, H, W, 3) uint8 array, got {frames.shape} {frames.dtype}")
    if not (np.isfinite(fps) and fps > 0):
        raise ConfigError(f"fps must be positive, got {fps}")
    frames = upscale(frames, scale)
    pix_fmt, options = QUALITIES[fmt, quality]
    height, width = frames.shape[1:3]
    if pix_fmt == "yuv420p" and (height % 2 or width % 2):
        raise ConfigError(f"4:2:0 video needs even sides, got {width}×{height}; use quality lossless or scale 2")
    av = require_av()
    part = path.with_name(f".{path.name}.part")
    try:
        muxer = {"movflags": "faststart"} if faststart and fmt == "mp4" else {}
        with av.open(str(part), mode="w", format=fmt, options=muxer) as container:
            stream = container.add_stream(FORMATS[fmt], rate=Fraction(fps).limit_denominator(100_000))
            stream.width, stream.height, stream.pix_fmt, stream.options = width, height, pix_fmt, dict(options)
            for i, img in enumerate(frames):
                frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(img), format="rgb24")
                frame.pts = i
                container.mux(stream.encode(frame))
            container.mux(stream.encode())
        os.replace(part, path)
    except (av.error.FFmpegError, OSError) as exc:
        raise DataError(f"{path}: could not write the video ({reason(exc)})") from None
    finally:
        part.unlink(missing_ok=True)
    return path
