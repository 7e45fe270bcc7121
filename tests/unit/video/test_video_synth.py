"""The needle benchmark: determinism per seed, answers consistent with the events, evidence that holds the event."""

from __future__ import annotations

import time

import numpy as np
import pytest

from thrifty.core.errors import ConfigError
from thrifty.video.synth import COLOURS, TASKS, SynthConfig, make_benchmark, make_video, shape_mask


def _same(a, b) -> bool:
    return (np.array_equal(a.frames, b.frames) and a.question == b.question and a.answer == b.answer
            and a.events == b.events and np.array_equal(a.evidence, b.evidence) and a.background == b.background)


@pytest.mark.parametrize("task", TASKS)
def test_same_seed_same_video_other_seed_other_video(task):
    a, b, c = make_video(7, task, 256), make_video(7, task, 256), make_video(8, task, 256)
    assert _same(a, b)
    assert not np.array_equal(a.frames, c.frames)
    assert a.frames.shape == (256, 32, 32, 3) and a.frames.dtype == np.uint8


def test_benchmark_is_deterministic_and_cycles_tasks_and_lengths():
    one, two = make_benchmark(12, seed=3, lengths=(64, 1024)), make_benchmark(12, seed=3, lengths=(64, 1024))
    assert all(_same(a, b) for a, b in zip(one, two, strict=True))
    assert [v.task for v in one[:6]] == list(TASKS)
    assert [v.n_frames for v in one] == [64] * 6 + [1024] * 6
    assert [v.plan.n_segments for v in one] == [8] * 6 + [128] * 6
    assert not _same(one[0], make_benchmark(1, seed=4, lengths=(64,))[0])


def _sprite_on(frames: np.ndarray, e, sprite: int = 7) -> np.ndarray:
    """Per frame: is the event's exact sprite (shape in its colour) painted at its place?"""
    dy, dx = np.nonzero(shape_mask(e.shape, sprite))
    px = frames[:, e.y + dy, e.x + dx]  # (T, m, 3)
    return (px == np.array(COLOURS[e.colour], dtype=np.uint8)).all(axis=(1, 2))


@pytest.mark.parametrize("length", [64, 256, 1024])
@pytest.mark.parametrize("task", [t for t in TASKS if t != "global"])
def test_evidence_segments_hold_the_event(task, length):
    for seed in range(4):
        v = make_video(seed, task, length)
        bearing = [e for e in v.events if e.role == "needle"] or list(v.events)  # no needle: the decoy
        want = np.zeros(length, dtype=bool)
        for e in bearing:
            want[e.start:e.stop] = True
            assert np.array_equal(np.flatnonzero(_sprite_on(v.frames, e)), np.arange(e.start, e.stop))
        assert np.array_equal(v.evidence_frames, want)
        for i, seg in enumerate(v.plan.segments):  # a segment is evidence iff one of its frames shows it
            assert v.evidence[i] == bool(want[seg].any())
        assert v.evidence.any() and v.depth == pytest.approx(min(e.start for e in bearing) / length)


@pytest.mark.parametrize("seed", range(6))
def test_answers_follow_from_the_events(seed):
    needles = lambda v: sorted((e for e in v.events if e.role == "needle"), key=lambda e: e.start)  # noqa: E731
    a = make_video(seed, "attribute", 128)
    assert a.answer == needles(a)[0].colour and a.answer in a.choices and needles(a)[0].shape in a.question
    p = make_video(seed, "presence", 128)
    decoy = next(e for e in p.events if e.role == "decoy")
    assert decoy.name not in p.question and decoy.shape in p.question  # a near miss: same shape, other colour
    assert p.answer == ("yes" if needles(p) else "no") and all(e.name in p.question for e in needles(p))
    t = make_video(seed, "timing", 128)  # 64 s in 4 bins of 16 s; the bin of the first frame
    assert t.answer == t.choices[needles(t)[0].start * 4 // 128] and t.choices[0] == "0-16 s"
    o = make_video(seed, "order", 128)
    first, second = needles(o)
    assert o.answer == first.name and {first.name, second.name} == set(o.choices) and first.stop < second.start
    c = make_video(seed, "counting", 128)
    assert c.answer == str(len(needles(c))) and all(e.start > d.stop or d.start > e.stop
                                                    for e in c.events for d in c.events if e is not d)
    g = make_video(seed, "global", 128)
    lengths = {name: b - a for name, a, b in g.background}
    assert sum(lengths.values()) == 128 and g.evidence.all() and g.depth is None
    assert lengths[g.answer] > max(n for k, n in lengths.items() if k != g.answer)


def test_presence_and_counting_cover_their_answers():
    answers = {t: {make_video(s, t, 128).answer for s in range(40)} for t in ("presence", "counting")}
    assert answers["presence"] == {"yes", "no"} and answers["counting"] == {"0", "1", "2", "3", "4"}


def test_long_videos_are_cheap():
    start = time.perf_counter()
    v = make_video(1, "order", 2048)
    assert time.perf_counter() - start < 3.0
    assert v.frames.shape[0] == 2048 and v.plan.n_frames == 1024 and v.plan.n_segments == 128  # sampled to 1024


def test_bad_input_is_one_line():
    with pytest.raises(ConfigError, match="unknown task"):
        make_video(0, "digits", 64)
    with pytest.raises(ConfigError, match="at least 16"):
        make_video(0, "attribute", 8)
    with pytest.raises(ConfigError, match="too few"):
        make_video(0, "order", 16, SynthConfig(event_frames=(8, 8)))  # 8 + 2 + 8 > 16
    with pytest.raises(ConfigError, match="sprite"):
        SynthConfig(sprite=5)
