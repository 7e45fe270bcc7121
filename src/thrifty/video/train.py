"""`thrifty video train`: the tiny compressor and decoder trained from scratch on needle videos in three stages,
with checkpoints that resume exactly (`thrifty.core.checkpoint`).

Stages (steps from :class:`TempoTrainConfig`): an optional first stage ``sprites`` (stage −1) — the stem alone
names the sprite kinds of seeded still frames (`video/sprite_sheet.py`, through the compressor's training-only
sprite head on the whole-frame max), the cheapest lesson in seeing shapes; 0 ``caption`` — the visual stem alone
learns which sprites (shape × colour) and background each visual token sees (`video/caption.py`; our from-scratch stand-in for the
pretrained small VLM Tempo starts from, the spec's S0), no transformer pass; 1 ``full`` — short videos, every
segment keeps all M memory tokens; 2 ``nested`` — each segment keeps a random head k ∈ [k_min, M]
(nested-dropout-style truncation, a labelled deviation: Tempo's training code is unreleased) on longer videos, so
the decoder reads variable-length memory; 3 ``allocated`` — k comes from an allocator (drawn per batch among
``stage3_rules``, at a budget drawn from ``stage3_budgets``) run on the model's own detached relevance, so the
decoder sees the allocations it is evaluated with. Loss in stages 1–3 = answer cross-entropy (over the question's
choices) + w_stage · BCE of the relevance logit against the per-segment evidence + v_stage · cross-entropy of the
segment-level answer read from each segment's first memory state (the question asked of that segment alone;
with ``local_balanced`` the rare needle-evidence segments weigh as much as all the others; a global question's
segments are all evidence and count with the others) +
c_stage · the token caption BCE + m_stage · BCE of the segment's caption read from its first memory state (the
spec's alignment stage: the memory must carry what the segment shows, whatever the query); with ``binding_weight``
both caption losses also get a hard-negative term (:func:`binding_loss`: each shown shape's colour against the
same shape in other colours, each shown colour's shape against other shapes). The relevance head is
trained: Tempo's is zero-shot from its small VLM's LM head, a from-scratch model has no zero-shot ability.
Training videos are seeded from (seed, "train", step, i), held-out ones from (eval_seed, "heldout", i).
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass
from itertools import pairwise
from pathlib import Path
from typing import Any

import numpy as np
import torch

from thrifty.core.checkpoint import load_checkpoint, load_weights, save_checkpoint
from thrifty.core.config import save_config
from thrifty.core.errors import ConfigError
from thrifty.core.metrics_log import MetricsLog
from thrifty.core.progress import Progress
from thrifty.core.rng import derive_seed
from thrifty.video.adapter import TinyBackend
from thrifty.video.allocate import ALLOCATORS
from thrifty.video.caption import caption_classes, token_labels
from thrifty.video.compressor import CompressorConfig, TinyCompressor, segment_frames
from thrifty.video.decoder import DecoderConfig, DecoderInput, TinyDecoder, restrict
from thrifty.video.pipeline import AllocSpec, allocation, answer_needle
from thrifty.video.qa_vocab import AnswerVocab, WordVocab, segment_answers, timestamp_bins
from thrifty.video.synth import COLOURS, SHAPES, TASKS, NeedleVideo, make_video


@dataclass
class TempoTrainConfig:
    run_dir: str = "runs/video_tempo"
    seed: int = 0
    eval_seed: int = 1000
    d_model: int = 64
    n_layers: int = 3
    n_heads: int = 4
    decoder_layers: int = 3
    n_memory: int = 16  # M
    k_min: int = 1
    channels: int = 16
    grid: int = 2  # visual tokens per frame side (2: 16 per 8-frame segment; 4: 64, the spec's count)
    stem_norm: bool = True
    stem: str = "conv"  # conv: pooled RGB stem; slot: colour-slot conjunctions; silhouette: per-colour shape nets
    colour_slots: int = 12  # slot stem only
    slot_sharpness: float = 8.0  # slot stems: scale of the initial colour-slot logits (random: of the weights;
    # kmeans: s of the nearest-centre logits, `video/colour_init.py`)
    slot_init: str = "random"  # slot stems: random 1×1 weights, or k-means centres of the first batch's colours
    query_first: bool = False  # compressor reads [query][visual] (visual tokens see the ask); Tempo: [visual][query]
    time_bins: int = 16
    batch_size: int = 12  # videos per step
    lr: float = 2e-3
    warmup: int = 100
    sprite_steps: int = 0  # stage "sprites" (before stage 0): the stem names the sprites of still frames
    sprite_batch: int = 128  # still frames per sprite step (`video/sprite_sheet.py`)
    caption_steps: int = 0  # stage 0: the stem learns to see (token captions), before any question
    stage1_steps: int = 1600
    stage2_steps: int = 800
    stage3_steps: int = 400
    stage1_lengths: tuple[int, ...] = (48,)
    stage2_lengths: tuple[int, ...] = (64, 128)
    stage3_lengths: tuple[int, ...] = (96, 128)
    relevance_weight: tuple[float, ...] = (1.0, 1.0, 1.0)  # per stage
    local_weight: tuple[float, ...] = (1.0, 1.0, 0.5)  # per stage: segment-level answer loss on the first memory
    caption_weight: tuple[float, ...] = (0.0, 0.0, 0.0)  # per stage 1–3: token caption BCE on the stem's output
    memory_caption_weight: tuple[float, ...] = (0.0, 0.0, 0.0)  # per stage 1–3: segment caption from memory 0
    binding_weight: float = 0.0  # hard-negative binding term added to both caption losses (`binding_loss`)
    local_balanced: bool = False  # needle-evidence segments and the rest weigh half each in the segment-level loss
    stage3_rules: tuple[str, ...] = ("ata", "uniform", "topk_no_anchor")
    stage3_budgets: tuple[float, ...] = (0.125, 0.25, 0.5, 1.0, 2.0)  # visual tokens per sampled frame
    tasks: tuple[str, ...] = TASKS
    eval_every: int = 400
    n_eval: int = 48
    eval_length: int = 128
    checkpoint_every: int = 300
    log_every: int = 50
    n_threads: int = 1
    tensorboard: bool = False  # also write the metrics as TensorBoard event files under <run_dir>/tb/

    def __post_init__(self) -> None:
        for name in ("batch_size", "eval_every", "n_eval", "checkpoint_every", "log_every", "n_threads",
                     "n_memory", "k_min", "sprite_batch"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name} must be >= 1, got {getattr(self, name)}")
        steps = (self.sprite_steps, self.caption_steps, self.stage1_steps, self.stage2_steps, self.stage3_steps)
        if min(steps) < 0 or self.total_steps < 1:
            raise ConfigError("stage steps must be >= 0 and at least one step in all")
        if self.k_min > self.n_memory:
            raise ConfigError(f"k_min {self.k_min} exceeds n_memory {self.n_memory}")
        for name in ("relevance_weight", "local_weight", "caption_weight", "memory_caption_weight"):
            if len(getattr(self, name)) != 3 or min(getattr(self, name)) < 0:
                raise ConfigError(f"{name} needs three non-negative weights, one per stage")
        bad = [t for t in self.tasks if t not in TASKS] + [r for r in self.stage3_rules if r not in ALLOCATORS]
        if bad or not self.tasks or not self.stage3_rules or not self.stage3_budgets:
            raise ConfigError(f"unknown or missing tasks / stage-3 rules: {', '.join(bad) or '(empty)'}")
        for lengths in (self.stage1_lengths, self.stage2_lengths, self.stage3_lengths, (self.eval_length,)):
            if not lengths or min(lengths) < 48 or any(n % 8 for n in lengths):
                raise ConfigError("video lengths must be multiples of 8 frames, at least 48 (room for 5 events)")
        if self.slot_init not in ("random", "kmeans"):
            raise ConfigError(f"slot_init must be random or kmeans, got {self.slot_init!r}")
        if not self.lr > 0 or min(self.stage3_budgets) <= 0:
            raise ConfigError("lr and stage-3 budgets must be positive")

    @property
    def total_steps(self) -> int:
        return self.sprite_steps + self.caption_steps + self.stage1_steps + self.stage2_steps + self.stage3_steps

    def stage(self, step: int) -> int:
        """Stage (−1 for sprites, then 0, 1, 2 or 3) of the 0-based optimiser step ``step``."""
        if step < self.sprite_steps:
            return -1
        ends = np.cumsum([self.caption_steps, self.stage1_steps, self.stage2_steps])
        return int(np.searchsorted(ends, step - self.sprite_steps, side="right"))


def build_models(cfg: TempoTrainConfig) -> tuple[TinyCompressor, TinyDecoder]:
    words, answers = WordVocab(), AnswerVocab()
    ccfg = CompressorConfig(d_model=cfg.d_model, n_layers=cfg.n_layers, n_heads=cfg.n_heads,
                            n_memory=cfg.n_memory, channels=cfg.channels, grid=cfg.grid, n_answers=answers.size,
                            n_caption=len(caption_classes()), stem_norm=cfg.stem_norm,
                            stem=cfg.stem, colour_slots=cfg.colour_slots,
                            slot_sharpness=cfg.slot_sharpness, query_first=cfg.query_first,
                            sprite_kinds=len(SHAPES) * len(COLOURS) if cfg.sprite_steps else 0)
    dcfg = DecoderConfig(d_model=cfg.d_model, n_layers=cfg.decoder_layers, n_heads=cfg.n_heads,
                         d_memory=cfg.d_model, n_slots=cfg.n_memory, time_bins=cfg.time_bins,
                         n_answers=answers.size, query_len=ccfg.query_len)
    return (TinyCompressor(ccfg, words, torch.Generator().manual_seed(derive_seed(cfg.seed, "compressor") % 2**62)),
            TinyDecoder(dcfg, words, torch.Generator().manual_seed(derive_seed(cfg.seed, "decoder") % 2**62)))


def train_videos(cfg: TempoTrainConfig, step: int) -> list[NeedleVideo]:
    """The batch of step ``step``: a function of (seed, step) only."""
    rng = np.random.default_rng(derive_seed(cfg.seed, "batch", step))
    lengths = (cfg.stage1_lengths, cfg.stage1_lengths, cfg.stage2_lengths, cfg.stage3_lengths)[cfg.stage(step)]
    return [make_video(derive_seed(cfg.seed, "train", step, i), cfg.tasks[int(rng.integers(len(cfg.tasks)))],
                       int(lengths[int(rng.integers(len(lengths)))])) for i in range(cfg.batch_size)]


def init_colour_slots(cfg: TempoTrainConfig, compressor: TinyCompressor) -> None:
    """With ``slot_init: kmeans``, start the stem's colour slots at k-means centres of the distinct colours of the
    first training batch (`video/colour_init.py`); otherwise leave the random start."""
    from thrifty.video.colour_init import distinct_colours, kmeans, nearest_centre_logits

    if cfg.slot_init != "kmeans" or cfg.stem == "conv":
        return
    frames = np.concatenate([v.frames for v in train_videos(cfg, 0)])
    rng = np.random.default_rng(derive_seed(cfg.seed, "colour-slots"))
    weight, bias = nearest_centre_logits(kmeans(distinct_colours(frames), cfg.colour_slots, rng), cfg.slot_sharpness)
    with torch.no_grad():
        compressor.stem.assign.weight.copy_(torch.from_numpy(weight).float()[:, :, None, None])
        compressor.stem.assign.bias.copy_(torch.from_numpy(bias).float())


def heldout_videos(cfg: TempoTrainConfig, n: int, length: int) -> list[NeedleVideo]:
    return [make_video(derive_seed(cfg.eval_seed, "heldout", i), cfg.tasks[i % len(cfg.tasks)], length)
            for i in range(n)]


def _memory_counts(cfg: TempoTrainConfig, stage: int, videos, relevance: list[np.ndarray],
                   gen: torch.Generator) -> list[np.ndarray]:
    """Memory tokens each segment keeps in this stage."""
    m = cfg.n_memory
    if stage == 1:
        return [np.full(v.plan.n_segments, m, dtype=np.int64) for v in videos]
    if stage == 2:
        return [torch.randint(cfg.k_min, m + 1, (v.plan.n_segments,), generator=gen).numpy() for v in videos]
    rule = cfg.stage3_rules[int(torch.randint(len(cfg.stage3_rules), (1,), generator=gen))]
    per_frame = cfg.stage3_budgets[int(torch.randint(len(cfg.stage3_budgets), (1,), generator=gen))]
    spec = AllocSpec(rule, rule, per_frame)
    return [allocation(spec, r, v.plan, m, cfg.k_min, v.evidence, v.seed) for v, r in zip(videos, relevance,
                                                                                          strict=True)]


def balanced_mean(values: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """½·mean(values[mask]) + ½·mean(values[~mask]); the plain mean when either side is empty."""
    mask = mask.bool()
    if mask.all() or not mask.any():
        return values.mean()
    return 0.5 * (values[mask].mean() + values[~mask].mean())


def caption_targets(compressor: TinyCompressor, videos) -> torch.Tensor:
    """(S, V, C) float token caption targets of every segment of ``videos`` (concatenated)."""
    c = compressor.cfg
    return torch.from_numpy(np.concatenate([token_labels(v, c.frames, c.tubelet, c.grid) for v in videos])).float()


def binding_loss(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Hard-negative caption loss: for each shape shown in exactly one colour, cross-entropy of that colour among
    the shape's colour logits (the same shape in another colour is the negative), and likewise for each colour
    shown on exactly one shape; (…, C) logits and 0/1 targets over :func:`caption_classes`. Zero when none."""
    n_s, n_c = len(SHAPES), len(COLOURS)
    lg = logits[..., :n_s * n_c].reshape(-1, n_s, n_c)
    tg = targets[..., :n_s * n_c].reshape(-1, n_s, n_c)
    parts = []
    for x, t in ((lg, tg), (lg.transpose(1, 2), tg.transpose(1, 2))):
        one = t.sum(-1) == 1  # rows (a shape's colours, or a colour's shapes) with exactly one hit
        if one.any():
            parts.append(torch.nn.functional.cross_entropy(x[one], t[one].argmax(-1)))
    return torch.stack(parts).mean() if parts else logits.sum() * 0.0


