"""Real encoded files: needle videos written as mp4/webm decode back to the generator's frames within codec
tolerance and to its timestamps exactly; frames are sampled at a target fps within [min, max] frames; times come
from the container's pts; non-square frames become the compressor's square; unreadable files are one-line errors."""

from __future__ import annotations

import subprocess
import sys
from fractions import Fraction

import numpy as np
import pytest

from thrifty.core.errors import ConfigError, DataError
from thrifty.video.decode import fit_square, load_video, probe, read_frames, to_rgb
from thrifty.video.encode import upscale, write_video
from thrifty.video.segment import SegmentConfig, sample_indices
from thrifty.video.synth import make_video

av = pytest.importorskip("av")


@pytest.fixture(scope="module")
def needle():
    return make_video(3, "attribute", 256)


@pytest.fixture(scope="module")
def files(needle, tmp_path_factory):
    out = tmp_path_factory.mktemp("encoded")
    return {fmt: write_video(needle.frames, out / f"needle.{fmt}", needle.fps) for fmt in ("mp4", "webm")}


@pytest.mark.parametrize("fmt", ["mp4", "webm"])
def test_lossless_file_gives_back_the_generators_frames_and_timestamps(needle, files, fmt):
    got = load_video(files[fmt], SegmentConfig(), progress=False)  # 2 fps over 128 s: every frame sampled
    assert got.info.n_frames == 256 and got.info.duration_s == 128.0 and got.info.fps == 2.0
    assert (got.info.width, got.info.height, got.info.start_s) == (32, 32, 0.0)
    assert got.info.codec == {"mp4": "h264", "webm": "vp9"}[fmt]
    np.testing.assert_array_equal(got.source, np.arange(256))
    err = np.abs(got.frames.astype(np.int16) - needle.frames.astype(np.int16))
    assert err.max() <= 1 and err.mean() < 0.5  # 4:4:4 at quantiser 0: only RGB↔YUV rounding (measured 0.33)
    assert np.array_equal(got.times, np.arange(256) / 2.0)  # pts exactly
    assert np.array_equal(got.plan.timestamps, needle.plan.timestamps)  # Tempo's t_i, to the bit
    assert got.plan.texts == needle.plan.texts and got.plan.n_segments == needle.plan.n_segments == 32


def test_standard_quality_upscaled_file_resizes_back_within_tolerance(needle, tmp_path):
    path = write_video(needle.frames[:64], tmp_path / "std.mp4", needle.fps, quality="standard", scale=4)
    info = probe(path)
    assert (info.width, info.height, info.n_frames) == (128, 128, 64)
    frames = read_frames(path, info, np.arange(64), size=32, progress=False)
    err = np.abs(frames.astype(np.int16) - needle.frames[:64].astype(np.int16))
    assert frames.shape == (64, 32, 32, 3) and err.mean() < 4.0  # 4:2:0 crf 23, area resize (measured 3.4)


def test_sampling_at_a_target_fps_clipped_to_min_and_max_frames(files):
    path = files["mp4"]
    every = read_frames(path, probe(path), np.arange(256), progress=False)
    one_fps = load_video(path, SegmentConfig(fps=1.0), progress=False)  # round(128 s × 1) = 128 frames
    np.testing.assert_array_equal(one_fps.source, np.round(np.linspace(0, 255, 128)).astype(np.int64))
    assert np.array_equal(one_fps.frames, every[one_fps.source])
    assert np.array_equal(one_fps.times, one_fps.source / 2.0)
    assert one_fps.plan.n_segments == 16 and one_fps.plan.real_fps == 1.0
    # a segment's timestamp: its first frame's pts + half a window at the sampling rate
    np.testing.assert_array_equal(one_fps.plan.timestamps, one_fps.source[::8] / 2.0 + 4.0)
    capped = load_video(path, SegmentConfig(fps=1.0, max_frames=40), progress=False)
    assert capped.plan.n_frames == 40 and capped.source[-1] == 255 and capped.plan.n_segments == 5
    floor = load_video(path, SegmentConfig(fps=0.01, min_frames=12), progress=False)  # round(1.28) → 12
    assert floor.plan.n_frames == 12


def test_more_frames_than_the_file_holds_repeats_frames(needle, tmp_path):
    path = write_video(needle.frames[:16], tmp_path / "short.mp4", needle.fps)
    got = load_video(path, SegmentConfig(min_frames=24), progress=False)  # 8 s at 2 fps = 16 < 24
    np.testing.assert_array_equal(got.source, sample_indices(16, 24))
    assert len(set(got.source.tolist())) == 16 < got.frames.shape[0] == 24
    for row, src in enumerate(got.source):
        assert np.abs(got.frames[row].astype(int) - needle.frames[src]).max() <= 1


