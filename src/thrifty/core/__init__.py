"""core: types, config, registry, RNG helpers, run store and progress — the floor every room imports."""