def caption_loss(compressor: TinyCompressor, visual: torch.Tensor, targets: torch.Tensor,
                 binding: float = 0.0) -> torch.Tensor:
    logits = compressor.token_caption(visual)
    loss = torch.nn.functional.binary_cross_entropy_with_logits(logits, targets)
    return loss + binding * binding_loss(logits, targets) if binding else loss


def sprite_step(cfg: TempoTrainConfig, compressor: TinyCompressor, step: int) -> dict[str, Any]:
    """Stage ``sprites``: the stem names the sprite kinds of ``sprite_batch`` still frames (BCE, plus the
    hard-negative binding term with ``binding_weight``); the frames are a function of (seed, step) only."""
    from thrifty.video.sprite_sheet import sprite_frames

    frames, labels = sprite_frames(cfg.sprite_batch, np.random.default_rng(derive_seed(cfg.seed, "sprites", step)))
    logits = compressor.sprite_logits(torch.from_numpy(frames))
    target = torch.from_numpy(labels).float()
    loss = torch.nn.functional.binary_cross_entropy_with_logits(logits, target)
    if cfg.binding_weight:
        loss = loss + cfg.binding_weight * binding_loss(logits, target)
    return {"loss": loss, "sprites": loss.item(),
            "sprites_exact": float(((logits > 0) == (target > 0)).all(1).float().mean())}


