"""One way to build a named predictor for a model from its artefact (report card, probe file or adapter), used by
predictor evaluation, router calibration and deployment alike.

- ``zero_shot``: no artefact;
- ``report_card``: a card JSON built for the same model;
- ``probe``: a probe file fitted on the same model's hidden states at the instruction's prediction position;
- ``plain_probe``: a probe file fitted at the end of the plain conversation (the answer continues its prefill);
- ``prompt_router``: a prompt-router file (``route probe fit --position prompt``): the grade from the query text
  alone, no model read before the decision (:mod:`thrifty.route.predictors.prompt_router`);
- ``sft``: an adapter directory trained on the same model's grades. Its predictor runs on the adapter-wrapped
  Hugging Face model (which also answers), so ``model`` is not used; ``lazy`` defers loading it to the first call.

Every artefact is checked against ``model_id`` (the name the records are tagged with): a card, probe or adapter
for another model is refused in one line.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from thrifty.core.errors import ConfigError

Builder = Callable[[str, Any, str, bool], tuple[Any, "str | None"]]
"""(model_id, model, artefact, lazy) -> (predictor, version of its artefact)."""


@dataclass(frozen=True)
class PredictorKind:
    """A named predictor: the config field naming its artefact (None: it needs none), what that artefact is (for
    the one-line error when it is missing) and how to build it."""

    field: str | None
    artefact: str
    build: Builder


def _zero_shot(model_id: str, model: Any, artefact: str, lazy: bool) -> tuple[Any, None]:
    from thrifty.route.predictors.zero_shot import ZeroShotPredictor

    return ZeroShotPredictor(model), None


def _report_card(model_id: str, model: Any, artefact: str, lazy: bool) -> tuple[Any, str]:
    from thrifty.route.predictors.report_card import ReportCard, ReportCardPredictor

    card = ReportCard.load(artefact)
    if card.model != model_id:
        raise ConfigError(f"{artefact}: report card is for model {card.model!r}, not {model_id!r}")
    return ReportCardPredictor(model, card), card.version


def _probe(plain: bool) -> Builder:
    def build(model_id: str, model: Any, artefact: str, lazy: bool) -> tuple[Any, str]:
        from thrifty.route.predictors.plain_probe import PlainProbePredictor
        from thrifty.route.predictors.probe import ProbePredictor

        probe = _load_probe(artefact, model_id, "probe is for model")
        kind = PlainProbePredictor if plain else ProbePredictor
        return kind(model, probe, layer=probe.meta.get("layer")), probe.version
    return build


def _prompt_router(model_id: str, model: Any, artefact: str, lazy: bool) -> tuple[Any, str]:
    from thrifty.route.predictors.prompt_router import PromptRouterPredictor

    router = _load_probe(artefact, model_id, "prompt router predicts the grades of model")
    return PromptRouterPredictor(model, router), router.version


def _sft(model_id: str, model: Any, adapter: str, lazy: bool) -> tuple[Any, str]:
    from thrifty.route.predictors.sft import SFTPredictor, load_sft_predictor, read_meta

    meta = read_meta(adapter)
    if meta["model"] != model_id:
        raise ConfigError(f"{adapter}: adapter was trained on {meta['model']!r}'s grades, not {model_id!r}")
    version = str(meta.get("version", ""))
    if not lazy:
        return load_sft_predictor(adapter), version
    from thrifty.llm.factory import LazyChatModel

    def load(spec: str) -> Any:  # the adapter-wrapped hf model, built only when a prediction is missing
        return load_sft_predictor(adapter).model

    return SFTPredictor(LazyChatModel(f"{model_id}+sft", loader=load), meta), version


REGISTRY: dict[str, PredictorKind] = {
    "zero_shot": PredictorKind(None, "", _zero_shot),
    "report_card": PredictorKind("card", "a report card JSON", _report_card),
    "probe": PredictorKind("probe", "a probe file", _probe(plain=False)),
    "plain_probe": PredictorKind("probe", "a probe file", _probe(plain=True)),
    "prompt_router": PredictorKind("prompt_router", "a prompt-router file", _prompt_router),
    "sft": PredictorKind("adapter", "an adapter directory", _sft),
}
PREDICTORS = tuple(REGISTRY)
ARTEFACT_FIELD = {name: kind.field for name, kind in REGISTRY.items() if kind.field}
"""The config field (of predict-eval and calibrate configs) that names each predictor's artefact."""


def artefact_of(cfg: Any, name: str) -> str:
    """The artefact ``cfg`` gives predictor ``name`` ("" for zero-shot)."""
    return str(getattr(cfg, ARTEFACT_FIELD[name], "")) if name in ARTEFACT_FIELD else ""


def build_predictor(name: str, model_id: str, model: Any, artefact: str = "",
                    lazy: bool = False) -> tuple[Any, str | None]:
    """(predictor, version of its artefact) for ``name``; the version is None for zero-shot."""
    kind = REGISTRY.get(name)
    if kind is None:
        raise ConfigError(f"unknown predictor {name!r}; choose from {', '.join(PREDICTORS)}")
    if kind.field and not artefact:
        raise ConfigError(f"predictor {name!r} needs {kind.artefact}")
    return kind.build(model_id, model, artefact, lazy)


def _load_probe(artefact: str, model_id: str, what: str) -> Any:
    """A fitted probe file (hidden-state probe or prompt router), refused in one line when it belongs to another
    model."""
    from thrifty.route.predictors.probe import ProbeClassifier

    probe = ProbeClassifier.load(artefact)
    if probe.meta.get("model") not in (None, model_id):
        raise ConfigError(f"{artefact}: {what} {probe.meta.get('model')!r}, not {model_id!r}")
    return probe


__all__ = ["ARTEFACT_FIELD", "PREDICTORS", "REGISTRY", "PredictorKind", "artefact_of", "build_predictor"]
