"""Where the tiny pipeline breaks: does each segment's first memory state carry the answer to the question asked
of that segment alone? The compressor's training-only ``local_head`` reads it; accuracy is split into evidence
segments (where the answer is not "none"/"no") and the others, per question type. A decoder can only be as good as
what the memory it reads holds.
"""

from __future__ import annotations

import numpy as np
import torch

from thrifty.core.errors import ConfigError
from thrifty.video.compressor import TinyCompressor, segment_frames
from thrifty.video.qa_vocab import AnswerVocab, segment_answers
from thrifty.video.synth import NeedleVideo


@torch.no_grad()
def segment_answer_accuracy(compressor: TinyCompressor, videos: list[NeedleVideo],
                            answers: AnswerVocab | None = None) -> dict[str, dict[str, float]]:
    """{task: {"evidence": acc, "other": acc, "n_evidence": n, "n_other": n}} of the local head's argmax."""
    if compressor.local_head is None:
        raise ConfigError("this compressor has no segment-level answer head (n_answers = 0)")
    answers = answers or AnswerVocab()
    cfg = compressor.cfg
    was_training = compressor.training
    compressor.eval()
    tally: dict[str, np.ndarray] = {}  # task → [hits evidence, n evidence, hits other, n other]
    for v in videos:
        frames = segment_frames(v.frames, v.plan.segments, cfg.frames)
        query = torch.tensor([compressor.vocab.encode_padded(v.question, cfg.query_len)]).expand(len(frames), -1)
        pred = compressor.local_head(compressor(frames, query).memory[:, 0]).argmax(-1).numpy()
        hit = pred == np.asarray(segment_answers(v, answers))
        ev = np.asarray(v.evidence, dtype=bool)
        t = tally.setdefault(v.task, np.zeros(4))
        t += [hit[ev].sum(), ev.sum(), hit[~ev].sum(), (~ev).sum()]
    compressor.train(was_training)
    return {task: {"evidence": t[0] / t[1] if t[1] else float("nan"), "other": t[2] / t[3] if t[3] else float("nan"),
                   "n_evidence": int(t[1]), "n_other": int(t[3])} for task, t in tally.items()}


def probe_table(acc: dict[str, dict[str, float]]) -> str:
    """Markdown: one row per question type."""
    out = ["| question type | evidence segments | other segments |", "|---|---|---|"]
    for task, a in acc.items():
        out.append(f"| {task} | {a['evidence']:.3f} ({a['n_evidence']}) | {a['other']:.3f} ({a['n_other']}) |")
    return "\n".join(out)
