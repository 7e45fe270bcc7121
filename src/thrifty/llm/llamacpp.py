"""In-process llama.cpp backend: GGUF chat via the file's own template, KV-prefix reuse, one-pass label probs.

The prompt string is rendered here (Jinja chat template from the GGUF metadata, or the plain format below for
models without one), so ``assistant_prefix`` lands exactly after the generation prompt. Decoding is a small loop
over ``Llama.eval`` that reads next-token logits directly (no ``logits_all``): greedy at temperature 0, seeded
numpy sampling otherwise. Before each call the longest common token prefix with what the context already holds
is kept, so a ``label_probs`` followed by ``chat(assistant_prefix=prefix + label)`` only evaluates the label.

What bites: llama.cpp's CPU kernels are not batch-invariant. Re-evaluating a prompt suffix of a different length
than a fresh run shifts logits slightly (up to ~0.3-0.9 on the bundled Q4 models), which can flip greedy near-ties,
so with prefix reuse an answer may depend on the previous call. ``prefix_cache=False`` evaluates every prompt from
position 0: then every output is a pure function of (messages, params, assistant_prefix).

``hidden_state`` (for probes) reads the final hidden state of the last prompt token on the generation context,
with embeddings switched on only for that prefill, so it shares the prompt cache with ``label_probs`` and the
answer that follows.

Plain format (models without ``tokenizer.chat_template``, e.g. base models)::

    {system content}\\n\\n            (only when there is a system message)
    User: {content}\\n\\n              (one block per user turn)
    Assistant: {content}\\n\\n         (one block per earlier assistant turn)
    Assistant:{assistant_prefix}      (generation starts here; "\\nUser:" is an implicit stop string)
"""

from __future__ import annotations

import itertools
import json
import math
import threading
import time
import weakref
from collections.abc import Callable, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any, ClassVar

from thrifty.core.errors import ConfigError, ModelError
from thrifty.core.types import Messages
from thrifty.llm.base import Completion, GenParams, LabelProbs, renormalise, validate_messages
from thrifty.llm.capabilities import (
    COUNTS_TOKENS,
    HIDDEN_STATE,
    LABEL_PROBS,
    PREFIX_REUSE,
    STREAMS,
    TOKEN_LOGPROBS,
)

PLAIN = "plain"
PLAIN_STOP = "\nUser:"


