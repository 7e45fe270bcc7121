"""Synthetic "needle" long videos: seeded procedural frames with events, one question each, per-segment ground truth.

A video is a drifting background made of a few colour phases, 2–4 distractor sprites moving on bouncing linear
paths, and short static events (a sprite of a (shape, colour) pair seen nowhere else, shown for 2–8 frames).
Question types: attribute, presence (with hard negatives), timing, order, counting and global. The evidence of
a question is the set of frames that answer it (for a "no" or a count of 0: the near-miss decoy; for global:
every frame), mapped to segments through the same sampling and windows the allocator sees.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from itertools import pairwise

import numpy as np

from thrifty.core.errors import ConfigError
from thrifty.core.rng import derive_seed
from thrifty.video.segment import SegmentConfig, SegmentPlan, plan_segments, segment_mask

SHAPES = ("circle", "square", "triangle", "cross", "star")
COLOURS = {"red": (230, 40, 40), "green": (40, 200, 60), "blue": (50, 90, 240), "yellow": (240, 220, 40),
           "magenta": (220, 50, 220), "cyan": (40, 220, 230)}
BACKGROUNDS = {"grey": (96, 96, 96), "brown": (110, 70, 40), "navy": (30, 36, 100), "olive": (96, 96, 36),
               "plum": (84, 40, 84)}
TASKS = ("attribute", "presence", "timing", "order", "counting", "global")


@dataclass(frozen=True)
class SynthConfig:
    """Knobs of the generator; defaults give 32×32 RGB frames at a nominal 2 fps."""

    size: int = 32  # frame height = width, pixels
    sprite: int = 7  # sprite side, pixels
    fps: float = 2.0
    distractors: tuple[int, int] = (2, 4)  # inclusive range
    event_frames: tuple[int, int] = (2, 8)  # inclusive range of an event's duration
    gap: int = 2  # frames between two events
    time_bins: int = 4  # answer bins of the timing question
    max_count: int = 4
    segments: SegmentConfig = field(default_factory=SegmentConfig)

    def __post_init__(self) -> None:
        if self.sprite < 7 or self.size < 2 * self.sprite:
            raise ConfigError(f"need sprite >= 7 and size >= 2·sprite, got size {self.size}, sprite {self.sprite}")
        lo, hi = self.event_frames
        if not 1 <= lo <= hi or not 0 <= self.distractors[0] <= self.distractors[1] or self.time_bins < 1:
            raise ConfigError("event_frames and distractors must be ranges (lo <= hi) and time_bins >= 1")
        if not 0 <= self.max_count <= 8 or self.gap < 1:
            raise ConfigError("max_count must be in [0, 8] and gap >= 1")


@dataclass(frozen=True)
class Event:
    """One sprite shown still at (y, x) on frames [start, stop)."""

    shape: str
    colour: str
    start: int
    stop: int
    y: int
    x: int
    role: str  # needle | decoy

    @property
    def name(self) -> str:
        return f"{self.colour} {self.shape}"


@dataclass(frozen=True, eq=False)
class Track:
    """Where one sprite is painted: top-left (ys[i], xs[i]) on frame ts[i] (events and distractors alike)."""

    shape: str
    colour: str
    role: str  # needle | decoy | distractor
    ts: np.ndarray
    ys: np.ndarray
    xs: np.ndarray


@dataclass
class NeedleVideo:
    """A generated video with its question, answer and ground truth."""

    seed: int
    task: str
    frames: np.ndarray  # (T, H, W, 3) uint8
    fps: float
    question: str
    answer: str
    choices: tuple[str, ...]
    events: tuple[Event, ...]
    background: tuple[tuple[str, int, int], ...]  # (colour, start, stop) phases
    evidence_frames: np.ndarray  # (T,) bool: frames that hold the evidence
    plan: SegmentPlan  # how the allocator sees the video
    evidence: np.ndarray  # (n_segments,) bool
    depth: float | None  # first evidence frame / T (None for global questions)
    tracks: tuple[Track, ...] = ()  # every painted sprite, in painting order (later ones drawn on top)

    @property
    def n_frames(self) -> int:
        return int(self.frames.shape[0])

    def summary(self) -> dict:
        return {"seed": self.seed, "task": self.task, "frames": self.n_frames, "segments": self.plan.n_segments,
                "question": self.question, "answer": self.answer,
                "evidence_segments": np.flatnonzero(self.evidence).tolist(),
                "depth": None if self.depth is None else round(self.depth, 4)}


def shape_mask(shape: str, s: int) -> np.ndarray:
    """A filled s×s boolean sprite."""
    y, x = np.mgrid[0:s, 0:s]
    c = (s - 1) / 2
    masks = {
        "circle": (y - c) ** 2 + (x - c) ** 2 <= (s / 2) ** 2 * 0.8,
        "square": (y >= 1) & (y <= s - 2) & (x >= 1) & (x <= s - 2),
        "triangle": np.abs(x - c) <= y / 2,
        "cross": (np.abs(y - c) <= s / 5) | (np.abs(x - c) <= s / 5),  # bold bars: never inside the thin star
        "star": (np.abs(y - c) < 1) | (np.abs(x - c) < 1) | (y == x) | (y + x == s - 1),
    }
    if shape not in masks:
        raise ConfigError(f"unknown shape {shape!r}; choose one of: {', '.join(SHAPES)}")
    return masks[shape]


def _background(rng: np.random.Generator, t: int, cfg: SynthConfig) -> tuple[np.ndarray, tuple]:
    """Colour phases (one strictly dominant) with a slow brightness drift and a spatial gradient."""
    n_phases = int(rng.integers(2, min(4, len(BACKGROUNDS)) + 1))
    names = [list(BACKGROUNDS)[i] for i in rng.choice(len(BACKGROUNDS), n_phases, replace=False)]
    weights = np.concatenate([[2.0 + rng.random()], rng.uniform(0.5, 1.5, n_phases - 1)])  # names[0] dominates
    lengths = np.floor(weights / weights.sum() * t).astype(int)
    lengths[0] += t - lengths.sum()
    order = rng.permutation(n_phases)
    phases, start = [], 0
    base = np.empty((t, 3), dtype=np.float32)
    for i in order:
        base[start:start + lengths[i]] = BACKGROUNDS[names[i]]
        phases.append((names[i], start, start + int(lengths[i])))
        start += int(lengths[i])
    drift = 8.0 * np.sin(2 * np.pi * (np.arange(t) / max(t, 1) * rng.uniform(0.5, 2.0) + rng.random()))
    ramp = np.linspace(-10.0, 10.0, cfg.size, dtype=np.float32)
    grad = ramp[None, :] if rng.random() < 0.5 else ramp[:, None]
    frames = base[:, None, None, :] + drift[:, None, None, None] + np.broadcast_to(grad, (cfg.size, cfg.size))[
        None, :, :, None]
    return np.clip(frames, 0, 255).astype(np.uint8), tuple(phases)


def _draw(frames: np.ndarray, shape: str, colour: str, ys: np.ndarray, xs: np.ndarray, ts: np.ndarray,
          sprite: int) -> None:
    """Paint the sprite with its top-left corner at (ys[i], xs[i]) on frame ts[i], for every i."""
    dy, dx = np.nonzero(shape_mask(shape, sprite))
    frames[ts[:, None], ys[:, None] + dy[None, :], xs[:, None] + dx[None, :]] = COLOURS[colour]


def _distractors(rng, frames: np.ndarray, reserved: set[str], cfg: SynthConfig) -> list[Track]:
    """Sprites of the unreserved shapes moving on linear paths that bounce off the frame edges."""
    t, span = frames.shape[0], cfg.size - cfg.sprite
    free = [s for s in SHAPES if s not in reserved]
    tracks = []
    for _ in range(int(rng.integers(cfg.distractors[0], cfg.distractors[1] + 1))):
        shape, colour = free[int(rng.integers(len(free)))], list(COLOURS)[int(rng.integers(len(COLOURS)))]
        p0, v = rng.uniform(0, span, 2), rng.uniform(-0.4, 0.4, 2)
        pos = np.abs((p0[None, :] + v[None, :] * np.arange(t)[:, None]) % (2 * span) - span)  # reflect
        pos = np.rint(span - pos).astype(int)
        _draw(frames, shape, colour, pos[:, 0], pos[:, 1], np.arange(t), cfg.sprite)
        tracks.append(Track(shape, colour, "distractor", np.arange(t), pos[:, 0], pos[:, 1]))
    return tracks


def _place(rng, t: int, n: int, cfg: SynthConfig) -> list[tuple[int, int]]:
    """n disjoint [start, stop) windows in random order of time, at least ``gap`` frames apart."""
    durs = rng.integers(cfg.event_frames[0], cfg.event_frames[1] + 1, n)
    slack = t - int(durs.sum()) - (n - 1) * cfg.gap
    if slack < 0:
        raise ConfigError(f"{t} frames are too few for {n} events; use a longer video")
    cuts = np.sort(rng.integers(0, slack + 1, n))
    spans, offset = [], 0
    for d, c in zip(durs, cuts, strict=True):
        spans.append((int(c + offset), int(c + offset + d)))
        offset += int(d) + cfg.gap
    return spans


def _pick(rng, options, exclude=()) -> str:
    pool = [o for o in options if o not in exclude]
    return pool[int(rng.integers(len(pool)))]


def _events(rng, task: str, t: int, cfg: SynthConfig) -> tuple[list[Event], str, str, tuple[str, ...]]:
    """The task's events, question, answer and choices."""
    shape, colour = _pick(rng, SHAPES), _pick(rng, COLOURS)
    specs: list[tuple[str, str, str]] = []  # (shape, colour, role)
    name = f"{colour} {shape}"
    if task == "attribute":
        specs = [(shape, colour, "needle")]
        q, choices = f"What colour is the {shape}?", tuple(COLOURS)
    elif task == "presence":
        yes = bool(rng.random() < 0.5)
        specs = [(shape, _pick(rng, COLOURS, {colour}), "decoy")] + ([(shape, colour, "needle")] if yes else [])
        q, choices = f"Is there a {name}?", ("yes", "no")
    elif task == "timing":
        specs = [(shape, colour, "needle")]
        edges = np.linspace(0, t / cfg.fps, cfg.time_bins + 1)
        q, choices = f"When does the {name} appear?", tuple(f"{a:g}-{b:g} s" for a, b in pairwise(edges))
    elif task == "order":
        other = (_pick(rng, SHAPES, {shape}), _pick(rng, COLOURS))
        specs = [(shape, colour, "needle"), (*other, "needle")]
        q, choices = f"Which appears first: the {name} or the {other[1]} {other[0]}?", (name, f"{other[1]} {other[0]}")
    elif task == "counting":
        count = int(rng.integers(0, cfg.max_count + 1))
        specs = [(shape, _pick(rng, COLOURS, {colour}), "decoy")] + [(shape, colour, "needle")] * count
        q, choices = f"How many times does the {name} appear?", tuple(str(i) for i in range(cfg.max_count + 1))
    elif task == "global":
        return [], "What is the dominant background colour?", "", tuple(BACKGROUNDS)
    else:
        raise ConfigError(f"unknown task {task!r}; choose one of: {', '.join(TASKS)}")
    spans = _place(rng, t, len(specs), cfg)
    specs = [specs[i] for i in rng.permutation(len(specs))]
    span = cfg.size - cfg.sprite
    events = [Event(s, c, a, b, int(rng.integers(0, span + 1)), int(rng.integers(0, span + 1)), role)
              for (s, c, role), (a, b) in zip(specs, spans, strict=True)]
    needles = [e for e in events if e.role == "needle"]
    if task == "attribute":
        answer = colour
    elif task == "presence":
        answer = "yes" if needles else "no"
    elif task == "timing":
        answer = choices[min(int(needles[0].start / t * cfg.time_bins), cfg.time_bins - 1)]
    elif task == "order":
        answer = needles[0].name
    else:
        answer = str(len(needles))
    return events, q, answer, choices


