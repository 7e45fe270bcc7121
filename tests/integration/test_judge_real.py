"""The rubric judge on the real bundled Qwen2.5-Coder-1.5B: its reply parses, or falls back to unparsed cleanly."""

from __future__ import annotations

import os
import time

import pytest
from _bundled import open_bundled

from thrifty.judge import GRADE_LABELS, LABELS, UNPARSED, make_judge
from thrifty.judge.parse import parse_grades

for _var in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "TRANSFORMERS_OFFLINE"):
    os.environ.setdefault(_var, "1")

NAME = "qwen2.5-coder-1.5b-instruct"


@pytest.fixture(scope="module")
def judge_model():
    model = open_bundled(NAME, n_ctx=4096, prefix_cache=False)
    yield model
    model.close()


@pytest.mark.integration
@pytest.mark.slow
def test_real_joint_judge_output_parses_or_falls_back(judge_model):
    judge = make_judge("rubric", model=judge_model)
    query, answers = "Name the capital of France.", {"right": "Paris.", "wrong": "The capital is Lyon."}
    t0 = time.perf_counter()
    grades = judge.grade(query, answers)
    elapsed = time.perf_counter() - t0
    assert set(grades) == {"right", "wrong"}
    assert all(g.label in GRADE_LABELS and g.raw for g in grades.values())
    first = grades["right"]
    if first.label == UNPARSED:  # a clean fallback: two attempts, raw reply and reason kept
        assert first.info["attempts"] == 2 and len(first.info["errors"]) == 2
    else:
        assert {g.label for g in grades.values()} <= set(LABELS)
        # the kept raw reply really is a schema-valid reply to this very request
        _, nonce = judge.messages(query, None, [answers[m] for m in judge.order(query, answers)])
        assert len(parse_grades(first.raw, 2, nonce)) == 2
    print(f"\n{NAME} joint judge: {({m: g.label for m, g in grades.items()})}, attempts "
          f"{first.info['attempts']}, {first.info['tokens_in']} tokens in, {first.info['tokens_out']} out, "
          f"{elapsed:.1f}s")
