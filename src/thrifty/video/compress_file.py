"""`thrifty video compress`: Tempo on a real video file — decode and sample it, cut segments, score each
segment's relevance to the query, allocate a visual-token budget, and (with a model) answer.

Relevance comes from the tiny compressor of a `thrifty video train` run (its Yes/No head, one pass per video) or
from a Qwen2-VL-family checkpoint (``model_dir``: its own Yes/No logits, ``video/qwen_vl.py``); with neither it is
a query-agnostic fallback, every segment 0.5, said so in the report — never a made-up model output. Frames are
resized to the compressor's square input (``decode.fit_square``). The tiny decoder answers only the needle
generator's question forms (``video/questions.py``); the Qwen-VL decoder answers any query. Token accounting keeps
visual, timestamp and text tokens apart (a Qwen tokenizer's stamps counted exactly per segment); without a decoder
the text count is the query's words. The report carries wall-clock seconds per stage and, on a GPU, peak memory.
torch is imported only when a model is given.
"""

from __future__ import annotations

import itertools
import re
import time
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


def _sizes(run_dir: str | None, m_max: int | None, k_min: int | None, timestamp_tokens: int | None,
           model_dir: str | None = None, device: str = "auto"):
    """(backend or None, frame side, M, k_min, tokens per timestamp): the model's where one is given, else Tempo's."""
    if run_dir is not None and model_dir is not None:
        raise ConfigError("give either --run-dir (the tiny models) or --model-dir (a Qwen-VL checkpoint), not both")
    if model_dir is not None:
        from thrifty.video.qwen_vl import QwenVLBackend

        backend = QwenVLBackend(model_dir, m_max=TEMPO_M if m_max is None else m_max, device=device)
        return (backend, backend.frame_size, backend.m_max, TEMPO_K_MIN if k_min is None else k_min,
                backend.timestamp_tokens if timestamp_tokens is None else timestamp_tokens)
    if run_dir is None:
        return (None, FALLBACK_SIZE, TEMPO_M if m_max is None else m_max, TEMPO_K_MIN if k_min is None else k_min,
                TEMPO_TIMESTAMP_TOKENS if timestamp_tokens is None else timestamp_tokens)
    backend, run_k_min = _load_backend(run_dir)
    if m_max is not None and m_max != backend.m_max:
        raise ConfigError(f"--m-max {m_max} differs from the run's compressor, which keeps M = {backend.m_max} states")
    return (backend, backend.compressor.cfg.image_size, backend.m_max, run_k_min if k_min is None else k_min,
            backend.timestamp_tokens if timestamp_tokens is None else timestamp_tokens)


def _timings(clock: dict[str, float]) -> dict[str, float]:
    """Seconds each stage took (load, decode, compress, allocate, answer: those that ran)."""
    names = list(clock)
    return {b: clock[b] - clock[a] for a, b in itertools.pairwise(names)}


def _peak_gpu_mib(used_torch: bool) -> float | None:
    """Peak CUDA memory allocated by this process in MiB, or None without torch or a GPU."""
    if not used_torch:
        return None
    import torch

    return torch.cuda.max_memory_allocated() / 2 ** 20 if torch.cuda.is_available() else None


def _segment_rows(sampled, scores: np.ndarray, k: np.ndarray, stamps) -> list[dict]:
    """Per segment: times of its first and last frame, its timestamp (and the tokens it costs), source frame range,
    score and tokens."""
    plan, rows = sampled.plan, []
    stamps = np.broadcast_to(np.asarray(stamps, dtype=np.int64), (plan.n_segments,))
    for i, seg in enumerate(plan.segments):
        first, last = int(seg.min()), int(seg.max())
        rows.append({"segment": i, "from_s": float(sampled.times[first]), "to_s": float(sampled.times[last]),
                     "timestamp_s": float(plan.timestamps[i]), "timestamp": plan.texts[i],
                     "timestamp_tokens": int(stamps[i]),
                     "frames": [int(sampled.source[first]), int(sampled.source[last])], "score": float(scores[i]),
                     "tokens": int(k[i])})
    return rows