def test_times_come_from_the_containers_pts(tmp_path):
    """A variable-frame-rate file: 8 frames 0.5 s apart, then 8 frames 2 s apart."""
    pts = [*range(8), *range(8, 40, 4)]  # time base 1/2 s
    path = tmp_path / "vfr.mp4"
    with av.open(str(path), mode="w") as container:
        stream = container.add_stream("libx264", rate=2)
        stream.width = stream.height = 32
        stream.pix_fmt, stream.codec_context.time_base = "yuv444p", Fraction(1, 2)
        for i, p in enumerate(pts):
            frame = av.VideoFrame.from_ndarray(np.full((32, 32, 3), 16 * i, dtype=np.uint8), format="rgb24")
            frame.pts, frame.time_base = p, Fraction(1, 2)
            container.mux(stream.encode(frame))
        container.mux(stream.encode())
    info = probe(path)
    np.testing.assert_allclose(info.times, np.array(pts) / 2.0, rtol=0, atol=1e-9)
    assert info.n_frames == 16 and info.duration_s == pytest.approx(18.0 + 0.5)  # + the median frame gap
    got = load_video(path, SegmentConfig(fps=16 / 18.5), progress=False)  # every frame once
    assert got.frames[:, 0, 0, 0].tolist() == pytest.approx([16 * i for i in range(16)], abs=2)
    assert got.plan.timestamps[1] == pytest.approx(4.0 + 4 / got.plan.real_fps)  # anchored at the 9th frame's pts


def test_non_square_frames_become_the_compressors_square():
    small = np.random.default_rng(0).integers(0, 256, (16, 32, 3), dtype=np.uint8)
    img = upscale(small[None], 4)[0]  # 64×128 of 4×4 blocks: area averaging gives ``small`` back (exact at
    frame = av.VideoFrame.from_ndarray(img, format="rgb24")  # even factors; swscale blurs odd ones a little)
    pad = to_rgb(frame, 32, "pad")  # 128×64 → 32×16, centred on black
    assert pad.shape == (32, 32, 3) and not pad[:8].any() and not pad[24:].any()
    assert np.abs(pad[8:24].astype(int) - small).max() <= 1
    crop = to_rgb(frame, 32, "crop")  # 128×64 → 64×32, the middle 32 columns kept
    assert crop.shape == (32, 32, 3)
    np.testing.assert_allclose(crop.astype(float), upscale(small[None], 2)[0][:, 16:48].astype(float), atol=1)
    assert to_rgb(frame, 32, "stretch").shape == (32, 32, 3)
    assert to_rgb(frame).shape == (64, 128, 3)
    assert np.array_equal(fit_square(img[:10, :20], 32, "pad")[11:21, 6:26], img[:10, :20])
    assert np.array_equal(fit_square(img, 32, "crop"), img[16:48, 48:80])
    with pytest.raises(ConfigError, match="cannot make"):
        fit_square(img, 32, "pad")
    assert np.array_equal(upscale(img[:2, :2][None], 3)[0, :3, :3], np.broadcast_to(img[0, 0], (3, 3, 3)))


def _bad_files(tmp_path, good):
    data = good.read_bytes()
    (tmp_path / "text.mp4").write_text("not a video, just text\n")
    (tmp_path / "zero.mp4").write_bytes(b"")
    (tmp_path / "half.mp4").write_bytes(data[: len(data) // 2])
    container = av.open(str(tmp_path / "noframes.mp4"), mode="w")
    stream = container.add_stream("libx264", rate=2)
    stream.width = stream.height = 32
    container.start_encoding()
    container.close()
    return {"missing.mp4": "no such file", "text.mp4": "not a readable video", "zero.mp4": "empty file",
            "half.mp4": "not a readable video", "noframes.mp4": "no video stream", ".": "not a file"}


def test_unreadable_files_are_one_line_data_errors(files, tmp_path):
    for name, needle in _bad_files(tmp_path, files["mp4"]).items():
        with pytest.raises(DataError, match=needle) as err:
            load_video(tmp_path / name, progress=False)
        assert "\n" not in str(err.value)


def test_a_file_cut_mid_stream_is_an_error_not_fewer_frames(needle, tmp_path):
    path = write_video(needle.frames, tmp_path / "front.mp4", needle.fps, faststart=True)  # index first: opens
    assert probe(path).n_frames == 256
    data = path.read_bytes()
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(data[: len(data) // 2])
    assert 0 < probe(cut).n_frames < 256  # the index lists them all; only the packets present count
    with pytest.raises(DataError, match=r"ends early|damaged"):
        load_video(cut, progress=False)


def test_av_is_imported_only_when_a_file_is_read():
    code = ("import sys\nfrom thrifty.cli.main import build_parser\nbuild_parser()\n"
            "import thrifty.video.decode, thrifty.video.encode, thrifty.video.compress_file\n"
            "print('av' in sys.modules, 'torch' in sys.modules)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["False", "False"]


def test_without_pyav_the_error_says_how_to_install(monkeypatch, files):
    monkeypatch.setitem(sys.modules, "av", None)
    with pytest.raises(ConfigError, match=r"pip install 'thrifty\[video\]'"):
        probe(files["mp4"])