def make_video(seed: int, task: str = "attribute", n_frames: int = 256, cfg: SynthConfig | None = None) -> NeedleVideo:
    """One needle video and its question; the same (seed, task, n_frames, cfg) gives identical output."""
    cfg = cfg or SynthConfig()
    if n_frames < 16:
        raise ConfigError(f"a needle video needs at least 16 frames, got {n_frames}")
    rng = np.random.default_rng(derive_seed(seed, "needle", task, n_frames))
    events, question, answer, choices = _events(rng, task, n_frames, cfg)
    frames, phases = _background(rng, n_frames, cfg)
    tracks = _distractors(rng, frames, {e.shape for e in events}, cfg)
    for e in events:  # events last: never hidden behind a distractor
        ts = np.arange(e.start, e.stop)
        _draw(frames, e.shape, e.colour, np.full(ts.size, e.y), np.full(ts.size, e.x), ts, cfg.sprite)
        tracks.append(Track(e.shape, e.colour, e.role, ts, np.full(ts.size, e.y), np.full(ts.size, e.x)))
    evidence = np.zeros(n_frames, dtype=bool)
    if task == "global":
        answer, evidence[:] = phases[int(np.argmax([b - a for _, a, b in phases]))][0], True
    else:
        has_needle = any(e.role == "needle" for e in events)
        for e in events:
            if e.role == "needle" or not has_needle:
                evidence[e.start:e.stop] = True
    plan = plan_segments(n_frames, n_frames / cfg.fps, cfg.segments)
    depth = None if task == "global" else float(np.argmax(evidence)) / n_frames
    return NeedleVideo(seed=seed, task=task, frames=frames, fps=cfg.fps, question=question, answer=answer,
                       choices=choices, events=tuple(events), background=phases, evidence_frames=evidence,
                       plan=plan, evidence=segment_mask(evidence, plan), depth=depth,
                       tracks=tuple(tracks))


def make_benchmark(n: int, seed: int = 0, lengths=(64, 256, 1024), tasks=TASKS,
                   cfg: SynthConfig | None = None) -> list[NeedleVideo]:
    """n videos cycling through the tasks, then the lengths; video i is seeded from (seed, i)."""
    if n < 0 or not lengths or not tasks:
        raise ConfigError("need n >= 0 and at least one length and one task")
    return [make_video(derive_seed(seed, "bench", i), tasks[i % len(tasks)],
                       int(lengths[(i // len(tasks)) % len(lengths)]), cfg) for i in range(n)]
