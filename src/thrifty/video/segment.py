"""Frame sampling and segmenting: frames at a target fps, fixed windows, centre timestamps rendered as text.

Pure numpy. The rule (Tempo spec §3): n = clip(round(duration · fps), min_frames, max_frames) frames at indices
round(linspace(0, T − 1, n)); real_fps = n / duration; non-overlapping windows of ``window`` frames every
``stride`` frames (the last window may be shorter, a 1-frame window is duplicated to 2 frames); segment i is
stamped t_i = (stride · i + window / 2) / real_fps and rendered as ``<{t:.1f} seconds>``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from thrifty.core.errors import ConfigError


@dataclass(frozen=True)
class SegmentConfig:
    """How a video is sampled and cut. Defaults: Tempo's CLI (2 fps, 4–1024 frames, windows of 8 every 8)."""

    fps: float = 2.0
    min_frames: int = 4
    max_frames: int = 1024
    window: int = 8
    stride: int = 8
    timestamp_format: str = "<{t:.1f} seconds>"

    def __post_init__(self) -> None:
        if not (math.isfinite(self.fps) and self.fps > 0):
            raise ConfigError(f"fps must be a positive number, got {self.fps}")
        if self.min_frames < 1 or self.max_frames < self.min_frames:
            raise ConfigError(f"need 1 <= min_frames <= max_frames, got {self.min_frames} and {self.max_frames}")
        if self.window < 1:
            raise ConfigError(f"window must be at least 1 frame, got {self.window}")
        if self.stride < self.window:
            raise ConfigError(f"stride {self.stride} < window {self.window}: overlapping windows are not supported")
        if "{t" not in self.timestamp_format:
            raise ConfigError(f"timestamp_format {self.timestamp_format!r} must contain a {{t...}} field")


@dataclass(frozen=True)
class SegmentPlan:
    """Where each segment's frames come from in the source video, and its timestamp."""

    frame_indices: np.ndarray  # (n,) sampled source-frame indices
    real_fps: float  # n / duration
    segments: tuple[np.ndarray, ...]  # per segment: source-frame indices (a 1-frame window duplicated)
    offsets: np.ndarray  # per segment: position of its first frame among the sampled frames
    timestamps: np.ndarray  # per segment: seconds (float64)
    texts: tuple[str, ...] = field(default=())  # per segment: rendered timestamp

    @property
    def n_segments(self) -> int:
        return len(self.segments)

    @property
    def n_frames(self) -> int:
        """Sampled frames (before any 1-frame duplication)."""
        return int(self.frame_indices.size)


def frame_count(duration_s: float, cfg: SegmentConfig = SegmentConfig()) -> int:
    """n = clip(round(duration · fps), min_frames, max_frames); Python's round (halves go to the even side)."""
    if not (math.isfinite(duration_s) and duration_s > 0):
        raise ConfigError(f"video duration must be a positive number of seconds, got {duration_s}")
    return int(min(max(round(duration_s * cfg.fps), cfg.min_frames), cfg.max_frames))


def sample_indices(total_frames: int, n: int) -> np.ndarray:
    """round(linspace(0, T − 1, n)) as int64 (numpy rounding: halves to even); repeats when n > T."""
    if total_frames < 1:
        raise ConfigError(f"a video needs at least one frame, got {total_frames}")
    if n < 1:
        raise ConfigError(f"must sample at least one frame, got {n}")
    return np.round(np.linspace(0, total_frames - 1, n)).astype(np.int64)


def window_bounds(n_frames: int, window: int = 8, stride: int = 8) -> list[tuple[int, int]]:
    """[start, stop) of each window over ``n_frames`` sampled frames; the last may be shorter."""
    if n_frames < 1:
        raise ConfigError(f"nothing to segment: {n_frames} frames")
    if window < 1 or stride < window:
        raise ConfigError(f"need 1 <= window <= stride, got window {window}, stride {stride}")
    return [(s, min(s + window, n_frames)) for s in range(0, n_frames, stride)]


def timestamp_seconds(n_segments: int, real_fps: float, window: int = 8, stride: int = 8) -> np.ndarray:
    """t_i = (stride · i + window / 2) / real_fps, float64."""
    if real_fps <= 0:
        raise ConfigError(f"real_fps must be positive, got {real_fps}")
    return (stride * np.arange(n_segments, dtype=np.float64) + window / 2) / real_fps


def timestamp_text(seconds: float, fmt: str = "<{t:.1f} seconds>") -> str:
    """The text the decoder reads before a segment's tokens, e.g. ``<16.0 seconds>``."""
    return fmt.format(t=float(seconds))


def plan_segments(total_frames: int, duration_s: float, cfg: SegmentConfig = SegmentConfig()) -> SegmentPlan:
    """Sample a video of ``total_frames`` frames lasting ``duration_s`` seconds and cut it into segments."""
    n = frame_count(duration_s, cfg)
    idx = sample_indices(total_frames, n)
    real_fps = n / duration_s
    bounds = window_bounds(n, cfg.window, cfg.stride)
    segs = []
    for start, stop in bounds:
        seg = idx[start:stop]
        segs.append(np.repeat(seg, 2) if seg.size == 1 else seg)
    ts = timestamp_seconds(len(bounds), real_fps, cfg.window, cfg.stride)
    return SegmentPlan(frame_indices=idx, real_fps=real_fps, segments=tuple(segs),
                       offsets=np.array([s for s, _ in bounds], dtype=np.int64), timestamps=ts,
                       texts=tuple(timestamp_text(t, cfg.timestamp_format) for t in ts))


def cut_video(frames: np.ndarray, plan: SegmentPlan) -> list[np.ndarray]:
    """The frames of each segment, each its own short video (a view-free copy per segment)."""
    if frames.ndim < 1 or frames.shape[0] <= int(plan.frame_indices.max()):
        raise ConfigError(f"video has {frames.shape[0] if frames.ndim else 0} frames but the plan reads frame "
                          f"{int(plan.frame_indices.max())}")
    return [frames[seg] for seg in plan.segments]


def segment_mask(frame_mask: np.ndarray, plan: SegmentPlan) -> np.ndarray:
    """Per segment: does any of its sampled frames have ``frame_mask`` set (e.g. shows an event)?"""
    frame_mask = np.asarray(frame_mask, dtype=bool)
    if frame_mask.ndim != 1 or frame_mask.size <= int(plan.frame_indices.max()):
        raise ConfigError(f"frame mask of shape {frame_mask.shape} does not cover the plan's frames")
    return np.array([bool(frame_mask[seg].any()) for seg in plan.segments], dtype=bool)
