"""Real masked-diffusion LMs from a local Hugging Face directory (LLaDA / Dream style, ``trust_remote_code``), as
the same ``ids (B, L) -> logits (B, L, V)`` module the samplers, estimators and trainers use with the small model.

The mask and EOS ids are read from the tokenizer or the model config — never written here as numbers: the
tokenizer's ``mask_token``, then ``mask_token_id`` in the config, then the tokenizer's own id for a known mask
token name (LLaDA's ``<|mdm_mask|>``, Dream's ``<|mask|>``). Dream-style models predict token i from position i − 1
(``shift_logits``); the adapter shifts their logits so position i always scores token i. Everything loads with
``local_files_only`` (no hub access); a GPU is used when present. ``special_ids()`` lists the tokenizer's special
tokens an answer should not hold, for samplers' answer constraints. There is no key/value cache here: LLaDA's
published forward refuses ``past_key_values``/``use_cache`` outright, and BERT-style encoders take them only as
causal decoders, so samplers' ``cache`` option needs thrifty's own model. Logits stay on the model's device and in its dtype
(bf16 models give bf16 logits); :mod:`thrifty.dlm.hf_train` wraps the model in a LoRA adapter for the RL trainers.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn

from thrifty.core.errors import ConfigError

MASK_TOKEN_NAMES = ("<|mdm_mask|>", "<|mask|>", "[MASK]", "<mask>")
SHIFTED_MODEL_TYPES = ("dream",)


def resolve_mask_id(tokenizer: Any, config: Any) -> int:
    """The mask id from the tokenizer, the config, or a known mask token name in the tokenizer's vocabulary."""
    if getattr(tokenizer, "mask_token_id", None) is not None:
        return int(tokenizer.mask_token_id)
    if getattr(config, "mask_token_id", None) is not None:
        return int(config.mask_token_id)
    vocab = tokenizer.get_vocab() if hasattr(tokenizer, "get_vocab") else {}
    for name in MASK_TOKEN_NAMES:
        if name in vocab:
            return int(vocab[name])
    raise ConfigError("no mask token found: the tokenizer has no mask_token, the config no mask_token_id, and none "
                      f"of {', '.join(MASK_TOKEN_NAMES)} is in the vocabulary")


def resolve_eos_id(tokenizer: Any, config: Any) -> int | None:
    for source in (tokenizer, config):
        value = getattr(source, "eos_token_id", None)
        if isinstance(value, (list, tuple)):
            value = value[0] if value else None
        if value is not None:
            return int(value)
    return None


class HFMaskedDiffusion(nn.Module):
    """A loaded Hugging Face masked-diffusion model behind the small model's call signature."""

    def __init__(self, model: nn.Module, tokenizer: Any, mask_id: int, eos_id: int | None,
                 shift_logits: bool = False) -> None:
        super().__init__()
        self.model, self.tokenizer = model, tokenizer
        self.mask_id, self.eos_id, self.shift_logits = mask_id, eos_id, shift_logits

    @classmethod
    def from_pretrained(cls, path: str | Path, device: str | None = None, dtype: torch.dtype | None = None,
                        trust_remote_code: bool = True, shift_logits: bool | None = None) -> HFMaskedDiffusion:
        path = Path(path)
        if not (path / "config.json").is_file():
            raise ConfigError(f"{path}: not a local model directory (no config.json); masked-diffusion checkpoints "
                              "must be downloaded beforehand, nothing is fetched")
        from transformers import AutoConfig, AutoModel, AutoModelForMaskedLM, AutoTokenizer

        kw = {"local_files_only": True, "trust_remote_code": trust_remote_code}
        config = AutoConfig.from_pretrained(path, **kw)
        tokenizer = AutoTokenizer.from_pretrained(path, **kw)
        dev = device or ("cuda" if torch.cuda.is_available() else "cpu")
        if dtype is not None:
            kw["dtype"] = dtype
        try:
            model = AutoModelForMaskedLM.from_pretrained(path, **kw)
        except (ValueError, KeyError):  # LLaDA-style repos register only AutoModel
            model = AutoModel.from_pretrained(path, **kw)
        model = model.to(dev).eval()
        if shift_logits is None:
            shift_logits = str(getattr(config, "model_type", "")).lower() in SHIFTED_MODEL_TYPES
        return cls(model, tokenizer, resolve_mask_id(tokenizer, config), resolve_eos_id(tokenizer, config),
                   shift_logits)

    def special_ids(self, keep_eos: bool = True) -> tuple[int, ...]:
        """The tokenizer's special token ids (sorted), without EOS when ``keep_eos`` (EOS pads answers)."""
        ids = set(int(i) for i in getattr(self.tokenizer, "all_special_ids", []))
        if keep_eos and self.eos_id is not None:
            ids.discard(self.eos_id)
        return tuple(sorted(ids))

    def encode(self, text: str) -> torch.Tensor:
        """Token ids (1, L) of ``text`` (no special tokens added)."""
        return torch.tensor([self.tokenizer(text, add_special_tokens=False)["input_ids"]], dtype=torch.long)

    def forward(self, ids: torch.Tensor, positions: torch.Tensor | None = None, attn_mask: torch.Tensor | None = None,
                return_hidden: bool = False):
        """Logits (B, L, V) on the model's device in its dtype (no copy back to the ids' device: callers gather the
        few positions they need there; see :func:`thrifty.dlm.likelihood._answer_logp`)."""
        if positions is not None or attn_mask is not None:
            raise ConfigError("custom positions and attention masks are not passed to Hugging Face models; score "
                              "blocks as separate rows instead")
        device = next(self.model.parameters()).device
        out = self.model(input_ids=ids.to(device), output_hidden_states=return_hidden)
        logits = out.logits if hasattr(out, "logits") else out[0]
        if self.shift_logits:  # position i − 1 predicts token i: move each prediction onto its own position
            logits = torch.cat([logits[:, :1], logits[:, :-1]], dim=1)
        return (logits, out.hidden_states[-1]) if return_hidden else logits


__all__ = ["MASK_TOKEN_NAMES", "HFMaskedDiffusion", "resolve_eos_id", "resolve_mask_id"]
