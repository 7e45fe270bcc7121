"""Fixtures of the video tests: tiny random-weight Qwen2-VL and Qwen2.5-VL checkpoints on disk, built once."""

from __future__ import annotations

from pathlib import Path

import pytest
from _tiny_qwen import save_tiny_qwen


@pytest.fixture(scope="session")
def tiny_qwen_dir(tmp_path_factory) -> Path:
    return save_tiny_qwen(tmp_path_factory.mktemp("tiny_qwen2_vl"))


@pytest.fixture(scope="session")
def tiny_qwen25_dir(tmp_path_factory) -> Path:
    return save_tiny_qwen(tmp_path_factory.mktemp("tiny_qwen2_5_vl"), family="qwen2_5_vl")
