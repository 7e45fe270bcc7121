"""Masked diffusion language models: the forward (masking) process and its ELBO loss, with samplers, likelihood
estimators and trainers to come."""
