"""`thrifty video ...`: Tempo-style long-video compression — token allocation, needle videos, training the tiny
compressor and decoder, and evaluating allocation rules at equal budgets."""

from __future__ import annotations

import argparse

from thrifty.cli._common import add_config_args, add_verb, add_verbs, resolve_config


def register(rooms) -> None:
    verbs = add_verbs(rooms, "video", "query-aware long-video compression: adaptive token allocation, needle videos")
    a = add_verb(verbs, "allocate", "print the visual tokens each segment gets from an allocation rule for given "
                 "relevance scores and budget, with the budget accounting", _allocate)
    a.add_argument("--scores", required=True, help="relevance per segment, comma-separated (e.g. 0.1,0.9,0.5)")
    a.add_argument("--budget", type=int, required=True, help="visual token budget B")
    a.add_argument("--m-max", type=int, default=128, help="tokens per segment at most (M)")
    a.add_argument("--k-min", type=int, default=4, help="anchor tokens every segment keeps (ATA and kin)")
    _rule_args(a, "ata | uniform | uniform_spread | topk_no_anchor | softmax | bolt | aks | random | oracle")
    a.add_argument("--timestamp-tokens", type=int, default=6, help="tokens per timestamp in the accounting")
    a.add_argument("--relevance", help="oracle: the ground-truth 0/1 mask, comma-separated")
    a.add_argument("--frames-per-segment", type=int, default=8, help="for tokens per frame")
    a.add_argument("--json", action="store_true", help="print one JSON object instead of a table")
    s = add_verb(verbs, "synth", "generate seeded needle videos and print what each asks, its answer and which "
                 "segments hold the evidence", _synth)
    s.add_argument("--n", type=int, default=6, help="number of videos (tasks cycle first, then lengths)")
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--lengths", default="64,256,1024", help="frames per video, comma-separated")
    s.add_argument("--tasks", default="all", help="comma-separated subset of attribute, presence, timing, order, "
                   "counting, global (default: all)")
    s.add_argument("--out", help="folder for needle_NNN.<format> and summary.jsonl")
    s.add_argument("--format", choices=("npz", "mp4", "webm"), default="npz",
                   help="npz: frames and evidence arrays; mp4 (H.264) or webm (VP9): a real encoded video at the "
                   "generator's fps, read back by `video compress` (needs PyAV)")
    s.add_argument("--quality", choices=("lossless", "standard"), default="lossless",
                   help="mp4/webm: 4:4:4 at quantiser 0 (≤ 1 grey level off after RGB↔YUV), or 4:2:0 at everyday "
                   "quality (crf 23 / 32; pair it with --scale)")
    s.add_argument("--scale", type=int, default=1, help="mp4/webm: upscale frames by this whole factor (pixels "
                   "repeated) so the decoder's resize has work to do")
    s.add_argument("--json", action="store_true", help="print JSON lines instead of a table")
    c = add_verb(verbs, "compress", "Tempo on a video file: decode it (PyAV), sample frames at --fps, cut 8-frame "
                 "segments, score their relevance to the query (a trained tiny compressor with --run-dir, a Qwen2-VL "
                 "checkpoint with --backend qwen-vl --model-dir, else a labelled uniform fallback), allocate the "
                 "visual budget; per-segment tokens and timestamps, token accounting, seconds per stage and the "
                 "decoder's answer (the tiny one: needle-form questions only)", _compress)
    c.add_argument("video", help="the video file (mp4, webm, mkv, mov, ... whatever the bundled FFmpeg reads)")
    c.add_argument("--query", required=True, help="the question asked of the video")
    c.add_argument("--budget", type=int, required=True, help="visual token budget B")
    c.add_argument("--fps", type=float, default=2.0, help="frames sampled per second of video (Tempo: 2)")
    c.add_argument("--min-frames", type=int, default=4, help="sample at least this many frames")
    c.add_argument("--max-frames", type=int, default=1024, help="sample at most this many frames")
    c.add_argument("--run-dir", help="a `thrifty video train` run: its compressor scores relevance and its decoder "
                   "answers (default: uniform scores, no answer)")
    c.add_argument("--backend", choices=("tiny", "qwen-vl"), default="tiny",
                   help="tiny: the run of --run-dir (or the fallback); qwen-vl: a local Qwen2-VL / Qwen2.5-VL "
                   "checkpoint as compressor and decoder (memory embeddings appended, Yes/No relevance)")
    c.add_argument("--model-dir", help="qwen-vl: the checkpoint folder (config.json, weights, tokenizer)")
    c.add_argument("--device", default="auto", help="qwen-vl: auto (CUDA if present, else CPU), cuda, cuda:1, cpu")
    _rule_args(c, "ata | uniform | uniform_spread | topk_no_anchor | softmax | bolt | aks | random")
    c.add_argument("--m-max", type=int, help="tokens per segment at most (default: the run's M, else Tempo's 128; "
                   "qwen-vl: memory embeddings appended per segment)")
    c.add_argument("--k-min", type=int, help="anchor tokens per segment (default: the run's, else Tempo's 4)")
    c.add_argument("--timestamp-tokens", type=int,
                   help="tokens per timestamp (default: 1 for the tiny decoder, qwen-vl: counted per segment by its "
                   "tokenizer, else 6 as for Tempo's text stamps)")
    c.add_argument("--fit", choices=("pad", "crop", "stretch"), default="pad",
                   help="how a non-square frame becomes the compressor's square: letterbox, centre crop or stretch")
    c.add_argument("--json", action="store_true", help="print one JSON object instead of a table")
    t = add_verb(verbs, "train", "train the tiny query-conditioned compressor and answer decoder from scratch on needle "
                 "videos in stages (stem captions, full memory, random head truncation, allocated budgets); resumes exactly",
                 _train)
    add_config_args(t)
    t.add_argument("--run-dir", help="where config.yaml, metrics.jsonl and checkpoint/ go")
    for name, n, lengths, what in (("eval", 60, "256", "a quick look"), ("bench", 240, "256,512", "the full table")):
        e = add_verb(verbs, name, f"{what}: accuracy of ATA, ATA with fixes, uniform, top-k and oracle allocation at "
                     "equal visual budgets on held-out needle videos, tokens/frame used, relevance AUROC; markdown "
                     "tables and PNG plots", _eval)
        e.add_argument("--run-dir", required=True, help="a run of `thrifty video train`")
        e.add_argument("--budgets", default="0.0625,0.125,0.25,0.5,1,2", help="visual tokens per sampled frame")
        e.add_argument("--n", type=int, default=n, help="held-out videos (question types cycle, then lengths)")
        e.add_argument("--lengths", default=lengths, help="frames per held-out video, comma-separated")
        e.add_argument("--seed", type=int, default=2000, help="held-out seed stream (never a training seed)")
        e.add_argument("--out", help="folder for the plots (default: <run-dir>/<verb>)")
        e.add_argument("--truncation", choices=("head", "tail", "random", "merge"), default="head",
                       help="which k of a segment's M memory states the decoder reads: the first k (the design), "
                       "the last k, k at random, or ToMe-style merging of the most similar (ablations)")


