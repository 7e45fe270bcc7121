"""Frame sampling and segmenting: counts, indices, windows, 1-frame duplication, timestamps, edge cases."""

from __future__ import annotations

import numpy as np
import pytest

from thrifty.core.errors import ConfigError
from thrifty.video.segment import (
    SegmentConfig,
    cut_video,
    frame_count,
    plan_segments,
    sample_indices,
    segment_mask,
    timestamp_text,
    window_bounds,
)


def test_frame_count_clips_to_min_and_max():
    cfg = SegmentConfig()
    assert frame_count(10.0, cfg) == 20  # round(10 · 2)
    assert frame_count(1.0, cfg) == 4  # round(2) → clipped up to min_frames
    assert frame_count(0.1, cfg) == 4
    assert frame_count(4101.0, cfg) == 1024  # round(8202) → clipped down to max_frames
    assert frame_count(4101.0, SegmentConfig(max_frames=2048)) == 2048
    assert frame_count(1.25, SegmentConfig(min_frames=1)) == 2  # round(2.5) = 2: halves go to the even side
    with pytest.raises(ConfigError, match="duration"):
        frame_count(0.0, cfg)


def test_sample_indices():
    assert sample_indices(10, 4).tolist() == [0, 3, 6, 9]  # linspace(0, 9, 4)
    assert sample_indices(100, 3).tolist() == [0, 50, 99]  # 49.5 rounds to the even 50
    assert sample_indices(3, 5).tolist() == [0, 0, 1, 2, 2]  # [0, .5, 1, 1.5, 2]: repeats when n > T
    assert sample_indices(1, 1).tolist() == [0]
    with pytest.raises(ConfigError):
        sample_indices(0, 4)


def test_windows_short_last_and_gaps():
    assert window_bounds(20) == [(0, 8), (8, 16), (16, 20)]
    assert window_bounds(16) == [(0, 8), (8, 16)]
    assert window_bounds(16, window=4, stride=8) == [(0, 4), (8, 12)]  # stride > window skips frames
    with pytest.raises(ConfigError, match="overlapping"):
        SegmentConfig(window=8, stride=4)
    with pytest.raises(ConfigError):
        window_bounds(0)


def test_worked_example_1024_frames_into_128_segments():
    # 4101 s at 2 fps = 8202 source frames; n = 1024, real_fps = 1024 / 4101 ≈ 0.2497
    plan = plan_segments(8202, 4101.0)
    assert plan.n_frames == 1024 and plan.n_segments == 128
    assert plan.real_fps == pytest.approx(0.24969, abs=1e-5)
    assert all(len(s) == 8 for s in plan.segments)
    # t_0 = 4 / 0.2497 = 16.02 s, t_1 = 12 / 0.2497 = 48.06 s, t_127 = 1020 · 4101 / 1024 = 4085.0 s
    assert plan.texts[:2] == ("<16.0 seconds>", "<48.1 seconds>")
    assert plan.timestamps[-1] == pytest.approx(1020 * 4101 / 1024)
    assert np.diff(plan.timestamps) == pytest.approx(8 * 4101 / 1024)  # ≈ 32 s per segment
    assert plan.segments[1].tolist() == plan.frame_indices[8:16].tolist()


def test_one_frame_window_is_duplicated_and_stamped():
    # 8.5 s → 17 frames at real_fps 2 → windows [0, 8) [8, 16) [16, 17); the last one has a single frame
    plan = plan_segments(17, 8.5)
    assert plan.n_segments == 3 and plan.segments[2].tolist() == [16, 16]
    assert plan.offsets.tolist() == [0, 8, 16]
    assert plan.timestamps.tolist() == [2.0, 6.0, 10.0]  # (8i + 4) / 2
    frames = np.arange(17 * 2).reshape(17, 2)
    parts = cut_video(frames, plan)
    assert [p.shape[0] for p in parts] == [8, 8, 2] and parts[2].tolist() == [[32, 33], [32, 33]]


def test_short_video_is_sampled_up_to_min_frames():
    plan = plan_segments(2, 1.0)  # 2 frames, 1 s → 4 samples [0, 0, 1, 1] in one short window
    assert plan.frame_indices.tolist() == [0, 0, 1, 1] and plan.n_segments == 1
    assert plan.real_fps == 4.0 and plan.texts == ("<1.0 seconds>",)  # (0 + 8/2) / 4


def test_configurable_windows_and_format():
    cfg = SegmentConfig(fps=1.0, window=4, stride=4, timestamp_format="[{t:.0f}s]")
    plan = plan_segments(20, 20.0, cfg)
    assert plan.n_segments == 5 and plan.texts[0] == "[2s]" and plan.texts[-1] == "[18s]"
    assert timestamp_text(16.04) == "<16.0 seconds>"
    with pytest.raises(ConfigError, match="fps"):
        SegmentConfig(fps=0)
    with pytest.raises(ConfigError, match="min_frames"):
        SegmentConfig(min_frames=10, max_frames=5)


def test_segment_mask_reads_sampled_frames():
    plan = plan_segments(24, 12.0)  # 24 frames → 3 windows of 8
    mask = np.zeros(24, dtype=bool)
    mask[9:11] = True
    assert segment_mask(mask, plan).tolist() == [False, True, False]
    with pytest.raises(ConfigError):
        segment_mask(mask[:10], plan)
    with pytest.raises(ConfigError):
        cut_video(np.zeros((5, 2)), plan)
