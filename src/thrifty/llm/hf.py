"""ChatModel backend running a local Hugging Face causal LM (optionally with a PEFT adapter) through torch.

Weights and tokenizer come only from a local directory (``local_files_only``); nothing is downloaded. torch,
transformers and peft are imported when a model is constructed, never when this module is imported.

Prompt format: the tokenizer's chat template with a generation prompt, followed directly by the
``assistant_prefix``. A tokenizer without a template accepts only a single message, sent as plain text (its
content, then the prefix), as one would prompt a base model.

Generation runs its own KV-cached loop so sampling draws from a private ``torch.Generator`` seeded with
``params.seed`` (no global RNG). It stops at an EOS token (from the tokenizer, the generation config and the
model config), at a stop string (cut from the text), at ``max_tokens`` or at the context limit. A generated EOS
token counts in ``tokens_out`` but not in the text. ``token_logprobs`` are log-probs under the untempered
distribution.
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar

from thrifty.core.errors import ConfigError, ModelError
from thrifty.core.rng import torch_generator
from thrifty.core.text import one_line
from thrifty.core.types import Messages
from thrifty.llm.base import Completion, GenParams, LabelProbs, renormalise, validate_messages
from thrifty.llm.capabilities import COUNTS_TOKENS, HIDDEN_STATE, LABEL_PROBS

_DTYPES = ("float32", "bfloat16", "float16")


def label_variants(label: str) -> list[str]:
    """Spellings whose first token can start ``label``: as given, lower, Title, UPPER, each with a leading space."""
    forms = dict.fromkeys([label, label.lower(), label[:1].upper() + label[1:].lower(), label.upper()])
    return [p + f for f in forms for p in ("", " ")]


def label_token_ids(tokenizer: Any, labels: Sequence[str]) -> dict[str, list[int]]:
    """First-token ids of each label's variants; ids shared by several labels count for none of them.

    Raises ModelError when a label is left without an id of its own (it cannot be told apart in one step).
    """
    if not labels or len({str(x).lower() for x in labels}) != len(labels) or not all(str(x).strip() for x in labels):
        raise ConfigError(f"labels must be non-empty, distinct (ignoring case) strings, got {list(labels)!r}")
    owners: dict[int, set[str]] = {}
    for lab in labels:
        for form in label_variants(lab):
            ids = tokenizer.encode(form, add_special_tokens=False)
            if ids:
                owners.setdefault(int(ids[0]), set()).add(lab)
    out: dict[str, list[int]] = {lab: [] for lab in labels}
    for tid, labs in sorted(owners.items()):
        if len(labs) == 1:
            out[next(iter(labs))].append(tid)
    lost = [lab for lab, ids in out.items() if not ids]
    if lost:
        raise ModelError(f"labels {lost} have no first token of their own in this vocabulary; use distinct labels")
    return out


def chat_prompt_ids(tokenizer: Any, messages: Messages, assistant_prefix: str = "") -> list[int]:
    """Token ids of a conversation as this backend prompts it: the chat template with a generation prompt, then
    ``assistant_prefix``; a tokenizer without a template takes one message as plain text. Training code uses it
    so a fine-tuned model is trained on exactly the prompts it is later read at."""
    validate_messages(messages)
    if getattr(tokenizer, "chat_template", None):
        text = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        return list(tokenizer.encode(text + assistant_prefix, add_special_tokens=False))
    if len(messages) == 1:
        return list(tokenizer.encode(str(messages[0]["content"]) + assistant_prefix, add_special_tokens=True))
    raise ModelError("tokenizer has no chat template; send a single message instead")


class HFChatModel:
    """A local transformers causal LM as a ChatModel, with ``label_probs`` and ``hidden_state`` readouts."""

    CAPABILITIES: ClassVar[frozenset[str]] = frozenset({LABEL_PROBS, HIDDEN_STATE, COUNTS_TOKENS})

    def __init__(
        self,
        model_dir: str | Path,
        adapter_dir: str | Path | None = None,
        device: str = "cpu",
        dtype: str = "float32",
        model_id: str | None = None,
        max_context: int | None = None,
    ) -> None:
        if dtype not in _DTYPES:
            raise ConfigError(f"dtype must be one of {', '.join(_DTYPES)}, got {dtype!r}")
        model_dir = Path(model_dir).expanduser()
        if not (model_dir / "config.json").is_file():
            raise ModelError(f"{model_dir}: not a local Hugging Face model directory (no config.json)")
        if adapter_dir is not None:
            adapter_dir = Path(adapter_dir).expanduser()
            if not (adapter_dir / "adapter_config.json").is_file():
                raise ModelError(f"{adapter_dir}: not a PEFT adapter directory (no adapter_config.json)")
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        self.torch = torch
        self.device = torch.device(device)
        try:
            self.tokenizer = AutoTokenizer.from_pretrained(model_dir, local_files_only=True)
            model = AutoModelForCausalLM.from_pretrained(
                model_dir, local_files_only=True, dtype=getattr(torch, dtype)
            )
        except (OSError, ValueError, KeyError) as exc:
            raise ModelError(f"{model_dir}: cannot load model or tokenizer: {one_line(exc, 240)}") from None
        if adapter_dir is not None:
            from peft import PeftModel

            try:  # the adapter wraps the base model; base weights are left as they are (no merge)
                with warnings.catch_warnings():  # peft trips a transformers deprecation notice on load
                    warnings.filterwarnings("ignore", "`is_gradient_checkpointing`", FutureWarning)
                    model = PeftModel.from_pretrained(model, adapter_dir, is_trainable=False)
            except (OSError, ValueError, KeyError, RuntimeError) as exc:
                raise ModelError(f"{adapter_dir}: cannot load adapter: {one_line(exc, 240)}") from None
        self.model = model.to(self.device).eval()
        self.model_dir, self.adapter_dir = model_dir, adapter_dir
        self.model_id = model_id or (model_dir.name + (f"+{adapter_dir.name}" if adapter_dir else ""))
        cfg = model.config
        self.max_context = int(max_context or getattr(cfg, "max_position_embeddings", 0) or 4096)
        self.eos_ids = self._eos_ids()

    def _eos_ids(self) -> set[int]:
        ids: set[int] = set()
        sources = [self.tokenizer.eos_token_id, getattr(self.model.config, "eos_token_id", None)]
        gen_cfg = getattr(self.model, "generation_config", None)
        sources.append(getattr(gen_cfg, "eos_token_id", None))
        for src in sources:
            if isinstance(src, int):
                ids.add(src)
            elif isinstance(src, (list, tuple)):
                ids.update(int(x) for x in src)
        return ids

    # ---- prompts --------------------------------------------------------------------------------------

    def prompt_ids(self, messages: Messages, assistant_prefix: str = "") -> list[int]:
        """Token ids of the rendered prompt (template + generation prompt + prefix)."""
        ids = chat_prompt_ids(self.tokenizer, messages, assistant_prefix)
        if len(ids) >= self.max_context:
            raise ModelError(f"prompt has {len(ids)} tokens but the context holds {self.max_context}")
        return list(ids)

    def prompt_tokens(self, messages: Messages, assistant_prefix: str = "") -> int:
        """How many tokens the rendered prompt takes (the length of :meth:`prompt_ids`)."""
        return len(self.prompt_ids(messages, assistant_prefix))

    def _forward(self, ids: Any, past: Any = None, hidden: bool = False) -> Any:
        return self.model(input_ids=ids, past_key_values=past, use_cache=not hidden, output_hidden_states=hidden)

    # ---- ChatModel ------------------------------------------------------------------------------------

    def chat(self, messages: Messages, params: GenParams | None = None, assistant_prefix: str = "") -> Completion:
        """Generate a reply (greedy at temperature 0, else seeded temperature/top-p sampling)."""
        torch = self.torch
        params = params or GenParams()
        t0 = time.perf_counter()
        prompt = self.prompt_ids(messages, assistant_prefix)
        budget = min(params.max_tokens, self.max_context - len(prompt))
        gen = torch_generator(params.seed) if params.temperature > 0 else None  # CPU: same draws on any device
        out_ids: list[int] = []
        logps: list[float] = []
        text, finish = "", "length"
        with torch.inference_mode():
            res = self._forward(torch.tensor([prompt], device=self.device))
            for _ in range(budget):
                logits = res.logits[0, -1].float()
                nxt = self._pick(logits, params, gen)
                out_ids.append(nxt)
                if params.logprobs:
                    logps.append(float(torch.log_softmax(logits, -1)[nxt]))
                if nxt in self.eos_ids:
                    text, finish = self._decode(out_ids[:-1]), "stop"
                    break
                text = self._decode(out_ids)
                cut = _cut_at_stop(text, params.stop)
                if cut is not None:
                    text, finish = cut, "stop"
                    break
                res = self._forward(torch.tensor([[nxt]], device=self.device), res.past_key_values)
        return Completion(
            text=text, tokens_in=len(prompt), tokens_out=len(out_ids), latency_s=time.perf_counter() - t0,
            model=self.model_id, finish_reason=finish, token_logprobs=logps if params.logprobs else None,
        )

    def _pick(self, logits: Any, params: GenParams, gen: Any) -> int:
        torch = self.torch
        if gen is None:
            return int(torch.argmax(logits))
        probs = torch.softmax(logits / params.temperature, -1)
        if params.top_p < 1.0:
            sorted_p, order = torch.sort(probs, descending=True)
            keep = torch.cumsum(sorted_p, 0) - sorted_p < params.top_p  # smallest set reaching top_p
            probs = torch.zeros_like(probs).scatter(0, order[keep], sorted_p[keep])
        return int(torch.multinomial(probs.cpu(), 1, generator=gen))

    def _decode(self, ids: list[int]) -> str:
        return self.tokenizer.decode(ids, skip_special_tokens=True)

    def next_token_logprobs(self, messages: Messages, assistant_prefix: str = "") -> Any:
        """Log-softmax of the next-token logits after the prompt (a 1-D float32 CPU tensor over the vocab)."""
        return self._next_logprobs(self.prompt_ids(messages, assistant_prefix))

    def _next_logprobs(self, ids: list[int]) -> Any:
        torch = self.torch
        with torch.inference_mode():
            logits = self._forward(torch.tensor([ids], device=self.device)).logits[0, -1].float()
        return torch.log_softmax(logits, -1).cpu()

    def label_probs(self, messages: Messages, labels: Sequence[str], assistant_prefix: str = "") -> LabelProbs:
        """One forward pass; sums next-token probability over each label's first-token variants, renormalised."""
        t0 = time.perf_counter()
        label_ids = label_token_ids(self.tokenizer, list(labels))
        ids = self.prompt_ids(messages, assistant_prefix)
        probs_all = self._next_logprobs(ids).exp()
        raw = {lab: float(probs_all[tids].sum()) for lab, tids in label_ids.items()}
        probs, mass = renormalise(raw)
        return LabelProbs(probs, len(ids), time.perf_counter() - t0, mass, "logprobs", True, 0)

    def hidden_state(self, messages: Messages, assistant_prefix: str = "", layer: int = -1) -> Any:
        """The residual-stream vector at the last prompt position after ``layer`` (0 = embeddings), as numpy."""
        torch = self.torch
        ids = self.prompt_ids(messages, assistant_prefix)
        with torch.inference_mode():
            states = self._forward(torch.tensor([ids], device=self.device), hidden=True).hidden_states
        if not -len(states) <= layer < len(states):
            raise ConfigError(f"layer {layer} out of range for {len(states)} hidden states (embeddings + layers)")
        return states[layer][0, -1].float().cpu().numpy()


def _cut_at_stop(text: str, stops: Sequence[str]) -> str | None:
    """``text`` up to the earliest stop string, or None if no stop string occurs."""
    hits = [text.index(s) for s in stops if s and s in text]
    return text[: min(hits)] if hits else None

