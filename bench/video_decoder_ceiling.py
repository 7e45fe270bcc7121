"""How well can the tiny decoder answer when its memory is ideal? It is trained alone (no compressor) on needle
videos whose per-segment "memory" is ground truth, one vector per segment, and evaluated on held-out videos:

- ``caption``: which sprites (shape × colour) and background the segment shows, query-free (`video/caption.py`);
- ``answer``: the answer to the question asked of that segment alone, one-hot (`qa_vocab.segment_answers`).

The gap between the two says whether the decoder can retrieve by the query from query-free content, or needs the
compressor to have answered the query per segment already.

    python bench/video_decoder_ceiling.py [--steps 1500] [--n-eval 240] [--question-first]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from thrifty.core.rng import derive_seed
from thrifty.video.caption import caption_classes, token_labels
from thrifty.video.decoder import DecoderConfig, DecoderInput, TinyDecoder, restrict
from thrifty.video.qa_vocab import AnswerVocab, WordVocab, segment_answers, timestamp_bins
from thrifty.video.synth import TASKS, make_video


def ideal_memory(video, kind: str, answers: AnswerVocab) -> torch.Tensor:
    """(N, 1, d) one ground-truth vector per segment."""
    if kind == "caption":
        return torch.from_numpy(token_labels(video).any(axis=1)).float()[:, None]
    return torch.nn.functional.one_hot(torch.tensor(segment_answers(video, answers)), answers.size).float()[:, None]


def batch(kind, seed, n, lengths, words, answers, time_bins=16):
    videos = [make_video(derive_seed(seed, i), TASKS[i % len(TASKS)], lengths[i % len(lengths)]) for i in range(n)]
    inputs = []
    for v in videos:
        mem = ideal_memory(v, kind, answers)
        bins = torch.tensor(timestamp_bins(v.plan.timestamps, v.n_frames / v.fps, time_bins))
        inputs.append(DecoderInput(mem, torch.ones(mem.shape[0], dtype=torch.long), bins,
                                   torch.tensor(words.encode(v.question))))
    return videos, inputs


def run(kind: str, steps: int, n_eval: int, question_first: bool, lr: float) -> dict[str, float]:
    words, answers = WordVocab(), AnswerVocab()
    width = len(caption_classes()) if kind == "caption" else answers.size
    dec = TinyDecoder(DecoderConfig(d_memory=width, n_slots=1, n_answers=answers.size,
                                    question_first=question_first), words, torch.Generator().manual_seed(1))
    opt = torch.optim.AdamW(dec.parameters(), lr=lr, weight_decay=0.01)
    for step in range(steps):
        videos, inputs = batch(kind, derive_seed(0, "train", step), 12, (48, 64, 128), words, answers)
        logits = restrict(dec(inputs), [answers.allowed(v) for v in videos])
        loss = torch.nn.functional.cross_entropy(logits, torch.tensor([answers.label(v) for v in videos]))
        opt.zero_grad()
        loss.backward()
        opt.step()
    dec.eval()
    hits: dict[str, list[bool]] = {}
    with torch.no_grad():
        for start in range(0, n_eval, 24):
            videos, inputs = batch(kind, derive_seed(1, "eval", start), min(24, n_eval - start), (128, 256), words,
                                   answers)
            pred = restrict(dec(inputs), [answers.allowed(v) for v in videos]).argmax(-1)
            for v, p in zip(videos, pred.tolist(), strict=True):
                hits.setdefault(v.task, []).append(p == answers.label(v))
    out = {t: float(np.mean(h)) for t, h in hits.items()}
    out["all"] = float(np.mean([x for h in hits.values() for x in h]))
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--steps", type=int, default=1500, help="training steps of 12 videos each")
    p.add_argument("--n-eval", type=int, default=240, help="held-out videos (128 and 256 frames)")
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--question-first", action="store_true", help="the decoder also reads the question first")
    a = p.parse_args()
    torch.set_num_threads(1)
    rows = {}
    for kind in ("caption", "answer"):
        t0 = time.perf_counter()
        rows[kind] = run(kind, a.steps, a.n_eval, a.question_first, a.lr)
        print(f"{kind}: {time.perf_counter() - t0:.0f} s", flush=True)
    print(f"\nDecoder trained alone for {a.steps} steps on ideal memories (question first: {a.question_first}); "
          f"held-out accuracy over {a.n_eval} videos\n")
    print("| memory | all | " + " | ".join(TASKS) + " |")
    print("|---" * (len(TASKS) + 2) + "|")
    for kind, acc in rows.items():
        print(f"| {kind} | {acc['all']:.3f} | " + " | ".join(f"{acc.get(t, float('nan')):.3f}" for t in TASKS) + " |")


if __name__ == "__main__":
    main()
