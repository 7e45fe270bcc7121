"""The tiny query-conditioned compressor: one causal pass over a segment's frames, the query, a relevance probe
and M learned memory tokens; the memory states are the segment's compression, the probe gives its relevance.

Sequence per segment: ``[visual × V][query words × Lq (left-padded)][<relevant?>][mem_1 … mem_M]``. Visual
tokens come from a small convolutional stem per frame (32×32 → a grid × grid map, max-pooled per cell) whose maps
are joined in pairs of frames (tubelets) and projected to d. Three stems (``stem``): ``conv`` (the earlier runs) is
three strided RGB convolutions, whose per-channel max over a cell takes one sprite's colour and another's shape
alike, so which colour belongs to which shape can be lost; ``slot`` (:class:`SlotStem`) multiplies each place's
features by its share of each of ``colour_slots`` learned colour slots, so every channel is a (colour slot, local
feature) conjunction and the per-cell max never pairs one sprite's colour with another's shape; ``silhouette``
(:class:`SilhouetteStem`) reads each colour slot's share map alone with its own shape network, so a sprite's shape
features come from its own colour's pixels only (binding by construction, also under a max over the whole frame,
``grid`` 1). ``query_first`` puts the query before the visual tokens (Tempo's order is frames, then query).
Attention is causal, so memory token j sees only what precedes it: the first k memory states of a run with M
appended equal a run with only k appended (head truncation needs no re-encoding). The relevance logit is read at
the probe, just before the memory tokens (it cannot see them), through the tied word-embedding head: Δ = logit(yes) − logit(no), r = σ(Δ) (Tempo spec §4–§5). Memory tokens
start from a normal with each dimension's mean and std over the word-embedding table (Tempo's Stage-0 init).
``local_head`` reads the first memory state as an answer class for the segment alone (a training signal that
makes the head of the memory carry the query's answer; unused at inference). With ``n_caption`` > 0 two caption
heads (training signals only, see ``video/caption.py``) read the sprites and background each visual token sees
(``token_caption``, on the stem's output, before the transformer) and the whole segment's caption from the first
memory state (``memory_caption``): a from-scratch stand-in for the perception a pretrained small VLM brings.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from thrifty.core.errors import ConfigError
from thrifty.video.qa_vocab import WordVocab
from thrifty.video.tiny_blocks import CausalBlock, causal_mask, init_weights

STEMS = ("conv", "slot", "silhouette")


@dataclass(frozen=True)
class CompressorConfig:
    d_model: int = 64
    n_layers: int = 3
    n_heads: int = 4
    n_memory: int = 16  # M
    frames: int = 8  # frames per segment (shorter segments repeat their last frame)
    tubelet: int = 2  # frames joined into one visual token
    grid: int = 2  # visual tokens per frame side
    channels: int = 16  # width of the first conv layer
    query_len: int = 16  # question words (left-padded)
    image_size: int = 32
    n_answers: int = 0  # classes of the segment-level answer head on the first memory state (0: no head)
    n_caption: int = 0  # caption classes of the token and memory caption heads (0: no heads)
    sprite_kinds: int = 0  # classes of the still-frame sprite head on the stem's whole-frame max (0: no head)
    stem_norm: bool = True  # GroupNorm after each stem convolution (per frame: no batch statistics)
    stem: str = "conv"  # conv: RGB convs, per-cell max; slot: colour-slot × feature; silhouette: per-slot shapes
    colour_slots: int = 12  # slot stem: learned per-pixel colour slots (sprite colours and backgrounds)
    slot_sharpness: float = 8.0  # slot stem: scale of the colour-slot logits' initial weights
    query_first: bool = False  # [query][visual] instead of Tempo's [visual][query]: visual tokens see the ask

    def __post_init__(self) -> None:
        if self.d_model % self.n_heads or self.n_layers < 1 or self.n_memory < 1:
            raise ConfigError("d_model must split into n_heads; n_layers and n_memory must be >= 1")
        if self.frames % self.tubelet or self.image_size % 8 or (self.image_size // 8) % self.grid:
            raise ConfigError("frames must be a multiple of tubelet; image_size/8 a multiple of grid")
        if self.stem not in STEMS or self.colour_slots < 2:
            raise ConfigError(f"stem must be one of {', '.join(STEMS)} (with colour_slots >= 2), got {self.stem!r}")
        if self.stem_norm and self.channels % 4:
            raise ConfigError(f"the stem's GroupNorm needs channels divisible by 4, got {self.channels}")

    @property
    def n_visual(self) -> int:
        return self.frames // self.tubelet * self.grid * self.grid

    @property
    def stem_channels(self) -> int:
        """Channels per cell of one frame's pooled map."""
        return 2 * self.channels * (1 if self.stem == "conv" else self.colour_slots)

    @property
    def probe_index(self) -> int:
        return self.n_visual + self.query_len


