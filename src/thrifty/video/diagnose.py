"""Where the tiny pipeline breaks: does each segment's first memory state carry the answer to the question asked
of that segment alone? The compressor's training-only ``local_head`` reads it; accuracy is split into evidence
segments (where the answer is not "none"/"no") and the others, per question type. A decoder can only be as good as
what the memory it reads holds. Binding diagnostics: does a caption head score each sprite's true (shape, colour)
pair above the swapped pair (``caption_binding`` on real segments, ``swap_probe`` on a hand-made two-sprite one)?
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np
import torch

from thrifty.core.errors import ConfigError
from thrifty.video.caption import token_labels
from thrifty.video.compressor import TinyCompressor, segment_frames
from thrifty.video.qa_vocab import AnswerVocab, segment_answers
from thrifty.video.synth import BACKGROUNDS, COLOURS, SHAPES, NeedleVideo, shape_mask


@contextmanager
def _eval_mode(compressor: TinyCompressor) -> Iterator[None]:
    """The compressor in eval mode inside the block, back in the mode it had after it."""
    was_training = compressor.training
    compressor.eval()
    try:
        yield
    finally:
        compressor.train(was_training)


@torch.no_grad()
def segment_answer_accuracy(compressor: TinyCompressor, videos: list[NeedleVideo],
                            answers: AnswerVocab | None = None) -> dict[str, dict[str, float]]:
    """{task: {"evidence": acc, "other": acc, "n_evidence": n, "n_other": n}} of the local head's argmax."""
    if compressor.local_head is None:
        raise ConfigError("this compressor has no segment-level answer head (n_answers = 0)")
    answers = answers or AnswerVocab()
    cfg = compressor.cfg
    tally: dict[str, np.ndarray] = {}  # task → [hits evidence, n evidence, hits other, n other]
    with _eval_mode(compressor):
        for v in videos:
            frames = segment_frames(v.frames, v.plan.segments, cfg.frames)
            query = torch.tensor([compressor.vocab.encode_padded(v.question, cfg.query_len)]).expand(len(frames), -1)
            pred = compressor.local_head(compressor(frames, query).memory[:, 0]).argmax(-1).numpy()
            hit = pred == np.asarray(segment_answers(v, answers))
            ev = np.asarray(v.evidence, dtype=bool)
            t = tally.setdefault(v.task, np.zeros(4))
            t += [hit[ev].sum(), ev.sum(), hit[~ev].sum(), (~ev).sum()]
    return {task: {"evidence": t[0] / t[1] if t[1] else float("nan"), "other": t[2] / t[3] if t[3] else float("nan"),
                   "n_evidence": int(t[1]), "n_other": int(t[3])} for task, t in tally.items()}


def probe_table(acc: dict[str, dict[str, float]]) -> str:
    """Markdown: one row per question type."""
    out = ["| question type | evidence segments | other segments |", "|---|---|---|"]
    for task, a in acc.items():
        out.append(f"| {task} | {a['evidence']:.3f} ({a['n_evidence']}) | {a['other']:.3f} ({a['n_other']}) |")
    return "\n".join(out)


def _sprite_class(shape: str, colour: str) -> int:
    return SHAPES.index(shape) * len(COLOURS) + list(COLOURS).index(colour)


def swap_comparisons(present: np.ndarray, logits: np.ndarray) -> tuple[int, int]:
    """(hits, comparisons) of the binding test on caption logits: for every two present sprites (s1, c1) and
    (s2, c2) of different shapes and colours whose swaps (s1, c2) and (s2, c1) are absent, is each true pair scored
    above its swap? ``present`` (N, C) bool and ``logits`` (N, C) over :func:`caption_classes`; chance is half."""
    n_col, hits, total = len(COLOURS), 0, 0
    n_sprite = len(SHAPES) * n_col
    for row, score in zip(present[:, :n_sprite], logits[:, :n_sprite], strict=True):
        on = np.flatnonzero(row)
        for i, a in enumerate(on):
            for b in on[i + 1:]:
                (s1, c1), (s2, c2) = divmod(int(a), n_col), divmod(int(b), n_col)
                swap1, swap2 = s1 * n_col + c2, s2 * n_col + c1
                if s1 == s2 or c1 == c2 or row[swap1] or row[swap2]:
                    continue
                hits += int(score[a] > score[swap1]) + int(score[b] > score[swap2])
                total += 2
    return hits, total


