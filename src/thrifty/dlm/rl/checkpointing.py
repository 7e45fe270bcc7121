"""Gradient checkpointing for `dlm rl --hf-model` (``gradient_checkpointing: true``): each transformer layer keeps
only its input in the forward pass and recomputes its activations in the backward pass — less GPU memory for about one
more forward pass of compute, the same gradients."""

from __future__ import annotations

from typing import Any

import torch

from thrifty.core.errors import ConfigError


def checkpoint_layers(peft_model: Any) -> int:
    """Gradient checkpointing (non-reentrant) on the base model under a PEFT adapter; returns how many modules
    checkpoint (the layers, or the stack that runs them, as the architecture has it).

    The trainers keep the model in eval mode (no dropout), while Hugging Face models checkpoint only in training
    mode: each checkpointing module gets a pre-forward hook that marks that module alone as training, so its
    sub-modules (attention, dropout) stay in eval mode. A layer that applied dropout in its own forward would drop
    out; LLaDA- and Dream-style layers have none of their own."""
    base = peft_model.get_base_model()
    kwargs = {"use_reentrant": False}
    try:
        if hasattr(base, "activation_checkpointing_enable"):  # the newer name (transformers 5)
            base.activation_checkpointing_enable(activation_checkpointing_kwargs=kwargs)
        else:
            base.gradient_checkpointing_enable(gradient_checkpointing_kwargs=kwargs)
    except ValueError as exc:  # an architecture that does not support it
        raise ConfigError(f"gradient_checkpointing: {str(exc).splitlines()[0]}") from None
    modules = [m for m in base.modules() if getattr(m, "gradient_checkpointing", None) is True]
    for module in modules:
        module.register_forward_pre_hook(_layer_in_training)
    return len(modules)


def _layer_in_training(module: torch.nn.Module, _args: Any) -> None:
    module.training = True  # this module only: its children keep their own (eval) mode


__all__ = ["checkpoint_layers"]
