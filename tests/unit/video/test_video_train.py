"""A smoke training of the tiny video models through all four stages (caption, full, nested, allocated): it checkpoints, logs, and a run stopped
half-way resumes to exactly the weights of an uninterrupted one."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import load_file

from thrifty.core.errors import ConfigError
from thrifty.core.tb_events import read_events
from thrifty.video.train import (
    TempoTrainConfig,
    balanced_mean,
    learning_rate,
    load_run,
    train_tempo,
    train_videos,
)

TINY = dict(d_model=16, n_layers=1, n_heads=2, decoder_layers=1, n_memory=4, channels=4, batch_size=2,
            caption_steps=2, local_balanced=True, caption_weight=(0.5, 0.5, 0.5), memory_caption_weight=(1.0, 1.0, 0.5), stage1_steps=2, stage2_steps=2, stage3_steps=2, stage1_lengths=(48,), stage2_lengths=(48,),
            stage3_lengths=(48, 56), eval_every=8, n_eval=3, eval_length=48, checkpoint_every=3, warmup=2)


def _weights(run) -> dict[str, torch.Tensor]:
    return {f"{m}.{k}": v for m in ("compressor", "decoder")
            for k, v in load_file(str(run / "checkpoint" / f"{m}.safetensors")).items()}


def test_smoke_train_checkpoints_and_resumes_exactly(tmp_path):
    whole = TempoTrainConfig(run_dir=str(tmp_path / "whole"), tensorboard=True, **TINY)
    res = train_tempo(whole, progress=False)
    assert res["step"] == 8 and 0.0 <= res["auroc"] <= 1.0 and 0.0 <= res["acc_full"] <= 1.0
    log = [json.loads(x) for x in (tmp_path / "whole" / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in log] == list(range(1, 9)) and [r["stage"] for r in log] == [0, 0, 1, 1, 2, 2, 3, 3]
    assert all("ce" not in r and r["caption"] > 0 for r in log[:2])  # stage 0 trains the stem alone
    assert all(r["ce"] > 0 and r["bce"] > 0 and r["caption"] > 0 and r["memory_caption"] > 0 for r in log[2:])
    (events,) = (tmp_path / "whole" / "tb").glob("events.out.tfevents.*")  # the same records as TensorBoard scalars
    tb = read_events(events)
    assert [e["step"] for e in tb] == [r["step"] for r in log]
    assert tb[3]["scalars"]["ce"] == pytest.approx(log[3]["ce"], rel=1e-6)

    part = TempoTrainConfig(run_dir=str(tmp_path / "part"), **TINY)
    train_tempo(part, progress=False, stop_at=3)  # a snapshot at step 3 (stage 1), as if killed after it
    assert json.loads((tmp_path / "part" / "checkpoint" / "meta.json").read_text())["step"] == 3
    train_tempo(part, progress=False)
    a, b = _weights(tmp_path / "whole"), _weights(tmp_path / "part")
    assert a.keys() == b.keys()
    for k in a:
        torch.testing.assert_close(a[k], b[k], atol=0, rtol=0)
    cfg, comp, dec = load_run(tmp_path / "part")
    assert cfg.n_memory == 4 and not comp.training and not dec.training


def test_training_changes_the_weights_and_batches_are_seeded(tmp_path):
    cfg = TempoTrainConfig(run_dir=str(tmp_path / "r"), **TINY)
    assert [v.question for v in train_videos(cfg, 4)] == [v.question for v in train_videos(cfg, 4)]
    assert [v.seed for v in train_videos(cfg, 4)] != [v.seed for v in train_videos(cfg, 5)]
    train_tempo(cfg, progress=False, stop_at=1)
    first = _weights(tmp_path / "r")
    train_tempo(cfg, progress=False, stop_at=3)
    assert any(not torch.equal(first[k], v) for k, v in _weights(tmp_path / "r").items())


def test_config_is_validated_and_the_schedule_warms_up():
    with pytest.raises(ConfigError, match="multiples of 8"):
        TempoTrainConfig(stage1_lengths=(40,))
    with pytest.raises(ConfigError, match="unknown"):
        TempoTrainConfig(stage3_rules=("nope",))
    with pytest.raises(ConfigError, match="k_min"):
        TempoTrainConfig(k_min=5, n_memory=4)
    cfg = TempoTrainConfig(lr=1.0, warmup=10, stage1_steps=10, stage2_steps=10, stage3_steps=10)
    assert learning_rate(cfg, 0) == pytest.approx(0.1) and learning_rate(cfg, 9) == pytest.approx(1.0)
    assert learning_rate(cfg, 29) < learning_rate(cfg, 15) < 1.0 and learning_rate(cfg, 30) == pytest.approx(0.1)
    assert [cfg.stage(s) for s in (0, 9, 10, 19, 20, 29)] == [1, 1, 2, 2, 3, 3]
    cfg = TempoTrainConfig(caption_steps=3, stage1_steps=2, stage2_steps=0, stage3_steps=1)
    assert [cfg.stage(s) for s in range(6)] == [0, 0, 0, 1, 1, 3] and cfg.total_steps == 6
    with pytest.raises(ConfigError, match="three non-negative"):
        TempoTrainConfig(caption_weight=(1.0, 1.0))


def test_the_stem_alone_learns_in_stage_zero(tmp_path):
    """Stage 0 moves the stem and the token caption head only; the transformer, memory and decoder stay put."""
    cfg = TempoTrainConfig(run_dir=str(tmp_path / "r"), **{**TINY, "stage1_steps": 0, "stage2_steps": 0,
                                                            "stage3_steps": 0, "caption_steps": 2})
    train_tempo(cfg, progress=False, stop_at=1)
    first = _weights(tmp_path / "r")
    train_tempo(cfg, progress=False)
    moved = {k for k, v in _weights(tmp_path / "r").items() if not torch.equal(first[k], v)}
    assert any(k.startswith("compressor.stem.") for k in moved) and "compressor.token_caption.weight" in moved
    assert not any(k.startswith(("decoder.", "compressor.blocks.", "compressor.memory_caption")) for k in moved)


def test_load_run_without_a_checkpoint_is_a_one_line_error(tmp_path):
    with pytest.raises(ConfigError, match="no checkpoint"):
        load_run(tmp_path)


def test_balanced_mean_by_hand():
    v = torch.tensor([1.0, 2.0, 3.0, 6.0])
    assert balanced_mean(v, torch.tensor([True, False, False, False])).item() == pytest.approx(0.5 * 1 + 0.5 * 11 / 3)
    assert balanced_mean(v, torch.zeros(4, dtype=torch.bool)).item() == pytest.approx(3.0)  # one side empty
    assert balanced_mean(v, torch.ones(4, dtype=torch.bool)).item() == pytest.approx(3.0)
