"""Tests of the local Hugging Face backend on a tiny random-init Llama-style model (built in conftest)."""

from __future__ import annotations

import subprocess
import sys

import pytest

from thrifty.core.errors import ConfigError, ModelError
from thrifty.llm.base import ChatModel, GenParams
from thrifty.llm.hf import HFChatModel, label_token_ids, label_variants

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

MSGS = [{"role": "system", "content": "grade the answer"}, {"role": "user", "content": "the cat sat on the mat"}]
LABELS = ["great", "ok", "bad"]


@pytest.fixture(scope="module")
def tiny(tiny_hf_dir) -> HFChatModel:
    return HFChatModel(tiny_hf_dir)


@pytest.fixture(scope="module")
def raw(tiny_hf_dir):
    """The same weights loaded directly through transformers, for brute-force comparisons."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_hf_dir, local_files_only=True)
    return tok, AutoModelForCausalLM.from_pretrained(tiny_hf_dir, local_files_only=True).eval()


def _raw_prompt(tok, messages, prefix=""):
    text = tok.apply_chat_template(messages, tokenize=False, add_generation_prompt=True) + prefix
    return tok.encode(text, add_special_tokens=False)


def _raw_logits(model, ids):
    with torch.no_grad():
        return model(input_ids=torch.tensor([ids])).logits[0, -1].float()


def test_greedy_chat_is_deterministic_and_matches_uncached_argmax(tiny, raw):
    tok, model = raw
    assert isinstance(tiny, ChatModel)
    params = GenParams(max_tokens=8, temperature=0.0)
    a, b = tiny.chat(MSGS, params), tiny.chat(MSGS, params)
    assert a.text == b.text and a.tokens_out == b.tokens_out
    ids = _raw_prompt(tok, MSGS)
    assert a.tokens_in == len(ids)
    out: list[int] = []
    for _ in range(params.max_tokens):  # full re-forward each step: no KV cache involved
        nxt = int(torch.argmax(_raw_logits(model, ids + out)))
        out.append(nxt)
        if nxt == tok.eos_token_id:
            out.pop()
            break
    assert a.text == tok.decode(out, skip_special_tokens=True)
    assert a.tokens_out == min(params.max_tokens, len(out) + (a.finish_reason == "stop"))


def test_seeded_sampling_reproducible_and_seed_sensitive(tiny):
    p = GenParams(max_tokens=10, temperature=2.0, seed=11, logprobs=True)
    a, b = tiny.chat(MSGS, p), tiny.chat(MSGS, p)
    assert a.text == b.text and a.token_logprobs == b.token_logprobs
    others = {tiny.chat(MSGS, GenParams(max_tokens=10, temperature=2.0, seed=s)).text for s in range(12, 16)}
    assert others - {a.text}  # some other seed draws a different reply
    top = tiny.chat(MSGS, GenParams(max_tokens=10, temperature=2.0, top_p=1e-6, seed=3))
    greedy = tiny.chat(MSGS, GenParams(max_tokens=10))
    assert top.text == greedy.text  # a vanishing top-p keeps only the argmax token


def test_token_logprobs_match_manual_log_softmax(tiny, raw):
    tok, model = raw
    done = tiny.chat(MSGS, GenParams(max_tokens=1, logprobs=True))
    expected = torch.log_softmax(_raw_logits(model, _raw_prompt(tok, MSGS)), -1).max()
    assert done.token_logprobs == pytest.approx([float(expected)], abs=1e-5)
    assert done.tokens_out == 1 and done.finish_reason in ("length", "stop")


def test_stop_strings_and_length_finish(tiny):
    full = tiny.chat(MSGS, GenParams(max_tokens=6))
    words = full.text.split()
    assert full.finish_reason == "length" and full.tokens_out == 6 and len(words) >= 3
    cut = tiny.chat(MSGS, GenParams(max_tokens=6, stop=(words[2],)))
    assert cut.finish_reason == "stop"
    assert cut.text == full.text[: full.text.index(words[2])]
    assert cut.tokens_out <= 3


def test_label_probs_equal_manual_softmax(tiny, raw):
    tok, model = raw
    lp = tiny.label_probs(MSGS, LABELS, assistant_prefix="great ok")
    assert lp.method == "logprobs" and lp.parsed
    assert sum(lp.probs.values()) == pytest.approx(1.0)
    ids = _raw_prompt(tok, MSGS, "great ok")
    assert lp.tokens_in == len(ids)
    probs = torch.softmax(_raw_logits(model, ids), -1)
    # word-level vocab: "great" and "Great" are tokens; "GREAT" is [UNK], shared by all labels, so it is dropped
    variants = {"great": ["great", "Great"], "ok": ["ok", "Ok"], "bad": ["bad", "Bad"]}
    manual = {lab: float(sum(probs[tok.convert_tokens_to_ids(v)] for v in vs)) for lab, vs in variants.items()}
    total = sum(manual.values())
    assert lp.mass == pytest.approx(total, rel=1e-5)
    assert lp.probs == pytest.approx({k: v / total for k, v in manual.items()}, rel=1e-5)


def test_label_token_ids_drop_shared_and_reject_lost(tiny):
    tok = tiny.tokenizer
    unk = tok.convert_tokens_to_ids("[UNK]")
    ids = label_token_ids(tok, LABELS)
    assert all(unk not in v for v in ids.values())
    assert ids["great"] == sorted({tok.convert_tokens_to_ids("great"), tok.convert_tokens_to_ids("Great")})
    with pytest.raises(ModelError, match="no first token"):
        label_token_ids(tok, ["great", "zebra"])  # "zebra" is only [UNK]
    with pytest.raises(ConfigError):
        label_token_ids(tok, ["ok", "OK"])
    assert label_variants("ok") == ["ok", " ok", "Ok", " Ok", "OK", " OK"]


def test_prefix_is_in_prompt_not_in_text(tiny, raw):
    tok, model = raw
    plain = tiny.chat(MSGS, GenParams(max_tokens=1))
    pre = tiny.chat(MSGS, GenParams(max_tokens=1), assistant_prefix="bad")
    assert pre.tokens_in == plain.tokens_in + 1
    nxt = int(torch.argmax(_raw_logits(model, _raw_prompt(tok, MSGS, "bad"))))
    assert pre.text == tok.decode([nxt], skip_special_tokens=True)


def test_hidden_state_matches_forward(tiny, raw):
    tok, model = raw
    ids = _raw_prompt(tok, MSGS)
    with torch.no_grad():
        states = model(input_ids=torch.tensor([ids]), output_hidden_states=True).hidden_states
    last = tiny.hidden_state(MSGS)
    assert last.shape == (32,)
    assert last == pytest.approx(states[-1][0, -1].numpy(), abs=1e-5)
    assert tiny.hidden_state(MSGS, layer=1) == pytest.approx(states[1][0, -1].numpy(), abs=1e-5)
    with pytest.raises(ConfigError, match="layer 9"):
        tiny.hidden_state(MSGS, layer=9)


def test_adapter_changes_outputs_and_leaves_base_weights(tiny_hf_dir, tiny_lora_dir, tiny):
    from safetensors.torch import load_file

    tuned = HFChatModel(tiny_hf_dir, adapter_dir=tiny_lora_dir)
    assert tuned.model_id == f"{tiny_hf_dir.name}+{tiny_lora_dir.name}"
    base_lp = tiny.next_token_logprobs(MSGS)
    tuned_lp = tuned.next_token_logprobs(MSGS)
    assert float((base_lp - tuned_lp).abs().max()) > 1e-3
    with tuned.model.disable_adapter():
        assert tuned.next_token_logprobs(MSGS) == pytest.approx(base_lp.numpy(), abs=1e-5)
    saved = load_file(str(tiny_hf_dir / "model.safetensors"))
    live = {n.replace("base_layer.", ""): p for n, p in tuned.model.get_base_model().named_parameters()}
    for name, tensor in saved.items():
        assert torch.equal(live[name], tensor), name


def test_missing_dirs_give_one_line_model_error(tmp_path, tiny_hf_dir):
    with pytest.raises(ModelError) as err:
        HFChatModel(tmp_path / "nope")
    assert "nope" in str(err.value) and "\n" not in str(err.value)
    with pytest.raises(ModelError, match="adapter"):
        HFChatModel(tiny_hf_dir, adapter_dir=tmp_path)
    with pytest.raises(ConfigError):
        HFChatModel(tiny_hf_dir, dtype="int3")


def test_no_chat_template(tiny, monkeypatch):
    monkeypatch.setattr(tiny.tokenizer, "chat_template", None)
    with pytest.raises(ModelError, match="chat template") as err:
        tiny.chat(MSGS)
    assert "\n" not in str(err.value)
    single = [{"role": "user", "content": "the cat"}]
    ids = tiny.prompt_ids(single, assistant_prefix="sat")
    assert ids == tiny.tokenizer.encode("the catsat", add_special_tokens=True)
    assert tiny.chat(single, GenParams(max_tokens=2)).tokens_in == len(tiny.prompt_ids(single))


def test_context_limit(tiny_hf_dir):
    small = HFChatModel(tiny_hf_dir, max_context=18)
    done = small.chat(MSGS, GenParams(max_tokens=50))
    assert done.tokens_in + done.tokens_out <= 18
    with pytest.raises(ModelError, match="context"):
        small.chat([{"role": "user", "content": "one two three four five six seven eight nine ten " * 2}])


def test_import_is_light():
    code = "import sys, thrifty.llm.hf, thrifty.llm.openai_compat; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "False"
