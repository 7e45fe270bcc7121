"""The tiny answer decoder: a causal transformer over ``<video> [ts_1, mem_1..k_1] … [ts_N, mem…] question
<answer>`` that reads the answer as a class at the last position (Tempo spec §8 order: video first, then question).

Memory states from the compressor pass a linear projector into the decoder's width, plus a learned embedding
of their rank inside the segment (slot j), so a head-truncated segment still says which slots it kept. A
segment's timestamp is one token: an embedding of its time bin. Segments with k = 0 are dropped with their
timestamp. The video part has no position embedding (order comes from the causal mask and the timestamps, which
lets a decoder trained on short videos read longer ones); question words get learned positions. With
``question_first`` the question is read once more before ``<video>`` (our option, off in Tempo's order), so each
memory token can already weigh itself against what is asked and the answer position only has to gather.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from thrifty.core.errors import ConfigError
from thrifty.video.qa_vocab import WordVocab
from thrifty.video.tiny_blocks import CausalBlock, causal_mask, init_weights


@dataclass(frozen=True)
class DecoderConfig:
    d_model: int = 64
    n_layers: int = 3
    n_heads: int = 4
    d_memory: int = 64  # compressor width
    n_slots: int = 16  # M: ranks a memory token can have
    time_bins: int = 16
    n_answers: int = 24
    query_len: int = 16
    question_first: bool = False  # also read the question before the video (each memory token can see the ask)

    def __post_init__(self) -> None:
        if self.d_model % self.n_heads or self.n_layers < 1 or min(self.n_slots, self.time_bins, self.n_answers) < 1:
            raise ConfigError("d_model must split into n_heads; layers, slots, time bins and answers must be >= 1")


@dataclass
class DecoderInput:
    """One video as the decoder reads it."""

    memory: torch.Tensor  # (N, K, d_memory), K >= max k
    k: torch.Tensor  # (N,) long: memory tokens kept per segment (head)
    time_bins: torch.Tensor  # (N,) long
    question: torch.Tensor  # (Lq,) long, unpadded


class TinyDecoder(nn.Module):
    """A list of :class:`DecoderInput` → answer logits (B, n_answers)."""

    def __init__(self, cfg: DecoderConfig, vocab: WordVocab, gen: torch.Generator | None = None) -> None:
        super().__init__()
        self.cfg, self.vocab = cfg, vocab
        d = cfg.d_model
        self.project = nn.Linear(cfg.d_memory, d)
        self.slots = nn.Embedding(cfg.n_slots, d)
        self.times = nn.Embedding(cfg.time_bins, d)
        self.words = nn.Embedding(vocab.size, d)
        self.qpos = nn.Embedding(cfg.query_len + 1, d)
        self.blocks = nn.ModuleList(CausalBlock(d, cfg.n_heads) for _ in range(cfg.n_layers))
        self.norm = nn.LayerNorm(d)
        self.head = nn.Linear(d, cfg.n_answers)
        init_weights(self, gen or torch.Generator().manual_seed(1))

    def sequence(self, x: DecoderInput) -> torch.Tensor:
        """(L, d) input embeddings of one video and its question."""
        n, kk = x.memory.shape[:2]
        if kk > self.cfg.n_slots or x.k.shape != (n,) or x.time_bins.shape != (n,) or (n and int(x.k.max()) > kk):
            raise ConfigError(f"decoder input: memory {tuple(x.memory.shape)}, k {tuple(x.k.shape)}, "
                              f"time bins {tuple(x.time_bins.shape)} do not fit (at most {self.cfg.n_slots} slots)")
        mem = self.project(x.memory) + self.slots.weight[:kk]
        seg = torch.cat([self.times(x.time_bins)[:, None], mem], dim=1)  # (N, 1 + K, d)
        keep = torch.cat([(x.k > 0)[:, None], torch.arange(kk)[None] < x.k[:, None]], dim=1)
        q = x.question[-self.cfg.query_len:]
        words = self.words(torch.cat([q, torch.tensor([self.vocab.id("<answer>")])]))
        words = words + self.qpos(torch.arange(q.numel() + 1))
        start = self.words(torch.tensor([self.vocab.id("<video>")]))
        first = [words[:-1]] if self.cfg.question_first else []
        return torch.cat([*first, start, seg[keep], words])

    def forward(self, batch: list[DecoderInput]) -> torch.Tensor:
        seqs = [self.sequence(x) for x in batch]
        lengths = torch.tensor([s.shape[0] for s in seqs])
        h = nn.utils.rnn.pad_sequence(seqs, batch_first=True)
        valid = torch.arange(h.shape[1])[None] < lengths[:, None]
        mask = causal_mask(valid)
        for block in self.blocks:
            h = block(h, mask)
        last = self.norm(h[torch.arange(len(seqs)), lengths - 1])
        return self.head(last)

    def num_params(self) -> int:
        return sum(p.numel() for p in self.parameters())


def restrict(logits: torch.Tensor, allowed: list[list[int]]) -> torch.Tensor:
    """Logits with every class outside each row's allowed choices set to −inf."""
    mask = torch.full_like(logits, float("-inf"))
    for i, classes in enumerate(allowed):
        mask[i, classes] = 0.0
    return logits + mask
