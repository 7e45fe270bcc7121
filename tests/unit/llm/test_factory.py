"""Model spec parsing and load_model: every spec form, clear errors, overrides, and no heavy imports for fake."""

from __future__ import annotations

import subprocess
import sys

import pytest

from thrifty.core.errors import ConfigError, ModelError
from thrifty.llm import catalog
from thrifty.llm.factory import BACKENDS, SPEC_FORMS, BackendSpec, load_model, parse_spec
from thrifty.llm.fake import FakeChatModel


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ("fake", BackendSpec("fake")),
        (" fake ", BackendSpec("fake")),
        ("llamacpp:/models/x.gguf", BackendSpec("llamacpp", {"path": "/models/x.gguf"})),
        ("llamacpp:weights.bin", BackendSpec("llamacpp", {"path": "weights.bin"})),
        ("models/Qwen.Q4.GGUF", BackendSpec("llamacpp", {"path": "models/Qwen.Q4.GGUF"})),
        (
            "openai:http://127.0.0.1:8080/v1#qwen2.5",
            BackendSpec("openai", {"base_url": "http://127.0.0.1:8080/v1", "model": "qwen2.5"}),
        ),
        (
            "openai:https://api.example.com/v1#org/model-7b",
            BackendSpec("openai", {"base_url": "https://api.example.com/v1", "model": "org/model-7b"}),
        ),
        ("hf:/ckpt/base", BackendSpec("hf", {"model_dir": "/ckpt/base"})),
        (
            "hf:/ckpt/base+/ckpt/lora",
            BackendSpec("hf", {"model_dir": "/ckpt/base", "adapter_dir": "/ckpt/lora"}),
        ),
    ],
)
def test_parse_spec_forms(spec, expected):
    assert parse_spec(spec) == expected


def test_every_catalog_name_is_a_spec():
    assert catalog.CATALOG, "the catalog should list bundled models"
    for name in catalog.CATALOG:
        parsed = parse_spec(name)
        assert parsed.backend == "llamacpp"
        assert parsed.catalog == name
        assert parsed.kwargs == {"model_id": name}


def test_hf_existing_dir_with_plus_is_not_split(tmp_path):
    d = tmp_path / "model+v2"
    d.mkdir()
    assert parse_spec(f"hf:{d}") == BackendSpec("hf", {"model_dir": str(d)})


@pytest.mark.parametrize(
    ("spec", "needle"),
    [
        ("", "empty model spec"),
        ("gpt-17-ultra", "unknown model spec 'gpt-17-ultra'"),
        ("openai:http://127.0.0.1:8000/v1", "openai:BASE_URL#MODEL"),
        ("openai:127.0.0.1:8000#m", "http://"),
        ("openai:http://127.0.0.1:8000/v1#", "openai:BASE_URL#MODEL"),
        ("llamacpp:", "names no GGUF file"),
        ("hf:", "names no model directory"),
        ("hf:/base+", "hf:DIR+ADAPTER_DIR"),
    ],
)
def test_bad_specs_raise_one_line_model_error(spec, needle):
    with pytest.raises(ModelError) as info:
        parse_spec(spec)
    msg = str(info.value)
    assert needle in msg
    assert "\n" not in msg


def test_unknown_spec_lists_forms_and_bundled_names():
    with pytest.raises(ModelError) as info:
        parse_spec("nope")
    assert SPEC_FORMS in str(info.value)
    assert "smollm2-135m-instruct" in str(info.value)


def test_backends_registered():
    assert BACKENDS.names() == ["fake", "hf", "llamacpp", "openai"]


def test_load_fake_echoes_and_takes_overrides():
    m = load_model("fake")
    assert isinstance(m, FakeChatModel)
    assert m.chat([{"role": "user", "content": "ping"}]).text == "ping"
    m = load_model("fake", default="pong", model_id="f2")
    assert m.chat([{"role": "user", "content": "ping"}]).text == "pong"
    assert m.model_id == "f2"


def test_unknown_override_is_config_error():
    with pytest.raises(ConfigError, match="no_such_option"):
        load_model("fake", no_such_option=1)


def test_catalog_model_not_pulled_says_how_to_pull(tmp_path, monkeypatch):
    monkeypatch.setenv("THRIFTY_HOME", str(tmp_path))
    with pytest.raises(ModelError, match="thrifty models pull smollm2-135m-instruct"):
        load_model("smollm2-135m-instruct")


def test_missing_gguf_is_model_error(tmp_path):
    with pytest.raises(ModelError, match="not found"):
        load_model(f"llamacpp:{tmp_path / 'absent.gguf'}")
    with pytest.raises(ModelError, match="not found"):
        load_model(str(tmp_path / "absent.gguf"))


def test_openai_spec_builds_client_without_network():
    m = load_model("openai:http://127.0.0.1:9/v1#tiny", timeout_s=3.0)
    assert type(m).__name__ == "OpenAICompatModel"
    assert (m.base_url, m.model, m.model_id) == ("http://127.0.0.1:9/v1", "tiny", "tiny")


def test_fake_spec_imports_nothing_heavy():
    code = (
        "import sys\n"
        "from thrifty.llm.factory import load_model, parse_spec\n"
        "m = load_model('fake'); m.chat([{'role': 'user', 'content': 'x'}])\n"
        "for s in ('hf:/a+/b', 'llamacpp:/x.gguf', 'smollm2-135m-instruct', 'openai:http://h:1/v1#m'):\n"
        "    parse_spec(s)\n"
        "heavy = ('torch', 'transformers', 'llama_cpp', 'httpx', 'numpy', 'peft')\n"
        "print(','.join(sorted(h for h in heavy if h in sys.modules)))\n"
    )
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert res.stdout.strip() == ""


def test_lazy_model_loads_on_first_call_only():
    from thrifty.llm.factory import LazyChatModel

    lazy = LazyChatModel("fake")
    assert not lazy.loaded and lazy.model_id == "fake"
    out = lazy.chat([{"role": "user", "content": "hello there"}])
    assert lazy.loaded and out.text == "hello there"
    with pytest.raises(ModelError):
        LazyChatModel("definitely-not-a-model")  # malformed spec fails at once, nothing loaded


def test_llamacpp_options_apply_only_to_llamacpp_specs(tmp_path):
    from thrifty.llm.factory import LazyChatModel, load_model

    assert load_model("fake", llamacpp={"n_threads": 1}).model_id == "fake"  # ignored: not a llama.cpp spec
    with pytest.raises(ModelError, match="not found"):  # applied (and accepted) for a GGUF path
        load_model(str(tmp_path / "absent.gguf"), llamacpp={"n_threads": 1, "prefix_cache": False})
    with pytest.raises(ConfigError, match="bad options"):
        load_model(str(tmp_path / "absent.gguf"), llamacpp={"no_such_option": 1})
    calls = []
    lazy = LazyChatModel("anything", loader=lambda spec, **kw: calls.append((spec, kw)) or load_model("fake"), x=1)
    assert calls == [] and lazy.chat([{"role": "user", "content": "hi"}]).text == "hi"
    assert calls == [("anything", {"x": 1})]
