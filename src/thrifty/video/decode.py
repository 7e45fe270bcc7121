"""Reading real video files with PyAV: every frame's presentation time, the frames a segment plan samples
(resized to what the tiny compressor reads), and every unreadable file turned into a one-line error.

PyAV (``av``: FFmpeg bindings whose wheels bundle FFmpeg) is imported inside the functions that use it, so the
CLI starts without it. Two passes over a file: the first reads packets only (no decoding) to learn how many
frames the video stream holds and each one's presentation timestamp (pts); frames are then sampled by index as
Tempo does (spec §3: n = clip(round(duration · fps), min, max) at round(linspace(0, T − 1, n))), and the second
pass decodes front to back once, keeping the sampled frames. Times are pts × time base (exact fractions turned
into float seconds), counted from the first frame; the duration runs to the end of the last frame. A segment's
timestamp is the time of its first frame plus half a window at the sampling rate: Tempo's (S·i + W/2) / real_fps
to the bit when every frame of a constant-rate file is sampled; otherwise it follows the frames actually shown,
where Tempo's rule drifts from them by up to one sampling interval (linspace spans T − 1 frames, the rule T) and
ignores a variable frame rate. Rotation metadata is not applied (frames come as stored).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from fractions import Fraction
from pathlib import Path

import numpy as np

from thrifty.core.errors import ConfigError, DataError, check_choice
from thrifty.core.progress import Progress
from thrifty.video.segment import (
    SegmentConfig,
    SegmentPlan,
    frame_count,
    plan_segments,
    sample_indices,
    timestamp_text,
)

FITS = ("pad", "crop", "stretch")  # how a frame of another aspect becomes a square
PROGRESS_FRAMES = 3000  # decodes this long (minutes for HD video) show progress


@dataclass(frozen=True)
class VideoInfo:
    """What the container says about its first video stream, read from its packets."""

    path: str
    container: str
    codec: str
    width: int
    height: int
    n_frames: int
    duration_s: float  # first frame to the end of the last
    fps: float  # n_frames / duration_s
    start_s: float  # pts of the first frame on the container's clock
    times: np.ndarray  # (n_frames,) seconds since the first frame, presentation order
    pts: np.ndarray | None  # (n_frames,) int64 pts ticks in presentation order (None: the container has none)

    def as_dict(self) -> dict:
        return {"path": self.path, "container": self.container, "codec": self.codec, "width": self.width,
                "height": self.height, "frames": self.n_frames, "duration_s": self.duration_s, "fps": self.fps,
                "start_s": self.start_s}


@dataclass(frozen=True)
class SampledVideo:
    """The sampled frames of a file and the segment plan over them (plan indices are rows of ``frames``)."""

    info: VideoInfo
    plan: SegmentPlan
    frames: np.ndarray  # (n, H, W, 3) uint8
    source: np.ndarray  # (n,) index of each row among the file's frames
    times: np.ndarray  # (n,) seconds of each row since the first frame


def require_av():
    """The ``av`` module, or a one-line ConfigError saying how to install it."""
    try:
        import av
    except ImportError:
        raise ConfigError("reading video files needs PyAV: pip install 'thrifty[video]' (or pip install av)") from None
    return av


def reason(exc: BaseException) -> str:
    """FFmpeg's words for a failure, without the errno and file name PyAV wraps them in."""
    return str(getattr(exc, "strerror", None) or exc).strip() or type(exc).__name__


@contextmanager
def _opened(path: str | Path) -> Iterator:
    """The open container; a missing, empty, unreadable or damaged file raises a one-line DataError."""
    p = Path(path)
    if not p.exists():
        raise DataError(f"{p}: no such file")
    if not p.is_file():
        raise DataError(f"{p}: not a file")
    if p.stat().st_size == 0:
        raise DataError(f"{p}: empty file (0 bytes), not a video")
    av = require_av()
    try:
        container = av.open(str(p), mode="r")
    except (av.error.FFmpegError, OSError) as exc:
        raise DataError(f"{p}: not a readable video ({reason(exc)})") from None
    try:
        yield container
    except (av.error.FFmpegError, OSError) as exc:
        raise DataError(f"{p}: damaged or unsupported video ({reason(exc)})") from None
    finally:
        container.close()


