"""`thrifty video compress` end to end on real encoded needle videos (written by `video synth --format`): the
labelled uniform fallback, a tiny trained run's relevance and answer, free-text queries, and one-line errors for
unreadable files that leave them untouched; needle questions parse back to their type and choices."""

from __future__ import annotations

import json

import numpy as np
import pytest

from thrifty.cli.main import main
from thrifty.video.encode import write_video
from thrifty.video.questions import parse_question
from thrifty.video.synth import TASKS, make_video

av = pytest.importorskip("av")

TINY = dict(d_model=16, n_layers=1, n_heads=2, decoder_layers=1, n_memory=4, channels=4, batch_size=2,
            caption_steps=1, stage1_steps=1, stage2_steps=1, stage3_steps=1, stage1_lengths=(48,),
            stage2_lengths=(48,), stage3_lengths=(48,), eval_every=100, n_eval=2, eval_length=48,
            checkpoint_every=100, warmup=1)


@pytest.fixture(scope="module")
def synth_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("needles")
    assert main(["video", "synth", "--n", "2", "--tasks", "attribute,presence", "--lengths", "128", "--seed", "5",
                 "--out", str(out), "--format", "mp4", "--json"]) == 0
    rows = [json.loads(x) for x in (out / "summary.jsonl").read_text().splitlines()]
    return out, rows


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    from thrifty.video.train import TempoTrainConfig, train_tempo

    run = tmp_path_factory.mktemp("tempo_run")
    train_tempo(TempoTrainConfig(run_dir=str(run), **TINY), progress=False)
    return run


def _compress(capsys, *args) -> dict:
    assert main(["video", "compress", *map(str, args), "--json"]) == 0
    return json.loads(capsys.readouterr().out)


def test_synth_writes_real_videos_with_their_questions(synth_dir):
    out, rows = synth_dir
    assert [r["file"] for r in rows] == ["needle_000.mp4", "needle_001.mp4"]
    with av.open(str(out / rows[0]["file"])) as container:
        stream = container.streams.video[0]
        assert stream.codec_context.name == "h264" and sum(1 for _ in container.decode(stream)) == 128
    assert not list(out.glob(".*.part"))  # written beside, then renamed


def test_fallback_scores_are_uniform_and_labelled(synth_dir, capsys):
    out, rows = synth_dir
    rep = _compress(capsys, out / rows[0]["file"], "--query", "what happens here?", "--budget", "100")
    n = rows[0]["segments"]
    assert len(rep["segments"]) == n == 16 and rep["video"]["frames"] == 128 and rep["video"]["duration_s"] == 64.0
    assert rep["scores"]["fallback"] and "query-agnostic fallback" in rep["scores"]["source"]
    assert {s["score"] for s in rep["segments"]} == {0.5}
    assert [s["tokens"] for s in rep["segments"]] == [6] * 16  # ATA flat branch: ⌊100 / 16⌋ each
    assert rep["allocation"]["branch"] == "flat" and rep["allocation"]["m_max"] == 128
    assert [s["timestamp_s"] for s in rep["segments"]] == [2.0 + 4 * i for i in range(16)]
    assert rep["segments"][1]["from_s"] == 4.0 and rep["segments"][1]["to_s"] == 7.5
    assert rep["segments"][1]["frames"] == [8, 15] and rep["segments"][1]["timestamp"] == "<6.0 seconds>"
    assert rep["tokens"] | {"per_frame": None, "text_unit": None} == {
        "visual": 96, "timestamp": 96, "text": 3, "total": 195, "timestamp_tokens_each": 6, "per_frame": None,
        "text_unit": None}
    assert rep["answer"]["text"] is None


def test_rules_presets_and_sampling_flags_reach_the_allocation(synth_dir, capsys):
    out, rows = synth_dir
    path = out / rows[0]["file"]
    rep = _compress(capsys, path, "--query", "q", "--budget", "100", "--preset", "fixed", "--fps", "1")
    assert rep["sampling"]["sampled_frames"] == 64 and len(rep["segments"]) == 8
    assert rep["allocation"]["options"] == {"preset": "fixed"}
    assert rep["tokens"]["visual"] + rep["tokens"]["timestamp"] <= 100  # the fixed preset pays timestamps from B
    rep = _compress(capsys, path, "--query", "q", "--budget", "20", "--rule", "topk_no_anchor", "--max-frames", "32")
    assert len(rep["segments"]) == 4 and sum(s["tokens"] for s in rep["segments"]) <= 20
    assert main(["video", "compress", str(path), "--query", "q", "--budget", "20"]) == 0  # the table
    table = capsys.readouterr().out
    assert "query-agnostic fallback" in table and "<6.0 seconds>" in table and "answer: none" in table


