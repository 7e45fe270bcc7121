"""VRPO's preference scores: MC-ELBOs of an answer under the policy and the reference with the same
low-discrepancy times and masks (antithetic: one seed drives both), n samples with one mask per time.

The ELBO difference reads no decoding order: ``steps`` is accepted for a common signature with the other scores
and ignored, so pairs without step maps (text pairs, whose maps are −1) train VRPO as they are."""

from __future__ import annotations

from typing import Any

import torch

from thrifty.dlm.likelihood import mc_elbo


def elbo_scores(policy: Any, ref: Any, prompt: torch.Tensor, answer: torch.Tensor, steps: torch.Tensor,
                mask_id: int, generator: torch.Generator, n: int = 8, **_: Any) -> tuple[torch.Tensor, torch.Tensor]:
    """(policy ELBO (M,) with gradients, reference ELBO (M,)) on shared times and masks."""
    seed = int(torch.randint(0, 2**31, (1,), generator=generator))
    theta = mc_elbo(policy, prompt, answer, mask_id, torch.Generator().manual_seed(seed), n=n)[0]
    with torch.no_grad():
        reference = mc_elbo(ref, prompt, answer, mask_id, torch.Generator().manual_seed(seed), n=n)[0]
    return theta, reference


__all__ = ["elbo_scores"]