def _stream(container, path):
    if not container.streams.video:
        kinds = sorted({s.type for s in container.streams})
        raise DataError(f"{path}: no video stream, so no frames to read (streams: {', '.join(kinds) or 'none'})")
    return container.streams.video[0]


def _rate(stream) -> Fraction | None:
    for rate in (stream.average_rate, stream.guessed_rate, stream.base_rate):
        if rate:
            return Fraction(rate)
    return None


def probe(path: str | Path) -> VideoInfo:
    """Frame count, presentation times and format of the first video stream, from its packets (nothing decoded)."""
    with _opened(path) as container:
        stream = _stream(container, path)
        ticks = [pkt.pts for pkt in container.demux(stream) if pkt.size]
        ctx, fmt, tb, rate = stream.codec_context, container.format.name, stream.time_base, _rate(stream)
        codec, width, height = ctx.name, ctx.width, ctx.height
    if not ticks:
        raise DataError(f"{path}: the video stream holds no frames")
    pts = None
    if all(t is not None for t in ticks) and tb:
        pts = np.sort(np.asarray(ticks, dtype=np.int64))
        p0, tb = int(pts[0]), Fraction(tb)
        times = np.array([float((t - p0) * tb) for t in pts.tolist()])
        gaps = np.diff(times)
        last = float(np.median(gaps)) if gaps.size else 0.0  # the last frame lasts as long as a typical one
        last = last if last > 0 or not rate else 1 / float(rate)
        start = float(p0 * tb)
    elif rate:  # no timestamps in the container: frames evenly at its nominal rate
        times, last, start = np.arange(len(ticks)) / float(rate), 1 / float(rate), 0.0
    else:
        raise DataError(f"{path}: the video stream has neither timestamps nor a frame rate")
    if not last > 0:
        raise DataError(f"{path}: cannot tell how long its single frame lasts (no frame rate)")
    duration = float(times[-1]) + last
    return VideoInfo(path=str(path), container=fmt, codec=codec, width=int(width), height=int(height),
                     n_frames=len(ticks), duration_s=duration, fps=len(ticks) / duration, start_s=start, times=times,
                     pts=pts)


def fit_square(img: np.ndarray, size: int, fit: str) -> np.ndarray:
    """``img`` (h, w, 3) as a ``size``×``size`` square: centred on black (``pad``, needs h, w ≤ size), its middle
    cut out (``crop``, needs h, w ≥ size), or as it is (``stretch``, already resized to the square)."""
    h, w = img.shape[:2]
    if fit == "crop" and h >= size and w >= size:
        top, left = (h - size) // 2, (w - size) // 2
        return np.ascontiguousarray(img[top:top + size, left:left + size])
    if fit == "pad" and h <= size and w <= size:
        out = np.zeros((size, size, 3), dtype=np.uint8)
        top, left = (size - h) // 2, (size - w) // 2
        out[top:top + h, left:left + w] = img
        return out
    if fit == "stretch" and (h, w) == (size, size):
        return img
    raise ConfigError(f"cannot make a {w}×{h} image {size}² by {fit!r} (fits: {', '.join(FITS)})")


def _scaled_size(w: int, h: int, size: int, fit: str) -> tuple[int, int]:
    """Width and height to resize to before :func:`fit_square`: the long side to ``size`` (pad), the short side
    (crop), or both (stretch)."""
    if fit == "stretch":
        return size, size
    if fit == "pad":
        s = size / max(w, h)
        return min(size, max(1, round(w * s))), min(size, max(1, round(h * s)))
    s = size / min(w, h)
    return max(size, round(w * s)), max(size, round(h * s))


