"""Tempo's compressor and decoder on a local Qwen2-VL / Qwen2.5-VL checkpoint (transformers; GPU, or CPU for tiny
random-weight models in the tests).

Compression (Tempo spec §4–§5): each segment is its own short video in a ChatML prompt — a system text asking the
model to act as a query-conditioned compressor plus, as at Tempo's inference, the question "is this segment
relevant? answer Yes or No" — then ``\\nQuery:\\n{query}`` and the generation prompt. M memory embeddings are appended
right after the prompt as ordinary causal positions; one forward pass gives both the relevance
σ(logit(Yes) − logit(No)) at the last prompt position (which cannot see the memory) and the M memory states (last
layer after the final norm). Segments with the same patch grid run as one batch.

Answering (§8): the same language model greedily continues ``system, user: [timestamp text, k kept memory states]*
question + options, assistant`` fed as input embeddings, and the reply is matched to one option (the raw reply is
returned when it names none or several: never a made-up choice).

Our choices where Tempo trained something we do not have: the memory embeddings are drawn once (seeded) from the
embedding table's per-dimension mean and std (Tempo's stage-0 init) unless trained ones are given, and without a
trained projector each kept state is rescaled to the mean norm of the embedding rows before the decoder reads it.
Token ids (video pad, vision start/end, Yes/No, padding) come from the config and tokenizer. Qwen3-VL (Tempo's own
compressor base) is refused: its video prompt interleaves per-frame timestamps, not done here yet.
"""

from __future__ import annotations

import inspect
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from thrifty.core.errors import ConfigError, check_choice
from thrifty.video.adapter import Compressed, Question
from thrifty.video.qwen_vision import pack_video, vision_spec
from thrifty.video.segment import SegmentPlan, timestamp_text
from thrifty.video.truncate import TRUNCATIONS, truncate

FAMILIES = ("qwen2_vl", "qwen2_5_vl")
COMPRESSOR_SYSTEM = ("You are a query-conditioned visual compressor: store in the memory tokens only what is needed "
                     "to answer the query about this video segment. First answer Yes or No: is this segment "
                     "relevant to the query?")
DECODER_SYSTEM = "You are a helpful assistant."
VIDEO_TYPE = 2  # transformers' modality code for video positions in mm_token_type_ids (text 0, image 1)


def yes_no_ids(tokenizer) -> tuple[int, int]:
    """The tokenizer's own ids of "Yes" and "No"; a one-line error unless each is a single token."""
    ids = []
    for word in ("Yes", "No"):
        enc = tokenizer.encode(word, add_special_tokens=False)
        if len(enc) != 1:
            raise ConfigError(f"the tokenizer splits {word!r} into {len(enc)} tokens; the relevance prior needs one")
        ids.append(int(enc[0]))
    return ids[0], ids[1]


def yes_no_relevance(logits: torch.Tensor, yes: int, no: int) -> np.ndarray:
    """σ(logit(Yes) − logit(No)) = P(Yes) / (P(Yes) + P(No)) for each row of (..., vocab) logits, float64."""
    return torch.sigmoid(logits[..., yes].double() - logits[..., no].double()).detach().cpu().numpy()


def match_choice(reply: str, choices: Sequence[str]) -> str:
    """The one option the reply names (case-insensitive), else the stripped reply itself."""
    text = reply.strip()
    named = [c for c in choices if c.lower() in text.lower()]
    return named[0] if len(named) == 1 else text


