"""Make a tiny routing run for `thrifty route eval` to replay from an installed wheel, with no model to load.

Usage: ``python tests/extras/route_store.py DIR`` writes DIR/qa.jsonl (a question/answer file task),
DIR/store.sqlite (two scripted models' answers on every split, judged, with the small one's grade predictions)
and DIR/router.json (a router calibrated on the val split), then replays the router once with the scripted models
so every prediction the replay needs is stored. `thrifty route eval --router DIR/router.json --store DIR/store.sqlite`
then reads everything from the store. Needs only the base install (numpy, pyyaml, httpx, rich) and matplotlib.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

from thrifty.llm.fake import FakeChatModel
from thrifty.route.fit.calibrate import CalibrateConfig, calibrate_router
from thrifty.route.records.collect import CollectConfig, collect
from thrifty.route.replay.evaluate import EvalConfig, evaluate_router

N_QUESTIONS = 120


def _numbers(text: str) -> tuple[int, int]:
    a, b = map(int, re.findall(r"\d+", text)[:2])
    return a, b


class Small:
    """Right on questions whose first number is even, and knows it: its grade predictions and token log-probs
    separate its right answers from its wrong ones; asked whether an answer is right it always says yes."""

    def __init__(self) -> None:
        def answer(text: str) -> str:
            a, b = _numbers(text)
            return f"Answer: {a + b if a % 2 == 0 else -1}"

        self.gen = FakeChatModel(rules=[(lambda t: True, answer)], model_id="small")
        self.pred = FakeChatModel(label_rules=[(lambda t: _numbers(t)[0] % 2 == 1,
                                                {"bad": 0.7, "ok": 0.2, "great": 0.1})],
                                  label_default={"bad": 0.1, "ok": 0.3, "great": 0.6})
        self.verify = FakeChatModel(label_default={"True": 0.9, "False": 0.1})

    def chat(self, messages, params=None, assistant_prefix=""):
        return self.gen.chat(messages, params, assistant_prefix=assistant_prefix)

    def token_logprobs(self, messages, text, assistant_prefix=""):
        return [-2.0 if text.endswith("-1") else -0.1] * max(1, len(text.split()))

    def label_probs(self, messages, labels, assistant_prefix=""):
        fake = self.verify if tuple(labels) == ("True", "False") else self.pred
        return fake.label_probs(messages, labels, assistant_prefix=assistant_prefix)


def make(out: Path) -> dict[str, str]:
    """Write the task file, store and router under ``out``; returns their paths and the task spec."""
    out.mkdir(parents=True, exist_ok=True)
    qa = out / "qa.jsonl"
    rows = ({"question": f"What is {i} + {i % 7 + 1}?", "answer": str(i + i % 7 + 1)} for i in range(N_QUESTIONS))
    qa.write_text("".join(json.dumps(row) + "\n" for row in rows))
    task = f"qa:{qa.resolve()}"
    small = Small()
    large = FakeChatModel(rules=[(lambda t: True, lambda t: f"Step by step. Answer: {sum(_numbers(t))}")],
                          model_id="large")
    models = {"small": small, "large": large}
    store = out / "store.sqlite"
    for split in ("train", "val", "test"):
        collect(CollectConfig(models=["small", "large"], tasks=[task], split=split, n_per_task=N_QUESTIONS,
                              run_dir=str(out / "collect"), store=str(store)), load_model=models.__getitem__)
    router = out / "router.json"
    calibrate_router(CalibrateConfig(store=str(store), run_dir=str(out / "calibrate"), small="small",
                                     large="large", tasks=[task], n_per_task=N_QUESTIONS, target="defer_rate",
                                     defer_rate=0.5, out=str(router)), load_model=lambda name: models[name])
    evaluate_router(EvalConfig(router=str(router), store=str(store), run_dir=str(out / "warm"),
                               n_per_task=N_QUESTIONS, train_n_per_task=N_QUESTIONS),
                    load_model=lambda name: models[name])
    return {"task": task, "store": str(store), "router": str(router)}


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: route_store.py DIR")
    print(json.dumps(make(Path(sys.argv[1]))))