@dataclass
class Compression:
    memory: torch.Tensor  # (S, k, d) last-layer states at the memory positions
    relevance_logit: torch.Tensor  # (S,) Δ = logit(yes) − logit(no) at the probe
    visual: torch.Tensor | None = None  # (S, V, d) the stem's visual tokens (inputs of the pass)

    @property
    def relevance(self) -> torch.Tensor:
        return torch.sigmoid(self.relevance_logit)


class ColourSlots(nn.Module):
    """The colour slots both slot stems share: every pixel is softly assigned to one of K slots by a per-pixel
    softmax over a 1×1 convolution of RGB (nearest-colour regions; ``assign`` can start at k-means centres)."""

    def __init__(self, slots: int) -> None:
        super().__init__()
        self.assign = nn.Conv2d(3, slots, 1)

    def masks(self, x: torch.Tensor) -> torch.Tensor:
        """(N, K, H, W) slot shares of every pixel (they sum to 1)."""
        return self.assign(x).softmax(1)


class SlotStem(ColourSlots):
    """(N, 3, H, W) → (N, K·2c, H/4, W/4): pixels are assigned to K colour slots (:class:`ColourSlots`), the slot
    shares are averaged over 4×4 pixels, and channel k·2c + j is slot k's share times feature j of two strided RGB
    convolutions at the same place — a colour-shape conjunction at 4-pixel resolution, so a later max over a cell
    keeps which colour each shape had."""

    def __init__(self, slots: int, c: int, norm) -> None:
        super().__init__(slots)
        self.shape = nn.Sequential(nn.Conv2d(3, c, 3, 2, 1), norm(c), nn.GELU(), nn.Conv2d(c, 2 * c, 3, 2, 1),
                                   norm(2 * c), nn.GELU())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        feats = self.shape(x)  # (N, 2c, H/4, W/4)
        shares = nn.functional.adaptive_avg_pool2d(self.masks(x), feats.shape[2:])  # (N, K, H/4, W/4)
        return (shares[:, :, None] * feats[:, None]).flatten(1, 2) * shares.shape[1]  # mean share 1


class SilhouetteStem(ColourSlots):
    """(N, 3, H, W) → (N, K·2c, H/4, W/4): every pixel is softly assigned to one of K colour slots
    (:class:`ColourSlots`), then each slot's share map is read *alone* — the silhouette of that colour — by its own
    small shape network (grouped convolutions: a 4×4-patch embedding, then a 3×3 convolution, 12 pixels seen), so
    channel k·2c + j is shape feature j of colour k's pixels only. A sprite's shape features come from its own
    colour's pixels: a neighbour of another colour in the same cell cannot lend its shape, so the per-cell max keeps
    which shape had which colour by construction (two sprites of one colour in a cell still merge)."""

    def __init__(self, slots: int, c: int, norm=None) -> None:
        super().__init__(slots)  # no GroupNorm (``norm`` is ignored): groups spanning slots would mix colours
        self.shape = nn.Sequential(nn.Conv2d(slots, slots * c, 4, 4, groups=slots), nn.GELU(),
                                   nn.Conv2d(slots * c, slots * 2 * c, 3, 1, 1, groups=slots), nn.GELU())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.shape(self.masks(x))


