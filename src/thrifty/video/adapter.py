"""Backends the long-video pipeline runs on: the compressor and decoder protocols, the tiny trained models as
one implementation (a Qwen2-VL-family checkpoint is another: ``video/qwen_vl.py``).

A compressor backend is called once per video and returns every segment's M memory states with its relevance
in [0, 1] (same pass, Tempo spec §4–§5); a decoder backend answers one question from head-truncated memories,
for several allocations of the same video at once. A decoder that tokenises timestamps as text declares
:class:`ExactTimestamps`, and the accounting then counts each segment's stamp exactly.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

import numpy as np
import torch

from thrifty.core.errors import check_choice
from thrifty.video.compressor import TinyCompressor, segment_frames
from thrifty.video.decoder import DecoderInput, TinyDecoder, restrict
from thrifty.video.qa_vocab import AnswerVocab, timestamp_bins
from thrifty.video.segment import SegmentPlan
from thrifty.video.truncate import TRUNCATIONS, truncate


@dataclass(frozen=True)
class Question:
    text: str
    choices: tuple[str, ...]
    task: str  # question type (the tiny decoder maps choices to its answer classes with it)


@dataclass
class Compressed:
    memory: Any  # backend-specific, (N, M, d) for the tiny models
    relevance: np.ndarray  # (N,) float64 in [0, 1]
    m_max: int


@runtime_checkable
class CompressorBackend(Protocol):
    m_max: int
    timestamp_tokens: int  # decoder tokens one timestamp costs

    def compress(self, frames: np.ndarray, plan: SegmentPlan, question: Question) -> Compressed: ...


@runtime_checkable
class DecoderBackend(Protocol):
    def answer(self, compressed: Compressed, ks: Sequence[np.ndarray], plan: SegmentPlan,
               question: Question) -> list[str]: ...

    def text_tokens(self, question: Question) -> int: ...


@runtime_checkable
class ExactTimestamps(Protocol):
    """A decoder whose timestamps cost a different number of tokens per segment (rendered text, tokenised)."""

    def timestamp_counts(self, plan: SegmentPlan) -> np.ndarray: ...


class _Choices:
    """Duck-typed stand-in with the fields AnswerVocab reads."""

    def __init__(self, q: Question) -> None:
        self.task, self.choices, self.answer = q.task, q.choices, q.choices[0]


class TinyBackend:
    """The trained tiny compressor and decoder (CPU), as both backends. ``truncation`` picks which k of a segment's
    M memory states the decoder reads (``video/truncate.py``; ``head`` is the design, the rest are ablations;
    ``random`` draws from a generator seeded by ``seed``)."""

    timestamp_tokens = 1

    def __init__(self, compressor: TinyCompressor, decoder: TinyDecoder, answers: AnswerVocab | None = None,
                 chunk: int = 256, truncation: str = "head", seed: int = 0) -> None:
        check_choice("truncation", truncation, TRUNCATIONS)
        self.compressor, self.decoder = compressor.eval(), decoder.eval()
        self.answers, self.chunk = answers or AnswerVocab(), chunk
        self.m_max = compressor.cfg.n_memory
        self.truncation, self.gen = truncation, torch.Generator().manual_seed(seed)

    @torch.no_grad()
    def compress(self, frames: np.ndarray, plan: SegmentPlan, question: Question) -> Compressed:
        cfg = self.compressor.cfg
        segs = segment_frames(frames, plan.segments, cfg.frames)
        query = torch.tensor([self.compressor.vocab.encode_padded(question.text, cfg.query_len)])
        mem, logit = [], []
        for i in range(0, segs.shape[0], self.chunk):
            out = self.compressor(segs[i:i + self.chunk], query.expand(min(self.chunk, segs.shape[0] - i), -1))
            mem.append(out.memory)
            logit.append(out.relevance_logit)
        rel = torch.sigmoid(torch.cat(logit)).double().numpy()
        return Compressed(memory=torch.cat(mem), relevance=rel, m_max=self.m_max)

    @torch.no_grad()
    def answer(self, compressed: Compressed, ks: Sequence[np.ndarray], plan: SegmentPlan,
               question: Question) -> list[str]:
        bins = torch.tensor(timestamp_bins(plan.timestamps, plan.n_frames / plan.real_fps,
                                           self.decoder.cfg.time_bins))
        q = torch.tensor(self.decoder.vocab.encode(question.text))
        batch = [DecoderInput(self._kept(compressed.memory, np.asarray(k)),
                              torch.as_tensor(np.asarray(k), dtype=torch.long), bins, q) for k in ks]
        probe = _Choices(question)
        allowed = self.answers.allowed(probe)
        out = []
        for i in range(0, len(batch), 16):
            logits = restrict(self.decoder(batch[i:i + 16]), [allowed] * len(batch[i:i + 16]))
            out += [self.answers.text(probe, int(c)) for c in logits.argmax(-1)]
        return out

    def _kept(self, memory: torch.Tensor, k: np.ndarray) -> torch.Tensor:
        """(N, max k, d): each segment's kept states first (head truncation is a slice; the others are cut here)."""
        width = max(int(np.max(k, initial=0)), 1)
        if self.truncation == "head":
            return memory[:, :width]
        out = memory.new_zeros(memory.shape[0], width, memory.shape[2])
        for i, ki in enumerate(k.tolist()):
            out[i, :ki] = truncate(memory[i], ki, self.truncation, self.gen)
        return out

    def text_tokens(self, question: Question) -> int:
        """Question words + the ``<video>`` and ``<answer>`` specials."""
        return len(self.decoder.vocab.encode(question.text)) + 2