def train_step(cfg, compressor, decoder, videos, stage: int, gen: torch.Generator) -> dict[str, Any]:
    """Forward the models on one batch; returns the loss tensor and its parts (stage 0: the stem alone)."""
    answers = AnswerVocab()
    ccfg = compressor.cfg
    frames = torch.cat([segment_frames(v.frames, v.plan.segments, ccfg.frames) for v in videos])
    captions = caption_targets(compressor, videos)
    if stage == 0:
        loss = caption_loss(compressor, compressor.visual_tokens(frames), captions, cfg.binding_weight)
        return {"loss": loss, "caption": loss.item()}
    counts = [v.plan.n_segments for v in videos]
    query = torch.cat([torch.tensor([compressor.vocab.encode_padded(v.question, ccfg.query_len)]).expand(n, -1)
                       for v, n in zip(videos, counts, strict=True)])
    evidence = torch.from_numpy(np.concatenate([v.evidence for v in videos]).astype(np.float32))
    out = compressor(frames, query)
    rel = torch.sigmoid(out.relevance_logit.detach()).double().numpy()
    starts = np.concatenate([[0], np.cumsum(counts)])
    ks = _memory_counts(cfg, stage, videos, [rel[a:b] for a, b in pairwise(starts)], gen)
    batch = []
    for v, k, (a, b) in zip(videos, ks, pairwise(starts), strict=True):
        bins = torch.tensor(timestamp_bins(v.plan.timestamps, v.n_frames / v.fps, cfg.time_bins))
        batch.append(DecoderInput(out.memory[a:b, :max(int(k.max()), 1)], torch.from_numpy(k).long(), bins,
                                  torch.tensor(compressor.vocab.encode(v.question))))
    logits = restrict(decoder(batch), [answers.allowed(v) for v in videos])
    labels = torch.tensor([answers.label(v) for v in videos])
    ce = torch.nn.functional.cross_entropy(logits, labels)
    bce = torch.nn.functional.binary_cross_entropy_with_logits(out.relevance_logit, evidence)
    local_labels = torch.tensor([c for v in videos for c in segment_answers(v, answers)])
    local = torch.nn.functional.cross_entropy(compressor.local_head(out.memory[:, 0]), local_labels,
                                              reduction="none")
    needle = torch.tensor([v.task != "global" for v, n in zip(videos, counts, strict=True) for _ in range(n)])
    local = balanced_mean(local, (evidence > 0) & needle) if cfg.local_balanced else local.mean()
    caption = caption_loss(compressor, out.visual, captions, cfg.binding_weight)
    seg_logits, seg_targets = compressor.memory_caption(out.memory[:, 0]), captions.amax(1)
    memory_caption = torch.nn.functional.binary_cross_entropy_with_logits(seg_logits, seg_targets)
    if cfg.binding_weight:
        memory_caption = memory_caption + cfg.binding_weight * binding_loss(seg_logits, seg_targets)
    w = stage - 1
    loss = (ce + cfg.relevance_weight[w] * bce + cfg.local_weight[w] * local + cfg.caption_weight[w] * caption
            + cfg.memory_caption_weight[w] * memory_caption)
    return {"loss": loss, "ce": ce.item(), "bce": bce.item(), "local": local.item(), "caption": caption.item(),
            "memory_caption": memory_caption.item(), "acc": float((logits.argmax(-1) == labels).float().mean())}