def _rule_args(p: argparse.ArgumentParser, rules: str) -> None:
    """The allocation rule and its ATA switches (shared by allocate and compress)."""
    p.add_argument("--rule", default="ata", help=rules)
    p.add_argument("--preset", choices=("faithful", "fixed"), help="ATA: the released rule, or every fix on")
    p.add_argument("--normalize", choices=("minmax", "absolute", "rank", "softmax"), help="ATA score normaliser")
    p.add_argument("--fill", choices=("off", "water", "relevance"), help="ATA: spend the unused budget")
    p.add_argument("--overflow", choices=("faithful", "pool", "drop_lowest", "raise"),
                   help="ATA: what to do when the segments cannot all fit the budget")
    p.add_argument("--count-timestamps", action="store_true", default=None,
                   help="ATA: pay timestamp tokens out of the budget")
    p.add_argument("--tau", type=float, help="temperature (softmax rule, or ATA with --normalize softmax)")
    p.add_argument("--seed", type=int, default=0, help="random: seed of its generator")


def _rule_options(args: argparse.Namespace) -> dict:
    """The allocator options given on the command line (unset flags left out)."""
    flags = {"preset": args.preset, "normalize": args.normalize, "fill_budget": args.fill,
             "overflow": args.overflow, "count_timestamps": args.count_timestamps, "tau": args.tau}
    return {k: v for k, v in flags.items() if v is not None}


