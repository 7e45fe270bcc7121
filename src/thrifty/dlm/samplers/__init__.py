"""Samplers for masked diffusion LMs: every one returns tokens, forward passes (NFE) and the step map, is batched,
takes an explicit generator and never re-masks a committed token; each also records the log-probability of every
token's draw and of every step's position choice (:mod:`.choice`), which together make the trajectory's exact
probability.

    from thrifty.dlm.samplers import LowConfidenceSampler, ThresholdSampler, EntropyBoundedSampler
    out = LowConfidenceSampler(mask_id, steps=32, block_len=8).sample(model, prompt_ids, 32, generator)
"""

from thrifty.dlm.samplers.adaptive import AdaptiveSampler
from thrifty.dlm.samplers.base import Sample, Sampler, sample_in_chunks
from thrifty.dlm.samplers.constraints import AnswerConstraints
from thrifty.dlm.samplers.entropy_bounded import EntropyBoundedSampler
from thrifty.dlm.samplers.low_confidence import LowConfidenceSampler
from thrifty.dlm.samplers.threshold import ThresholdSampler

__all__ = ["AdaptiveSampler", "AnswerConstraints", "EntropyBoundedSampler", "LowConfidenceSampler", "Sample", "Sampler",
           "ThresholdSampler", "sample_in_chunks"]