class LlamaCppModel:
    """A GGUF model run in-process by llama-cpp-python. Calls are serialised by a lock (one context)."""

    CAPABILITIES: ClassVar[frozenset[str]] = frozenset(
        {STREAMS, LABEL_PROBS, HIDDEN_STATE, TOKEN_LOGPROBS, COUNTS_TOKENS, PREFIX_REUSE})

    def __init__(
        self,
        path: str | Path,
        n_ctx: int = 4096,
        n_threads: int = 1,
        n_batch: int = 512,
        seed: int = 0,
        model_id: str | None = None,
        chat_format: str | None = None,
        verbose: bool = False,
        prefix_cache: bool = True,
    ) -> None:
        """Load ``path``. ``chat_format``: None uses the GGUF template (plain format if absent), "plain"
        forces the plain format, any other string is used as a Jinja chat template. ``prefix_cache``: reuse
        the KV cache of the longest common token prefix with the previous call (see the module notes)."""
        if (
            chat_format is not None
            and chat_format != PLAIN
            and "{{" not in chat_format
            and "{%" not in chat_format
        ):
            raise ConfigError(
                f"chat_format must be None, {PLAIN!r} or a Jinja chat template, got {chat_format!r}"
            )
        path = Path(path).expanduser()
        if not path.is_file():
            raise ModelError(f"{path}: GGUF file not found")
        try:
            import llama_cpp
        except ImportError as exc:
            raise ModelError("llama-cpp-python is not installed; install thrifty[llama]") from exc
        self._lc = llama_cpp
        try:
            self._llm = llama_cpp.Llama(
                model_path=str(path),
                n_ctx=n_ctx,
                n_threads=n_threads,
                n_threads_batch=n_threads,
                n_batch=n_batch,
                seed=seed,
                logits_all=False,
                verbose=verbose,
            )
        except (ValueError, RuntimeError, OSError) as exc:
            raise ModelError(f"{path}: llama.cpp could not load the model ({exc})") from exc
        self.path = path
        self.model_id = model_id or path.stem
        self.n_ctx = len(self._llm.input_ids)  # the token capacity the Python side tracks
        model = self._llm.model
        # recurrent/hybrid state cannot be truncated to a prefix: those models always start from position 0
        self._truncatable = not (
            llama_cpp.llama_model_is_recurrent(model) or llama_cpp.llama_model_is_hybrid(model)
        )
        self.prefix_cache = prefix_cache and self._truncatable
        self._vocab = llama_cpp.llama_model_get_vocab(model)
        self._lock = threading.Lock()
        self._fresh: int | None = None  # prompt length whose next-token logits are live in the context
        template = self._llm.metadata.get("tokenizer.chat_template") if chat_format is None else chat_format
        self.template: str | None = template if template and template.strip() and template != PLAIN else None
        self._render = _compile_template(self.template) if self.template else None
        self._bos_text = self._piece(self._llm.token_bos())
        self._eos_text = self._piece(self._llm.token_eos())
        # freed when this object goes, or at interpreter exit while llama_cpp is still importable (its own
        # __del__ at shutdown prints "Exception ignored ... 'NoneType' object is not callable")
        self._finalizer = weakref.finalize(self, self._llm.close)

    def close(self) -> None:
        """Free the model and its context now (otherwise freed when garbage-collected or at exit)."""
        self._finalizer()

    # ---- prompt and tokens --------------------------------------------------------------------------

    def render(self, messages: Messages, assistant_prefix: str = "") -> str:
        """The exact prompt string: chat template with generation prompt, then ``assistant_prefix``."""
        validate_messages(messages)
        if self._render is None:
            return _render_plain(messages) + assistant_prefix
        try:
            text = self._render(
                messages=messages,
                add_generation_prompt=True,
                bos_token=self._bos_text,
                eos_token=self._eos_text,
                tools=None,
            )
        except ModelError:
            raise
        except Exception as exc:  # template errors (undefined names, type errors) become one line
            raise ModelError(f"{self.model_id}: chat template failed: {exc}") from exc
        return text + assistant_prefix

    def tokenize(self, text: str) -> list[int]:
        """Token ids of a rendered prompt (special tokens parsed; BOS added only if the model wants one and
        the text does not already start with it)."""
        add_bos = not (self._bos_text and text.startswith(self._bos_text))
        return self._llm.tokenize(text.encode("utf-8"), add_bos=add_bos, special=True)

    def prompt_tokens(self, messages: Messages, assistant_prefix: str = "") -> int:
        """How many tokens the rendered prompt for ``messages`` + ``assistant_prefix`` takes."""
        return len(self.tokenize(self.render(messages, assistant_prefix)))

    def _piece(self, token: int) -> str:
        if token < 0:
            return ""
        return self._llm.detokenize([token], special=True).decode("utf-8", errors="replace")

    def _is_eog(self, token: int) -> bool:
        return bool(self._lc.llama_vocab_is_eog(self._vocab, token))

    # ---- the KV cache -------------------------------------------------------------------------------

    def _prefill(self, tokens: list[int]) -> int:
        """Make the context hold ``tokens`` with live logits for the last one; returns reused prompt tokens."""
        if not tokens or len(tokens) >= self.n_ctx:
            raise ModelError(f"{self.model_id}: prompt has {len(tokens)} tokens but n_ctx is {self.n_ctx}")
        llm = self._llm
        held = llm.input_ids[: llm.n_tokens]
        keep = 0
        for a, b in zip(held if self.prefix_cache else (), tokens, strict=False):
            if int(a) != b:
                break
            keep += 1
        if keep == len(tokens) and self._fresh == len(tokens) and llm.n_tokens == len(tokens):
            return keep  # the context holds exactly this prompt and its logits are live: nothing to evaluate
        keep = min(keep, len(tokens) - 1)  # else evaluate at least one token so the logits are fresh
        llm.n_tokens = keep  # eval() drops the KV cells from here on before decoding the rest
        self._fresh = None
        llm.eval(tokens[keep:])
        self._fresh = len(tokens)
        return keep

    def _logits(self) -> Any:
        import numpy as np

        ptr = self._lc.llama_get_logits_ith(self._llm.ctx, -1)
        return np.ctypeslib.as_array(ptr, shape=(self._llm.n_vocab(),)).astype(np.float64)

    # ---- the ChatModel protocol ---------------------------------------------------------------------

    def chat(
        self, messages: Messages, params: GenParams | None = None, assistant_prefix: str = "",
        on_text: Callable[[str], None] | None = None,
    ) -> Completion:
        """Generate a reply; ``text`` excludes ``assistant_prefix``. Stops at EOS/EOT, stop strings or
        ``max_tokens``; ``cached_tokens`` counts prompt tokens reused from the previous call's context.
        ``on_text`` receives the reply as it is generated, in pieces that join to ``text`` (text that could
        still turn out to begin a stop string is held back until it cannot)."""
        from thrifty.core.rng import np_rng

        params = params or GenParams()
        t0 = time.perf_counter()
        prompt = self.render(messages, assistant_prefix)
        stops = [s for s in params.stop if s] + ([PLAIN_STOP] if self._render is None else [])
        rng = np_rng(params.seed, "llamacpp", self.model_id) if params.temperature > 0 else None
        out: list[int] = []
        logps: list[float] = []
        raw, cut, finish = b"", -1, "length"
        emitted, hold = 0, max((len(s) for s in stops), default=1) - 1
        with self._lock:
            tokens = self.tokenize(prompt)
            cached = self._prefill(tokens)
            while len(out) < params.max_tokens and len(tokens) + len(out) < self.n_ctx:
                logits = self._logits()
                token = _pick(logits, params, rng)
                if self._is_eog(token):
                    finish = "stop"
                    break
                out.append(token)
                if params.logprobs:
                    logps.append(float(_log_softmax(logits)[token]))
                raw += self._llm.detokenize([token])
                cut = _first_stop(raw.decode("utf-8", errors="ignore"), stops)
                if cut >= 0:
                    finish = "stop"
                    break
                if on_text is not None:
                    emitted = _emit(on_text, raw.decode("utf-8", errors="ignore"), emitted, hold)
                if len(out) < params.max_tokens and len(tokens) + len(out) < self.n_ctx:
                    self._fresh = None
                    self._llm.eval([token])
        text = (
            raw.decode("utf-8", errors="ignore")[:cut] if cut >= 0 else raw.decode("utf-8", errors="replace")
        )
        if on_text is not None and len(text) > emitted:
            on_text(text[emitted:])
        return Completion(
            text=text,
            tokens_in=len(tokens),
            tokens_out=len(out),
            latency_s=time.perf_counter() - t0,
            model=self.model_id,
            finish_reason=finish,
            token_logprobs=logps if params.logprobs else None,
            cached_tokens=cached,
        )

    def label_probs(
        self, messages: Messages, labels: Sequence[str], assistant_prefix: str = ""
    ) -> LabelProbs:
        """One prefill and one next-token distribution after ``assistant_prefix``; each label's probability
        sums its first-token variants (as given, capitalised, upper case; with and without a leading space).
        If two labels share a first token, each variant is scored whole by a short teacher-forced pass."""
        labels = tuple(labels)
        if not labels or len(set(labels)) != len(labels) or not all(labels):
            raise ConfigError(f"labels must be non-empty, distinct strings, got {list(labels)}")
        t0 = time.perf_counter()
        prompt = self.render(messages, assistant_prefix)
        with self._lock:
            tokens = self.tokenize(prompt)
            self._prefill(tokens)
            logp = _log_softmax(self._logits())
            seqs = {lab: self._variant_sequences(prompt, tokens, lab) for lab in labels}
            firsts = {lab: {s[0] for s in seqs[lab]} for lab in labels}
            shared = any(firsts[a] & firsts[b] for i, a in enumerate(labels) for b in labels[i + 1 :])
            if not shared:
                raw = {lab: sum(math.exp(logp[t]) for t in firsts[lab]) for lab in labels}
            else:
                raw = {
                    lab: sum(math.exp(self._sequence_logp(tokens, s, logp)) for s in seqs[lab])
                    for lab in labels
                }
                if self._truncatable:
                    self._llm.n_tokens = len(tokens)  # leave the prompt as the cached prefix
        probs, mass = renormalise(raw)
        return LabelProbs(probs=probs, tokens_in=len(tokens), latency_s=time.perf_counter() - t0, mass=mass)

    def hidden_state(self, messages: Messages, assistant_prefix: str = "") -> Any:
        """The final-layer hidden state (after the output norm) of the last prompt token, a float64 vector of
        the model's embedding size. Read on the generation context, reusing the cached prompt prefix like
        ``label_probs`` does: the prompt up to its last token is prefilled as usual, then the last token alone
        is evaluated with embeddings switched on (with them on for the whole prompt, llama.cpp outputs every
        position and the prefill costs about 30 % more). The logits of that step stay live: a ``chat`` on the
        same prompt right after evaluates no prompt token again (its ``cached_tokens`` equals ``tokens_in``),
        so a probe read here costs the answer nothing. With ``prefix_cache=False`` the prompt is evaluated from
        position 0 and the vector is a pure function of (messages, assistant_prefix)."""
        import numpy as np

        prompt = self.render(messages, assistant_prefix)
        _drop_embedding_notice(self._lc)
        with self._lock:
            tokens = self.tokenize(prompt)
            if len(tokens) > 1:
                self._prefill(tokens[:-1])
            else:
                self._llm.n_tokens = 0
            ctx = self._llm.ctx
            self._lc.llama_set_embeddings(ctx, True)
            try:
                self._fresh = None
                self._llm.eval(tokens[-1:])  # the last token alone, with its hidden state read out
                self._fresh = len(tokens)
                ptr = self._lc.llama_get_embeddings_ith(ctx, -1)
                if not ptr:
                    raise ModelError(f"{self.model_id}: llama.cpp returned no hidden state")
                vec = np.ctypeslib.as_array(ptr, shape=(self._llm.n_embd(),)).astype(np.float64)
            finally:
                self._lc.llama_set_embeddings(ctx, False)
            return vec

    def token_logprobs(self, messages: Messages, text: str, assistant_prefix: str = "") -> list[float]:
        """Log-probability of each token of ``text`` as the continuation of the prompt (teacher forcing: the
        same evaluation steps as generating it). Used to score stored answers, e.g. for the Chow baseline."""
        prompt = self.render(messages, assistant_prefix)
        with self._lock:
            tokens = self.tokenize(prompt)
            joint = self.tokenize(prompt + text)
            if joint[: len(tokens)] == tokens:
                cont = joint[len(tokens):]
            else:  # the boundary merged into one token: score the text tokenised on its own
                cont = self._llm.tokenize(text.encode("utf-8"), add_bos=False, special=True)
            if len(tokens) + len(cont) >= self.n_ctx:
                raise ModelError(f"{self.model_id}: prompt + text is {len(tokens) + len(cont)} tokens, n_ctx is "
                                 f"{self.n_ctx}")
            self._prefill(tokens)
            out = []
            for tok in cont:
                out.append(float(_log_softmax(self._logits())[tok]))
                self._fresh = None
                self._llm.eval([tok])
            return out

    def _variant_sequences(self, prompt: str, tokens: list[int], label: str) -> set[tuple[int, ...]]:
        """Distinct token sequences of the label variants, tokenized in context right after ``prompt``."""
        out: set[tuple[int, ...]] = set()
        for v in dict.fromkeys(_variants(label)):
            full = self.tokenize(prompt + v)
            if full[: len(tokens)] == tokens and len(full) > len(tokens):
                out.add(tuple(full[len(tokens) :]))
            else:  # the variant merged with the end of the prompt: fall back to its standalone tokens
                alone = self._llm.tokenize(v.encode("utf-8"), add_bos=False, special=False)
                if alone:
                    out.add(tuple(alone))
        return out

    def _sequence_logp(self, tokens: list[int], seq: tuple[int, ...], first_logp: Any) -> float:
        """log P(seq | tokens) with teacher forcing, one token at a time after the evaluated prompt."""
        total = float(first_logp[seq[0]])
        ctx = list(tokens)
        for prev, nxt in itertools.pairwise(seq):
            ctx.append(prev)
            if self._truncatable:  # continue right after the prompt (+ earlier tokens of this sequence)
                self._fresh = None
                self._llm.n_tokens = len(ctx) - 1
                self._llm.eval([prev])
            else:
                self._fresh = None
                self._llm.n_tokens = 0
                self._llm.eval(ctx)
            total += float(_log_softmax(self._logits())[nxt])
        return total