def quick_eval(cfg: TempoTrainConfig, compressor, decoder, videos) -> dict[str, float]:
    """Held-out accuracy with all M tokens and with ATA at 0.25 tokens/frame; relevance AUROC over segments."""
    from thrifty.evals.prob_metrics import auroc

    backend = TinyBackend(compressor, decoder)
    specs = [AllocSpec("full", "uniform", cfg.n_memory / compressor.cfg.frames), AllocSpec("ata", "ata", 0.25)]
    hits, scores, truth = np.zeros(len(specs)), [], []
    for v in videos:
        comp, res = answer_needle(v, backend, backend, specs, cfg.k_min)
        hits += [r.answer == v.answer for r in res]
        scores.append(comp.relevance)
        truth.append(v.evidence)
    compressor.train()
    decoder.train()
    s, t = np.concatenate(scores), np.concatenate(truth)
    return {"acc_full": float(hits[0] / len(videos)), "acc_ata_0.25": float(hits[1] / len(videos)),
            "auroc": auroc(s, t)}


def learning_rate(cfg: TempoTrainConfig, step: int) -> float:
    """Linear warm-up, then cosine decay to 10% of ``lr`` at the last step."""
    if step < cfg.warmup:
        return cfg.lr * (step + 1) / cfg.warmup
    frac = (step - cfg.warmup) / max(cfg.total_steps - cfg.warmup, 1)
    return cfg.lr * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * min(frac, 1.0))))


