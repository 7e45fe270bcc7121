"""The tiny compressor and decoder: head truncation is exact (causality), the relevance probe cannot see the memory
tokens, shapes, and the decoder drops zero-token segments."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from thrifty.core.errors import ConfigError
from thrifty.video.compressor import CompressorConfig, TinyCompressor, segment_frames
from thrifty.video.decoder import DecoderConfig, DecoderInput, TinyDecoder, restrict
from thrifty.video.qa_vocab import AnswerVocab, WordVocab, segment_answers, timestamp_bins
from thrifty.video.synth import make_video

CFG = CompressorConfig(d_model=32, n_layers=2, n_heads=2, n_memory=8, channels=4)


def _inputs(seed: int = 0, task: str = "attribute"):
    v = make_video(seed, task, 32)
    frames = segment_frames(v.frames, v.plan.segments, CFG.frames)
    query = torch.tensor([WordVocab().encode_padded(v.question, CFG.query_len)]).expand(frames.shape[0], -1)
    return v, frames, query


def _model(seed: int = 0) -> TinyCompressor:
    return TinyCompressor(CFG, WordVocab(), torch.Generator().manual_seed(seed)).eval()


@settings(max_examples=8, deadline=None)
@given(k=st.integers(0, CFG.n_memory), seed=st.integers(0, 50))
def test_first_k_memory_tokens_equal_a_run_with_only_k_appended(k, seed):
    model = _model(seed)
    _, frames, query = _inputs(seed)
    with torch.no_grad():
        full = model(frames, query)
        short = model(frames, query, n_memory=k)
    assert full.memory.shape == (frames.shape[0], CFG.n_memory, CFG.d_model)
    assert short.memory.shape == (frames.shape[0], k, CFG.d_model)
    torch.testing.assert_close(short.memory, full.memory[:, :k], atol=1e-6, rtol=0)
    torch.testing.assert_close(short.relevance_logit, full.relevance_logit, atol=1e-6, rtol=0)


def test_relevance_cannot_see_the_memory_tokens_but_memory_sees_the_query():
    model = _model()
    _, frames, query = _inputs()
    with torch.no_grad():
        before = model(frames, query)
        model.memory.add_(torch.randn(model.memory.shape, generator=torch.Generator().manual_seed(3)))
        after = model(frames, query)
        other = model(frames, torch.tensor([WordVocab().encode_padded("Is there a red cross?", CFG.query_len)])
                      .expand_as(query))
    torch.testing.assert_close(after.relevance_logit, before.relevance_logit, atol=0, rtol=0)
    assert not torch.allclose(after.memory, before.memory)
    assert not torch.allclose(other.memory, after.memory)  # query-conditioned
    assert ((before.relevance > 0) & (before.relevance < 1)).all()


def test_padding_in_the_query_is_ignored():
    model = _model()
    _, frames, _ = _inputs()
    words = WordVocab()
    q = torch.tensor([words.encode_padded("What colour is the star?", CFG.query_len)])
    with torch.no_grad():
        a = model(frames[:1], q)
        q2 = q.clone()
        q2[0, 0] = words.id("star")  # a pad slot gets a real word: the output must change
        b = model(frames[:1], q2)
    assert q[0, 0] == words.pad and not torch.allclose(a.memory, b.memory)


def test_bad_shapes_are_one_line_errors():
    model = _model()
    _, frames, query = _inputs()
    with pytest.raises(ConfigError, match="n_memory"):
        model(frames, query, n_memory=CFG.n_memory + 1)
    with pytest.raises(ConfigError, match="8 frames"):
        model(frames[:, :4], query)
    with pytest.raises(ConfigError, match="left-padded"):
        model(frames, query[:, :3])


def test_segment_frames_repeats_the_last_frame():
    frames = np.arange(5 * 2 * 2 * 3, dtype=np.uint8).reshape(5, 2, 2, 3)
    out = segment_frames(frames, [np.array([0, 1, 2]), np.array([3, 4])], 4)
    assert out.shape == (2, 4, 2, 2, 3)
    assert torch.equal(out[1, 2], torch.from_numpy(frames[4])) and torch.equal(out[1, 3], torch.from_numpy(frames[4]))


def test_decoder_reads_only_kept_tokens_and_answers_among_the_choices():
    words, answers = WordVocab(), AnswerVocab()
    dec = TinyDecoder(DecoderConfig(d_model=32, n_layers=1, n_heads=2, d_memory=32, n_slots=8,
                                    n_answers=answers.size), words).eval()
    mem = torch.randn(3, 8, 32, generator=torch.Generator().manual_seed(0))
    q = torch.tensor(words.encode("What colour is the star?"))
    x = DecoderInput(mem, torch.tensor([2, 0, 5]), torch.tensor([0, 5, 10]), q)
    assert dec.sequence(x).shape[0] == 1 + (1 + 2) + (1 + 5) + q.numel() + 1  # segment 2 dropped with its timestamp
    changed = DecoderInput(mem.clone(), x.k, x.time_bins, q)
    changed.memory[0, 2:] += 5.0  # beyond the kept head of segment 0
    changed.memory[1] += 5.0  # a dropped segment
    with torch.no_grad():
        torch.testing.assert_close(dec([x]), dec([changed]))
        v = make_video(0, "presence", 64)
        logits = restrict(dec([x, x]), [answers.allowed(v)] * 2)
    assert set(logits.argmax(-1).tolist()) <= set(answers.allowed(v))
    assert answers.text(v, answers.label(v)) == v.answer


def test_vocabularies_name_their_tokens():
    words = WordVocab()
    assert words.encode("Is there a red cross?") == [words.id(w) for w in ("is", "there", "a", "red", "cross")]
    assert words.encode("zebra") == [words.id("<unk>")]
    assert timestamp_bins([2.0, 16.0, 31.9], 32.0, 4) == [0, 2, 3]
    for task in ("attribute", "presence", "timing", "order", "counting", "global"):
        v = make_video(1, task, 64)
        assert answers_ok(v)


def answers_ok(v) -> bool:
    answers = AnswerVocab()
    return answers.label(v) in answers.allowed(v) and len(answers.allowed(v)) == len(v.choices)


def test_segment_answers_ask_the_question_of_each_segment_alone():
    answers = AnswerVocab()
    for seed in range(4):
        v = make_video(seed, "attribute", 64)
        names = [answers.names[c] for c in segment_answers(v)]
        assert names == [v.answer if e else "none" for e in v.evidence]
        c = make_video(seed, "counting", 96)
        counts = [int(answers.names[k]) for k in segment_answers(c)]
        assert sum(counts) >= int(c.answer) and all(n == 0 for n, e in zip(counts, c.evidence, strict=True) if not e)
        g = make_video(seed, "global", 64)
        assert set(answers.names[k] for k in segment_answers(g)) <= {name for name, _, _ in g.background}
