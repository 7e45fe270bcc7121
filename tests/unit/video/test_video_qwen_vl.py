"""The Qwen-VL path on tiny random Qwen2-VL / Qwen2.5-VL models built here (``conftest.save_tiny_qwen``): patch packing equals
transformers' own processor, relevance is the tokenizer's Yes vs No at the last prompt position (unseen by the
memory), memory is causal, and frames → relevance → allocation → assembled context → answer runs on CPU, through
the pipeline and through `thrifty video compress --backend qwen-vl`."""

from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from _tiny_qwen import build_tokenizer

from thrifty.cli.main import main
from thrifty.core.errors import ConfigError
from thrifty.video.adapter import CompressorBackend, DecoderBackend, ExactTimestamps
from thrifty.video.pipeline import AllocSpec, answer_needle, question_of
from thrifty.video.qwen_vision import pack_video, vision_spec
from thrifty.video.qwen_vl import QwenVLBackend, match_choice, yes_no_ids, yes_no_relevance
from thrifty.video.segment import SegmentConfig, plan_segments
from thrifty.video.synth import make_video

M, K_MIN, SIDE = 8, 2, 32  # memory states per segment, anchor size, frame side (a multiple of 8-px patches × 2)
FAMILY_DIRS = {"qwen2_vl": "tiny_qwen_dir", "qwen2_5_vl": "tiny_qwen25_dir"}


def test_packing_matches_transformers_image_processor(tiny_qwen_dir):
    from transformers import AutoConfig
    from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import Qwen2VLImageProcessorPil

    spec = vision_spec(AutoConfig.from_pretrained(tiny_qwen_dir), tiny_qwen_dir)
    hf = Qwen2VLImageProcessorPil.from_pretrained(tiny_qwen_dir)
    assert (spec.patch_size, spec.merge_size, spec.min_pixels, spec.max_pixels) == (8, 2, 256, 4096)
    assert spec.mean == tuple(hf.image_mean) and spec.std == tuple(hf.image_std)
    rng = np.random.default_rng(0)
    for shape in ((48, 80, 3), (50, 90, 3), (20, 20, 3)):  # exact size, resized, grown to min_pixels
        img = rng.integers(0, 256, shape, dtype=np.uint8)
        ref = hf(images=[img], return_tensors="pt")
        rows, grid = pack_video(img[None], spec)
        assert grid == tuple(ref["image_grid_thw"][0].tolist())
        if shape == (48, 80, 3):  # no resize on either side: the layout must agree exactly
            torch.testing.assert_close(rows, ref["pixel_values"].float(), atol=1e-6, rtol=0)
    video = rng.integers(0, 256, (3, 32, 32, 3), dtype=np.uint8)
    rows, grid = pack_video(video, spec)
    assert grid == (2, 4, 4)  # 3 frames → 2 temporal groups, the last frame repeated
    torch.testing.assert_close(rows[16:], pack_video(video[[2, 2]], spec)[0])
    with pytest.raises(ConfigError, match="multiple of 16"):
        pack_video(video, spec, (24, 32))


def test_yes_no_ids_and_relevance_come_from_the_tokenizer():
    tok = build_tokenizer()
    yes, no = yes_no_ids(tok)
    assert [yes] == tok.encode("Yes", add_special_tokens=False) and [no] == tok.encode("No", add_special_tokens=False)
    assert tok.convert_ids_to_tokens([yes, no]) == ["Yes", "No"]
    logits = torch.zeros(2, len(tok))
    logits[0, yes], logits[0, no] = 2.0, -1.0
    logits[1, yes + 1] = 50.0  # another token's logit must not matter
    np.testing.assert_allclose(yes_no_relevance(logits, yes, no), [1 / (1 + np.exp(-3.0)), 0.5])

    class Splits:
        def encode(self, text, add_special_tokens=False):
            return [1, 2] if text == "Yes" else [3]

    with pytest.raises(ConfigError, match="splits 'Yes' into 2 tokens"):
        yes_no_ids(Splits())