def train_tempo(cfg: TempoTrainConfig, progress: bool = True, stop_at: int | None = None) -> dict[str, Any]:
    """Train (or resume) the run ``cfg`` describes, up to ``stop_at`` steps if given (to test resuming)."""
    torch.set_num_threads(cfg.n_threads)
    run = Path(cfg.run_dir)
    run.mkdir(parents=True, exist_ok=True)
    save_config(cfg, run / "config.yaml")
    compressor, decoder = build_models(cfg)
    modules = {"compressor": compressor, "decoder": decoder}
    params = [p for m in modules.values() for p in m.parameters()]
    opt = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=0.01)
    gen = torch.Generator().manual_seed(derive_seed(cfg.seed, "train-gen") % 2**62)
    step, _ = load_checkpoint(run, modules, opt, gen)
    if step == 0:  # a fresh run: a resumed one has its trained slots
        init_colour_slots(cfg, compressor)
    heldout = heldout_videos(cfg, cfg.n_eval, cfg.eval_length)
    end = cfg.total_steps if stop_at is None else min(stop_at, cfg.total_steps)
    t0, last = time.perf_counter(), {}
    compressor.train()
    decoder.train()
    bar = Progress(end, "video train", start=step, enabled=None if progress else False).open()
    with MetricsLog(run, resume_step=step, tensorboard=cfg.tensorboard) as log:
        while step < end:
            stage = cfg.stage(step)
            for group in opt.param_groups:
                group["lr"] = learning_rate(cfg, step)
            parts = (sprite_step(cfg, compressor, step) if stage < 0 else
                     train_step(cfg, compressor, decoder, train_videos(cfg, step), stage, gen))
            opt.zero_grad()
            parts.pop("loss").backward()
            torch.nn.utils.clip_grad_norm_(params, 1.0)
            opt.step()
            step += 1
            record = {"step": step, "stage": stage, **parts, "wall_s": round(time.perf_counter() - t0, 2)}
            if step % cfg.eval_every == 0 or step == cfg.total_steps:
                last = quick_eval(cfg, compressor, decoder, heldout)
                record.update({f"eval_{k}": v for k, v in last.items()})
            if step % cfg.log_every == 0 or "eval_auroc" in record:
                shown = ", ".join(f"{k} {v:.3f}" for k, v in record.items() if k not in ("step", "stage", "wall_s"))
                bar.advance(note=f"stage {stage}: {shown}", force=True)
            else:
                bar.advance()
            log.write(record)
            if step % cfg.checkpoint_every == 0 or step == end:
                log.flush()
                save_checkpoint(run, step, modules, opt, gen)
    bar.close()
    params_n = compressor.num_params() + decoder.num_params()
    return {"step": step, **last, "params": params_n, "config": asdict(cfg)}


def load_run(run_dir: str | Path) -> tuple[TempoTrainConfig, TinyCompressor, TinyDecoder]:
    """The config and trained models (eval mode) of a `video train` run."""
    from thrifty.core.config import load_config

    run = Path(run_dir)
    if not (run / "checkpoint" / "compressor.safetensors").is_file():
        raise ConfigError(f"{run}: no checkpoint here; train one with `thrifty video train`")
    cfg = load_config(TempoTrainConfig, run / "config.yaml")
    compressor, decoder = build_models(cfg)
    load_weights(run, {"compressor": compressor, "decoder": decoder})
    return cfg, compressor.eval(), decoder.eval()