def test_a_trained_run_scores_relevance_and_answers_needle_questions(synth_dir, run_dir, capsys):
    import torch

    from thrifty.video.adapter import Question, TinyBackend
    from thrifty.video.train import load_run

    out, rows = synth_dir
    row = rows[0]
    rep = _compress(capsys, out / row["file"], "--query", row["question"], "--budget", "16", "--run-dir", run_dir)
    assert not rep["scores"]["fallback"] and str(run_dir) in rep["scores"]["source"]
    assert rep["allocation"]["m_max"] == 4 and rep["tokens"]["timestamp_tokens_each"] == 1
    assert rep["answer"]["task"] == "attribute" and rep["answer"]["text"] in rep["answer"]["choices"]
    # the decoded file gives the model what the generator's own frames give it
    video = make_video(row["seed"], row["task"], row["frames"])
    torch.set_num_threads(1)
    _, comp, dec = load_run(run_dir)
    direct = TinyBackend(comp, dec).compress(video.frames, video.plan, Question(row["question"], (), "attribute"))
    np.testing.assert_allclose([s["score"] for s in rep["segments"]], direct.relevance, atol=0.02)
    free = _compress(capsys, out / row["file"], "--query", "Who wins the match?", "--budget", "16", "--run-dir",
                     run_dir)
    assert free["answer"]["text"] is None and "cannot answer free text" in free["answer"]["note"]
    assert "who" in free["query_words_unknown_to_tiny_vocab"]


def _bad(tmp_path, good):
    data = good.read_bytes()
    front = write_video(make_video(0, "presence", 64).frames, tmp_path / "front.mp4", 2.0, faststart=True)
    cut = front.read_bytes()
    front.unlink()
    files = {"text.mp4": b"just some text\n", "zero.mp4": b"", "half.mp4": data[: len(data) // 2],
             "cut.mp4": cut[: len(cut) // 2]}
    for name, content in files.items():
        (tmp_path / name).write_bytes(content)
    container = av.open(str(tmp_path / "noframes.mp4"), mode="w")
    stream = container.add_stream("libx264", rate=2)
    stream.width = stream.height = 32
    container.start_encoding()
    container.close()
    return ["missing.mp4", *files, "noframes.mp4"]


def test_unreadable_files_are_one_line_errors_and_stay_untouched(synth_dir, tmp_path, capsys, monkeypatch):
    monkeypatch.setattr("thrifty.video.decode.PROGRESS_FRAMES", 1)  # progress on: it must not add a line
    out, rows = synth_dir
    for name in _bad(tmp_path, out / rows[0]["file"]):
        path = tmp_path / name
        before = path.read_bytes() if path.exists() else None
        assert main(["video", "compress", str(path), "--query", "q", "--budget", "10"]) == 1, name
        cap = capsys.readouterr()
        assert cap.out == "" and cap.err.startswith("thrifty: error: ") and cap.err.count("\n") == 1, (name, cap.err)
        assert (path.read_bytes() if path.exists() else None) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cut.mp4", "half.mp4", "noframes.mp4", "text.mp4", "zero.mp4"]


@pytest.mark.parametrize(("extra", "needle"), [
    (["--rule", "oracle"], "ground-truth evidence"),
    (["--rule", "best"], "unknown allocator"),
    (["--budget", "0"], "budget"),
    (["--fps", "0"], "fps"),
    (["--fit", "zoom"], None),  # argparse: a usage error, exit 2
])
def test_bad_options_are_one_line_errors(synth_dir, capsys, extra, needle):
    out, rows = synth_dir
    args = ["video", "compress", str(out / rows[0]["file"]), "--query", "q", "--budget", "10", *extra]
    if needle is None:
        with pytest.raises(SystemExit) as exc:
            main(args)
        assert exc.value.code == 2
        return
    assert main(args) == 1
    err = capsys.readouterr().err
    assert needle in err and err.count("\n") == 1


def test_every_needle_question_parses_back_to_its_type_and_choices():
    for i, task in enumerate(TASKS * 3):
        v = make_video(i, task, 64)
        parsed = parse_question(v.question, v.n_frames / v.fps)
        assert parsed is not None and (parsed.task, parsed.choices) == (v.task, v.choices), v.question
    assert parse_question("  what COLOR is the star ", 10).task == "attribute"
    for free in ("What colour is the dog?", "Is there a red star on the left?", "Describe the video.",
                 "Which appears first: the red star or the red star?"):
        assert parse_question(free, 10) is None
