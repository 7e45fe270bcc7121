"""reasoning-gym adapter: any generator by name as a seeded, leakage-free Task scored by its own verifier.

Splits. Every question text has a home split, ``split_of(question, fractions)`` (a hash of the text alone), and
an example is kept only in its home split. Items are drawn from a per-split stream: chunks of ``CHUNK`` items
from ``create_dataset(name, seed=derive_seed(seed, "gym", task name, split, chunk), size=CHUNK, **config)``;
repeated questions within a split are dropped. So train, val and test never share a question text — for any
``n``, any seed, and across configs of the same generator — and drawing a test item costs about
``1 / fraction`` generated items (4 with the default fractions 0.5/0.25/0.25). ``examples(split, n, seed)``
returns the first ``n`` kept items, so a smaller ``n`` is a prefix of a larger one.

Scoring. The answer is extracted from the model text (``extract.extract_answer``: ``<answer>`` tag, an
"Answer:" line, \\boxed{}, "the answer is N", then the last number) and passed to the dataset's own
``score_answer(answer, entry)``. When the answer is a plain number, its canonical form ("1,234.0" → "1234")
and — for a numeric reference — the bare number of "12 apples" are scored too, and the best score counts.
Mapping: ``Score.value`` is the raw verifier score clipped to [0, 1] (generators give partial credit, e.g.
0.01 for a well-formed but wrong answer, or len(reference)/len(answer) when the reference is a substring);
``correct`` is ``value >= CORRECT_THRESHOLD`` (0.99), so partial and format-only credit never count as
correct. No extractable answer → value 0, ``parsed`` None, reason "no answer found".
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
import threading
from collections.abc import Iterator
from typing import Any

from thrifty.core.errors import ConfigError
from thrifty.core.rng import derive_seed
from thrifty.core.types import canonical_json, content_hash
from thrifty.tasks.base import Example, Score, check_split, split_of
from thrifty.tasks.extract import extract_answer, normalize_number

DEFAULT_SYSTEM = (
    "Solve the problem. Reason step by step, then end your reply with a final line of the form "
    '"Answer: <answer>", giving only the answer in the exact format the question asks for.'
)
CORRECT_THRESHOLD = 0.99
CHUNK = 64
GYM_FRACTIONS = (0.5, 0.25, 0.25)
MAX_DRAWS_PER_ITEM = 60
_MARKERS = {"__tuple__", "__set__", "__items__", "__float__"}


_STDOUT_LOCK = threading.Lock()


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """Swallow the progress prints some generators make (they would corrupt ``--json`` output)."""
    with _STDOUT_LOCK, contextlib.redirect_stdout(io.StringIO()):
        yield


def gym_names() -> list[str]:
    """Names of all installed reasoning-gym generators (imports reasoning_gym)."""
    import reasoning_gym  # noqa: F401  (registers the generators)
    from reasoning_gym.factory import DATASETS

    return sorted(DATASETS)


def freeze(obj: Any) -> Any:
    """A JSON-safe copy that :func:`thaw` turns back into equal Python values (tuples, sets, odd keys)."""
    if isinstance(obj, dict):
        if all(isinstance(k, str) for k in obj) and not set(obj) & _MARKERS:
            return {k: freeze(v) for k, v in obj.items()}
        return {"__items__": [[freeze(k), freeze(v)] for k, v in obj.items()]}
    if isinstance(obj, tuple):
        return {"__tuple__": [freeze(v) for v in obj]}
    if isinstance(obj, (set, frozenset)):
        return {"__set__": sorted((freeze(v) for v in obj), key=canonical_json)}
    if isinstance(obj, list):
        return [freeze(v) for v in obj]
    if isinstance(obj, (str, int, bool)) or obj is None:
        return obj
    if isinstance(obj, float):
        return obj if obj == obj and abs(obj) != float("inf") else {"__float__": repr(obj)}
    if hasattr(obj, "tolist"):  # numpy arrays and scalars
        return freeze(obj.tolist())
    return str(obj)


def thaw(obj: Any) -> Any:
    """Inverse of :func:`freeze`."""
    if isinstance(obj, list):
        return [thaw(v) for v in obj]
    if isinstance(obj, dict):
        if set(obj) == {"__tuple__"}:
            return tuple(thaw(v) for v in obj["__tuple__"])
        if set(obj) == {"__set__"}:
            return {thaw(v) for v in obj["__set__"]}
        if set(obj) == {"__items__"}:
            return {_hashable(thaw(k)): thaw(v) for k, v in obj["__items__"]}
        if set(obj) == {"__float__"}:
            return float(obj["__float__"])
        return {k: thaw(v) for k, v in obj.items()}
    return obj


def _hashable(x: Any) -> Any:
    return tuple(_hashable(v) for v in x) if isinstance(x, list) else x


class GymTask:
    """A reasoning-gym generator as a Task: ``GymTask("chain_sum", {"min_terms": 2})``."""

    def __init__(
        self,
        name: str,
        config: dict[str, Any] | None = None,
        system: str | None = DEFAULT_SYSTEM,
        fractions: tuple[float, float, float] = GYM_FRACTIONS,
    ) -> None:
        self.dataset = name
        self.config = dict(config or {})
        self.system = system
        self.fractions = tuple(fractions)
        split_of("probe", self.fractions)  # validates the fractions
        opts = "&".join(f"{k}={v}" for k, v in sorted(self.config.items()))
        self.name = f"gym:{name}" + (f"?{opts}" if opts else "")
        self._scorer = self._create(seed=0, size=1)  # validates name and config now, not mid-run
        self.category = getattr(self._scorer, "category", "other")

    def _create(self, seed: int, size: int) -> Any:
        import reasoning_gym
        from reasoning_gym.factory import DATASETS

        if self.dataset not in DATASETS:
            raise ConfigError(
                f"unknown reasoning-gym task {self.dataset!r}; run `thrifty tasks list` for the names"
            )
        for key in ("seed", "size"):
            if key in self.config:
                raise ConfigError(f"gym:{self.dataset}: {key!r} is set by thrifty, not by the task config")
        fields = [
            f.name for f in dataclasses.fields(DATASETS[self.dataset][1]) if f.name not in ("seed", "size")
        ]
        unknown = sorted(set(self.config) - set(fields))
        if unknown:
            raise ConfigError(
                f"gym:{self.dataset}: unknown option(s) {', '.join(unknown)}; valid: {', '.join(fields)}"
            )
        try:
            with _quiet():
                return reasoning_gym.create_dataset(self.dataset, seed=seed, size=size, **self.config)
        except (AssertionError, ValueError, TypeError) as exc:
            raise ConfigError(f"{self.name}: invalid config: {exc or type(exc).__name__}") from exc

    def _entry_example(self, entry: dict[str, Any]) -> Example:
        question = str(entry["question"])
        answer = entry.get("answer")
        return Example(
            id=f"{self.name}#{content_hash(question)[:16]}",
            prompt=question,
            reference=None if answer is None else str(answer),
            system=self.system,
            meta={
                "task": self.name,
                "dataset": self.dataset,
                "category": self.category,
                "gym_entry": freeze(entry),
            },
        )

    def examples(self, split: str, n: int, seed: int = 0) -> list[Example]:
        """The first ``n`` examples of ``split`` for ``seed`` (deterministic; disjoint across splits)."""
        check_split(split)
        if n < 0:
            raise ConfigError(f"n must be >= 0, got {n}")
        out: list[Example] = []
        seen: set[str] = set()
        chunk, draws, max_draws = 0, 0, MAX_DRAWS_PER_ITEM * n + 4 * CHUNK
        while len(out) < n:
            if draws >= max_draws:
                raise ConfigError(
                    f"{self.name}: only {len(out)} distinct {split} questions in {draws} draws (wanted {n}); "
                    "the generator's question space is too small for this config"
                )
            ds = self._create(seed=derive_seed(seed, "gym", self.name, split, chunk) % 2**32, size=CHUNK)
            with _quiet():
                for idx in range(CHUNK):
                    entry = ds[idx]
                    draws += 1
                    q = str(entry["question"])
                    if q in seen or split_of(q, self.fractions, salt="thrifty-gym") != split:
                        continue
                    seen.add(q)
                    out.append(self._entry_example(entry))
                    if len(out) == n:
                        break
            chunk += 1
        return out

    def score(self, example: Example, text: str) -> Score:
        """Extract the answer and score it with the generator's own ``score_answer``; see the module doc."""
        entry = example.meta.get("gym_entry")
        if entry is None:
            raise ConfigError(f"example {example.id!r} has no gym_entry; it was not made by {self.name}")
        entry = thaw(entry)
        multiline = "\n" in (example.reference or "").strip()
        parsed = extract_answer(text or "", multiline=multiline)
        if parsed is None:
            return Score(0.0, False, None, "no answer found")
        candidates = [parsed, extract_answer(text or "", multiline=multiline, strip_period=False) or parsed]
        canon = normalize_number(parsed)
        if canon is not None:
            candidates.append(canon)
        elif example.reference is not None and normalize_number(example.reference) is not None:
            head = parsed.split()[0] if parsed.split() else ""
            if normalize_number(head) is not None and all(w.isalpha() for w in parsed.split()[1:]):
                candidates.append(normalize_number(head))
        raw, error = 0.0, ""
        for cand in dict.fromkeys(candidates):
            try:
                raw = max(raw, float(self._scorer.score_answer(cand, entry)))
            except Exception as exc:  # a verifier crash on odd input is a wrong answer, not a run failure
                error = f" (scorer error: {type(exc).__name__})"
        value = min(1.0, max(0.0, raw)) if raw == raw else 0.0
        correct = value >= CORRECT_THRESHOLD
        if correct:
            reason = "correct"
        elif value == 0.0:
            reason = "wrong answer" + error
        elif value <= 0.01:
            reason = f"wrong answer (format credit {value:g})"
        else:
            reason = f"partial credit {value:.3g}"
        return Score(value, correct, parsed, reason)