def test_backend_reads_its_relevance_at_the_yes_and_no_rows(tiny_qwen_dir):
    b = QwenVLBackend(tiny_qwen_dir, m_max=2, device="cpu", frame_size=SIDE)
    assert (b.yes, b.no) == yes_no_ids(b.tok)
    video = make_video(1, "presence", 32)
    before = b.compress(video.frames, video.plan, question_of(video)).relevance
    assert np.ptp(before) > 0 and not np.allclose(before, 0.5)
    head = b.model.get_output_embeddings().weight
    with torch.no_grad():
        head[b.no] = head[b.yes]  # the two rows the relevance reads are now equal: P(Yes) = P(No)
    after = b.compress(video.frames, video.plan, question_of(video)).relevance
    np.testing.assert_array_equal(after, np.full_like(after, 0.5))


@pytest.mark.parametrize("family", ["qwen2_vl", "qwen2_5_vl"])
def test_relevance_equals_a_plain_forward_and_memory_is_causal(family, request):
    folder = request.getfixturevalue(FAMILY_DIRS[family])
    b = QwenVLBackend(folder, m_max=M, device="cpu", frame_size=SIDE, batch=4)
    assert b.model.config.model_type == family
    video = make_video(2, "attribute", 64)
    plan = plan_segments(64, 128.0, SegmentConfig(fps=0.5))  # 0.5 sampled frames/s: 4 s per temporal patch
    q = question_of(video)
    comp = b.compress(video.frames, plan, q)
    before, after = b._compress_prompt(q)  # the model's ordinary path: ids, pixels, no memory appended
    rows, grid = pack_video(video.frames[plan.segments[3]], b.spec, (SIDE, SIDE))
    ids = torch.tensor([before + [b.video_id] * b.spec.tokens(grid) + after])
    extra = {"second_per_grid_ts": torch.tensor([4.0])} if family == "qwen2_5_vl" else {}  # time in M-RoPE
    with torch.no_grad():
        plain = b.model(input_ids=ids, pixel_values_videos=rows, video_grid_thw=torch.tensor([grid]),
                        mm_token_type_ids=(ids == b.video_id).int() * 2, **extra)
    np.testing.assert_allclose(comp.relevance[3], yes_no_relevance(plain.logits[0, -1], b.yes, b.no), atol=1e-6)
    short = QwenVLBackend(folder, m_max=3, device="cpu", frame_size=SIDE, batch=1,
                          memory=b.memory[:3].float().cpu())  # 3 appended, one segment per pass
    small = short.compress(video.frames, plan, q)
    torch.testing.assert_close(comp.memory[:, :3], small.memory, atol=1e-5, rtol=0)
    np.testing.assert_allclose(comp.relevance, small.relevance, atol=1e-6)


