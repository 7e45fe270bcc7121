"""Escape probes against HumanEval scoring: completions that try to break out must fail, honest ones pass.

Every probe goes through the public path ``load_task("humaneval...").score(example, text)``. A probe is the
correct solution plus module-level code that asserts its escape did *not* work, so a pass means "confined and
still working"; host-side checks confirm the effect from outside. Probes run once per isolation backend that
works on this machine; where none works, the same tests assert that scoring is refused instead.
"""

from __future__ import annotations

import contextlib
import glob
import os
import socket
import sys
import textwrap
import time
import uuid
from pathlib import Path

import pytest

from thrifty.core.errors import ConfigError
from thrifty.tasks.base import Example
from thrifty.tasks.loader import load_task
from thrifty.tasks.sandbox import OPT_IN_ENV, resolve_backend

TIMEOUT_S = 2
PROMPT = 'def add(a, b):\n    """Return a + b."""\n'
TEST = "def check(candidate):\n    assert candidate(2, 3) == 5\n    assert candidate(-1, 1) == 0\n"
EXAMPLE = Example(
    id="humaneval#Probe/0",
    prompt="complete add",
    meta={"task_id": "Probe/0", "entry_point": "add", "code_prompt": PROMPT, "test": TEST},
)
SOLUTION = "def add(a, b):\n    return a + b\n"
WRONG = "def add(a, b):\n    return 0\n"


def _working() -> list[str]:
    found = []
    for backend in ("bwrap", "unshare"):
        with contextlib.suppress(ConfigError):
            found.append(resolve_backend(backend))
    return found


BACKENDS = _working()


@pytest.fixture(params=BACKENDS or ["refused"])
def task(request, monkeypatch):
    """The task under a working backend; with none available, asserts the refusal and yields None."""
    monkeypatch.delenv(OPT_IN_ENV, raising=False)
    spec = f"humaneval?timeout_s={TIMEOUT_S}"
    if request.param == "refused":
        with pytest.raises(ConfigError, match="no working sandbox") as info:
            load_task(spec)
        assert "\n" not in str(info.value)
        return None
    return load_task(f"{spec}&sandbox={request.param}")


def _score(task, *parts: str):
    code = "\n".join(textwrap.dedent(p) for p in parts)
    return task.score(EXAMPLE, f"```python\n{code}\n```")


def _passes(task, probe: str) -> None:
    """The correct solution plus ``probe`` (asserting that an escape failed) must still pass."""
    s = _score(task, "import os, socket, subprocess, sys\n", SOLUTION, probe)
    assert s.correct and s.reason == "passed", s.reason


def _alive(marker: str) -> list[str]:
    pids = []
    for path in glob.glob("/proc/[0-9]*/cmdline"):
        try:
            if marker.encode() in Path(path).read_bytes():
                pids.append(path.split("/")[2])
        except OSError:
            pass
    return pids


def test_positive_and_negative_controls(task):
    if task is None:
        return
    assert load_task("humaneval").score(EXAMPLE, "    return a + b\n").correct  # default spec, auto backend
    assert _score(task, SOLUTION).correct
    s = _score(task, WRONG)
    assert not s.correct and s.reason.startswith("failed: AssertionError")


def _home_dirs() -> dict[str, list[str]]:
    """/root and $HOME with the one entry the sandbox may show there: the way down to the interpreter."""
    prefix = Path(os.path.realpath(sys.base_prefix))
    dirs = {}
    for home in {Path("/root"), Path.home()}:
        dirs[str(home)] = [prefix.relative_to(home).parts[0]] if prefix.is_relative_to(home) else []
    return dirs


def test_cannot_read_files_outside(task, tmp_path):
    if task is None:
        return
    secret = tmp_path / "secret.txt"
    secret.write_text("s3cret")
    dirs = _home_dirs()
    home_files = [str(p) for d in dirs for p in sorted(Path(d).glob("*"))[:50] if p.is_file()][:10]
    paths = [str(secret), *home_files, "/etc/shadow", "/etc/passwd", __file__, "/proc/1/root/etc/hostname"]
    probe = f"""
    import json, math  # the standard library stays readable
    leaked = []
    for p in {paths!r}:
        try:
            open(p, "rb").read(1)
            leaked.append(p)
        except OSError:
            pass
    for d, allowed in {dirs!r}.items():
        if os.path.isdir(d):
            leaked += [os.path.join(d, name) for name in os.listdir(d) if name not in allowed]
    assert not leaked, leaked
    """
    _passes(task, probe)


def test_writes_only_reach_a_private_tmp(task, tmp_path):
    if task is None:
        return
    host_tmp = Path("/tmp") / f"thrifty-probe-{uuid.uuid4().hex}"
    outside = [str(tmp_path / "escaped.txt"), "/root/escaped.txt", "/usr/escaped.txt", "/sandbox/program.py"]
    probe = f"""
    written = []
    for p in {outside!r}:
        try:
            open(p, "a").write("x")
            written.append(p)
        except OSError:
            pass
    assert not written, written
    open({str(host_tmp)!r}, "w").write("private")  # the sandbox's own /tmp is writable
    try:
        open("/tmp/big", "wb").write(b"x" * (17 * 2**20))
        raise AssertionError("file size limit not enforced")
    except OSError:
        pass
    """
    _passes(task, probe)
    assert not (tmp_path / "escaped.txt").exists() and not host_tmp.exists()


