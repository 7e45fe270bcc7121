"""Text preference pairs (a JSONL ``pairs_file``, :mod:`thrifty.dlm.pref_data`) made into the :class:`~.pairs.Pairs`
the preference update trains on: tokenised with the task's tokenizer, and — for the estimators that replay a
decoding order (``block``: dTRPO, ``replay``) — given step maps by the spec's fallback, the confidence order under
the reference (:mod:`.order`) in the blocks and per-step counts of the pairs' decoding (``pair_decoding``; with
``pair_remasking: random`` a seeded random order instead). VRPO's MC-ELBO reads no order, so its pairs keep step
maps of −1 and no reference pass is spent on them.
"""

from __future__ import annotations

from typing import Any

import torch

from thrifty.core.errors import ConfigError
from thrifty.dlm.pref_data import TextPairs, tokenize_pairs
from thrifty.dlm.rl.config import DlmRLConfig
from thrifty.dlm.rl.pairs import Pairs, gold_step_map, pair_sampler
from thrifty.dlm.tasks import DlmTask


def needs_order(cfg: DlmRLConfig) -> bool:
    """Whether the configured scores replay a decoding order (everything but the MC-ELBO)."""
    return cfg.preference_estimator() != "elbo"


def prepare_text_pairs(cfg: DlmRLConfig, task: DlmTask, ref: Any, text: TextPairs, block_len: int,
                       chunk: int = 32) -> tuple[Pairs, dict[str, float]]:
    """(pairs, stats) of ``text`` for ``task``; step maps from ``ref`` in blocks of ``block_len`` when
    :func:`needs_order`, else −1 throughout. ``chunk`` rows go through the reference at a time."""
    tokenizer = getattr(task, "tokenizer", None)
    if tokenizer is None:
        raise ConfigError(f"{text.path}: text preference pairs need a tokenizer: use them with hf_model")
    v = task.vocab
    tok = tokenize_pairs(text, tokenizer, task.answer_len, v.mask_id, v.eos_id, v.pad_id, cfg.max_prompt_len,
                         cfg.chat_template)
    m = len(text)
    steps = {"chosen": torch.full_like(tok.chosen, -1), "rejected": torch.full_like(tok.rejected, -1)}
    if needs_order(cfg):
        sampler = pair_sampler(task, cfg.pair_decoding, cfg.rollout_temperature, cfg.block_len, cfg.rollout_steps,
                               eval_block_len=block_len, remasking=cfg.pair_remasking)
        if int(sampler.block_len or task.answer_len) != block_len:
            raise ConfigError(f"pair_decoding {cfg.pair_decoding!r} decodes in blocks of {sampler.block_len}, the "
                              f"update in blocks of {block_len}")
        gen = torch.Generator().manual_seed(cfg.seed + 17)  # used only by pair_remasking: random
        for key, answers in (("chosen", tok.chosen), ("rejected", tok.rejected)):
            steps[key] = torch.cat([gold_step_map(ref, tok.prompt_ids[i:i + chunk], answers[i:i + chunk], sampler,
                                                  gen) for i in range(0, m, chunk)])
    pairs = Pairs(tok.prompt_ids, tok.chosen, steps["chosen"], tok.rejected, steps["rejected"],
                  torch.ones(m, dtype=torch.float64), torch.zeros(m, dtype=torch.float64))
    return pairs, tok.stats


__all__ = ["needs_order", "prepare_text_pairs"]