class TinyCompressor(nn.Module):
    """frames (S, F, H, W, 3) uint8 + query ids (S, Lq) → memory (S, k, d) and relevance (S,)."""

    def __init__(self, cfg: CompressorConfig, vocab: WordVocab, gen: torch.Generator | None = None) -> None:
        super().__init__()
        self.cfg, self.vocab = cfg, vocab
        c, d = cfg.channels, cfg.d_model
        def norm(ch: int) -> nn.Module:
            return nn.GroupNorm(4, ch) if cfg.stem_norm else nn.Identity()

        if cfg.stem in ("slot", "silhouette"):
            self.stem: nn.Module = (SlotStem if cfg.stem == "slot" else SilhouetteStem)(cfg.colour_slots, c, norm)
        else:
            self.stem = nn.Sequential(nn.Conv2d(3, c, 3, 2, 1), norm(c), nn.GELU(), nn.Conv2d(c, 2 * c, 3, 2, 1),
                                      norm(2 * c), nn.GELU(), nn.Conv2d(2 * c, 2 * c, 3, 2, 1), norm(2 * c),
                                      nn.GELU())
        self.tube = nn.Linear(cfg.tubelet * cfg.stem_channels, d)
        self.words = nn.Embedding(vocab.size, d)
        self.pos = nn.Parameter(torch.zeros(cfg.probe_index + 1 + cfg.n_memory, d))
        self.memory = nn.Parameter(torch.zeros(cfg.n_memory, d))
        self.blocks = nn.ModuleList(CausalBlock(d, cfg.n_heads) for _ in range(cfg.n_layers))
        self.norm = nn.LayerNorm(d)
        self.local_head = nn.Linear(d, cfg.n_answers) if cfg.n_answers else None
        self.token_caption = nn.Linear(d, cfg.n_caption) if cfg.n_caption else None
        self.memory_caption = nn.Linear(d, cfg.n_caption) if cfg.n_caption else None
        self.sprite_head = nn.Linear(cfg.stem_channels, cfg.sprite_kinds) if cfg.sprite_kinds else None
        gen = gen or torch.Generator().manual_seed(0)
        init_weights(self, gen)
        with torch.no_grad():
            self.pos.normal_(0.0, 0.02, generator=gen)
            table = self.words.weight
            noise = torch.randn(cfg.n_memory, d, generator=gen)
            self.memory.copy_(table.mean(0) + table.std(0) * noise)
            if cfg.stem != "conv":  # sharp slots from the start: random nearest-colour regions, not uniform shares
                self.stem.assign.weight.mul_(cfg.slot_sharpness)

    def sprite_logits(self, images: torch.Tensor) -> torch.Tensor:
        """(N, H, W, 3) uint8 still frames → (N, sprite_kinds) logits of the sprite kinds each shows, read from the
        stem's map max-pooled over the whole frame (training stage ``sprites``; unused at inference)."""
        if self.sprite_head is None:
            raise ConfigError("this compressor has no sprite head (sprite_kinds = 0)")
        x = images.permute(0, 3, 1, 2).float() / 255.0 - 0.5
        return self.sprite_head(self.stem(x).amax((2, 3)))

    def visual_tokens(self, frames: torch.Tensor) -> torch.Tensor:
        """(S, F, H, W, 3) uint8 → (S, V, d)."""
        cfg = self.cfg
        s, f = frames.shape[:2]
        if f != cfg.frames or frames.shape[2] != cfg.image_size or frames.shape[3] != cfg.image_size:
            raise ConfigError(f"expected segments of {cfg.frames} frames of {cfg.image_size}² pixels, "
                              f"got {tuple(frames.shape)}")
        x = frames.reshape(s * f, *frames.shape[2:]).permute(0, 3, 1, 2).float() / 255.0 - 0.5
        maps = nn.functional.adaptive_max_pool2d(self.stem(x), cfg.grid)  # (S·F, C, g, g)
        maps = maps.flatten(2).transpose(1, 2).reshape(s, f // cfg.tubelet, cfg.tubelet, cfg.grid ** 2, -1)
        maps = maps.permute(0, 1, 3, 2, 4).reshape(s, cfg.n_visual, -1)  # tubelet channels joined
        return self.tube(maps)

    def forward(self, frames: torch.Tensor, query: torch.Tensor, n_memory: int | None = None) -> Compression:
        cfg = self.cfg
        k = cfg.n_memory if n_memory is None else int(n_memory)
        if not 0 <= k <= cfg.n_memory:
            raise ConfigError(f"n_memory must be in [0, {cfg.n_memory}], got {k}")
        if query.shape[-1] != cfg.query_len:
            raise ConfigError(f"queries must be {cfg.query_len} ids (left-padded), got {query.shape[-1]}")
        s = frames.shape[0]
        probe = torch.full((s, 1), self.vocab.id("<relevant?>"), dtype=torch.long)
        text = self.words(torch.cat([query, probe], dim=1))
        visual = self.visual_tokens(frames)
        parts = [text[:, :-1], visual] if cfg.query_first else [visual, text[:, :-1]]
        h = torch.cat([*parts, text[:, -1:], self.memory[:k].expand(s, k, -1)], dim=1)
        h = h + self.pos[: h.shape[1]]
        valid = torch.ones(s, h.shape[1], dtype=torch.bool)
        start = 0 if cfg.query_first else cfg.n_visual
        valid[:, start:start + cfg.query_len] = query != self.vocab.pad
        mask = causal_mask(valid)
        for block in self.blocks:
            h = block(h, mask)
        h = self.norm(h)
        yes_no = self.words.weight[self.vocab.id("yes")] - self.words.weight[self.vocab.id("no")]
        return Compression(memory=h[:, cfg.probe_index + 1:], relevance_logit=h[:, cfg.probe_index] @ yes_no,
                           visual=visual)

    def num_params(self) -> int:
        return sum(p.numel() for p in self.parameters())


def segment_frames(frames, segments, n_frames: int) -> torch.Tensor:
    """(S, n_frames, H, W, 3) uint8: each segment's source frames (numpy index arrays), the last one repeated
    (or cut) to ``n_frames``."""
    import numpy as np

    from thrifty.video.caption import segment_rows

    return torch.from_numpy(np.ascontiguousarray(frames[segment_rows(segments, n_frames)]))