def _variants(label: str) -> list[str]:
    forms = [label, label[:1].upper() + label[1:], label.lower(), label.upper()]
    return [f for form in forms for f in (form, " " + form)]


def _emit(on_text: Callable[[str], None], decoded: str, emitted: int, hold: int) -> int:
    """Send the part of ``decoded`` past ``emitted`` that is at least ``hold`` characters from its end (a stop
    string could still start there); returns the new emitted length."""
    end = len(decoded) - hold
    if end > emitted:
        on_text(decoded[emitted:end])
        return end
    return emitted


def _first_stop(text: str, stops: list[str]) -> int:
    hits = [i for i in (text.find(s) for s in stops) if i >= 0]
    return min(hits) if hits else -1


def _log_softmax(logits: Any) -> Any:
    import numpy as np

    z = logits - logits.max()
    return z - np.log(np.exp(z).sum())


def _pick(logits: Any, params: GenParams, rng: Any) -> int:
    """Greedy at temperature 0; otherwise temperature + nucleus (top_p) sampling with the given generator."""
    import numpy as np

    if rng is None:
        return int(np.argmax(logits))
    z = logits / params.temperature
    p = np.exp(z - z.max())
    p /= p.sum()
    if params.top_p < 1.0:
        order = np.argsort(-p)
        keep = np.cumsum(p[order]) - p[order] < params.top_p  # smallest set reaching top_p
        mask = np.zeros_like(p, dtype=bool)
        mask[order[keep]] = True
        p = np.where(mask, p, 0.0)
        p /= p.sum()
    return int(rng.choice(len(p), p=p))