def compress_file(path: str | Path, query: str, budget: int, *, segments: SegmentConfig | None = None,
                  rule: str = "ata", options: dict | None = None, run_dir: str | None = None,
                  m_max: int | None = None, k_min: int | None = None, timestamp_tokens: int | None = None,
                  fit: str = "pad", seed: int = 0, progress: bool = True, model_dir: str | None = None,
                  device: str = "auto") -> dict:
    """The report of one file: video facts, sampling, per-segment scores and tokens, accounting, answer, timings."""
    segments = segments or SegmentConfig()
    if not query.strip():
        raise ConfigError("--query is empty")
    if rule == "oracle":
        raise ConfigError("the oracle allocator needs ground-truth evidence, which a video file does not carry")
    clock = {"start": time.perf_counter()}
    backend, size, m_max, k_min, ts_tokens = _sizes(run_dir, m_max, k_min, timestamp_tokens, model_dir, device)
    clock["load"] = time.perf_counter()
    if ts_tokens < 0:
        raise ConfigError(f"--timestamp-tokens must be >= 0, got {ts_tokens}")
    opts = dict(options or {})
    if rule in ("ata", "random"):  # ATA underneath: one timestamp size for the rule and the accounting
        opts.setdefault("timestamp_tokens", ts_tokens)
    _allocate(np.full(1, FALLBACK_SCORE), budget, m_max, k_min, rule, opts, seed)  # bad options fail before decoding
    sampled = load_video(path, segments, size=size, fit=fit, progress=progress)
    clock["decode"] = time.perf_counter()
    plan = sampled.plan
    stamps = ts_tokens
    parsed = parse_question(query, sampled.info.duration_s)
    answer: dict = {"text": None, "note": "no decoder without --run-dir or --model-dir"}
    kind = "qwen-vl" if model_dir is not None else "tiny" if run_dir is not None else "fallback"
    if backend is None:
        scores = np.full(plan.n_segments, FALLBACK_SCORE)
        source = ("uniform 0.5 — query-agnostic fallback (no model): every segment scores the same, so the "
                  "budget is spread evenly")
        text, text_unit = len(query.split()), "query words (no decoder, so no tokenizer)"
        clock["compress"] = time.perf_counter()
        k, branch = _allocate(scores, budget, m_max, k_min, rule, opts, seed)
        clock["allocate"] = time.perf_counter()
    else:
        from thrifty.video.adapter import ExactTimestamps, Question

        question = Question(text=query, choices=parsed.choices if parsed else (), task=parsed.task if parsed else "")
        compressed = backend.compress(sampled.frames, plan, question)  # relevance and memory in one pass
        clock["compress"] = time.perf_counter()
        qwen = kind == "qwen-vl"
        scores = compressed.relevance
        source = (f"Qwen-VL Yes/No logits ({model_dir})" if qwen
                  else f"tiny compressor's relevance head (run {run_dir})")
        text = backend.text_tokens(question)
        text_unit = ("Qwen tokens (chat template, question, options)" if qwen
                     else "tiny decoder tokens (question words + 2 specials)")
        if isinstance(backend, ExactTimestamps):
            stamps = backend.timestamp_counts(plan)
        k, branch = _allocate(scores, budget, m_max, k_min, rule, opts, seed)
        clock["allocate"] = time.perf_counter()
        if qwen:
            answer = {"text": backend.answer(compressed, [k], plan, question)[0], "choices": list(question.choices),
                      "note": "the Qwen-VL decoder's greedy reply (the option it names, if exactly one)"}
        elif parsed is None:
            answer = {"text": None, "note": "the tiny decoder cannot answer free text; it knows only the needle "
                      f"question forms, e.g. {' | '.join(EXAMPLES)}"}
        else:
            answer = {"text": backend.answer(compressed, [k], plan, question)[0], "task": parsed.task,
                      "choices": list(parsed.choices), "note": "the tiny decoder's choice among the question's options"}
        clock["answer"] = time.perf_counter()
    acc = account(k, stamps, text)
    vocab = WordVocab()
    return {
        "video": sampled.info.as_dict(),
        "sampling": {"fps": segments.fps, "min_frames": segments.min_frames, "max_frames": segments.max_frames,
                     "sampled_frames": plan.n_frames, "real_fps": plan.real_fps, "window": segments.window,
                     "frame_size": [int(x) for x in sampled.frames.shape[1:3]], "fit": fit},
        "query": query,
        "query_words_unknown_to_tiny_vocab": sorted({w for w in re.findall(r"[a-z]+", query.lower())
                                                     if w not in vocab.words}),
        "scores": {"source": source, "fallback": backend is None, "backend": kind},
        "allocation": {"rule": rule, "options": dict(options or {}), "branch": branch, "budget": budget,
                       "m_max": m_max, "k_min": k_min,
                       "stats": allocation_stats(k, budget, k_min, m_max, plan.n_frames).as_dict()},
        "segments": _segment_rows(sampled, scores, k, stamps),
        "tokens": {"visual": acc.visual, "timestamp": acc.timestamp, "text": acc.text, "total": acc.total,
                   "timestamp_tokens_each": ts_tokens if np.ndim(stamps) == 0 else None, "text_unit": text_unit,
                   "per_frame": acc.per_frame(plan.n_frames)},
        "answer": answer,
        "timings_s": _timings(clock),
        "peak_gpu_mib": _peak_gpu_mib(model_dir is not None or run_dir is not None),
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
    each = t["timestamp_tokens_each"]
    each = f"{each} per kept segment" if each is not None else "tokenised per kept segment"
    lines.append(f"tokens: visual {t['visual']} + timestamp {t['timestamp']} ({each}) + text {t['text']} "
                 f"({t['text_unit']}) = {t['total']}")
    if report["query_words_unknown_to_tiny_vocab"] and report["scores"]["backend"] == "tiny":
        lines.append(f"query words the tiny compressor reads as <unk>: "
                     f"{', '.join(report['query_words_unknown_to_tiny_vocab'])}")
    stages = ", ".join(f"{name} {sec:.2f}" for name, sec in report["timings_s"].items())
    peak = report["peak_gpu_mib"]
    lines.append(f"seconds: {stages}" + (f"; peak GPU memory {peak:.0f} MiB" if peak is not None else ""))
    ans = report["answer"]
    lines.append(f"answer: {ans['text']}  ({ans['note']})" if ans["text"] is not None else f"answer: none — {ans['note']}")
    return "\n".join(lines)
