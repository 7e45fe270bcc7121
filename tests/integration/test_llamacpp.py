"""LlamaCppModel on the real bundled SmolLM2 (and Gemma base when pulled): text, counts, cache reuse, label probs.

The helper tests at the end need no model and are not marked integration.
"""

from __future__ import annotations

import math
import os

import pytest
from _bundled import open_bundled

from thrifty.core.errors import ModelError
from thrifty.llm import catalog
from thrifty.llm.base import GenParams, chat_batch

integration = pytest.mark.integration

for _var in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "TRANSFORMERS_OFFLINE"):
    os.environ.setdefault(_var, "1")

LABELS = ["great", "ok", "bad"]
GRADE_SYSTEM = "Grade how well you can answer the question: great, ok or bad. Then answer it."


_load = open_bundled


@pytest.fixture(scope="module")
def smol():
    m = _load("smollm2-135m-instruct")
    yield m
    m.close()


@pytest.fixture(scope="module")
def smol_fresh():
    """Without prefix reuse every output is a pure function of the input (llama.cpp is not batch-invariant)."""
    m = _load("smollm2-135m-instruct", prefix_cache=False)
    yield m
    m.close()


def _q(text: str, system: str | None = None) -> list[dict]:
    head = [{"role": "system", "content": system}] if system else []
    return [*head, {"role": "user", "content": text}]


@integration
def test_render_puts_prefix_right_after_generation_prompt(smol):
    text = smol.render(_q("Hi"), assistant_prefix="Grade:")
    assert text.endswith("<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\nGrade:")


@integration
def test_chat_returns_text_and_counts_match_the_tokenizer(smol):
    msgs = _q("Name a colour.")
    c = smol.chat(msgs, GenParams(max_tokens=8, logprobs=True))
    assert c.text.strip()
    assert c.model == "smollm2-135m-instruct"
    assert c.tokens_in == len(smol._llm.tokenize(smol.render(msgs).encode(), add_bos=False, special=True))
    assert c.tokens_out == len(c.token_logprobs) <= 8
    assert all(lp <= 0 for lp in c.token_logprobs)
    assert c.latency_s > 0
    if c.finish_reason == "length":
        assert c.tokens_out == 8


@integration
def test_greedy_is_deterministic_and_matches_llama_cpp(smol_fresh):
    msgs = _q("Write one sentence about rivers.")
    params = GenParams(max_tokens=24)
    a = smol_fresh.chat(msgs, params)
    b = smol_fresh.chat(msgs, params)
    assert a.text == b.text and a.tokens_out == b.tokens_out
    assert a.cached_tokens == b.cached_tokens == 0
    llm = smol_fresh._llm
    llm.reset()
    ref = llm.create_completion(smol_fresh.render(msgs), max_tokens=24, temperature=0.0, repeat_penalty=1.0)
    assert a.text == ref["choices"][0]["text"]


@integration
def test_repeated_prompt_reuses_all_but_the_last_token(smol):
    msgs = _q("Write one sentence about lakes.")
    a = smol.chat(msgs, GenParams(max_tokens=6))
    b = smol.chat(msgs, GenParams(max_tokens=6))
    assert b.tokens_in == a.tokens_in
    assert b.cached_tokens == b.tokens_in - 1
    assert b.text.strip()


@integration
def test_sampling_is_seeded(smol_fresh):
    msgs = _q("Tell me a word.")
    p = GenParams(max_tokens=12, temperature=1.0, top_p=0.9, seed=7)
    first = smol_fresh.chat(msgs, p).text
    assert smol_fresh.chat(msgs, p).text == first
    others = {smol_fresh.chat(msgs, GenParams(max_tokens=12, temperature=1.0, seed=s)).text for s in range(4)}
    assert len(others) > 1  # different seeds really sample