def _render_plain(messages: Messages) -> str:
    parts = []
    for m in messages:
        role, content = m["role"], str(m["content"])
        if role == "system":
            parts.append(f"{content}\n\n")
        elif role == "assistant":
            parts.append(f"Assistant: {content}\n\n")
        else:
            parts.append(f"User: {content}\n\n")
    return "".join(parts) + "Assistant:"


def _compile_template(source: str):
    """A render function for a Hugging Face style chat template, run in Jinja's immutable sandbox."""
    import jinja2
    from jinja2.ext import Extension, loopcontrols
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    class _GenerationTag(Extension):  # HF's {% generation %} marks training spans; render its body as-is
        tags = {"generation"}  # noqa: RUF012

        def parse(self, parser):
            next(parser.stream)
            return parser.parse_statements(("name:endgeneration",), drop_needle=True)

    def raise_exception(message: str):
        raise ModelError(f"chat template rejected the messages: {message}")

    def tojson(x, ensure_ascii=False, indent=None, separators=None, sort_keys=False):
        return json.dumps(
            x, ensure_ascii=ensure_ascii, indent=indent, separators=separators, sort_keys=sort_keys
        )

    env = ImmutableSandboxedEnvironment(
        loader=jinja2.BaseLoader(),
        trim_blocks=True,
        lstrip_blocks=True,
        extensions=[_GenerationTag, loopcontrols],
    )
    env.filters["tojson"] = tojson
    env.globals["raise_exception"] = raise_exception
    env.globals["strftime_now"] = lambda fmt: datetime.now().strftime(fmt)
    try:
        return env.from_string(source).render
    except jinja2.TemplateError as exc:
        raise ModelError(f"chat template does not compile: {exc}") from exc


_NOTICE = b"embeddings required but some input tokens were not marked as outputs"
_log_filter: Any = None  # the installed callback; kept referenced so ctypes does not free it


def _drop_embedding_notice(lc: Any) -> None:
    """Install (once) a llama.cpp log callback that drops the notice printed on every embedding-mode eval
    ("embeddings required but some input tokens were not marked as outputs") and hands every other message
    to llama-cpp-python's own callback, which keeps honouring ``verbose``."""
    global _log_filter
    if _log_filter is not None:
        return
    import ctypes

    try:
        from llama_cpp import _logger
    except ImportError:  # another llama-cpp-python layout: leave its logging alone
        return
    forward = _logger.llama_log_callback

    @lc.llama_log_callback
    def _filter(level: int, text: bytes, user_data: Any) -> None:
        if _NOTICE not in (text or b""):
            forward(level, text, user_data)

    lc.llama_log_set(_filter, ctypes.c_void_p(0))
    _log_filter = _filter

