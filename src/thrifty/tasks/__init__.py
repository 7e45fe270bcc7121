"""tasks: the Task contract, reasoning-gym adapter, HumanEval, and local-file benchmark loaders."""
