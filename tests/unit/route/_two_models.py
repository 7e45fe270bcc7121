"""Two scripted models on the AddTask for routing tests: "s" is right on even questions only and predicts that
well; "l" is always right (and wordier). :func:`two_model_store` collects both on the chosen splits."""

from __future__ import annotations

import re

from _route_tasks import AddTask

from thrifty.llm.fake import FakeChatModel
from thrifty.route.records.collect import CollectConfig, collect
from thrifty.tasks.base import Example


def _first(text: str) -> int:
    return int(re.findall(r"\d+", text)[0])


def _small_answer(text: str) -> str:  # right on even i only
    a, b = map(int, re.findall(r"\d+", text)[:2])
    return f"Answer: {a + b if a % 2 == 0 else -1}"


def _large_answer(text: str) -> str:  # always right, and wordier
    a, b = map(int, re.findall(r"\d+", text)[:2])
    return f"Let me add {a} and {b} step by step. Answer: {a + b}"


class Small:
    """Answers by rule; predicts its grade well (bad-heavy on odd questions); asked afterwards whether its answer
    is correct, it always says True (an over-confident self-verifier)."""

    def __init__(self):
        self.gen = FakeChatModel(rules=[(lambda t: True, _small_answer)])
        self.pred = FakeChatModel(label_rules=[(lambda t: _first(t) % 2 == 1, {"bad": 0.7, "ok": 0.2, "great": 0.1})],
                                  label_default={"bad": 0.2, "ok": 0.3, "great": 0.5})
        self.verify = FakeChatModel(label_default={"True": 0.9, "False": 0.1})
        self.scored = 0

    def chat(self, messages, params=None, assistant_prefix=""):
        return self.gen.chat(messages, params, assistant_prefix=assistant_prefix)

    def token_logprobs(self, messages, text, assistant_prefix=""):
        """Confident (-0.1 per token) in its right answers, unsure (-2.0) in its wrong ones."""
        self.scored += 1
        wrong = text.endswith("-1")
        return [-2.0 if wrong else -0.1] * max(1, len(text.split()))

    def hidden_state(self, messages, assistant_prefix=""):
        """Two numbers read from the last user message: whether its first number is odd (a wrong answer), 1."""
        import numpy as np

        text = [m for m in messages if m["role"] == "user"][-1]["content"]
        return np.array([float(_first(text) % 2), 1.0])

    def label_probs(self, messages, labels, assistant_prefix=""):
        fake = self.verify if tuple(labels) == ("True", "False") else self.pred
        return fake.label_probs(messages, labels, assistant_prefix=assistant_prefix)


_OFFSET = {"train": 0, "val": 1000, "test": 2000}


class SplitAddTask(AddTask):
    """AddTask whose splits ask different questions (offsets 0 / 1000 / 2000), as real tasks' splits do."""

    def __init__(self, name: str = "add") -> None:
        super().__init__(name)

    def examples(self, split, n, seed=0):
        return [Example(id=f"{split}-{i}", prompt=f"What is {i + _OFFSET[split]} + {seed + 1}?",
                        reference=str(i + _OFFSET[split] + seed + 1)) for i in range(n)]


def two_model_store(tmp_path, n: int, splits=("val",)):
    """Collect both models on ``splits`` (n examples each); returns (store path, the small model)."""
    run = tmp_path / "collect"
    models = {"s": Small(), "l": FakeChatModel(rules=[(lambda t: True, _large_answer)])}
    for split in splits:
        collect(CollectConfig(models=["s", "l"], tasks=["add"], split=split, n_per_task=n, run_dir=str(run)),
                load_model=models.__getitem__, load_task=SplitAddTask)
    return run / "store.sqlite", models["s"]
