"""Policy optimisation for masked diffusion LMs: losses, estimators, rollouts and one training loop."""
