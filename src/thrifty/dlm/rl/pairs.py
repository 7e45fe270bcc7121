"""Preference pairs from the model's own samples (`thrifty dlm pairs`): G samples per prompt, ranked by the
verifier; the best and the worst form a (chosen, rejected) pair when their rewards differ by more than a gap.
Each answer keeps its step map, so trajectory estimators (dTRPO) can re-mask it in the order it was decoded.

Two decodings (``decoding``, :data:`PAIR_DECODINGS`):

- ``rollout`` (the default): the online methods' rollout sampler — low-confidence order, semi-autoregressive blocks
  and about two tokens a step (:func:`~thrifty.dlm.rl.rollout.rollout_shape`), tokens drawn at ``temperature``.
- ``eval``: the decoder evaluation uses (:func:`~thrifty.dlm.sft.default_sampler`: low-confidence order, one token
  a step, the SFT run's evaluation blocks — one block unless it set ``eval_block_len``), with each proposal drawn
  at ``temperature`` instead of taken greedily. Temperature → 0 is the evaluator itself. Decoding costs one
  forward pass per answer token (rollouts: one per two).

Either decoding orders positions by ``remasking``: ``low_confidence`` (the default: the order evaluation uses) or
``random``. Under the confidence order the positions a step commits are a model-dependent draw — the confidence of
every masked position depends on the token drawn there — so the token replay (Σ log q of the committed tokens at the
visited states) is *not* the trajectory's probability; the exact one adds each step's position-choice term
(:mod:`thrifty.dlm.samplers.choice`, switched by ``trajectory_terms`` in :mod:`.trajectory`). Under random
remasking the order is model-free and the token replay is exact up to the constant −Σ_s log C(m_s, k_s), which
cancels in every policy/reference ratio.

The chosen side (``chosen``, :data:`PAIR_CHOSEN`): ``self`` (the best sample) or ``gold`` (the task's reference
answer against the worst sample, kept when its reward beats the worst by more than the gap). A reference answer has
no step map, so :func:`gold_step_map` gives it one in the pairs' blocks and schedule: under ``low_confidence`` the
spec's fallback — the confidence order under the model that builds the pairs (the reference), each step committing
the masked positions of the block where the reference answer's token is most probable; under ``random`` a random
order (model-free, so its token replay is exact up to a constant). Pairs brought as text (a JSONL ``pairs_file``,
:mod:`thrifty.dlm.pref_data`) get their step maps the same way, from the reference, when the update starts.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import torch

from thrifty.core.errors import ConfigError
from thrifty.dlm.rl.config import PAIR_CHOSEN, PAIR_DECODINGS
from thrifty.dlm.rl.rollout import collect
from thrifty.dlm.tasks import DlmExample, DlmTask


@dataclass
class Pairs:
    prompt_ids: torch.Tensor  # (M, P)
    chosen: torch.Tensor  # (M, G)
    chosen_steps: torch.Tensor  # (M, G)
    rejected: torch.Tensor  # (M, G)
    rejected_steps: torch.Tensor  # (M, G)
    chosen_reward: torch.Tensor  # (M,)
    rejected_reward: torch.Tensor  # (M,)

    def __len__(self) -> int:
        return int(self.prompt_ids.shape[0])

    def take(self, idx: torch.Tensor) -> Pairs:
        return Pairs(*(getattr(self, f.name)[idx] for f in fields(self)))


def gold_step_map(model: Any, prompt_ids: torch.Tensor, answer_ids: torch.Tensor, sampler: Any,
                  generator: torch.Generator) -> torch.Tensor:
    """(B, G) step map for given answers, in ``sampler``'s blocks and per-step counts: by ``sampler.remasking``
    (``low_confidence``: most probable answer tokens under ``model`` first, :func:`~.order.confidence_order`;
    ``random``: uniform order)."""
    from thrifty.dlm.rl.order import confidence_order, model_token_logp
    from thrifty.dlm.samplers.low_confidence import tokens_per_step

    g = answer_ids.shape[1]
    size = int(sampler.block_len or g)
    schedule = tokens_per_step(size, sampler.steps // (g // size))
    if sampler.remasking == "random":
        return confidence_order(lambda _: torch.rand(answer_ids.shape, generator=generator, dtype=torch.float64),
                                answer_ids, size, schedule, sampler.mask_id)
    was_training = model.training
    model.eval()
    try:
        return confidence_order(model_token_logp(model, prompt_ids, answer_ids), answer_ids, size, schedule,
                                sampler.mask_id)
    finally:
        model.train(was_training)


def build_pair_sets(policy: Any, task: DlmTask, examples: list[DlmExample], samples: int, sampler: Any,
                    generator: torch.Generator, min_gap: float = 0.0, block_len: int | None = None,
                    temperature: float = 1.0, batch: int = 64,
                    chosen: tuple[str, ...] = ("self",)) -> dict[str, tuple[Pairs, dict[str, float]]]:
    """One set of pairs per entry of ``chosen`` (:data:`PAIR_CHOSEN`) from the same samples: ``self`` — best vs
    worst; ``gold`` — the reference answer (its steps by :func:`gold_step_map`) vs the worst."""
    if samples < 2:
        raise ConfigError("pairs need at least 2 samples per prompt")
    bad = [c for c in chosen if c not in PAIR_CHOSEN]
    if bad or not chosen:
        raise ConfigError(f"unknown pair_chosen {bad}; choose from {', '.join(PAIR_CHOSEN)}")
    keep = {c: {f.name: [] for f in fields(Pairs)} for c in chosen}
    rewards, nfe = [], []
    for start in range(0, len(examples), batch):
        part = examples[start:start + batch]
        roll = collect(policy, task, part, samples, sampler, generator, block_len=block_len, temperature=temperature)
        rewards.append(roll.rewards)
        nfe.append(roll.nfe.float())
        r = roll.rewards.view(-1, samples)
        best, worst = r.argmax(dim=1), r.argmin(dim=1)
        top = {"self": r.max(dim=1).values}
        if "gold" in chosen:
            prompts = roll.prompt_ids[::samples]
            gold = torch.tensor([task.answer_ids(ex) for ex in part], dtype=torch.long, device=roll.answer_ids.device)
            gold_steps = gold_step_map(policy, prompts, gold, sampler, generator)
            top["gold"] = torch.tensor([task.reward(ex, ex.answer) for ex in part], dtype=torch.float64,
                                       device=r.device)
        for c in chosen:
            for g in torch.nonzero(top[c] - r.min(dim=1).values > min_gap).flatten().tolist():
                i, j = g * samples + int(best[g]), g * samples + int(worst[g])
                k = keep[c]
                k["prompt_ids"].append(roll.prompt_ids[j])
                k["chosen"].append(roll.answer_ids[i] if c == "self" else gold[g])
                k["chosen_steps"].append(roll.step_map[i] if c == "self" else gold_steps[g])
                k["chosen_reward"].append(roll.rewards[i] if c == "self" else top["gold"][g])
                k["rejected"].append(roll.answer_ids[j])
                k["rejected_steps"].append(roll.step_map[j])
                k["rejected_reward"].append(roll.rewards[j])
    all_r = torch.cat(rewards)
    out = {}
    for c in chosen:
        if not keep[c]["prompt_ids"]:
            raise ConfigError(f"no prompt gave two samples whose rewards differ by more than {min_gap}; sample more "
                              "per prompt, raise the temperature or lower min_gap")
        pairs = Pairs(**{k: torch.stack(v) for k, v in keep[c].items()})
        out[c] = pairs, {"prompts": float(len(examples)), "pairs": float(len(pairs)),
                         "sample_reward": float(all_r.mean()), "chosen_reward": float(pairs.chosen_reward.mean()),
                         "rejected_reward": float(pairs.rejected_reward.mean()),
                         "sample_nfe": float(torch.cat(nfe).mean())}
    return out


def build_pairs(policy: Any, task: DlmTask, examples: list[DlmExample], samples: int, sampler: Any,
                generator: torch.Generator, min_gap: float = 0.0, block_len: int | None = None,
                temperature: float = 1.0, batch: int = 64, chosen: str = "self") -> tuple[Pairs, dict[str, float]]:
    """(pairs, stats): best (``chosen="gold"``: the reference answer) vs worst of ``samples`` answers per prompt,
    kept when the reward gap > ``min_gap``."""
    return build_pair_sets(policy, task, examples, samples, sampler, generator, min_gap, block_len, temperature,
                           batch, (chosen,))[chosen]


def pair_sampler(task: DlmTask, decoding: str = "rollout", temperature: float = 1.0, block_len: int = 0,
                 steps: int = 0, eval_block_len: int | None = None, remasking: str = "low_confidence") -> Any:
    """The sampler pairs are decoded with: ``rollout`` — :func:`~thrifty.dlm.rl.rollout.rollout_shape`'s blocks and
    steps (``block_len``, ``steps``: 0 for its defaults); ``eval`` — the evaluation decoder
    (:func:`~thrifty.dlm.sft.default_sampler` with ``eval_block_len``; ``block_len`` and ``steps`` are unused); both
    draw tokens at ``temperature`` and order positions by ``remasking`` (``low_confidence`` | ``random``)."""
    from thrifty.dlm.rl.rollout import rollout_sampler, rollout_shape
    from thrifty.dlm.run import default_sampler
    from thrifty.dlm.samplers import LowConfidenceSampler

    if decoding == "eval":
        s = default_sampler(task, eval_block_len, temperature)
        if remasking == s.remasking:
            return s
        return LowConfidenceSampler(s.mask_id, s.steps, s.block_len, s.temperature, remasking, s.cfg_scale)
    if decoding == "rollout":
        block, steps = rollout_shape(task.answer_len, block_len, steps)
        return rollout_sampler(task, steps, block, temperature, remasking)
    raise ConfigError(f"unknown pair decoding {decoding!r}; choose one of {', '.join(PAIR_DECODINGS)}")


def decoding_block_len(sampler: Any, task: DlmTask) -> int:
    """The block length a pair sampler decodes in (the whole answer when it has no blocks)."""
    return int(sampler.block_len or task.answer_len)


def sample_pairs(policy: Any, task: DlmTask, n_prompts: int, samples: int, generator: torch.Generator,
                 seed: int = 0, min_gap: float = 0.0, temperature: float = 1.0, block_len: int = 0,
                 steps: int = 0, decoding: str = "rollout", eval_block_len: int | None = None,
                 remasking: str = "low_confidence", chosen: str = "self") -> tuple[Pairs, dict[str, float]]:
    """Pairs from ``n_prompts`` training prompts (drawn with ``seed``) decoded by :func:`pair_sampler`
    (``decoding``: ``rollout`` — blocks and steps as rollouts; ``eval`` — as evaluation, at ``temperature``;
    positions ordered by ``remasking``; ``chosen``: ``self`` or ``gold``, :func:`build_pair_sets`)."""
    sampler = pair_sampler(task, decoding, temperature, block_len, steps, eval_block_len, remasking)
    prompts = task.examples("train", n_prompts, seed=seed + 7)
    return build_pairs(policy, task, prompts, samples, sampler, generator, min_gap,
                       decoding_block_len(sampler, task), temperature, chosen=chosen)


def save_pairs(pairs: Pairs, path: str | Path, meta: dict[str, str] | None = None) -> Path:
    """Write pairs as safetensors atomically (a temporary file renamed into place)."""
    from safetensors.torch import save_file

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    save_file({f.name: getattr(pairs, f.name).contiguous() for f in fields(Pairs)}, str(tmp), metadata=meta)
    tmp.replace(path)
    return path


def load_pairs(path: str | Path) -> Any:
    """Pairs written by :func:`save_pairs`, or — for a ``.jsonl`` path — the user's text pairs
    (:class:`~thrifty.dlm.pref_data.TextPairs`, tokenised and given step orders when the update starts)."""
    from safetensors.torch import load_file

    path = Path(path)
    if path.suffix.lower() == ".jsonl":
        from thrifty.dlm.pref_data import read_pref_jsonl

        return read_pref_jsonl(path)
    if not path.is_file():
        raise ConfigError(f"{path}: no pairs file here; build one with `thrifty dlm pairs`")
    data = load_file(str(path))
    missing = [f.name for f in fields(Pairs) if f.name not in data]
    if missing:
        raise ConfigError(f"{path}: not a pairs file (missing {', '.join(missing)})")
    return Pairs(**{f.name: data[f.name] for f in fields(Pairs)})


__all__ = ["PAIR_CHOSEN", "PAIR_DECODINGS", "Pairs", "build_pair_sets", "build_pairs", "decoding_block_len",
           "gold_step_map", "load_pairs", "pair_sampler", "sample_pairs", "save_pairs"]