def test_no_network(task):
    if task is None:
        return
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        listener.setblocking(False)
        port = listener.getsockname()[1]
        probe = f"""
        def reach(addr):
            try:
                socket.create_connection(addr, timeout=1).close()
                return True
            except OSError:
                return False
        assert not reach(("127.0.0.1", {port})), "reached the host's listener"
        assert not reach(("1.1.1.1", 53)), "reached the internet"
        assert {{name for _, name in socket.if_nameindex()}} <= {{"lo"}}
        s = socket.socket()
        s.bind(("0.0.0.0", {port}))  # taken on the host: bindable only in a private network namespace
        s.listen()
        """
        _passes(task, probe)
        with pytest.raises(BlockingIOError):
            listener.accept()


def test_fork_bomb_is_bounded(task):
    if task is None:
        return
    probe = """
    import time
    forked = 0
    for _ in range(200):
        try:
            pid = os.fork()
        except OSError:
            break
        if pid == 0:
            time.sleep(1)
            os._exit(0)
        forked += 1
    assert forked < 200, "no process limit"
    """
    _passes(task, probe)


@pytest.mark.parametrize("hang", [True, False], ids=["deadline", "normal-exit"])
def test_setsid_children_die_with_the_run(task, hang):
    if task is None:
        return
    marker = f"thrifty-probe-{uuid.uuid4().hex}"
    spawn = f"""
    subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)", {marker!r}], start_new_session=True)
    pid = os.fork()
    if pid == 0:
        os.setsid()
        os.execv(sys.executable, [sys.executable, "-c", "import time; time.sleep(60)", {marker!r}])
    """
    t0 = time.monotonic()
    s = _score(
        task, "import os, subprocess, sys\n", SOLUTION, spawn, "while True:\n    pass\n" if hang else ""
    )
    elapsed = time.monotonic() - t0
    assert elapsed < TIMEOUT_S + 2
    if hang:
        assert not s.correct and s.reason == f"timed out after {TIMEOUT_S}s"
    else:
        assert s.correct, s.reason
    deadline = time.monotonic() + 1.0
    while _alive(marker) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not _alive(marker)


@pytest.mark.parametrize(
    "exit_call", ["os._exit(0)", "sys.exit(0)", "raise SystemExit", "raise SystemExit(0)", "exit()"]
)
def test_early_exit_is_not_a_pass(task, exit_call):
    if task is None:
        return
    s = _score(task, "import os, sys\n", SOLUTION, exit_call)
    assert not s.correct and s.value == 0.0 and s.reason.startswith("failed"), s.reason
    inside = f"def add(a, b):\n    import os, sys\n    {exit_call}\n"  # exit while check() runs
    assert not _score(task, inside).correct


def test_forged_tokens_and_patched_exits_do_not_pass(task):
    if task is None:
        return
    forge = r"""
    import builtins, re
    found = {b"0" * 32, os.urandom(16).hex().encode()}
    for path in ("/proc/self/environ", "/proc/self/cmdline"):
        try:
            found |= set(re.findall(rb"[0-9a-f]{32}", open(path, "rb").read()))
        except OSError:
            pass
    for fd in range(3, 64):
        try:
            found |= set(re.findall(rb"[0-9a-f]{32}", os.read(fd, 4096)))
        except OSError:
            pass
    for fd in range(1, 64):
        for tok in found:
            try:
                os.write(fd, tok + b"\n")
            except OSError:
                pass
    builtins.print = lambda *a, **k: None
    """
    assert not _score(task, "import os\n", WRONG, forge, "os._exit(0)").correct
    assert not _score(task, "import os\n", WRONG, forge, "print('passed')\nraise SystemExit(0)").correct
    patched = "os._exit = lambda *a: None\nos.write = lambda *a: 0\nsys.exit = lambda *a: None\n"
    assert not _score(task, "import os, sys\n", WRONG, patched).correct
    assert _score(task, "import builtins\n", SOLUTION, "builtins.print = lambda *a, **k: None").correct


def test_unsandboxed_needs_an_explicit_opt_in(monkeypatch):
    monkeypatch.delenv(OPT_IN_ENV, raising=False)
    for spec in ("humaneval?sandbox=none", "humaneval?sandbox=docker"):
        with pytest.raises(ConfigError, match="sandbox") as info:
            load_task(spec)
        assert "\n" not in str(info.value)
    monkeypatch.setenv(OPT_IN_ENV, "1")
    task = load_task(f"humaneval?sandbox=none&timeout_s={TIMEOUT_S}")
    assert task.score(EXAMPLE, SOLUTION).correct
    assert not task.score(
        EXAMPLE, f"{WRONG}\nimport os\nos._exit(0)\n"
    ).correct  # the token check still holds
