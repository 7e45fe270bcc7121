"""Every YAML shipped under configs/ loads into the dataclass it is written for."""

from __future__ import annotations

import importlib
from pathlib import Path

import pytest

from thrifty.core.config import load_config

CONFIGS = Path(__file__).resolve().parents[1] / "configs"
# Each shipped YAML and the config class that reads it. A new YAML must be added here (the test below checks).
KINDS = {
    "dlm/add5_sft.yaml": "thrifty.dlm.sft:DlmSFTConfig",
    "route/demo.yaml": "thrifty.route.records.collect:CollectConfig",
    "route/demo_train.yaml": "thrifty.route.records.collect:CollectConfig",
    "route/demo_probe.yaml": "thrifty.route.fit.probe_fit:ProbeFitConfig",
    "route/demo_prompt.yaml": "thrifty.route.fit.probe_fit:ProbeFitConfig",
    "route/demo_predict.yaml": "thrifty.route.records.predictions:PredictEvalConfig",
    "route/demo_val.yaml": "thrifty.route.records.collect:CollectConfig",
    "route/demo_calibrate.yaml": "thrifty.route.fit.calibrate:CalibrateConfig",
    "route/demo_eval.yaml": "thrifty.route.replay.evaluate:EvalConfig",
    "dlm/sudoku4_sft.yaml": "thrifty.dlm.sft:DlmSFTConfig",
    "dlm/sudoku4_sft_limited.yaml": "thrifty.dlm.sft:DlmSFTConfig",
    "dlm/countdown3_sft_limited.yaml": "thrifty.dlm.sft:DlmSFTConfig",
    "dlm/rl_diffu_grpo.yaml": "thrifty.dlm.rl.config:DlmRLConfig",
    "dlm/rl_diffpo.yaml": "thrifty.dlm.rl.config:DlmRLConfig",
    "dlm/rl_diffpo_joint.yaml": "thrifty.dlm.rl.config:DlmRLConfig",
    "dlm/rl_dtrpo.yaml": "thrifty.dlm.rl.config:DlmRLConfig",
    "dlm/rl_vrpo.yaml": "thrifty.dlm.rl.config:DlmRLConfig",
    "dlm/rl_sft_control.yaml": "thrifty.dlm.rl.config:DlmRLConfig",
    "dlm/sudoku9_sft.yaml": "thrifty.dlm.sft:DlmSFTConfig",
    "dlm/countdown3_sft.yaml": "thrifty.dlm.sft:DlmSFTConfig",
    "dlm/countdown4_sft.yaml": "thrifty.dlm.sft:DlmSFTConfig",
    "video/tempo_tiny.yaml": "thrifty.video.train:TempoTrainConfig",
    "video/tempo_grid4.yaml": "thrifty.video.train:TempoTrainConfig",
    "video/tempo_silhouette.yaml": "thrifty.video.train:TempoTrainConfig",
}


def _cls(path: str):
    module, _, attr = path.partition(":")
    return getattr(importlib.import_module(module), attr)


def test_every_yaml_is_registered():
    # configs/accelerate/ holds accelerate's own launch configs (checked in tests/unit/dlm/test_dlm_accelerate.py)
    found = {str(p.relative_to(CONFIGS)) for p in CONFIGS.rglob("*.yaml") if p.parent.name != "accelerate"}
    assert found == set(KINDS), f"unregistered or missing configs: {found ^ set(KINDS)}"


@pytest.mark.parametrize("rel", sorted(KINDS))
def test_yaml_loads(rel):
    cfg = load_config(_cls(KINDS[rel]), CONFIGS / rel)
    assert cfg is not None
