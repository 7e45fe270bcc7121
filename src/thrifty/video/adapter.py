"""Backends the long-video pipeline runs on: the compressor and decoder protocols, the tiny trained models as
one implementation, and a Qwen-VL-style model from a local folder (transformers, GPU) as another.

A compressor backend is called once per video and returns every segment's M memory states with its relevance
in [0, 1] (same pass, Tempo spec §4–§5); a decoder backend answers one question from head-truncated memories,
for several allocations of the same video at once.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np
import torch

from thrifty.core.errors import ConfigError
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
        if truncation not in TRUNCATIONS:
            raise ConfigError(f"unknown truncation {truncation!r}; choose one of: {', '.join(TRUNCATIONS)}")
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


class QwenVLBackend:
    """A Qwen-VL-style model loaded lazily from a local folder with transformers, on a CUDA GPU.

    Compression: each segment is sent as a short video with the query and Tempo's relevance sentence; the
    relevance is σ(logit(Yes) − logit(No)) at the last prompt position, the memory is the last-layer states of
    M appended memory embeddings (drawn from the embedding table's per-dimension mean and std unless trained
    ones are given as ``memory``). Answering: the language model greedily continues
    ``[timestamp text, memory states]* question`` fed as input embeddings and the reply is matched to a choice.
    Untested here (no weights, no GPU); the constructor fails with one line when either is missing.
    """

    def __init__(self, model_dir: str | Path, m_max: int = 128, device: str = "cuda",
                 memory: torch.Tensor | None = None) -> None:
        path = Path(model_dir)
        if not (path / "config.json").is_file():
            raise ConfigError(f"no model folder at {path} (need a local Qwen-VL checkpoint with config.json)")
        if device.startswith("cuda") and not torch.cuda.is_available():
            raise ConfigError(f"the Qwen-VL backend needs a CUDA GPU ({device}); none is available")
        from transformers import AutoModelForImageTextToText, AutoProcessor

        self.processor = AutoProcessor.from_pretrained(path)
        self.model = AutoModelForImageTextToText.from_pretrained(path, dtype=torch.bfloat16).to(device).eval()
        self.device, self.m_max, self.timestamp_tokens = device, m_max, 6
        table = self.model.get_input_embeddings().weight.float()
        gen = torch.Generator(device="cpu").manual_seed(0)
        noise = torch.randn(m_max, table.shape[1], generator=gen).to(device)
        self.memory = memory if memory is not None else table.mean(0) + table.std(0) * noise
        tok = self.processor.tokenizer
        self.yes, self.no = tok.convert_tokens_to_ids("Yes"), tok.convert_tokens_to_ids("No")

    @torch.no_grad()
    def compress(self, frames: np.ndarray, plan: SegmentPlan, question: Question) -> Compressed:
        mems, rel = [], []
        for seg in plan.segments:
            msgs = [{"role": "user", "content": [{"type": "video"}, {"type": "text", "text": (
                f"\nQuery:\n{question.text}\nFirst answer Yes or No: is this segment relevant to the query?")}]}]
            prompt = self.processor.apply_chat_template(msgs, add_generation_prompt=True)
            enc = self.processor(text=[prompt], videos=[list(frames[seg])], return_tensors="pt").to(self.device)
            embeds = self.model.get_input_embeddings()(enc["input_ids"])
            n = embeds.shape[1]
            embeds = torch.cat([embeds, self.memory[None].to(embeds.dtype)], dim=1)
            mask = torch.ones(embeds.shape[:2], dtype=torch.long, device=self.device)
            extra = {k: v for k, v in enc.items() if k not in ("input_ids", "attention_mask")}
            out = self.model(inputs_embeds=embeds, attention_mask=mask, output_hidden_states=True, **extra)
            logits = out.logits[0, n - 1].float()
            rel.append(float(torch.sigmoid(logits[self.yes] - logits[self.no])))
            mems.append(out.hidden_states[-1][0, n:].float())
        return Compressed(memory=torch.stack(mems), relevance=np.asarray(rel), m_max=self.m_max)

    @torch.no_grad()
    def answer(self, compressed: Compressed, ks: Sequence[np.ndarray], plan: SegmentPlan,
               question: Question) -> list[str]:
        tok, embed = self.processor.tokenizer, self.model.get_input_embeddings()
        replies = []
        for k in ks:
            parts = []
            for i, ki in enumerate(np.asarray(k)):
                if ki > 0:
                    ids = tok(plan.texts[i], return_tensors="pt").input_ids.to(self.device)
                    parts += [embed(ids)[0], compressed.memory[i, :int(ki)].to(embed.weight.dtype)]
            text = f"\n{question.text}\nOptions: {', '.join(question.choices)}\nAnswer with one option."
            parts.append(embed(tok(text, return_tensors="pt").input_ids.to(self.device))[0])
            out = self.model.generate(inputs_embeds=torch.cat(parts)[None], max_new_tokens=16, do_sample=False)
            reply = tok.decode(out[0], skip_special_tokens=True).strip().lower()
            replies.append(next((c for c in question.choices if c.lower() in reply), question.choices[0]))
        return replies

    def text_tokens(self, question: Question) -> int:
        return len(self.processor.tokenizer(question.text).input_ids)