class QwenVLBackend:
    """A Qwen2-VL-family checkpoint from ``model_dir`` as Tempo's compressor and decoder (both backend protocols).

    ``m_max`` memory states per segment; ``frame_size`` the square side frames are packed at (a multiple of patch ×
    merge; default 12 merged tokens a side, ≈576 tokens per 8-frame segment as in Tempo); ``device`` ``auto`` picks
    CUDA when present (bf16) else CPU (fp32); ``batch`` segments per forward pass; ``truncation`` which k of M
    states the decoder reads (``head`` is the design).
    """

    def __init__(self, model_dir: str | Path, m_max: int = 128, device: str = "auto",
                 memory: torch.Tensor | None = None, frame_size: int | None = None, batch: int = 8,
                 max_new_tokens: int = 16, truncation: str = "head", seed: int = 0) -> None:
        path = Path(model_dir)
        if not (path / "config.json").is_file():
            raise ConfigError(f"no model folder at {path} (need a local Qwen-VL checkpoint with config.json)")
        if device == "auto":
            device = "cuda" if torch.cuda.is_available() else "cpu"
        if device.startswith("cuda") and not torch.cuda.is_available():
            raise ConfigError(f"the Qwen-VL backend was asked for {device}, but no CUDA GPU is available")
        check_choice("truncation", truncation, TRUNCATIONS)
        if m_max < 1 or batch < 1 or max_new_tokens < 1:
            raise ConfigError(f"m_max, batch and max_new_tokens must be >= 1, got {m_max}, {batch}, {max_new_tokens}")
        try:
            from transformers import AutoConfig, AutoModelForImageTextToText, AutoTokenizer
        except ImportError:
            raise ConfigError("the Qwen-VL backend needs transformers: pip install 'thrifty[train]'") from None

        config = AutoConfig.from_pretrained(path)
        if config.model_type not in FAMILIES:
            raise ConfigError(f"{path} holds a {config.model_type!r} model; the Qwen-VL backend reads "
                              f"{' or '.join(FAMILIES)} checkpoints")
        self.tok = AutoTokenizer.from_pretrained(path)
        if not self.tok.chat_template:
            raise ConfigError(f"the tokenizer in {path} has no chat template")
        dtype = torch.bfloat16 if device.startswith("cuda") else torch.float32
        self.model = AutoModelForImageTextToText.from_pretrained(path, dtype=dtype).to(device).eval()
        self.spec = vision_spec(self.model.config, path)
        self.frame_size = frame_size if frame_size is not None else 12 * self.spec.factor
        if self.frame_size % self.spec.factor:
            raise ConfigError(f"frame_size {self.frame_size} must be a multiple of {self.spec.factor}")
        cfg = self.model.config
        self.video_id, self.start_id = cfg.video_token_id, cfg.vision_start_token_id
        self.end_id = cfg.vision_end_token_id
        self.yes, self.no = yes_no_ids(self.tok)
        self.filler = self.tok.pad_token_id if self.tok.pad_token_id is not None else self.tok.eos_token_id
        if self.filler is None:
            raise ConfigError("the tokenizer has neither a pad nor an EOS token to hold the memory positions")
        self.device, self.dtype, self.m_max, self.batch = device, dtype, m_max, batch
        self.max_new_tokens, self.truncation = max_new_tokens, truncation
        self.gen = torch.Generator().manual_seed(seed)
        self.timestamp_tokens = len(self._ids(timestamp_text(16.0)))  # a typical stamp; exact: timestamp_counts
        table = self.model.get_input_embeddings().weight.detach().float().cpu()
        if memory is None:
            noise = torch.randn(m_max, table.shape[1], generator=torch.Generator().manual_seed(seed))
            memory = table.mean(0) + table.std(0) * noise
        if tuple(memory.shape) != (m_max, table.shape[1]):
            raise ConfigError(f"memory embeddings of shape {tuple(memory.shape)}, need ({m_max}, {table.shape[1]})")
        self.memory = memory.to(device, dtype)
        self.row_norm = float(table.norm(dim=-1).mean())
        self._forward_args = set(inspect.signature(self.model.model.forward).parameters)

    def _ids(self, text: str) -> list[int]:
        return self.tok(text, add_special_tokens=False).input_ids

    def _prompt(self, system: str, user: str) -> tuple[list[int], list[int]]:
        """The chat template's ids before and after the one video placeholder in ``user``."""
        msgs = [{"role": "system", "content": system}, {"role": "user", "content": user}]
        ids = self._ids(self.tok.apply_chat_template(msgs, tokenize=False, add_generation_prompt=True))
        where = [i for i, t in enumerate(ids) if t == self.video_id]
        if len(where) != 1:
            raise ConfigError(f"the chat template kept {len(where)} video placeholders, expected 1")
        return ids[:where[0]], ids[where[0] + 1:]

    def _compress_prompt(self, question: Question) -> tuple[list[int], list[int]]:
        token = self.tok.convert_ids_to_tokens
        mark = f"{token(self.start_id)}{token(self.video_id)}{token(self.end_id)}"
        return self._prompt(COMPRESSOR_SYSTEM, f"{mark}\nQuery:\n{question.text}")

    def _decode_prompt(self, question: Question) -> tuple[list[int], list[int]]:
        options = f"\nOptions: {', '.join(question.choices)}\nAnswer with one option." if question.choices else ""
        mark = self.tok.convert_ids_to_tokens(self.video_id)
        return self._prompt(DECODER_SYSTEM, f"{mark}\n{question.text}{options}")

    @torch.no_grad()
    def compress(self, frames: np.ndarray, plan: SegmentPlan, question: Question) -> Compressed:
        before, after = self._compress_prompt(question)
        packed = [pack_video(frames[seg], self.spec, (self.frame_size, self.frame_size)) for seg in plan.segments]
        groups: dict[tuple[int, int, int], list[int]] = {}
        for i, (_, grid) in enumerate(packed):
            groups.setdefault(grid, []).append(i)
        d = self.memory.shape[1]
        memory = torch.zeros(plan.n_segments, self.m_max, d, device=self.device)
        rel = np.zeros(plan.n_segments)
        for grid, members in groups.items():
            for j in range(0, len(members), self.batch):
                idx = members[j:j + self.batch]
                h, n = self._forward(before + [self.video_id] * self.spec.tokens(grid) + after,
                                     [packed[i][0] for i in idx], grid, plan.real_fps)
                logits = self.model.get_output_embeddings()(h[:, n - 1])
                rel[idx] = yes_no_relevance(logits, self.yes, self.no)
                memory[idx] = h[:, n:].float()
        return Compressed(memory=memory, relevance=rel, m_max=self.m_max)

    def _forward(self, ids: list[int], rows: list[torch.Tensor], grid: tuple[int, int, int], fps: float):
        """Last-layer states of a batch of one prompt (one video each) followed by the memory embeddings."""
        b, n = len(rows), len(ids)
        full = torch.tensor([ids + [self.filler] * self.m_max] * b, device=self.device)
        embeds = torch.cat([self.model.get_input_embeddings()(full[:, :n]), self.memory.expand(b, -1, -1)], dim=1)
        kw = {"pixel_values_videos": torch.cat(rows).to(self.device, self.dtype),
              "video_grid_thw": torch.tensor([grid] * b, device=self.device)}
        if "mm_token_type_ids" in self._forward_args:  # newer transformers take the modality of each position
            kw["mm_token_type_ids"] = (full == self.video_id).int() * VIDEO_TYPE
        if "second_per_grid_ts" in self._forward_args:  # Qwen2.5-VL: seconds per temporal patch, for M-RoPE time
            kw["second_per_grid_ts"] = torch.full((b,), self.spec.temporal_patch_size / fps, device=self.device)
        # input_ids place the video features and M-RoPE positions (memory slots count as text); the embeddings
        # passed alongside are what the model reads, so the filler ids at the memory slots are never embedded
        out = self.model.model(input_ids=full, inputs_embeds=embeds, **kw)
        return out.last_hidden_state, n

    def timestamp_counts(self, plan: SegmentPlan) -> np.ndarray:
        """Decoder tokens of each segment's rendered timestamp."""
        return np.array([len(self._ids(t)) for t in plan.texts], dtype=np.int64)

    def text_tokens(self, question: Question) -> int:
        before, after = self._decode_prompt(question)
        return len(before) + len(after)

    @torch.no_grad()
    def assemble(self, compressed: Compressed, k: np.ndarray, plan: SegmentPlan, question: Question) -> torch.Tensor:
        """(context length, d) decoder input: prompt, then per kept segment its timestamp and k states, question."""
        embed = self.model.get_input_embeddings()
        before, after = self._decode_prompt(question)
        parts = [embed(torch.tensor(before, device=self.device))]
        for i, ki in enumerate(np.asarray(k).tolist()):
            if ki > 0:
                kept = truncate(compressed.memory[i], int(ki), self.truncation, self.gen)
                kept = kept * (self.row_norm / kept.norm(dim=-1, keepdim=True).clamp_min(1e-6))
                parts += [embed(torch.tensor(self._ids(plan.texts[i]), device=self.device)), kept.to(self.dtype)]
        parts.append(embed(torch.tensor(after, device=self.device)))
        return torch.cat(parts)

    @torch.no_grad()
    def answer(self, compressed: Compressed, ks: Sequence[np.ndarray], plan: SegmentPlan,
               question: Question) -> list[str]:
        replies = []
        for k in ks:
            ctx = self.assemble(compressed, k, plan, question)[None]
            out = self.model.generate(inputs_embeds=ctx, attention_mask=torch.ones(ctx.shape[:2], dtype=torch.long,
                                      device=self.device), max_new_tokens=self.max_new_tokens, do_sample=False,
                                      pad_token_id=self.filler)
            # fed embeddings only, generate returns just the new tokens
            replies.append(match_choice(self.tok.decode(out[0], skip_special_tokens=True), question.choices))
        return replies
