"""End-to-end long-video answering: segment → compress with relevance (one pass per video) → allocate a visual
budget → head-truncate each segment's memory to its k → assemble [timestamp, memory]* + question → answer,
with the tokens of every kind counted (timestamps exactly per segment where the decoder declares
``ExactTimestamps``).

Allocations are named :class:`AllocSpec` (a rule of ``allocate.ALLOCATORS`` with its options and a budget in
visual tokens per sampled frame); one video is compressed once and answered under every spec in one batch.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from thrifty.core.errors import ConfigError
from thrifty.video.adapter import Compressed, CompressorBackend, DecoderBackend, ExactTimestamps, Question
from thrifty.video.allocate import allocate
from thrifty.video.budget import TokenAccount, account
from thrifty.video.segment import SegmentPlan
from thrifty.video.synth import NeedleVideo


@dataclass(frozen=True)
class AllocSpec:
    """``rule`` with ``options`` at ``per_frame`` visual tokens per sampled frame; ``label`` names it in tables."""

    label: str
    rule: str
    per_frame: float
    options: dict = field(default_factory=dict)

    def budget(self, n_frames: int) -> int:
        if not self.per_frame > 0:
            raise ConfigError(f"a budget must be positive tokens per frame, got {self.per_frame}")
        return max(1, round(self.per_frame * n_frames))


@dataclass(frozen=True)
class Answered:
    spec: AllocSpec
    budget: int
    k: np.ndarray
    answer: str
    tokens: TokenAccount


def question_of(video: NeedleVideo) -> Question:
    return Question(text=video.question, choices=video.choices, task=video.task)


def allocation(spec: AllocSpec, relevance: np.ndarray, plan: SegmentPlan, m_max: int, k_min: int,
               evidence: np.ndarray | None = None, seed: int = 0) -> np.ndarray:
    """Tokens per segment for one spec (the oracle reads ``evidence``, random a generator seeded by ``seed``)."""
    extra: dict = {}
    if spec.rule == "oracle":
        if evidence is None:
            raise ConfigError("the oracle allocation needs the ground-truth evidence mask")
        extra["relevance"] = np.asarray(evidence, dtype=np.int64)
    elif spec.rule == "random":
        extra["rng"] = np.random.default_rng(seed)
    return allocate(relevance, spec.budget(plan.n_frames), m_max, k_min, rule=spec.rule, **spec.options, **extra)


def answer_video(frames: np.ndarray, plan: SegmentPlan, question: Question, compressor: CompressorBackend,
                 decoder: DecoderBackend, specs: Sequence[AllocSpec], k_min: int = 1,
                 evidence: np.ndarray | None = None, seed: int = 0) -> tuple[Compressed, list[Answered]]:
    """Compress once, then allocate, truncate and answer under every spec."""
    if not specs:
        raise ConfigError("answer_video needs at least one allocation spec")
    comp = compressor.compress(frames, plan, question)
    if comp.relevance.shape != (plan.n_segments,):
        raise ConfigError(f"compressor returned {comp.relevance.shape} relevance scores for {plan.n_segments} "
                          "segments")
    ks = [allocation(s, comp.relevance, plan, comp.m_max, k_min, evidence, seed) for s in specs]
    answers = decoder.answer(comp, ks, plan, question)
    text = decoder.text_tokens(question)
    stamps = decoder.timestamp_counts(plan) if isinstance(decoder, ExactTimestamps) else compressor.timestamp_tokens
    return comp, [Answered(spec=s, budget=s.budget(plan.n_frames), k=k, answer=a,
                           tokens=account(k, stamps, text))
                  for s, k, a in zip(specs, ks, answers, strict=True)]


def answer_needle(video: NeedleVideo, compressor: CompressorBackend, decoder: DecoderBackend,
                  specs: Sequence[AllocSpec], k_min: int = 1) -> tuple[Compressed, list[Answered]]:
    """:func:`answer_video` on a synthetic needle video (its evidence feeds the oracle)."""
    return answer_video(video.frames, video.plan, question_of(video), compressor, decoder, specs, k_min,
                        video.evidence, video.seed)
