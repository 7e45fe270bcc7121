"""Progress: plain periodic lines off a terminal, silence when disabled, counts always kept."""

from __future__ import annotations

import io

import pytest

from thrifty.core.progress import Progress


def test_plain_lines_when_not_a_tty():
    buf = io.StringIO()
    with Progress(3, "collect m", stream=buf, every_s=0.0) as bar:
        for _ in range(3):
            bar.advance(note="5 tok")
    lines = buf.getvalue().splitlines()
    assert lines[0].startswith("collect m: 1/3") and lines[0].endswith("— 5 tok")
    assert lines[-1].startswith("collect m: 3/3")
    assert bar.done == 3


def test_disabled_prints_nothing_but_counts(monkeypatch):
    monkeypatch.setenv("THRIFTY_PROGRESS", "0")
    buf = io.StringIO()
    with Progress(2, "x", stream=buf, every_s=0.0) as bar:
        bar.advance(2)
    assert buf.getvalue() == "" and bar.done == 2


def test_rate_limited_lines():
    buf = io.StringIO()
    with Progress(100, "y", stream=buf, every_s=3600.0) as bar:
        for _ in range(100):
            bar.advance()
    assert len(buf.getvalue().splitlines()) == 1  # only the final line


def test_a_resumed_count_gives_an_eta_from_this_run_only(monkeypatch):
    import thrifty.core.progress as progress_module

    class Clock:  # the module's own clock: 100 s at the start, 110 s afterwards
        now = 100.0

        @classmethod
        def monotonic(cls):
            return cls.now

    monkeypatch.setattr(progress_module, "time", Clock)
    buf = io.StringIO()
    bar = Progress(100, "dlm sft", stream=buf, every_s=3600.0, start=40).open()
    Clock.now = 110.0
    bar.advance(10, note="test reward 0.500", force=True)  # 10 steps in 10 s: the 50 left take 50 s
    assert buf.getvalue() == "dlm sft: 50/100 (10s, eta 50s) — test reward 0.500\n"


def test_forced_lines_and_one_final_line():
    buf = io.StringIO()
    bar = Progress(4, "video train", stream=buf, every_s=3600.0).open()
    bar.advance()
    bar.advance(note="stage 1: auroc 0.700", force=True)
    bar.advance()
    bar.advance(note="stage 2: auroc 0.800", force=True)
    bar.close()
    bar.close()  # closing twice writes nothing more; the final line is not the forced one repeated
    lines = buf.getvalue().splitlines()
    assert [ln.split(" (")[0] for ln in lines] == ["video train: 2/4", "video train: 4/4"]
    assert lines[-1].endswith("— stage 2: auroc 0.800") and "eta" in lines[0]


def test_dlm_training_reports_each_evaluation_with_an_eta(tmp_path, monkeypatch, capsys):
    pytest.importorskip("torch")
    from thrifty.dlm.sft import DlmSFTConfig, train_sft

    monkeypatch.setenv("THRIFTY_PROGRESS", "1")
    cfg = DlmSFTConfig(run_dir=str(tmp_path), steps=4, eval_every=2, checkpoint_every=4, d_model=16, n_layers=1,
                       n_heads=2, d_ff=32, n_train=20, n_eval=2, batch_size=4)
    train_sft(cfg)
    lines = [ln for ln in capsys.readouterr().err.splitlines() if ln.startswith("dlm sft")]
    assert [ln.split(" (")[0] for ln in lines] == ["dlm sft sudoku4: 2/4", "dlm sft sudoku4: 4/4"]
    assert "eta" in lines[0] and "test reward" in lines[0] and "solved" in lines[-1]
    log = (tmp_path / "metrics.jsonl").read_text().splitlines()
    assert len(log) == 4  # the metrics log is what it was: one line per step
