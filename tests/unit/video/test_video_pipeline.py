"""End to end on a tiny untrained model: one compression pass per video, every allocation within its budget,
tokens counted by kind; the backends' protocols (the Qwen-VL backend: test_video_qwen_vl.py)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from thrifty.core.errors import ConfigError
from thrifty.video.adapter import CompressorBackend, DecoderBackend, TinyBackend
from thrifty.video.compressor import CompressorConfig, TinyCompressor
from thrifty.video.decoder import DecoderConfig, TinyDecoder
from thrifty.video.pipeline import AllocSpec, answer_needle
from thrifty.video.qa_vocab import AnswerVocab, WordVocab
from thrifty.video.synth import make_video

M = 8


def _backend() -> TinyBackend:
    words, answers = WordVocab(), AnswerVocab()
    comp = TinyCompressor(CompressorConfig(d_model=16, n_layers=1, n_heads=2, n_memory=M, channels=4), words)
    dec = TinyDecoder(DecoderConfig(d_model=16, n_layers=1, n_heads=2, d_memory=16, n_slots=M,
                                    n_answers=answers.size), words)
    return TinyBackend(comp, dec, answers, chunk=5)


class Counting(TinyBackend):
    calls = 0

    def compress(self, frames, plan, question):
        Counting.calls += 1
        return super().compress(frames, plan, question)


def test_pipeline_respects_every_budget_and_compresses_once():
    tiny = _backend()
    backend = Counting(tiny.compressor, tiny.decoder, tiny.answers, chunk=5)
    assert isinstance(backend, CompressorBackend) and isinstance(backend, DecoderBackend)
    video = make_video(3, "order", 128)  # 16 segments, chunked by 5 inside the backend
    specs = [AllocSpec(f"{r}@{b}", r, b, o) for b in (0.125, 0.5, 1.0)
             for r, o in (("ata", {}), ("ata", {"preset": "fixed"}), ("uniform", {}), ("topk_no_anchor", {}),
                          ("oracle", {}), ("random", {}))]
    comp, results = answer_needle(video, backend, backend, specs, k_min=1)
    assert Counting.calls == 1
    assert comp.memory.shape == (16, M, 16) and comp.relevance.shape == (16,)
    for r in results:
        assert r.budget == round(r.spec.per_frame * 128)
        assert r.k.shape == (16,) and r.k.max() <= M and r.k.min() >= 0
        assert r.tokens.visual == int(r.k.sum()) <= r.budget, r.spec.label
        assert r.tokens.timestamp == int((r.k > 0).sum())  # one token per kept segment's timestamp
        assert r.tokens.text == len(WordVocab().encode(video.question)) + 2
        assert r.answer in video.choices


def test_truncating_in_the_pipeline_equals_a_short_compression():
    backend = _backend()
    video = make_video(5, "attribute", 64)
    comp, _ = answer_needle(video, backend, backend, [AllocSpec("u", "uniform", 1.0)])
    backend.compressor.eval()
    from thrifty.video.compressor import segment_frames

    segs = segment_frames(video.frames, video.plan.segments, 8)
    query = torch.tensor([WordVocab().encode_padded(video.question, 16)]).expand(segs.shape[0], -1)
    with torch.no_grad():
        short = backend.compressor(segs, query, n_memory=3)
    torch.testing.assert_close(comp.memory[:, :3], short.memory, atol=1e-6, rtol=0)
    np.testing.assert_allclose(comp.relevance, torch.sigmoid(short.relevance_logit).double().numpy(), atol=1e-6)


def test_bad_specs_are_one_line_errors():
    backend = _backend()
    video = make_video(0, "attribute", 64)
    with pytest.raises(ConfigError, match="at least one"):
        answer_needle(video, backend, backend, [])
    with pytest.raises(ConfigError, match="positive"):
        answer_needle(video, backend, backend, [AllocSpec("x", "uniform", 0.0)])


def test_truncation_modes_feed_the_decoder_the_chosen_states():
    tiny = _backend()
    memory = torch.randn(3, M, 16, generator=torch.Generator().manual_seed(0))
    k = np.array([2, 0, 5])
    for mode in ("head", "tail", "random", "merge"):
        b = TinyBackend(tiny.compressor, tiny.decoder, tiny.answers, truncation=mode, seed=1)
        kept = b._kept(memory, k)
        assert kept.shape == (3, 5, 16)
        if mode == "head":
            assert torch.equal(kept, memory[:, :5])
        if mode == "tail":
            assert torch.equal(kept[0, :2], memory[0, -2:]) and torch.equal(kept[2], memory[2, -5:])
        if mode != "head":
            assert not kept[0, 2:].any() and not kept[1].any()  # past each segment's k: padding the decoder skips
    video = make_video(4, "attribute", 64)
    tail = TinyBackend(tiny.compressor, tiny.decoder, tiny.answers, truncation="tail")
    _, res = answer_needle(video, tail, tail, [AllocSpec("u", "uniform", 0.25)], k_min=1)
    assert res[0].answer in video.choices
    with pytest.raises(ConfigError, match="unknown truncation"):
        TinyBackend(tiny.compressor, tiny.decoder, truncation="best")