@torch.no_grad()
def caption_binding(compressor: TinyCompressor, videos: list[NeedleVideo]) -> dict[str, float]:
    """Swap-test accuracy (:func:`swap_comparisons`) of the token caption head on every visual token and of the
    memory caption head on each segment's first memory state (query: the video's question); 0.5 is chance."""
    if compressor.token_caption is None:
        raise ConfigError("this compressor has no caption heads (n_caption = 0)")
    cfg = compressor.cfg
    tally = np.zeros(4)
    with _eval_mode(compressor):
        for v in videos:
            frames = segment_frames(v.frames, v.plan.segments, cfg.frames)
            query = torch.tensor([compressor.vocab.encode_padded(v.question, cfg.query_len)]).expand(len(frames), -1)
            out = compressor(frames, query)
            labels = token_labels(v, cfg.frames, cfg.tubelet, cfg.grid)  # (S, V, C)
            tally[:2] += swap_comparisons(labels.reshape(-1, labels.shape[-1]),
                                          compressor.token_caption(out.visual).flatten(0, 1).numpy())
            tally[2:] += swap_comparisons(labels.any(1), compressor.memory_caption(out.memory[:, 0]).numpy())
    return {"token": tally[0] / max(tally[1], 1), "n_token": int(tally[1]),
            "memory": tally[2] / max(tally[3], 1), "n_memory": int(tally[3])}


def two_sprite_segment(first: tuple[str, str], second: tuple[str, str], background: str = "grey",
                       frames: int = 8, size: int = 32, sprite: int = 7) -> torch.Tensor:
    """(1, frames, size, size, 3) uint8: a still segment with two (shape, colour) sprites side by side in the
    top-left cell of a 2×2 grid, on a flat background — the hand-made binding probe."""
    img = np.empty((size, size, 3), dtype=np.uint8)
    img[:] = BACKGROUNDS[background]
    for (shape, colour), (y, x) in zip((first, second), ((1, 0), (1 + sprite, sprite + 1)), strict=True):
        region = img[y:y + sprite, x:x + sprite]
        region[shape_mask(shape, sprite)] = COLOURS[colour]
    return torch.from_numpy(np.ascontiguousarray(np.broadcast_to(img, (1, frames, size, size, 3))))


@torch.no_grad()
def swap_probe(compressor: TinyCompressor, shapes: tuple[str, str] = ("square", "circle"),
               colours: tuple[str, str] = ("red", "blue"), question: str = "What colour is the square?") -> dict:
    """The hand-made probe: segment A = (colour0 shape0, colour1 shape1), segment B = the colours swapped. Returns
    the relative distance of their visual tokens and of their first memory states, and (with caption heads) the
    token and memory caption margins: logit(true pairs) − logit(swapped pairs), which should be > 0 for both."""
    cfg = compressor.cfg
    a = two_sprite_segment((shapes[0], colours[0]), (shapes[1], colours[1]), frames=cfg.frames, size=cfg.image_size)
    b = two_sprite_segment((shapes[0], colours[1]), (shapes[1], colours[0]), frames=cfg.frames, size=cfg.image_size)
    query = torch.tensor([compressor.vocab.encode_padded(question, cfg.query_len)]).expand(2, -1)
    with _eval_mode(compressor):
        out = compressor(torch.cat([a, b]), query)

    def rel(x: torch.Tensor) -> float:
        return float((x[0] - x[1]).norm() / (0.5 * (x[0].norm() + x[1].norm()) + 1e-12))

    res = {"visual_distance": rel(out.visual), "memory_distance": rel(out.memory[:, 0])}
    if compressor.token_caption is not None:
        true = [_sprite_class(shapes[0], colours[0]), _sprite_class(shapes[1], colours[1])]
        swap = [_sprite_class(shapes[0], colours[1]), _sprite_class(shapes[1], colours[0])]
        for name, logits in (("token", compressor.token_caption(out.visual).amax(1)),
                             ("memory", compressor.memory_caption(out.memory[:, 0]))):
            margin = logits[:, true].sum(1) - logits[:, swap].sum(1)  # A should favour true, B the swap
            res[f"{name}_margin"] = float(torch.minimum(margin[0], -margin[1]))
    return res


@torch.no_grad()
def sprite_perception(compressor: TinyCompressor, n: int = 512, seed: int = 12345) -> dict[str, float] | None:
    """How well the stem names the sprites of held-out still frames (`video/sprite_sheet.py`, a seed stream the
    sprite stage never draws): exact-set accuracy of the sprite head (every kind right) and its mean per-kind
    AUROC; None without a sprite head."""
    from thrifty.evals.prob_metrics import auroc
    from thrifty.video.sprite_sheet import sprite_frames

    if compressor.sprite_head is None:
        return None
    frames, labels = sprite_frames(n, np.random.default_rng(seed), size=compressor.cfg.image_size)
    with _eval_mode(compressor):
        logits = compressor.sprite_logits(torch.from_numpy(frames)).numpy()
    per_kind = [auroc(logits[:, j], labels[:, j]) for j in range(labels.shape[1]) if 0 < labels[:, j].sum() < n]
    return {"exact_set": float(((logits > 0) == labels).all(1).mean()), "mean_auroc": float(np.mean(per_kind)),
            "n_frames": n}
