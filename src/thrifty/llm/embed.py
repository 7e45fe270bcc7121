"""Sentence embeddings from a local Hugging Face encoder: mean-pooled last hidden states, L2-normalised.

This is the sentence-transformers recipe of models such as all-MiniLM-L6-v2 (transformer, mean pooling over
the attention mask, normalisation), run with plain transformers so nothing beyond ``torch`` and
``transformers`` is needed. Weights and tokenizer come only from a local folder (``local_files_only``);
nothing is downloaded. torch and transformers are imported when an embedder is built, never when this module
is imported.

Threads: torch's thread count is process-wide. By default an embedder leaves it as it is (the caller decides,
as the CLI does for every torch backend); ``n_threads`` sets it with ``torch.set_num_threads`` for the whole
process.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from thrifty.core.errors import ConfigError, ModelError
from thrifty.core.text import one_line

DEFAULT_MAX_LENGTH = 256
"""Tokens kept per text when the folder does not say (``sentence_bert_config.json``'s ``max_seq_length``)."""


class SentenceEmbedder:
    """A local encoder folder as a text -> unit-vector function (:meth:`embed`)."""

    def __init__(
        self,
        path: str | Path,
        device: str = "cpu",
        max_length: int | None = None,
        n_threads: int | None = None,
        model_id: str | None = None,
    ) -> None:
        path = Path(path).expanduser()
        if not (path / "config.json").is_file():
            raise ModelError(f"{path}: not a local Hugging Face model folder (no config.json)")
        if max_length is not None and max_length < 2:
            raise ConfigError(f"max_length must be >= 2 tokens, got {max_length}")
        if n_threads is not None and n_threads < 1:
            raise ConfigError(f"n_threads must be >= 1, got {n_threads}")
        import torch
        from transformers import AutoModel, AutoTokenizer

        if n_threads is not None:
            torch.set_num_threads(n_threads)
        self.torch = torch
        self.device = torch.device(device)
        try:
            self.tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
            model = AutoModel.from_pretrained(path, local_files_only=True, dtype=torch.float32)
        except (OSError, ValueError, KeyError) as exc:
            raise ModelError(f"{path}: cannot load encoder or tokenizer: {one_line(str(exc)) or type(exc).__name__}") from None
        self.model = model.to(self.device).eval()
        self.path = path
        self.model_id = model_id or path.name
        self.dim = int(model.config.hidden_size)
        limit = int(getattr(model.config, "max_position_embeddings", 0) or 512)
        self.max_length = min(int(max_length or _folder_max_length(path) or DEFAULT_MAX_LENGTH), limit)

    def embed(self, texts: Sequence[str], batch_size: int = 32) -> np.ndarray:
        """(len(texts), dim) float32 rows of unit length, in the order of ``texts``.

        Texts are batched by length (less padding); each is cut to ``max_length`` tokens.
        """
        if isinstance(texts, str):
            raise ConfigError("embed takes a sequence of texts, got a single string")
        if batch_size < 1:
            raise ConfigError(f"batch_size must be >= 1, got {batch_size}")
        texts = list(texts)
        bad = [i for i, t in enumerate(texts) if not isinstance(t, str)]
        if bad:
            raise ConfigError(f"embed takes strings; item {bad[0]} is {type(texts[bad[0]]).__name__}")
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        torch = self.torch
        with torch.inference_mode():
            for start in range(0, len(order), batch_size):
                rows = order[start : start + batch_size]
                batch = self.tokenizer(
                    [texts[i] for i in rows], padding=True, truncation=True, max_length=self.max_length,
                    return_tensors="pt",
                )
                batch = {k: v.to(self.device) for k, v in batch.items()}
                hidden = self.model(**batch).last_hidden_state
                out[rows] = mean_pool(hidden, batch["attention_mask"]).cpu().numpy()
        return out


def mean_pool(hidden: Any, mask: Any) -> Any:
    """Mean of ``hidden`` (batch, tokens, dim) over the tokens where ``mask`` is 1, L2-normalised per row."""
    m = mask.unsqueeze(-1).to(hidden.dtype)
    summed = (hidden * m).sum(dim=1)
    mean = summed / m.sum(dim=1).clamp(min=1e-9)
    return mean / mean.norm(dim=1, keepdim=True).clamp(min=1e-12)


def load_embedder(spec: str | Path, **kwargs: Any) -> SentenceEmbedder:
    """An embedder from a catalog embedding name (pulled with ``thrifty models pull NAME``) or a model folder;
    ``kwargs`` go to :class:`SentenceEmbedder`."""
    from thrifty.llm import catalog

    text = str(spec)
    if not isinstance(spec, Path) and text in catalog.EMBEDDINGS:
        kwargs.setdefault("model_id", text)
        return SentenceEmbedder(catalog.path(text), **kwargs)
    folder = Path(text).expanduser()
    if not folder.is_dir():
        raise ModelError(
            f"unknown embedding model {text!r}; use one of: {', '.join(catalog.EMBEDDINGS)} or a model folder"
        )
    return SentenceEmbedder(folder, **kwargs)


def _folder_max_length(path: Path) -> int | None:
    """``max_seq_length`` from a sentence-transformers folder's ``sentence_bert_config.json``, if any."""
    try:
        config = json.loads((path / "sentence_bert_config.json").read_text(encoding="utf-8"))
        value = config.get("max_seq_length")
    except (OSError, ValueError, AttributeError):
        return None
    return int(value) if isinstance(value, int) and value > 1 else None


