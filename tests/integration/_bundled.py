"""Open a bundled GGUF model for an integration test, or skip cleanly when llama_cpp or the model is absent."""

from __future__ import annotations

import pytest

from thrifty.llm import catalog


def open_bundled(name: str, n_ctx: int = 2048, **kw):
    """A LlamaCppModel on the pulled bundled model ``name`` (1 thread); skips the test if it cannot exist here."""
    pytest.importorskip("llama_cpp", reason="llama-cpp-python is not installed")
    path = catalog.find(name)
    if path is None:
        pytest.skip(f"bundled model {name} is not pulled (thrifty models pull {name})")
    from thrifty.llm.llamacpp import LlamaCppModel

    return LlamaCppModel(path, n_ctx=n_ctx, n_threads=1, model_id=name, **kw)
