"""`thrifty video compress`: Tempo on a real video file — decode and sample it, cut segments, score each
segment's relevance to the query, allocate a visual-token budget, and (with a trained tiny model) answer.

Relevance comes from the tiny compressor of a `thrifty video train` run (its Yes/No head, one pass per video);
without a run it is a query-agnostic fallback, every segment 0.5, said so in the report — never a made-up model
output. Frames are resized to the compressor's square input (``decode.fit_square``). The tiny decoder answers
only the needle generator's question forms (``video/questions.py``); any other query is allocated for but not
answered. Token accounting keeps visual, timestamp and text tokens apart; without a decoder the text count is the
query's words (no tokenizer). torch is imported only when a run directory is given.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from thrifty.core.errors import ConfigError
from thrifty.video.allocate import allocate, ata_detail
from thrifty.video.budget import account, allocation_stats
from thrifty.video.decode import load_video
from thrifty.video.qa_vocab import WordVocab
from thrifty.video.questions import EXAMPLES, parse_question
from thrifty.video.segment import SegmentConfig

FALLBACK_SCORE = 0.5
TEMPO_M, TEMPO_K_MIN, TEMPO_TIMESTAMP_TOKENS = 128, 4, 6  # defaults without a run: Tempo-6B's sizes (spec §4, §6)
FALLBACK_SIZE = 32  # frame side decoded to without a compressor (the needle videos' size)


def _load_backend(run_dir: str):
    """The trained tiny compressor and decoder of a `thrifty video train` run as one backend, and its k_min."""
    import torch

    from thrifty.video.adapter import TinyBackend
    from thrifty.video.train import load_run

    torch.set_num_threads(1)
    cfg, comp, dec = load_run(run_dir)
    return TinyBackend(comp, dec), cfg.k_min


def _allocate(scores: np.ndarray, budget: int, m_max: int, k_min: int, rule: str, opts: dict,
              seed: int) -> tuple[np.ndarray, str]:
    """Tokens per segment and, for ATA, the branch it took (``random`` draws from a generator seeded by ``seed``)."""
    if rule == "ata":
        res = ata_detail(scores, budget, m_max, k_min, **opts)
        return res.k, res.branch
    extra = {"rng": np.random.default_rng(seed)} if rule == "random" else {}
    return allocate(scores, budget, m_max, k_min, rule=rule, **opts, **extra), ""


def _sizes(run_dir: str | None, m_max: int | None, k_min: int | None, timestamp_tokens: int | None):
    """(backend or None, frame side, M, k_min, tokens per timestamp): the run's where one is given, else Tempo's."""
    if run_dir is None:
        return (None, FALLBACK_SIZE, TEMPO_M if m_max is None else m_max, TEMPO_K_MIN if k_min is None else k_min,
                TEMPO_TIMESTAMP_TOKENS if timestamp_tokens is None else timestamp_tokens)
    backend, run_k_min = _load_backend(run_dir)
    if m_max is not None and m_max != backend.m_max:
        raise ConfigError(f"--m-max {m_max} differs from the run's compressor, which keeps M = {backend.m_max} states")
    return (backend, backend.compressor.cfg.image_size, backend.m_max, run_k_min if k_min is None else k_min,
            backend.timestamp_tokens if timestamp_tokens is None else timestamp_tokens)


def _segment_rows(sampled, scores: np.ndarray, k: np.ndarray) -> list[dict]:
    """Per segment: times of its first and last frame, its timestamp, source frame range, score and tokens."""
    plan, rows = sampled.plan, []
    for i, seg in enumerate(plan.segments):
        first, last = int(seg.min()), int(seg.max())
        rows.append({"segment": i, "from_s": float(sampled.times[first]), "to_s": float(sampled.times[last]),
                     "timestamp_s": float(plan.timestamps[i]), "timestamp": plan.texts[i],
                     "frames": [int(sampled.source[first]), int(sampled.source[last])], "score": float(scores[i]),
                     "tokens": int(k[i])})
    return rows


def compress_file(path: str | Path, query: str, budget: int, *, segments: SegmentConfig | None = None,
                  rule: str = "ata", options: dict | None = None, run_dir: str | None = None,
                  m_max: int | None = None, k_min: int | None = None, timestamp_tokens: int | None = None,
                  fit: str = "pad", seed: int = 0, progress: bool = True) -> dict:
    """The report of one file: video facts, sampling, per-segment scores and tokens, accounting, answer."""
    segments = segments or SegmentConfig()
    if not query.strip():
        raise ConfigError("--query is empty")
    if rule == "oracle":
        raise ConfigError("the oracle allocator needs ground-truth evidence, which a video file does not carry")
    backend, size, m_max, k_min, ts_tokens = _sizes(run_dir, m_max, k_min, timestamp_tokens)
    if ts_tokens < 0:
        raise ConfigError(f"--timestamp-tokens must be >= 0, got {ts_tokens}")
    opts = dict(options or {})
    if rule in ("ata", "random"):  # ATA underneath: one timestamp size for the rule and the accounting
        opts.setdefault("timestamp_tokens", ts_tokens)
    _allocate(np.full(1, FALLBACK_SCORE), budget, m_max, k_min, rule, opts, seed)  # bad options fail before decoding
    sampled = load_video(path, segments, size=size, fit=fit, progress=progress)
    plan = sampled.plan
    parsed = parse_question(query, sampled.info.duration_s)
    answer: dict = {"text": None, "note": "no decoder without --run-dir"}
    if backend is None:
        scores = np.full(plan.n_segments, FALLBACK_SCORE)
        source = ("uniform 0.5 — query-agnostic fallback (no --run-dir): every segment scores the same, so the "
                  "budget is spread evenly")
        text, text_unit = len(query.split()), "query words (no decoder, so no tokenizer)"
        k, branch = _allocate(scores, budget, m_max, k_min, rule, opts, seed)
    else:
        from thrifty.video.adapter import Question

        question = Question(text=query, choices=parsed.choices if parsed else (), task=parsed.task if parsed else "")
        compressed = backend.compress(sampled.frames, plan, question)  # relevance and memory in one pass
        scores, source = compressed.relevance, f"tiny compressor's relevance head (run {run_dir})"
        text, text_unit = backend.text_tokens(question), "tiny decoder tokens (question words + 2 specials)"
        k, branch = _allocate(scores, budget, m_max, k_min, rule, opts, seed)
        if parsed is None:
            answer = {"text": None, "note": "the tiny decoder cannot answer free text; it knows only the needle "
                      f"question forms, e.g. {' | '.join(EXAMPLES)}"}
        else:
            answer = {"text": backend.answer(compressed, [k], plan, question)[0], "task": parsed.task,
                      "choices": list(parsed.choices), "note": "the tiny decoder's choice among the question's options"}
    acc = account(k, ts_tokens, text)
    vocab = WordVocab()
    return {
        "video": sampled.info.as_dict(),
        "sampling": {"fps": segments.fps, "min_frames": segments.min_frames, "max_frames": segments.max_frames,
                     "sampled_frames": plan.n_frames, "real_fps": plan.real_fps, "window": segments.window,
                     "frame_size": [int(x) for x in sampled.frames.shape[1:3]], "fit": fit},
        "query": query,
        "query_words_unknown_to_tiny_vocab": sorted({w for w in re.findall(r"[a-z]+", query.lower())
                                                     if w not in vocab.words}),
        "scores": {"source": source, "fallback": backend is None},
        "allocation": {"rule": rule, "options": dict(options or {}), "branch": branch, "budget": budget,
                       "m_max": m_max, "k_min": k_min,
                       "stats": allocation_stats(k, budget, k_min, m_max, plan.n_frames).as_dict()},
        "segments": _segment_rows(sampled, scores, k),
        "tokens": {"visual": acc.visual, "timestamp": acc.timestamp, "text": acc.text, "total": acc.total,
                   "timestamp_tokens_each": ts_tokens, "text_unit": text_unit,
                   "per_frame": acc.per_frame(plan.n_frames)},
        "answer": answer,
    }


def render(report: dict) -> str:
    """The report as a table with a few summary lines."""
    v, s, a, t = report["video"], report["sampling"], report["allocation"], report["tokens"]
    lines = [f"{v['path']}: {v['codec']} {v['width']}×{v['height']}, {v['frames']} frames, {v['duration_s']:.2f} s "
             f"({v['fps']:.3g} fps); sampled {s['sampled_frames']} at {s['real_fps']:.3g} fps into "
             f"{len(report['segments'])} segments of ≤ {s['window']} frames",
             f"scores: {report['scores']['source']}",
             f"{'segment':>7}  {'from s':>8}  {'to s':>8}  {'timestamp':>17}  {'frames':>13}  {'score':>6}  "
             f"{'tokens':>6}"]
    for r in report["segments"]:
        frames = f"{r['frames'][0]}-{r['frames'][1]}"
        lines.append(f"{r['segment']:>7}  {r['from_s']:>8.2f}  {r['to_s']:>8.2f}  {r['timestamp']:>17}  "
                     f"{frames:>13}  {r['score']:>6.3f}  {r['tokens']:>6}")
    st = a["stats"]
    branch = f" ({a['branch']} branch)" if a["branch"] else ""
    lines.append(f"rule {a['rule']}{branch}: {st['total']} of {a['budget']} visual tokens ({st['utilisation']:.1%}), "
                 f"M = {a['m_max']}, k_min = {a['k_min']}, {st['tokens_per_frame']:.2f} visual tokens/frame")
    lines.append(f"tokens: visual {t['visual']} + timestamp {t['timestamp']} ({t['timestamp_tokens_each']} per kept "
                 f"segment) + text {t['text']} ({t['text_unit']}) = {t['total']}")
    if report["query_words_unknown_to_tiny_vocab"] and not report["scores"]["fallback"]:
        lines.append(f"query words the tiny compressor reads as <unk>: "
                     f"{', '.join(report['query_words_unknown_to_tiny_vocab'])}")
    ans = report["answer"]
    lines.append(f"answer: {ans['text']}  ({ans['note']})" if ans["text"] is not None else f"answer: none — {ans['note']}")
    return "\n".join(lines)
