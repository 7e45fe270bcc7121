"""`thrifty dlm rl --hf-model DIR`: the policy, reference, data and checkpoint pieces for RL on a Hugging Face
masked-diffusion checkpoint (LLaDA / Dream style), handed to the same loop and updates as the small model.

- **Policy**: :class:`~thrifty.dlm.hf_adapter.HFMaskedDiffusion` (mask and EOS ids from the tokenizer or config)
  around a PEFT LoRA model; only the LoRA weights train. Target modules: ``lora_target_modules``, or every linear
  layer but the output head (PEFT's ``all-linear``). The model stays in eval mode: no dropout, in the base model or
  LoRA (d1 used LoRA dropout 0.05), so ratios compare deterministic log-probs and a resumed run repeats the
  uninterrupted one exactly. Weights load in ``hf_dtype`` — ``auto`` is bfloat16 on a GPU
  that supports it and float32 otherwise (PEFT keeps the LoRA weights themselves in float32).
- **Reference**: :class:`AdapterOff`, the same model called inside ``disable_adapter()`` in eval mode — the base
  weights, never a second copy (d1's setting; ``ref_sync_every`` does not apply).
- **Data**: :class:`~thrifty.dlm.data.PromptTask` from ``prompts_file`` (``eval_file``, or ``n_eval`` rows held
  out with ``seed``) — JSONL, CSV, Parquet or a ``datasets`` folder (:mod:`thrifty.dlm.prompt_files`) — scored by
  :class:`~thrifty.dlm.rewards.RewardSum` over ``reward_funcs``. Preference pairs given as a JSONL ``pairs_file``
  are tokenised against this task's tokenizer when the update starts (:mod:`thrifty.dlm.pref_data`).
- **Checkpoints**: ``checkpoint/adapter.safetensors`` holds the LoRA weights only (with the optimiser and generator
  state for an exact resume), and ``<run_dir>/adapter/`` the same weights in PEFT's own format, loadable with
  ``PeftModel.from_pretrained(base_model, "<run_dir>/adapter")``.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from thrifty.core.errors import ConfigError
from thrifty.dlm.data import PromptTask, split_rows
from thrifty.dlm.hf_adapter import HFMaskedDiffusion
from thrifty.dlm.prompt_files import read_prompts
from thrifty.dlm.rewards import RewardSum
from thrifty.dlm.rl.config import DlmRLConfig


def resolve_dtype(name: str, device: str | torch.device | None = None) -> torch.dtype:
    """``auto``: bfloat16 where the device supports it (a CUDA GPU with bf16), float32 otherwise."""
    if name != "auto":
        return {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}[name]
    on_gpu = torch.cuda.is_available() and (device is None or torch.device(device).type == "cuda")
    return torch.bfloat16 if on_gpu and torch.cuda.is_bf16_supported() else torch.float32


class AdapterOff(nn.Module):
    """The reference policy: ``policy`` with its LoRA adapter switched off, in eval mode (no weights of its own)."""

    def __init__(self, policy: HFMaskedDiffusion) -> None:
        super().__init__()
        self._policy = (policy,)  # a tuple, not a submodule: the reference owns no parameters and no hooks

    def forward(self, ids: torch.Tensor, **kw: Any) -> Any:
        policy = self._policy[0]
        was_training = policy.training
        policy.eval()
        try:
            with policy.model.disable_adapter():
                return policy.forward(ids, **kw)  # .forward: the policy's own forward hooks count policy calls only
        finally:
            policy.train(was_training)


class AdapterWeights:
    """The LoRA weights of a PEFT model as a checkpoint module (``state_dict`` / ``load_state_dict``)."""

    def __init__(self, peft_model: Any) -> None:
        self.peft_model = peft_model

    def state_dict(self) -> dict[str, torch.Tensor]:
        from peft import get_peft_model_state_dict

        return {k: v.detach().cpu() for k, v in get_peft_model_state_dict(self.peft_model).items()}

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        from peft import set_peft_model_state_dict

        result = set_peft_model_state_dict(self.peft_model, state)
        unexpected = list(getattr(result, "unexpected_keys", []) or [])
        if unexpected:
            raise ConfigError(f"the checkpoint's adapter does not fit this model (e.g. {unexpected[0]}); was it "
                              "trained with other lora_target_modules or lora_r?")


def save_adapter(peft_model: Any, run: Path) -> Path:
    """``<run>/adapter/`` in PEFT's format, written to a temporary folder and renamed into place."""
    final, tmp = run / "adapter", run / "adapter.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    peft_model.save_pretrained(str(tmp))
    shutil.rmtree(final, ignore_errors=True)
    tmp.rename(final)
    return final


def lora_model(model: nn.Module, cfg: DlmRLConfig) -> Any:
    """``model`` wrapped by PEFT with a fresh LoRA adapter (base weights frozen). PEFT draws the initial A matrices
    from torch's global generator: that generator is forked (its state restored afterwards) and seeded with
    ``cfg.seed``, so a run starts from the same adapter every time and the caller's random state is untouched."""
    from peft import LoraConfig, get_peft_model

    targets: Any = list(cfg.lora_target_modules) or "all-linear"
    lora = LoraConfig(r=cfg.lora_r, lora_alpha=cfg.lora_alpha, lora_dropout=0.0, target_modules=targets)
    with torch.random.fork_rng():
        torch.manual_seed(cfg.seed)
        try:
            return get_peft_model(model, lora)
        except ValueError as exc:  # e.g. target modules not found in the model
            raise ConfigError(f"LoRA: {str(exc).splitlines()[0]}") from None


@dataclass
class HFSetup:
    task: PromptTask
    policy: HFMaskedDiffusion
    ref: AdapterOff
    params: list[nn.Parameter]
    modules: dict[str, Any]  # what the checkpoint saves: the adapter's weights
    after_save: Callable[[Path], Any]
    lora_modules: int  # how many modules carry LoRA weights


def hf_setup(cfg: DlmRLConfig, device: str | None = None) -> HFSetup:
    """Load ``cfg.hf_model`` with a LoRA adapter, its reference and the prompt task."""
    if not cfg.hf_model:
        raise ConfigError("hf_setup needs hf_model")
    dtype = resolve_dtype(cfg.hf_dtype, device)
    policy = HFMaskedDiffusion.from_pretrained(cfg.hf_model, device=device, dtype=dtype)
    policy.model = lora_model(policy.model, cfg)
    policy.eval()  # dropout off throughout (as the reference): policy, old and reference log-probs are deterministic
    params = [p for p in policy.parameters() if p.requires_grad]
    reward = RewardSum(cfg.reward_funcs, cfg.reward_weights)
    rows = read_prompts(cfg.prompts_file)
    train, test = (rows, read_prompts(cfg.eval_file)) if cfg.eval_file else split_rows(rows, cfg.n_eval, cfg.seed)
    task = PromptTask(policy.tokenizer, train, test, cfg.gen_len, reward, policy.mask_id, policy.eos_id,
                      cfg.max_prompt_len, cfg.chat_template)
    peft_model = policy.model
    return HFSetup(task, policy, AdapterOff(policy).eval(), params, {"adapter": AdapterWeights(peft_model)},
                   lambda run: save_adapter(peft_model, run), len(peft_model.targeted_module_names))


__all__ = ["AdapterOff", "AdapterWeights", "HFSetup", "hf_setup", "lora_model", "resolve_dtype", "save_adapter"]
