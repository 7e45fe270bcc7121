"""Shared llm-test fixtures: a scriptable OpenAI-compatible stub server and a LoRA adapter for the tiny HF model."""

from __future__ import annotations

import warnings
from pathlib import Path

import pytest
from _stub_server import StubOpenAI


@pytest.fixture(scope="module")
def _stub_module():
    stub = StubOpenAI()
    yield stub
    stub.close()


@pytest.fixture
def openai_stub(_stub_module: StubOpenAI) -> StubOpenAI:
    """The stub server with default behaviour and an empty request log."""
    _stub_module.reset()
    return _stub_module


@pytest.fixture(scope="session")
def tiny_lora_dir(tiny_hf_dir: Path, tmp_path_factory) -> Path:
    """A LoRA adapter (r=4 on q/v projections) for the tiny model with clearly non-zero weights."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    out = tmp_path_factory.mktemp("tiny_lora")
    base = AutoModelForCausalLM.from_pretrained(tiny_hf_dir, local_files_only=True)
    with warnings.catch_warnings():  # a deprecation notice raised inside peft, not ours to fix
        warnings.filterwarnings("ignore", "`is_gradient_checkpointing`", FutureWarning)
        peft_model = get_peft_model(base, LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"]))
    gen = torch.Generator().manual_seed(7)
    with torch.no_grad():
        for name, p in peft_model.named_parameters():
            if "lora_" in name:
                p.copy_(torch.randn(p.shape, generator=gen) * 0.5)
    peft_model.save_pretrained(out)
    return out
