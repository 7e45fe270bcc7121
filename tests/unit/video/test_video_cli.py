"""`thrifty video allocate` and `thrifty video synth` through the CLI: output, files, one-line errors."""

from __future__ import annotations

import json

import numpy as np
import pytest

from thrifty.cli.main import main
from thrifty.video.synth import make_benchmark


def test_allocate_prints_the_golden_case(capsys):
    assert main(["video", "allocate", "--scores", "0,0.5,1,0.25", "--budget", "200"]) == 0
    out = capsys.readouterr().out
    rows = [line.split() for line in out.splitlines()[1:5]]
    assert [int(r[2]) for r in rows] == [4, 56, 110, 30]
    assert "protect branch" in out and "200 of 200" in out and "6.25 tokens/frame" in out  # 200 / 32 frames


def test_allocate_json_with_fixes_and_baselines(capsys):
    assert main(["video", "allocate", "--scores", "0,1", "--budget", "100", "--count-timestamps", "--json"]) == 0
    res = json.loads(capsys.readouterr().out)
    assert res["k"] == [4, 84] and res["tokens"] == {"visual": 88, "timestamp": 12}
    # the fixed preset pays timestamps too, at the size the accounting uses: B' = 100 − 2·10 = 80 → [4, 76]
    assert main(["video", "allocate", "--scores", "0,1", "--budget", "100", "--preset", "fixed",
                 "--timestamp-tokens", "10", "--json"]) == 0
    res = json.loads(capsys.readouterr().out)
    assert res["k"] == [4, 76] and res["tokens"]["timestamp"] == 20
    assert main(["video", "allocate", "--scores", "0.1,0.9,0.5", "--budget", "200", "--rule", "topk_no_anchor",
                 "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["k"] == [0, 128, 72]
    assert main(["video", "allocate", "--scores", "0.1,0.9,0.5,0.2", "--budget", "8192", "--rule", "oracle",
                 "--relevance", "0,1,0,0", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["k"] == [4, 128, 4, 4]
    args = ["video", "allocate", "--scores", "0.1,0.9,0.5,0.2", "--budget", "300", "--rule", "random", "--json"]
    assert main([*args, "--seed", "1"]) == 0
    first = json.loads(capsys.readouterr().out)["k"]
    assert main([*args, "--seed", "1"]) == 0 and json.loads(capsys.readouterr().out)["k"] == first


@pytest.mark.parametrize(("extra", "needle"), [
    (["--scores", "0.1,x", "--budget", "10"], "comma-separated numbers"),
    (["--scores", "0.1,0.2", "--budget", "0"], "budget"),
    (["--scores", "0.1,0.2", "--budget", "10", "--rule", "best"], "unknown allocator"),
    (["--scores", "0.1,0.2", "--budget", "10", "--rule", "oracle"], "relevance"),
    (["--scores", "0.1,0.2", "--budget", "10", "--rule", "uniform", "--preset", "fixed"], "takes no option"),
    (["--scores", "0.1,0.2,0.3", "--budget", "2", "--overflow", "raise"], "need at least 3 tokens"),
])
def test_allocate_errors_are_one_line(extra, needle, capsys):
    assert main(["video", "allocate", *extra]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("thrifty: error:") and "\n" not in err and needle in err


def test_synth_table_json_and_files(tmp_path, capsys):
    assert main(["video", "synth", "--n", "3", "--seed", "2", "--lengths", "64"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert len(out) == 3 and "attribute" in out[0] and "global" not in out[0] and "8 segments" in out[0]
    assert main(["video", "synth", "--n", "2", "--seed", "2", "--lengths", "64", "--tasks", "global,order",
                 "--json", "--out", str(tmp_path)]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()[:2]]
    want = make_benchmark(2, 2, (64,), ("global", "order"))
    assert [r["task"] for r in rows] == ["global", "order"] and rows[1]["answer"] == want[1].answer
    assert rows[0]["evidence_segments"] == list(range(8))
    saved = np.load(tmp_path / "needle_001.npz")
    assert np.array_equal(saved["frames"], want[1].frames) and np.array_equal(saved["evidence"], want[1].evidence)
    assert len((tmp_path / "summary.jsonl").read_text().splitlines()) == 2


@pytest.mark.parametrize(("extra", "needle"), [
    (["--tasks", "digits"], "unknown task"), (["--n", "0"], "--n"), (["--lengths", "8"], "at least 16"),
    (["--lengths", "a,b"], "comma-separated"),
])
def test_synth_errors_are_one_line(extra, needle, capsys):
    assert main(["video", "synth", *extra]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("thrifty: error:") and "\n" not in err and needle in err
