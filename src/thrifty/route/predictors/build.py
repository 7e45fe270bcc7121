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

from typing import Any

from thrifty.core.errors import ConfigError

PREDICTORS = ("zero_shot", "report_card", "probe", "plain_probe", "prompt_router", "sft")
ARTEFACT_FIELD = {"report_card": "card", "probe": "probe", "plain_probe": "probe", "prompt_router": "prompt_router",
                  "sft": "adapter"}
"""The config field (of predict-eval and calibrate configs) that names each predictor's artefact."""


def artefact_of(cfg: Any, name: str) -> str:
    """The artefact ``cfg`` gives predictor ``name`` ("" for zero-shot)."""
    return str(getattr(cfg, ARTEFACT_FIELD[name], "")) if name in ARTEFACT_FIELD else ""


def build_predictor(name: str, model_id: str, model: Any, artefact: str = "",
                    lazy: bool = False) -> tuple[Any, str | None]:
    """(predictor, version of its artefact) for ``name``; the version is None for zero-shot."""
    if name not in PREDICTORS:
        raise ConfigError(f"unknown predictor {name!r}; choose from {', '.join(PREDICTORS)}")
    if name != "zero_shot" and not artefact:
        need = {"report_card": "a report card JSON", "probe": "a probe file", "plain_probe": "a probe file",
                "prompt_router": "a prompt-router file", "sft": "an adapter directory"}[name]
        raise ConfigError(f"predictor {name!r} needs {need}")
    if name == "zero_shot":
        from thrifty.route.predictors.zero_shot import ZeroShotPredictor

        return ZeroShotPredictor(model), None
    if name == "report_card":
        from thrifty.route.predictors.report_card import ReportCard, ReportCardPredictor

        card = ReportCard.load(artefact)
        if card.model != model_id:
            raise ConfigError(f"{artefact}: report card is for model {card.model!r}, not {model_id!r}")
        return ReportCardPredictor(model, card), card.version
    if name in ("probe", "plain_probe"):
        from thrifty.route.predictors.plain_probe import PlainProbePredictor
        from thrifty.route.predictors.probe import ProbePredictor

        probe = _load_probe(artefact, model_id, "probe is for model")
        kind = PlainProbePredictor if name == "plain_probe" else ProbePredictor
        return kind(model, probe, layer=probe.meta.get("layer")), probe.version
    if name == "prompt_router":
        from thrifty.route.predictors.prompt_router import PromptRouterPredictor

        router = _load_probe(artefact, model_id, "prompt router predicts the grades of model")
        return PromptRouterPredictor(model, router), router.version
    return _sft(model_id, artefact, lazy)


def _load_probe(artefact: str, model_id: str, what: str) -> Any:
    """A fitted probe file (hidden-state probe or prompt router), refused in one line when it belongs to another
    model."""
    from thrifty.route.predictors.probe import ProbeClassifier

    probe = ProbeClassifier.load(artefact)
    if probe.meta.get("model") not in (None, model_id):
        raise ConfigError(f"{artefact}: {what} {probe.meta.get('model')!r}, not {model_id!r}")
    return probe


def _sft(model_id: str, adapter: str, lazy: bool) -> tuple[Any, str]:
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


__all__ = ["ARTEFACT_FIELD", "PREDICTORS", "artefact_of", "build_predictor"]
