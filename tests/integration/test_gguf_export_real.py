"""GGUF → Hugging Face export on the real SmolLM2 file: the exported model reads the same label distribution as
llama.cpp on the GGUF, the export is reused when current, and a changed source is exported again."""

from __future__ import annotations

import json
import os
import shutil

import pytest
from _bundled import open_bundled

from thrifty.llm.gguf_export import EXPORT_MARKER, export_hf, is_current

NAME = "smollm2-135m-instruct"
MSGS = [{"role": "user", "content": "What is 2+3? Answer with a number."}]


def test_export_matches_llama_cpp_and_is_idempotent(tmp_path):
    gguf_model = open_bundled(NAME)
    pytest.importorskip("transformers")
    src = tmp_path / "src" / f"{NAME}.gguf"
    src.parent.mkdir()
    shutil.copyfile(gguf_model.path, src)
    heard = []
    out, written = export_hf(src, tmp_path / "hf", notify=heard.append)
    assert len(heard) == 1 and "exporting" in heard[0]
    assert written and (out / "model.safetensors").is_file() and (out / "chat_template.jinja").is_file()
    info = json.loads((out / EXPORT_MARKER).read_text())
    assert info["source"] == src.name and info["dtype"] == "float32" and info["architecture"] == "LlamaForCausalLM"
    assert export_hf(src, out, notify=heard.append) == (out, False) and is_current(out, src)
    assert len(heard) == 1  # a current export is reused silently

    from thrifty.llm.hf import HFChatModel

    hf = HFChatModel(out)
    a = hf.label_probs(MSGS, ["great", "ok", "bad"], assistant_prefix="Grade:")
    b = gguf_model.label_probs(MSGS, ["great", "ok", "bad"], assistant_prefix="Grade:")
    assert a.tokens_in == b.tokens_in  # the same chat template and tokenizer
    for label in ("great", "ok", "bad"):  # Q4_1 weights dequantised: close, not bit-equal
        assert a.probs[label] == pytest.approx(b.probs[label], abs=0.05)

    os.utime(src, ns=(1, 1))  # the source changed: the export is stale
    assert not is_current(out, src)


def test_export_refuses_bad_targets(tmp_path):
    from thrifty.core.errors import ConfigError

    fake = tmp_path / "m.gguf"
    fake.write_bytes(b"GGUF")
    with pytest.raises(ConfigError, match="no such GGUF"):
        export_hf(tmp_path / "missing.gguf")
    with pytest.raises(ConfigError, match="dtype"):
        export_hf(fake, dtype="int4")
    (tmp_path / "file").write_text("x")
    with pytest.raises(ConfigError, match="not a directory"):
        export_hf(fake, tmp_path / "file")
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "notes.txt").write_text("mine")
    with pytest.raises(ConfigError, match="not a thrifty export"):
        export_hf(fake, busy)
    assert (busy / "notes.txt").read_text() == "mine"
    shutil.rmtree(busy)