def _numbers(text: str, flag: str, cast=float) -> list:
    from thrifty.core.errors import ConfigError

    try:
        values = [cast(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise ConfigError(f"{flag} must be comma-separated numbers, e.g. {flag} 0.1,0.9,0.5; got {text!r}") from None
    if not values:
        raise ConfigError(f"{flag} is empty")
    return values


def _allocate(args: argparse.Namespace) -> int:
    import json

    import numpy as np

    from thrifty.core.errors import ConfigError
    from thrifty.video.allocate import allocate, ata_detail
    from thrifty.video.budget import account, allocation_stats

    scores = _numbers(args.scores, "--scores")
    opts = _rule_options(args)
    if args.rule in ("ata", "random", "oracle"):  # ATA underneath: one timestamp size for rule and accounting
        opts["timestamp_tokens"] = args.timestamp_tokens
    if args.rule == "random":
        opts["rng"] = np.random.default_rng(args.seed)
    if args.relevance is not None:
        opts["relevance"] = _numbers(args.relevance, "--relevance")
    if args.frames_per_segment < 1:
        raise ConfigError("--frames-per-segment must be at least 1")
    branch = ""
    if args.rule == "ata":
        res = ata_detail(scores, args.budget, args.m_max, args.k_min, **opts)
        k, branch = res.k, res.branch
    else:
        k = allocate(scores, args.budget, args.m_max, args.k_min, rule=args.rule, **opts)
    stats = allocation_stats(k, args.budget, args.k_min, args.m_max, len(scores) * args.frames_per_segment)
    acc = account(k, args.timestamp_tokens)
    if args.json:
        print(json.dumps({"rule": args.rule, "branch": branch, "k": k.tolist(), "stats": stats.as_dict(),
                          "tokens": {"visual": acc.visual, "timestamp": acc.timestamp}}))
        return 0
    print(f"{'segment':>7}  {'score':>8}  {'tokens':>6}")
    for i, (r, n) in enumerate(zip(scores, k.tolist(), strict=True)):
        print(f"{i:>7}  {r:>8.4g}  {n:>6}")
    print(f"rule {args.rule}{f' ({branch} branch)' if branch else ''}: {stats.total} of {args.budget} visual tokens "
          f"({stats.utilisation:.1%}), range [{stats.theoretical_min}, {stats.theoretical_max}], "
          f"{stats.tokens_per_frame:.2f} tokens/frame, {stats.at_k_min} at k_min, {stats.dropped} dropped; "
          f"timestamps {acc.timestamp} tokens ({args.timestamp_tokens} per kept segment)")
    return 0


def _ranges(idx: list[int]) -> str:
    """[0, 1, 2, 5] → "0-2,5"."""
    parts, start = [], None
    for j, i in enumerate(idx):
        if start is None:
            start = i
        if j + 1 == len(idx) or idx[j + 1] != i + 1:
            parts.append(str(start) if start == i else f"{start}-{i}")
            start = None
    return ",".join(parts) or "-"


def _synth(args: argparse.Namespace) -> int:
    import json
    from pathlib import Path

    import numpy as np

    from thrifty.core.errors import ConfigError
    from thrifty.video.encode import write_video
    from thrifty.video.synth import TASKS, make_benchmark

    if args.n < 1 or args.scale < 1:
        raise ConfigError(f"--n and --scale must be at least 1, got {args.n} and {args.scale}")
    lengths = _numbers(args.lengths, "--lengths", int)
    tasks = TASKS if args.tasks == "all" else tuple(t.strip() for t in args.tasks.split(",") if t.strip())
    unknown = [t for t in tasks if t not in TASKS]
    if unknown or not tasks:
        raise ConfigError(f"unknown task(s) {', '.join(unknown) or '(none)'}; choose from: {', '.join(TASKS)}")
    videos = make_benchmark(args.n, args.seed, lengths, tasks)
    out = Path(args.out) if args.out else None
    if out:
        out.mkdir(parents=True, exist_ok=True)
    lines = []
    for i, v in enumerate(videos):
        row = {"id": i, **v.summary(), **({"file": f"needle_{i:03d}.{args.format}"} if out else {})}
        lines.append(json.dumps(row))
        if out and args.format == "npz":
            np.savez_compressed(out / f"needle_{i:03d}.npz", frames=v.frames, evidence_frames=v.evidence_frames,
                                evidence=v.evidence)
        elif out:
            write_video(v.frames, out / f"needle_{i:03d}.{args.format}", v.fps, args.quality, args.scale)
        if args.json:
            print(lines[-1])
        else:
            depth = "-" if v.depth is None else f"{v.depth:.2f}"
            print(f"{i:>3}  {v.task:<9}  {v.n_frames:>5} frames  {v.plan.n_segments:>4} segments  depth {depth:>4}  "
                  f"evidence {_ranges(row['evidence_segments'])}  |  {v.question}  →  {v.answer}")
    if out:
        (out / "summary.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
        print(f"wrote {len(videos)} videos and summary.jsonl to {out}")
    return 0


def _compress(args: argparse.Namespace) -> int:
    import json

    from thrifty.core.errors import ConfigError
    from thrifty.video.compress_file import compress_file, render
    from thrifty.video.segment import SegmentConfig

    if (args.backend == "qwen-vl") != (args.model_dir is not None):
        raise ConfigError("--backend qwen-vl and --model-dir go together: name the checkpoint folder with one, "
                          "and pick the backend with the other")
    if args.backend == "qwen-vl" and args.run_dir is not None:
        raise ConfigError("--run-dir is a tiny-model run; the qwen-vl backend reads --model-dir only")
    segments = SegmentConfig(fps=args.fps, min_frames=args.min_frames, max_frames=args.max_frames)
    report = compress_file(args.video, args.query, args.budget, segments=segments, rule=args.rule,
                           options=_rule_options(args), run_dir=args.run_dir, m_max=args.m_max, k_min=args.k_min,
                           timestamp_tokens=args.timestamp_tokens, fit=args.fit, seed=args.seed,
                           model_dir=args.model_dir, device=args.device)
    print(json.dumps(report) if args.json else render(report))
    return 0


def _train(args: argparse.Namespace) -> int:
    from thrifty.video.train import TempoTrainConfig, train_tempo

    cfg = resolve_config(TempoTrainConfig, args, {"run_dir": "run_dir"})
    res = train_tempo(cfg)
    print(f"{res['params'] / 1e3:.0f}k parameters at step {res['step']}: held-out accuracy (all memory) "
          f"{res.get('acc_full', float('nan')):.3f}, relevance AUROC {res.get('auroc', float('nan')):.3f}; "
          f"checkpoint and metrics.jsonl in {cfg.run_dir}")
    return 0


def _eval(args: argparse.Namespace) -> int:
    from pathlib import Path

    import torch

    from thrifty.core.errors import ConfigError
    from thrifty.video.adapter import TinyBackend
    from thrifty.video.ata_eval import heldout, plots, run_eval, tables
    from thrifty.video.diagnose import probe_table, segment_answer_accuracy
    from thrifty.video.train import load_run

    budgets = _numbers(args.budgets, "--budgets")
    lengths = _numbers(args.lengths, "--lengths", int)
    if args.n < 1 or min(budgets) <= 0 or min(lengths) < 48:
        raise ConfigError("--n must be >= 1, --budgets positive and --lengths at least 48 frames")
    torch.set_num_threads(1)
    cfg, comp, dec = load_run(args.run_dir)
    backend = TinyBackend(comp, dec, truncation=args.truncation, seed=args.seed)
    videos = heldout(args.n, args.seed, tuple(lengths))
    res = run_eval(backend, backend, videos, budgets, k_min=cfg.k_min)
    print(tables(res))
    print("\n### Memory probe: the first memory state's answer to the question asked of each segment alone\n")
    print(probe_table(segment_answer_accuracy(comp, videos)))
    for path in plots(res, args.out or Path(args.run_dir) / args.verb):
        print(f"wrote {path}")
    return 0