@integration
def test_stop_strings_cut_the_text(smol_fresh):
    msgs = _q("Count from one to ten in words, separated by commas.")
    full = smol_fresh.chat(msgs, GenParams(max_tokens=40))
    assert len(full.text) > 20, full.text
    stop = full.text[len(full.text) // 2 :][:4]
    at = full.text.find(stop)
    cut = smol_fresh.chat(msgs, GenParams(max_tokens=40, stop=("never-there", stop)))
    assert cut.finish_reason == "stop"
    assert cut.text == full.text[:at]
    assert cut.tokens_out < full.tokens_out


@integration
def test_eos_ends_generation_without_special_text(smol):
    c = smol.chat(_q("Say hello."), GenParams(max_tokens=200))
    assert c.finish_reason == "stop", c.text
    assert "<|im_end|>" not in c.text and c.tokens_out < 200


@integration
def test_label_probs_sum_to_one_and_answer_reuses_the_prefill(smol):
    msgs = _q("What is 2 + 2?", system=GRADE_SYSTEM)
    lp = smol.label_probs(msgs, LABELS, assistant_prefix="Grade:")
    assert set(lp.probs) == set(LABELS)
    assert math.isclose(sum(lp.probs.values()), 1.0, abs_tol=1e-9)
    assert 0 < lp.mass <= 1.0
    assert lp.tokens_in == len(smol.tokenize(smol.render(msgs, "Grade:")))
    best = max(lp.probs, key=lp.probs.get)
    answer = smol.chat(msgs, GenParams(max_tokens=8), assistant_prefix=f"Grade: {best}")
    assert answer.cached_tokens == lp.tokens_in
    assert answer.tokens_in > lp.tokens_in


@integration
def test_label_probs_agree_with_the_greedy_next_token(smol_fresh):
    msgs = _q("What is the capital of France?")
    first = smol_fresh.chat(msgs, GenParams(max_tokens=1, logprobs=True), assistant_prefix="The capital is")
    word = first.text.strip()
    assert word.isalpha(), first.text
    lp = smol_fresh.label_probs(msgs, [word, "zebra"], assistant_prefix="The capital is")
    assert lp.mass >= math.exp(first.token_logprobs[0]) * (1 - 1e-6)
    assert lp.probs[word] > 0.9


@integration
def test_labels_sharing_a_first_token_use_full_strings(smol):
    msgs = _q("How was the film?")
    lp = smol.label_probs(msgs, ["very good", "very bad"], assistant_prefix="It was")
    assert math.isclose(sum(lp.probs.values()), 1.0, abs_tol=1e-9)
    assert 0 < lp.mass < 1
    assert lp.probs["very good"] != lp.probs["very bad"]
    nxt = smol.chat(msgs, GenParams(max_tokens=4), assistant_prefix="It was very good")
    assert nxt.cached_tokens >= lp.tokens_in


@integration
def test_batch_threads_are_serialised_and_match_sequential(smol_fresh):
    reqs = [(_q(f"Give me a fact about the number {i}."), GenParams(max_tokens=10)) for i in range(3)]
    seq = [smol_fresh.chat(m, p).text for m, p in reqs]
    out = chat_batch(smol_fresh, reqs, concurrency=3)
    assert [c.text for c in out] == seq


@integration
def test_hidden_state_is_deterministic_and_label_probs_read_the_same_after_it(smol_fresh):
    import numpy as np

    msgs = _q("What is 2 + 3?", GRADE_SYSTEM)
    before = smol_fresh.label_probs(msgs, LABELS, assistant_prefix="Grade:")
    a = smol_fresh.hidden_state(msgs, assistant_prefix="Grade:")
    b = smol_fresh.hidden_state(msgs, assistant_prefix="Grade:")
    assert a.shape == (smol_fresh._llm.n_embd(),) and a.dtype == np.float64
    assert np.all(np.isfinite(a)) and np.linalg.norm(a) > 0
    assert np.array_equal(a, b)
    assert not np.array_equal(a, smol_fresh.hidden_state(msgs, assistant_prefix="Grade: great"))
    after = smol_fresh.label_probs(msgs, LABELS, assistant_prefix="Grade:")  # embeddings were switched off again
    assert after.probs == before.probs


@integration
def test_token_logprobs_of_its_own_answer_match_the_generation(smol_fresh):
    msgs = _q("Name three colours.")
    gen = smol_fresh.chat(msgs, GenParams(max_tokens=12, logprobs=True))
    scored = smol_fresh.token_logprobs(msgs, gen.text)
    assert len(scored) >= gen.tokens_out - 1  # a trailing EOS is generated but is not part of the text
    assert scored[: len(gen.token_logprobs)] == pytest.approx(gen.token_logprobs[: len(scored)], abs=1e-3)
    assert all(lp <= 0 for lp in scored)
    other = smol_fresh.token_logprobs(msgs, "Zebra quantum sandwich.")
    assert sum(other) / len(other) < sum(scored) / len(scored)  # its own greedy answer is far likelier


@integration
def test_prompt_longer_than_context_is_model_error():
    m = _load("smollm2-135m-instruct", n_ctx=64)
    with pytest.raises(ModelError, match="n_ctx is 64"):
        m.chat(_q("word " * 200))
    m.close()


@integration
def test_plain_format_on_a_chat_model():
    m = _load("smollm2-135m-instruct", chat_format="plain")
    msgs = _q("What is the capital of France?", system="Answer briefly.")
    assert m.render(msgs, "A:") == "Answer briefly.\n\nUser: What is the capital of France?\n\nAssistant:A:"
    c = m.chat(msgs, GenParams(max_tokens=30))
    assert "\nUser:" not in c.text
    m.close()


@integration
def test_gemma_base_uses_plain_completion():
    m = _load("gemma-3-270m", n_ctx=1024)
    assert m.template is None
    c = m.chat(_q("The capital of France is"), GenParams(max_tokens=12))
    assert c.text.strip()
    lp = m.label_probs(_q("Is Paris in France? Answer yes or no."), ["yes", "no"], assistant_prefix="")
    assert math.isclose(sum(lp.probs.values()), 1.0, abs_tol=1e-9)
    m.close()


@integration
def test_factory_loads_bundled_model():
    pytest.importorskip("llama_cpp", reason="llama-cpp-python is not installed")
    if catalog.find("smollm2-135m-instruct") is None:
        pytest.skip("bundled model smollm2-135m-instruct is not pulled")
    from thrifty.llm.factory import load_model
    from thrifty.llm.llamacpp import LlamaCppModel

    m = load_model("smollm2-135m-instruct", n_ctx=512)
    assert isinstance(m, LlamaCppModel) and m.model_id == "smollm2-135m-instruct" and m.n_ctx == 512
    m.close()


# ---- pure helpers (no model needed) ----------------------------------------------------------------------


def test_plain_format_renders_every_role():
    from thrifty.llm.llamacpp import _render_plain

    msgs = [
        {"role": "system", "content": "S"},
        {"role": "user", "content": "U1"},
        {"role": "assistant", "content": "A1"},
        {"role": "user", "content": "U2"},
    ]
    assert _render_plain(msgs) == "S\n\nUser: U1\n\nAssistant: A1\n\nUser: U2\n\nAssistant:"


def test_template_sandbox_supports_hf_conventions():
    from thrifty.llm.llamacpp import _compile_template

    render = _compile_template(
        "{{ bos_token }}{% for m in messages %}{% if m.role == 'tool' %}{{ raise_exception('no tools') }}"
        "{% endif %}[{{ m.role }}]{{ m.content | tojson }}\n{% endfor %}"
        "{% generation %}{% if add_generation_prompt %}[assistant]{% endif %}{% endgeneration %}"
    )
    out = render(messages=[{"role": "user", "content": "héllo"}], add_generation_prompt=True, bos_token="<s>")
    assert out == '<s>[user]"héllo"\n[assistant]'
    with pytest.raises(ModelError, match="no tools"):
        render(messages=[{"role": "tool", "content": "x"}], add_generation_prompt=True, bos_token="")
    with pytest.raises(ModelError, match="does not compile"):
        _compile_template("{% for %}")


def test_sandbox_blocks_unsafe_attribute_access():
    from jinja2.exceptions import SecurityError

    from thrifty.llm.llamacpp import _compile_template

    render = _compile_template("{{ messages.__class__.__mro__ }}")
    with pytest.raises(SecurityError):
        render(messages=[])


def test_pick_greedy_and_nucleus():
    import numpy as np

    from thrifty.llm.llamacpp import _log_softmax, _pick

    logits = np.log(np.array([0.5, 0.3, 0.15, 0.05]))
    assert _pick(logits, GenParams(), None) == 0
    rng = np.random.default_rng(0)
    picks = {_pick(logits, GenParams(temperature=1.0, top_p=0.7), rng) for _ in range(200)}
    assert picks == {0, 1}  # 0.5 + 0.3 reaches 0.7; the tail is cut
    picks = {_pick(logits, GenParams(temperature=1.0), rng) for _ in range(400)}
    assert picks == {0, 1, 2, 3}
    assert np.allclose(np.exp(_log_softmax(logits)), [0.5, 0.3, 0.15, 0.05])


def test_label_variants_and_stop_search():
    from thrifty.llm.llamacpp import _first_stop, _variants

    assert set(_variants("great")) == {"great", " great", "Great", " Great", "GREAT", " GREAT"}
    assert _first_stop("abc STOP def END", ["END", "STOP"]) == 4
    assert _first_stop("abc", ["x"]) == -1


def test_bad_chat_format_and_missing_file(tmp_path):
    from thrifty.core.errors import ConfigError
    from thrifty.llm.llamacpp import LlamaCppModel

    with pytest.raises(ConfigError, match="chat_format"):
        LlamaCppModel(tmp_path / "x.gguf", chat_format="chatml")
    with pytest.raises(ModelError, match="not found"):
        LlamaCppModel(tmp_path / "x.gguf")


@integration
def test_streamed_pieces_join_to_the_reply_and_never_pass_a_stop_string(smol_fresh):
    msgs, params = _q("Count from 1 to 20, separated by commas."), GenParams(max_tokens=40)
    whole = smol_fresh.chat(msgs, params)
    pieces: list[str] = []
    again = smol_fresh.chat(msgs, params, on_text=pieces.append)
    assert "".join(pieces) == again.text == whole.text and len(pieces) > 3
    stop = whole.text[len(whole.text) // 2:][:4]
    cut: list[str] = []
    res = smol_fresh.chat(msgs, GenParams(max_tokens=40, stop=(stop,)), on_text=cut.append)
    assert "".join(cut) == res.text == whole.text[:whole.text.find(stop)] and res.finish_reason == "stop"


@integration
def test_an_answer_after_a_hidden_state_read_evaluates_no_prompt_token_again(smol, smol_fresh):
    """The plain-prompt probe's promise: its features come from the very prefill the answer continues."""
    msgs = _q("Write a Python function that reverses a string.")
    smol.chat(_q("Something else entirely."), GenParams(max_tokens=2))  # the cache holds another prompt
    vec = smol.hidden_state(msgs)
    after = smol.chat(msgs, GenParams(max_tokens=12))
    assert vec.shape == (smol._llm.n_embd(),)
    assert after.cached_tokens == after.tokens_in  # no second prefill, not even of the last token
    cold = smol_fresh.chat(msgs, GenParams(max_tokens=12))  # prefix cache off: a full prefill
    assert cold.cached_tokens == 0 and after.text == cold.text  # same greedy answer
    again = smol.chat(msgs, GenParams(max_tokens=2))  # logits went stale while generating: one token re-read
    assert again.cached_tokens == again.tokens_in - 1
