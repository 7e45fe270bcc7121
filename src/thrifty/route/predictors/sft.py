"""Fine-tuned predictor: a LoRA adapter taught, by hindsight relabelling, to emit the judge's grade of the
model's own answer.

Hindsight relabelling: every training query the model answered is labelled with the grade the judge gave *that
answer* (from the run store); the model is then trained to put that label right after the prediction prefix of
the prediction prompt (by default a brief one: the conversation and the grade-first reply format, no rubric).
At inference the adapter-wrapped model reads the label distribution at exactly that position, with the same
readout as the other predictors. The base weights are untouched; the adapter is served by the ``hf`` backend.

This module holds what needs no torch: the training items (:func:`hindsight_items`), class balancing
(:func:`balance`), the target token choice (:func:`target_token`), the adapter's metadata and the predictor. The
training loop itself is :mod:`thrifty.route.fit.sft`.
"""

from __future__ import annotations

import json
import random
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from thrifty.core.errors import ConfigError, ModelError, check_choice
from thrifty.core.types import Messages
from thrifty.judge.base import LABELS
from thrifty.route.predictors.base import (
    DEFAULT_PREFIX,
    RUBRIC_TEXT,
    PromptPredictor,
    grade_first_format,
    prompt_version,
)

SFT_VERSION = 1
SFT_META = "thrifty_sft.json"
"""File in the adapter directory recording base model, prompt version, data and hyperparameters."""


@dataclass(frozen=True)
class SFTItem:
    """One hindsight-relabelled training item: the prediction prompt and the judge's label of the answer."""

    task: str
    example: str
    prompt: Messages
    label: str


def hindsight_items(labelled: Sequence[tuple[str, Any, str]], reader: PromptPredictor) -> list[SFTItem]:
    """Training items from (task, example, judge label) triples: each example's conversation under ``reader``'s
    prediction instruction, labelled with the grade the judge gave the model's own answer to it."""
    out = []
    for task, ex, label in labelled:
        if label not in LABELS:
            raise ConfigError(f"{task}/{ex.id}: label {label!r} is not one of {', '.join(LABELS)}")
        out.append(SFTItem(str(task), str(ex.id), reader.prompt(ex.messages(), task), label))
    return out


def balance(items: Sequence[SFTItem], rng: random.Random) -> list[SFTItem]:
    """Class-balanced training order: every label present is oversampled (whole copies first, then a random
    remainder) up to the most frequent label's count; the result is shuffled with ``rng``."""
    by_label: dict[str, list[SFTItem]] = {}
    for it in items:
        by_label.setdefault(it.label, []).append(it)
    if not by_label:
        return []
    top = max(len(v) for v in by_label.values())
    out: list[SFTItem] = []
    for label in sorted(by_label):
        group = by_label[label]
        copies, rest = divmod(top, len(group))
        out.extend(group * copies)
        out.extend(rng.sample(group, rest))
    rng.shuffle(out)
    return out


def label_counts(items: Sequence[SFTItem]) -> dict[str, int]:
    """How many items carry each label (every label listed, zeros included)."""
    counts = Counter(it.label for it in items)
    return {lab: int(counts.get(lab, 0)) for lab in LABELS}


def target_token(tokenizer: Any, label: str) -> int:
    """The token trained to follow the prefix for ``label``: the first token of ``" " + label`` (the prediction
    continues as ``prefix + " " + label``), else of ``label``. It must be one of the ids the readout sums for
    that label, so training and inference agree."""
    from thrifty.llm.hf import label_token_ids

    readable = label_token_ids(tokenizer, list(LABELS))[label]
    for form in (" " + label, label):
        ids = tokenizer.encode(form, add_special_tokens=False)
        if ids and int(ids[0]) in readable:
            return int(ids[0])
    raise ModelError(f"no first token of {label!r} is read back as {label!r} by this tokenizer")


def read_meta(adapter_dir: str | Path) -> dict[str, Any]:
    """The adapter's :data:`SFT_META` record (one-line errors for a missing or damaged file)."""
    path = Path(adapter_dir).expanduser() / SFT_META
    if not path.is_file():
        raise ConfigError(f"{path.parent}: not a thrifty SFT adapter (no {SFT_META}); train one with `thrifty route sft`")
    try:
        meta = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise ConfigError(f"{path}: unreadable adapter metadata ({exc})") from None
    for key in ("base_model", "model", "prompt_version"):
        if not isinstance(meta, dict) or not meta.get(key):
            raise ConfigError(f"{path}: adapter metadata lacks {key!r}")
    return meta


INSTRUCTIONS = ("brief", "full")
"""SFT prompt styles: "brief" adds only the grade-first reply format (the paper's "query only": the adapter,
not the prompt, knows the rubric; about 35 tokens instead of about 150); "full" is the zero-shot instruction."""


class SFTPredictor(PromptPredictor):
    """Reads the fine-tuned model's label distribution after ``prefix``.

    ``model`` is the adapter-wrapped model (the ``hf`` backend); ``instruction`` picks the prompt style of
    :data:`INSTRUCTIONS`; ``meta`` (from :func:`read_meta`) is checked against this predictor's prompt so an
    adapter is never read at a position it was not trained for.
    """

    name = "sft"

    def __init__(self, model: Any, meta: dict[str, Any] | None = None, prefix: str = DEFAULT_PREFIX,
                 rubric_text: str = RUBRIC_TEXT, placement: str = "start", instruction: str | None = None) -> None:
        super().__init__(model, prefix, rubric_text, placement)
        style = instruction or (meta or {}).get("instruction") or "brief"
        check_choice("SFT instruction style", style, INSTRUCTIONS)
        self.style = style
        self.meta = dict(meta or {})
        if meta is not None and meta.get("prompt_version") != prompt_version(self, SFT_VERSION):
            raise ConfigError("adapter was trained on another prediction prompt (prefix, rubric or placement "
                              "differ); train it again or use the prompt it was trained with")

    def instruction(self, task: str | None = None, reply_format: str | None = None) -> str:
        if self.style == "full":
            return super().instruction(task, reply_format)
        return reply_format or grade_first_format(self.prefix)

    @property
    def version(self) -> str:
        """A short id of the adapter (its metadata hash), for keys of stored predictions."""
        return str(self.meta.get("version", ""))


def load_sft_predictor(adapter_dir: str | Path, base_model: str | Path | None = None,
                       **hf_options: Any) -> SFTPredictor:
    """The SFT predictor for a trained adapter: its base model (from the metadata unless given) with the
    adapter on top, through the ``hf`` backend."""
    from thrifty.llm.hf import HFChatModel

    meta = read_meta(adapter_dir)
    base = Path(base_model or meta["base_model"]).expanduser()
    model = HFChatModel(base, adapter_dir=adapter_dir, model_id=f"{meta['model']}+sft", **hf_options)
    return SFTPredictor(model, meta)
