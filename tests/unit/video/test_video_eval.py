"""The allocation evaluation on a tiny untrained model: every (rule, budget) is scored on every video, tokens
used never pass the budget where the rule keeps it, tables and plots come out; the CLI trains and evaluates."""

from __future__ import annotations

import numpy as np
import pytest

from thrifty.cli.main import main
from thrifty.evals.plots import heatmap_plot
from thrifty.video.adapter import TinyBackend
from thrifty.video.ata_eval import (
    RULES,
    accuracy_grid,
    heldout,
    in_budget,
    plots,
    relevance_auroc,
    run_eval,
    tables,
    tokens_per_frame,
)
from thrifty.video.compressor import CompressorConfig, TinyCompressor
from thrifty.video.decoder import DecoderConfig, TinyDecoder
from thrifty.video.qa_vocab import AnswerVocab, WordVocab


def _backend() -> TinyBackend:
    words, answers = WordVocab(), AnswerVocab()
    comp = TinyCompressor(CompressorConfig(d_model=16, n_layers=1, n_heads=2, n_memory=8, channels=4), words)
    dec = TinyDecoder(DecoderConfig(d_model=16, n_layers=1, n_heads=2, d_memory=16, n_slots=8,
                                    n_answers=answers.size), words)
    return TinyBackend(comp, dec, answers)


def test_eval_scores_every_rule_and_budget_and_writes_plots(tmp_path):
    videos = heldout(6, 7, (48,))
    assert [v.task for v in videos] == ["attribute", "presence", "timing", "order", "counting", "global"]
    b = _backend()
    res = run_eval(b, b, videos, (0.0625, 0.25, 1.0))
    assert len(res.rows) == 6 * 3 * len(RULES)
    acc = accuracy_grid(res)
    assert all(0.0 <= a <= 1.0 for a in acc.values())
    assert tokens_per_frame(res, "uniform", 1.0) == pytest.approx(1.0)  # 8 tokens × 6 segments / 48 frames
    assert tokens_per_frame(res, "uniform", 0.0625) == 0.0  # ⌊B/N⌋ = 0: nothing kept
    assert tokens_per_frame(res, "ata", 0.0625) == pytest.approx(0.125)  # faithful guard: one each, over budget
    assert not in_budget(res, 0.0625) and in_budget(res, 0.25)
    fixes = [r for r in res.rows if r["rule"] == "ata+fixes"]
    assert all(r["visual"] <= r["budget"] for r in fixes)
    assert 0.0 <= relevance_auroc(res) <= 1.0 and np.isnan(relevance_auroc(res, "global"))  # global: all evidence
    text = tables(res)
    for needle in ("| ata |", "| oracle |", "AUROC", "Goal gaps", "by question type at 0.0625"):
        assert needle in text
    paths = plots(res, tmp_path)
    assert [p.name for p in paths] == ["accuracy_vs_budget.png", "allocation_ata_0.0625.png",
                                       "allocation_ata_0.25.png", "allocation_ata_1.png"]
    assert all(p.read_bytes()[:4] == b"\x89PNG" for p in paths)


def test_heatmap_plot_checks_its_marks(tmp_path):
    out = heatmap_plot([[1, 2], [3, np.nan]], tmp_path / "h.png", marks=[[True, False], [False, True]])
    assert out.read_bytes()[:4] == b"\x89PNG"
    from thrifty.evals._checks import MetricInputError

    with pytest.raises(MetricInputError):
        heatmap_plot([[1, 2]], tmp_path / "x.png", marks=[[True]])


def test_cli_trains_then_evaluates(tmp_path, capsys):
    run = tmp_path / "run"
    sets = ["d_model=16", "n_layers=1", "n_heads=2", "decoder_layers=1", "n_memory=4", "channels=4",
            "batch_size=2", "stage1_steps=1", "stage2_steps=1", "stage3_steps=1", "stage1_lengths=[48]",
            "stage2_lengths=[48]", "stage3_lengths=[48]", "eval_every=3", "n_eval=2", "eval_length=48"]
    assert main(["video", "train", "--run-dir", str(run), *[x for s in sets for x in ("--set", s)]]) == 0
    assert "at step 3" in capsys.readouterr().out
    assert main(["video", "eval", "--run-dir", str(run), "--n", "2", "--lengths", "48", "--budgets", "0.25,1"]) == 0
    out = capsys.readouterr().out
    assert "| uniform |" in out and (run / "eval" / "accuracy_vs_budget.png").is_file()


def test_cli_eval_errors_are_one_line(tmp_path, capsys):
    assert main(["video", "eval", "--run-dir", str(tmp_path)]) == 1
    assert "no checkpoint" in capsys.readouterr().err
    assert main(["video", "bench", "--run-dir", str(tmp_path), "--budgets", "x"]) == 1
    err = capsys.readouterr().err.strip()
    assert "--budgets" in err and "\n" not in err