def to_rgb(frame, size: int | None = None, fit: str = "pad", reformatter=None) -> np.ndarray:
    """A decoded frame as (H, W, 3) uint8 RGB: native size, or resized (area averaging) to ``size``² by ``fit``.
    Pass one ``av.video.reformatter.VideoReformatter`` for a whole video: it keeps its scaler between frames
    (about ten times faster than a new one per frame)."""
    if reformatter is None:
        reformatter = require_av().video.reformatter.VideoReformatter()
    if size is None:
        return reformatter.reformat(frame, format="rgb24").to_ndarray()
    tw, th = _scaled_size(frame.width, frame.height, size, fit)
    img = reformatter.reformat(frame, width=tw, height=th, format="rgb24", interpolation="AREA").to_ndarray()
    return fit_square(img, size, fit)


def read_frames(path: str | Path, info: VideoInfo, indices, size: int | None = None, fit: str = "pad",
                progress: bool = True) -> np.ndarray:
    """(len(indices), H, W, 3) uint8: the frames at ``indices`` (presentation order, repeats allowed), decoded in
    one front-to-back pass that stops after the last one needed."""
    check_choice("fit", fit, FITS)
    if size is not None and size < 1:
        raise ConfigError(f"frame size must be at least 1 pixel, got {size}")
    idx = np.asarray(indices, dtype=np.int64)
    if idx.ndim != 1 or not idx.size or idx.min() < 0 or idx.max() >= info.n_frames:
        raise ConfigError(f"frame indices must lie in [0, {info.n_frames}), got {idx.size} of them")
    want: dict[int, list[int]] = {}
    for row, i in enumerate(idx.tolist()):
        want.setdefault(i, []).append(row)
    unique = info.pts is not None and np.unique(info.pts).size == info.pts.size
    by_pts = {int(t): i for i, t in enumerate(info.pts.tolist())} if unique else {}  # else: decode order
    out: np.ndarray | None = None
    last = int(idx.max()) + 1  # frames to decode; only a long decode shows progress
    bar = Progress(last, f"decode {Path(path).name}",
                   enabled=None if progress and last >= PROGRESS_FRAMES else False).open()
    try:
        with _opened(path) as container:
            stream = _stream(container, path)
            stream.thread_type = "AUTO"
            scaler = require_av().video.reformatter.VideoReformatter()
            for order, frame in enumerate(container.decode(stream)):
                i = by_pts.get(frame.pts, order)
                rows = want.pop(i, None)
                if rows:
                    img = to_rgb(frame, size, fit, scaler)
                    if out is None:
                        out = np.empty((idx.size, *img.shape), dtype=np.uint8)
                    out[rows] = img
                bar.advance()
                if not want:
                    break
        if want or out is None:
            raise DataError(f"{path}: the file ends early — {len(want)} of {idx.size} sampled frames never decoded "
                            f"(the container lists {info.n_frames}; truncated or damaged?)")
    except BaseException:
        bar.enabled = False  # the error is the last word: no progress line after it
        raise
    finally:
        bar.close()
    return out


def load_video(path: str | Path, cfg: SegmentConfig | None = None, size: int | None = None, fit: str = "pad",
               progress: bool = True) -> SampledVideo:
    """Sample a file's frames at ``cfg.fps`` (clipped to [min_frames, max_frames]), decode them, and plan the
    segments over them with timestamps from the container's pts (see the module docstring)."""
    cfg = cfg or SegmentConfig()
    info = probe(path)
    n = frame_count(info.duration_s, cfg)
    source = sample_indices(info.n_frames, n)
    frames = read_frames(path, info, source, size, fit, progress)
    times = info.times[source]
    plan = plan_segments(n, info.duration_s, cfg)  # over the rows: sample_indices(n, n) is 0..n-1
    ts = times[plan.offsets] + (cfg.window / 2) / plan.real_fps
    plan = replace(plan, timestamps=ts, texts=tuple(timestamp_text(t, cfg.timestamp_format) for t in ts))
    return SampledVideo(info=info, plan=plan, frames=frames, source=source, times=times)
