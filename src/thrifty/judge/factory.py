"""The judge registry: named judge builders and ``make_judge(name, model=..., task=...)``.

| name              | judge                                                               | needs  |
|-------------------|---------------------------------------------------------------------|--------|
| ``rubric``        | generic rubric, joint mode, no reference (the paper's generic judge) | model  |
| ``rubric_isolated``| generic rubric, one call per answer (online audits)                | model  |
| ``reference``     | generic rubric, joint, reference answer shown (required)             | model  |
| ``mischievous``   | inverted rubric, joint — a control for predictors                    | model  |
| ``verifier``      | the task's own Score mapped to a label                               | task   |

``model`` may be a ChatModel or a model spec string for ``thrifty.llm.factory.load_model``.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

from thrifty.core.errors import ConfigError
from thrifty.core.registry import Registry
from thrifty.judge.base import ISOLATED, JOINT, Judge
from thrifty.judge.rubric import GENERIC, MISCHIEVOUS
from thrifty.judge.rubric_judge import RubricJudge
from thrifty.judge.verifier import VerifierJudge

Builder = Callable[..., Judge]
JUDGES: Registry[Builder] = Registry("judge")


def _needs_model(name: str, model: Any) -> Any:
    if model is None:
        raise ConfigError(f"judge {name!r} needs a judge model (a ChatModel or a model spec)")
    if isinstance(model, str):
        from thrifty.llm.factory import load_model

        return load_model(model)
    return model


def _check_options(cls: type, judge: str, kwargs: dict[str, Any]) -> dict[str, Any]:
    """``kwargs`` if ``cls`` accepts them (checked before any model is loaded), else a one-line ConfigError."""
    try:
        inspect.signature(cls).bind(None, **kwargs)
    except TypeError as exc:
        raise ConfigError(f"judge {judge!r}: bad options ({exc})") from None
    return kwargs


def _rubric_builder(name: str, **defaults: Any) -> Builder:
    def build(model: Any = None, task: Any = None, **kw: Any) -> Judge:
        options = _check_options(RubricJudge, name, {"name": name, **defaults, **kw})
        return RubricJudge(_needs_model(name, model), **options)

    build.__doc__ = f"Build the {name!r} judge."
    return build


def _verifier(model: Any = None, task: Any = None, **kw: Any) -> Judge:
    if task is None:
        raise ConfigError("judge 'verifier' needs a task (it grades with the task's own scorer)")
    return VerifierJudge(task, **_check_options(VerifierJudge, "verifier", {"name": "verifier", **kw}))


JUDGES.add("rubric", _rubric_builder("rubric", rubric=GENERIC, mode=JOINT))
JUDGES.add("rubric_isolated", _rubric_builder("rubric_isolated", rubric=GENERIC, mode=ISOLATED))
JUDGES.add("reference", _rubric_builder("reference", rubric=GENERIC, mode=JOINT, reference="require"))
JUDGES.add("mischievous", _rubric_builder("mischievous", rubric=MISCHIEVOUS, mode=JOINT))
JUDGES.add("verifier", _verifier)


def make_judge(name: str, model: Any = None, task: Any = None, **kw: Any) -> Judge:
    """Build the judge registered as ``name``; ``kw`` go to its class (e.g. ``seed=1``, ``ok_at=0.4``)."""
    return JUDGES.get(name)(model=model, task=task, **kw)
