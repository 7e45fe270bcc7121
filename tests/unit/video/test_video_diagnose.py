"""The memory diagnostic counts hits on evidence and other segments per question type."""

from __future__ import annotations

import pytest
import torch

from thrifty.core.errors import ConfigError
from thrifty.video.compressor import CompressorConfig, TinyCompressor
from thrifty.video.diagnose import probe_table, segment_answer_accuracy
from thrifty.video.qa_vocab import AnswerVocab, WordVocab, segment_answers
from thrifty.video.synth import make_video


def _compressor(n_answers: int) -> TinyCompressor:
    return TinyCompressor(CompressorConfig(d_model=16, n_layers=1, n_heads=2, n_memory=2, channels=4,
                                           n_answers=n_answers), WordVocab())


def test_a_head_that_always_says_none_is_right_exactly_off_the_evidence():
    answers = AnswerVocab()
    comp = _compressor(answers.size)
    with torch.no_grad():  # a constant head: every segment gets the class "none"
        comp.local_head.weight.zero_()
        comp.local_head.bias.fill_(-10.0)
        comp.local_head.bias[answers.names.index("none")] = 10.0
    videos = [make_video(s, "attribute", 64) for s in range(3)]
    acc = segment_answer_accuracy(comp, videos)["attribute"]
    n_ev = sum(int(v.evidence.sum()) for v in videos)
    assert acc["n_evidence"] == n_ev and acc["n_other"] == 3 * 8 - n_ev
    assert acc["evidence"] == 0.0 and acc["other"] == 1.0  # "none" is the answer exactly off the evidence
    assert all(segment_answers(v)[i] == answers.names.index("none") for v in videos
               for i in range(8) if not v.evidence[i])
    assert "| attribute | 0.000" in probe_table({"attribute": acc}) and comp.training


def test_no_head_is_a_one_line_error():
    with pytest.raises(ConfigError, match="no segment-level answer head"):
        segment_answer_accuracy(_compressor(0), [make_video(0, "attribute", 64)])
