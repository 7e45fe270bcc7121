"""route: self-prediction routing (PA/RPRA), in rooms that say what they do.

- ``predictors/`` — grade predictors (zero-shot, report card, probes, prompt router, fine-tuned) and their loading;
- ``decide/`` — what happens to one query: policies and calibrators, the one routing engine, prompt formats,
  the verify cascade's maths, single-call PA, the router and ladder file readers;
- ``records/`` — collected answers and grades in the run store, predictions over them, joins and prices;
- ``fit/`` — fitting from records: probes, the fine-tuned predictor, calibration and predictor selection,
  ladders, audits of live traffic;
- ``replay/`` — evaluation by replaying routers and baselines over stored test records, with reports;
- ``serve/`` — a router or ladder file made live: deployments, ``route ask`` and the OpenAI-compatible server.

Imports flow down: serve → decide; replay → fit → records → decide → predictors (tests/test_architecture.py).
"""
