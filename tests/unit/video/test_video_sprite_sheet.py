"""Still sprite frames and the ``sprites`` training stage that teaches the stem to name them."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from thrifty.core.errors import ConfigError
from thrifty.video.sprite_sheet import sprite_frames
from thrifty.video.synth import COLOURS, SHAPES, shape_mask


def test_sprite_frames_are_seeded_and_label_what_is_painted():
    a = sprite_frames(16, np.random.default_rng(0), max_sprites=1)
    b = sprite_frames(16, np.random.default_rng(0), max_sprites=1)
    np.testing.assert_array_equal(a[0], b[0])
    frames, labels = a
    assert frames.shape == (16, 32, 32, 3) and frames.dtype == np.uint8 and labels.shape == (16, 30)
    assert (labels.sum(1) == 1).all()  # one sprite, never hidden
    for frame, row in zip(frames, labels, strict=True):
        shape, colour = divmod(int(np.flatnonzero(row)[0]), len(COLOURS))
        painted = (frame == list(COLOURS.values())[colour]).all(-1).sum()
        assert painted == shape_mask(SHAPES[shape], 7).sum()


def test_a_mostly_hidden_sprite_is_not_labelled():
    _, labels = sprite_frames(400, np.random.default_rng(1), max_sprites=3)
    assert labels.sum(1).min() >= 1 and labels.sum(1).max() <= 3  # the last sprite painted is whole
    # some frames paint three sprites but label fewer: a later sprite covered an earlier one
    per_frame = labels.sum(1)
    assert (per_frame < 3).any() and (per_frame == 3).any()
    with pytest.raises(ConfigError):
        sprite_frames(4, np.random.default_rng(0), visible=0.0)


def test_sprite_stage_comes_first_and_trains_the_stem_alone():
    from thrifty.video.train import TempoTrainConfig, build_models, sprite_step

    cfg = TempoTrainConfig(d_model=16, n_layers=1, n_heads=2, decoder_layers=1, n_memory=4, channels=2,
                           stem="silhouette", stem_norm=False, sprite_steps=3, sprite_batch=8, caption_steps=2,
                           stage1_steps=1, stage2_steps=0, stage3_steps=0, binding_weight=1.0)
    assert [cfg.stage(s) for s in range(6)] == [-1, -1, -1, 0, 0, 1] and cfg.total_steps == 6
    comp, _ = build_models(cfg)
    parts = sprite_step(cfg, comp, 0)
    parts["loss"].backward()
    assert comp.stem.assign.weight.grad is not None and comp.sprite_head.weight.grad is not None
    assert all(p.grad is None for p in comp.blocks.parameters())
    again = sprite_step(cfg, comp, 0)
    assert again["sprites"] == pytest.approx(parts["sprites"])  # frames are a function of (seed, step)
    no_head, _ = build_models(TempoTrainConfig(d_model=16, n_layers=1, n_heads=2, decoder_layers=1, n_memory=4))
    assert no_head.sprite_head is None
    with pytest.raises(ConfigError, match="sprite head"):
        no_head.sprite_logits(torch.zeros(1, 32, 32, 3, dtype=torch.uint8))


def test_a_run_with_a_sprite_stage_trains_and_resumes(tmp_path):
    from thrifty.video.train import TempoTrainConfig, train_tempo

    cfg = TempoTrainConfig(run_dir=str(tmp_path / "run"), d_model=16, n_layers=1, n_heads=2, decoder_layers=1,
                           n_memory=4, channels=2, stem="silhouette", stem_norm=False, sprite_steps=2,
                           sprite_batch=4, caption_steps=1, stage1_steps=1, stage2_steps=0, stage3_steps=0,
                           batch_size=2, n_eval=2, eval_length=48, checkpoint_every=1, eval_every=100,
                           slot_init="kmeans", slot_sharpness=40.0)
    out = train_tempo(cfg, progress=False)
    assert out["step"] == 4
    lines = (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()
    assert '"stage": -1' in lines[0] and "sprites_exact" in lines[0]


def test_sprite_perception_scores_the_sprite_head():
    from thrifty.video.diagnose import sprite_perception
    from thrifty.video.train import TempoTrainConfig, build_models

    comp, _ = build_models(TempoTrainConfig(d_model=16, n_layers=1, n_heads=2, decoder_layers=1, n_memory=4,
                                            channels=2, stem="silhouette", stem_norm=False, sprite_steps=1))
    out = sprite_perception(comp, n=64)
    assert set(out) == {"exact_set", "mean_auroc", "n_frames"} and 0.0 <= out["exact_set"] <= 1.0
    assert 0.2 < out["mean_auroc"] < 0.8  # untrained: near chance
    with torch.no_grad():  # a head that reads nothing and says "absent" gets every single-sprite frame wrong
        comp.sprite_head.weight.zero_()
        comp.sprite_head.bias.fill_(-5.0)
    assert sprite_perception(comp, n=64)["exact_set"] == 0.0
    no_head, _ = build_models(TempoTrainConfig(d_model=16, n_layers=1, n_heads=2, decoder_layers=1, n_memory=4))
    assert sprite_perception(no_head) is None
