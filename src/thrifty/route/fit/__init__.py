"""Fitting from stored records: probes and prompt routers, the fine-tuned predictor, calibrated policies with
predictor selection (`route calibrate`), ladders built from router files, and audits of live traffic."""