@pytest.mark.parametrize("family", ["qwen2_vl", "qwen2_5_vl"])
def test_tiny_qwen_pipeline_end_to_end(family, request):
    folder = request.getfixturevalue(FAMILY_DIRS[family])
    start = time.perf_counter()
    torch.set_num_threads(1)
    b = QwenVLBackend(folder, m_max=M, device="cpu", frame_size=SIDE, batch=4, max_new_tokens=4)
    assert isinstance(b, CompressorBackend) and isinstance(b, DecoderBackend) and isinstance(b, ExactTimestamps)
    video = make_video(3, "order", 128)  # 16 segments
    specs = [AllocSpec("ata", "ata", 1.0), AllocSpec("ata-fixed", "ata", 0.5, {"preset": "fixed"}),
             AllocSpec("uniform", "uniform", 0.25), AllocSpec("ata-tight", "ata", 0.2),
             AllocSpec("ata-over", "ata", 0.5)]
    comp, results = answer_needle(video, b, b, specs, k_min=K_MIN)
    n = video.plan.n_segments
    assert comp.relevance.shape == (n,) and np.isfinite(comp.relevance).all() and np.ptp(comp.relevance) > 0
    assert comp.memory.shape == (n, M, 32) and torch.isfinite(comp.memory).all()
    stamps = b.timestamp_counts(video.plan)
    assert stamps.min() >= 1
    for r in results:
        assert r.k.shape == (n,) and r.k.max() <= M
        assert r.tokens.visual == int(r.k.sum()) <= r.budget, r.spec.label
        if r.spec.rule == "ata" and not r.spec.options:  # anchors: all keep k_min (the guard's if N·k_min > B)
            assert r.k.min() >= (K_MIN if n * K_MIN <= r.budget else max(1, r.budget // n)) >= 1, r.spec.label
        ctx = b.assemble(comp, r.k, video.plan, question_of(video))
        assert ctx.shape == (r.tokens.total, 32), r.spec.label  # the context is exactly what was accounted
        assert r.tokens.timestamp == int(stamps[r.k > 0].sum()) and r.tokens.text == b.text_tokens(question_of(video))
        assert isinstance(r.answer, str)
    assert results[0].k.max() == M and results[0].k.min() == K_MIN  # linear branch: the extremes get M and k_min
    assert results[4].k.sum() == results[4].budget  # over budget: the protection branch spends B exactly
    assert results[3].budget < n * K_MIN and results[3].k.min() == 1  # the guard lowered k_min, every segment kept
    assert time.perf_counter() - start < 60


def test_replies_are_matched_to_one_option_or_returned_raw():
    assert match_choice(" The RED one.", ("red", "green")) == "red"
    assert match_choice("red or green", ("red", "green")) == "red or green"
    assert match_choice("\x0c?", ("red", "green")) == "?"
    assert match_choice("anything", ()) == "anything"


def test_compress_verb_runs_the_qwen_backend(tiny_qwen_dir, tmp_path, capsys):
    pytest.importorskip("av")
    assert main(["video", "synth", "--n", "1", "--tasks", "attribute", "--lengths", "64", "--out", str(tmp_path),
                 "--format", "mp4", "--json"]) == 0
    row = json.loads(capsys.readouterr().out.splitlines()[0])
    args = ["video", "compress", str(tmp_path / row["file"]), "--query", row["question"], "--budget", "40",
            "--backend", "qwen-vl", "--model-dir", str(tiny_qwen_dir), "--device", "cpu", "--m-max", str(M),
            "--k-min", str(K_MIN)]
    assert main([*args, "--json"]) == 0
    rep = json.loads(capsys.readouterr().out)
    k = np.array([s["tokens"] for s in rep["segments"]])
    assert rep["scores"]["backend"] == "qwen-vl" and k.min() >= K_MIN and k.sum() <= 40
    assert all(np.isfinite(s["score"]) for s in rep["segments"])
    assert rep["tokens"]["timestamp"] == sum(s["timestamp_tokens"] for s in rep["segments"])
    assert isinstance(rep["answer"]["text"], str) and len(rep["answer"]["choices"]) == 6  # the six colours
    assert set(rep["timings_s"]) == {"load", "decode", "compress", "allocate", "answer"}
    assert main(args) == 0 and "seconds: load" in capsys.readouterr().out


def test_one_line_errors(tiny_qwen_dir, tiny_hf_dir, tmp_path, capsys, monkeypatch):
    with pytest.raises(ConfigError, match="no model folder"):
        QwenVLBackend(tmp_path / "missing")
    with pytest.raises(ConfigError, match="'llama' model"):
        QwenVLBackend(tiny_hf_dir, device="cpu")
    with pytest.raises(ConfigError, match="multiple of 16"):
        QwenVLBackend(tiny_qwen_dir, device="cpu", frame_size=40)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(ConfigError, match="no CUDA GPU"):
        QwenVLBackend(tiny_qwen_dir, device="cuda")
    capsys.readouterr()  # transformers' loading bars above
    for extra, needle in ((["--backend", "qwen-vl"], "go together"), (["--model-dir", str(tmp_path)], "go together"),
                          (["--backend", "qwen-vl", "--model-dir", str(tmp_path / "nope")], "no model folder")):
        assert main(["video", "compress", "x.mp4", "--query", "q", "--budget", "8", *extra]) == 1
        err = capsys.readouterr().err
        assert needle in err and err.count("\n") == 1, err


def test_gpu_smoke_script_parses_and_names_a_missing_checkpoint(tmp_path):
    script = Path(__file__).resolve().parents[3] / "bench" / "gpu_tempo_smoke.sh"
    assert subprocess.run(["bash", "-n", str(script)], check=False).returncode == 0
    for args, env in (([], {"QWEN_VL_DIR": str(tmp_path / "absent")}), ([str(tmp_path)], {})):  # no config.json
        res = subprocess.run(["bash", str(script), *args], env={**os.environ, **env}, capture_output=True, text=True,
                             check=False)
        assert res.returncode == 2 and res.stdout == "" and res.stderr.count("\n") == 1, res.stderr
        assert res.stderr.startswith("gpu_tempo_smoke: no Qwen-VL checkpoint at") and str(tmp_path) in res.stderr
