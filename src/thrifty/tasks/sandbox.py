"""Run untrusted Python under OS isolation with a hard deadline; report exit status, output tail and token.

Backends, chosen by ``resolve_backend`` ("auto" takes the first that works on this machine):

* ``bwrap`` (bubblewrap): new pid, network, ipc and uts namespaces (plus a user namespace when not root); a
  fresh root holding only read-only, nosuid ``/usr`` (and the ``/bin``, ``/lib*`` links), the interpreter's
  own prefix, ``/etc/ld.so.cache`` and ``/etc/localtime``; a fresh ``/proc`` and minimal ``/dev``; a private
  size-capped tmpfs ``/tmp`` as the only writable place. Home directories, ``/root``, ``/etc`` and every
  other host path are simply absent.
* ``unshare`` (util-linux, root only): the same shape built by a small shell script in new mount, pid,
  network, ipc and uts namespaces, then ``pivot_root`` into it so the host tree is detached.
* ``none``: an ordinary child process (own session, rlimits, scrubbed environment) with no isolation; only
  with an explicit opt-in (``allow_unsandboxed=True`` or ``THRIFTY_ALLOW_UNSANDBOXED=1``).

Inside, ``sandbox_runner.py`` drops to uid/gid 65534 ("nobody") when started as root, sets no-new-privileges
and rlimits (processes, address space, file size, CPU, core, open files), runs the program, and writes a
random per-run token (``secrets.token_hex``) to a parent-owned file only if the program returned normally.
A run counts as completed only with exit status 0 *and* that token, so ``os._exit(0)``, ``sys.exit(0)`` or a
printed fake cannot pass. Output goes to a file, never a pipe, so the deadline never waits on a reader. At the
deadline the whole session is SIGKILLed; with a namespace backend the pid namespace's init dies with it and
the kernel kills every remaining process, including ``setsid`` escapees.

What the token guarantees: when the program starts, the token is not in its environment, argv, files or
open descriptors (it arrived on a pipe the runner has read and closed). It still sits in the runner's memory,
so code that walks the interpreter's objects or frames, or reads its own memory, can find and write it. The
token stops accidental and shallow early exits; the isolation above, not the token, is the security boundary.
Residual risks: the process limit is per uid, so concurrent runs share it as "nobody"; the kernel itself
(syscalls are not filtered) and CPU side channels are out of scope; ``none`` confines nothing.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import secrets
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from thrifty.core.errors import ConfigError

BACKENDS = ("auto", "bwrap", "unshare", "none")
OPT_IN_ENV = "THRIFTY_ALLOW_UNSANDBOXED"
NOBODY = 65534
CODE_DIR = "/sandbox"
TMP_MB = 64
_RUNNER = Path(__file__).with_name("sandbox_runner.py")
_ENV = {
    "PATH": "/usr/bin:/bin",
    "HOME": "/tmp",
    "TMPDIR": "/tmp",
    "LANG": "C.UTF-8",
    "PYTHONDONTWRITEBYTECODE": "1",
}


@dataclass(frozen=True)
class Outcome:
    """How one run ended: exit status (negative = signal), whether the deadline hit, token seen, output tail."""

    status: int | None
    timed_out: bool
    completed: bool
    output: str


def _python() -> tuple[str, list[str]]:
    """The real interpreter binary and the read-only directories it needs (its prefixes)."""
    exe = os.path.realpath(sys.executable)
    roots = {os.path.realpath(sys.base_prefix), os.path.realpath(sys.base_exec_prefix)}
    if not any(exe.startswith(r + os.sep) for r in roots):
        roots.add(os.path.dirname(exe))
    keep = sorted(r for r in roots if not r.startswith("/usr/") and r != "/usr")
    return exe, [r for r in keep if not any(r.startswith(o + os.sep) for o in keep if o != r)]


def _system_dirs() -> tuple[list[tuple[str, str]], list[str]]:
    """(symlink name, target) pairs and real directories for /bin, /sbin, /lib* besides /usr."""
    links, dirs = [], []
    for name in ("/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32"):
        if os.path.islink(name):
            links.append((name, os.readlink(name)))
        elif os.path.isdir(name):
            dirs.append(name)
    return links, dirs


def _bwrap_argv(userns: bool) -> list[str]:
    exe, prefixes = _python()
    links, dirs = _system_dirs()
    argv = [
        "bwrap",
        "--unshare-pid",
        "--unshare-net",
        "--unshare-ipc",
        "--unshare-uts",
        "--unshare-cgroup-try",
    ]
    if userns:
        argv.append("--unshare-user")
    argv += ["--die-with-parent", "--new-session", "--clearenv", "--ro-bind", "/usr", "/usr"]
    for name, target in links:
        argv += ["--symlink", target, name]
    for path in dirs + prefixes:
        for parent in reversed(Path(path).parents[:-1]):  # bwrap would copy host modes (e.g. 0700 /root)
            argv += ["--perms", "0755", "--dir", str(parent)]
        argv += ["--ro-bind", path, path]
    for path in ("/etc/ld.so.cache", "/etc/localtime"):
        argv += ["--ro-bind-try", path, path]
    argv += ["--proc", "/proc", "--dev", "/dev", "--perms", "1777", "--size", str(TMP_MB * 2**20)]
    argv += ["--tmpfs", "/tmp", "--ro-bind", "{code}", CODE_DIR, "--chdir", "/tmp"]
    for key, value in _ENV.items():
        argv += ["--setenv", key, value]
    return [*argv, "--", exe, "-I"]


def _unshare_argv() -> list[str]:
    exe, prefixes = _python()
    links, dirs = _system_dirs()
    q = shlex.quote
    ro = "mount --bind -o ro,nosuid,nodev"
    lines = [
        "set -e",
        "PATH=/usr/sbin:/usr/bin:/sbin:/bin",
        'R="$1"; CODE="$2"; shift 2',
        'mount -t tmpfs -o size=4m,mode=755 none "$R"',
    ]
    for path in ["/usr", *dirs, *prefixes]:
        lines.append(f'mkdir -p "$R"{q(path)} && {ro} {q(path)} "$R"{q(path)}')
    for name, target in links:
        lines.append(f'ln -s {q(target)} "$R"{q(name)}')
    lines += [
        'mkdir -p "$R/etc" "$R/proc" "$R/dev" "$R/tmp" "$R/sandbox"',
        f'for f in /etc/ld.so.cache /etc/localtime; do if [ -e "$f" ]; then touch "$R$f"; {ro} "$f" "$R$f"; fi; done',
        'for d in null zero full random urandom; do touch "$R/dev/$d"; mount --bind "/dev/$d" "$R/dev/$d"; done',
        f'mount -t tmpfs -o size={TMP_MB}m,mode=1777,nosuid,nodev none "$R/tmp"',
        'mount -t proc -o nosuid,nodev,noexec proc "$R/proc"',
        f'{ro} "$CODE" "$R/sandbox"',
        'cd "$R" && mkdir .old && pivot_root . .old && cd / && umount -l /.old && rmdir /.old',
        "cd /tmp",
        'set +e; "$@"; exit $?',
    ]
    return [
        "unshare", "--mount", "--pid", "--fork", "--kill-child", "--net", "--ipc", "--uts", "--propagation",
        "private", "--", "/bin/sh", "-c", "\n".join(lines), "sandbox", "{root}", "{code}", exe, "-I",
    ]  # fmt: skip


def _argv(backend: str) -> list[str]:
    # As root, no user namespace (it would map to host root): the runner drops to nobody instead.
    if backend == "bwrap":
        return _bwrap_argv(userns=os.geteuid() != 0)
    if backend == "unshare":
        return _unshare_argv()
    return [os.path.realpath(sys.executable), "-I"]


def _command(base: str, source: str, backend: str, fds: dict[str, int], mem_mb: int, cpu_s: int) -> list[str]:
    """Write the runner and program under ``base`` and return the command line that runs them."""
    code = os.path.join(base, "code")
    os.mkdir(code, 0o755)
    os.mkdir(os.path.join(base, "root"))
    shutil.copyfile(_RUNNER, os.path.join(code, "runner.py"))
    Path(code, "program.py").write_text(source, encoding="utf-8")
    for name in ("runner.py", "program.py"):
        os.chmod(os.path.join(code, name), 0o644)
    where = code if backend == "none" else CODE_DIR
    drop = NOBODY if os.geteuid() == 0 and backend != "none" else None
    limits = {"RLIMIT_NPROC": 64, "RLIMIT_AS": mem_mb * 2**20, "RLIMIT_FSIZE": 16 * 2**20,
              "RLIMIT_CPU": cpu_s, "RLIMIT_CORE": 0, "RLIMIT_NOFILE": 256}  # fmt: skip
    cfg = {"program": f"{where}/program.py", "uid": drop, "gid": drop, "limits": limits, **fds}
    fill = {"{code}": code, "{root}": os.path.join(base, "root")}
    return [fill.get(a, a) for a in _argv(backend)] + [f"{where}/runner.py", json.dumps(cfg)]


def run_untrusted(source: str, backend: str, timeout_s: float, mem_mb: int = 1024) -> Outcome:
    """Run ``source`` under ``backend`` (a resolved name) with a wall-clock deadline of ``timeout_s``."""
    token = secrets.token_hex(16)
    with tempfile.TemporaryDirectory(prefix="thrifty-sbx-", ignore_cleanup_errors=True) as base:
        token_r, token_w = os.pipe()
        os.write(token_w, token.encode())
        os.close(token_w)
        result_fd = os.open(os.path.join(base, "result"), os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        out_path = os.path.join(base, "output")
        try:
            fds = {"token_fd": token_r, "result_fd": result_fd}
            argv = _command(base, source, backend, fds, mem_mb, int(timeout_s) + 2)
            with open(out_path, "wb") as out:
                proc = subprocess.Popen(
                    argv, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                    env=dict(_ENV) if backend != "none" else {**_ENV, "HOME": base},
                    cwd=os.path.join(base, "root"), start_new_session=True, pass_fds=tuple(fds.values()),
                )  # fmt: skip
        finally:
            os.close(token_r)
            os.close(result_fd)
        status, timed_out = _wait(proc, timeout_s)
        completed = status == 0 and Path(base, "result").read_bytes().strip() == token.encode()
        return Outcome(status, timed_out, completed, _tail(out_path))


def _wait(proc: subprocess.Popen, timeout_s: float) -> tuple[int | None, bool]:
    """(exit status, timed out); at the deadline the whole session is killed and reaped for at most 1 s more."""
    try:
        return proc.wait(timeout=timeout_s), False
    except subprocess.TimeoutExpired:
        _kill_session(proc)
        try:
            return proc.wait(timeout=1.0), True
        except subprocess.TimeoutExpired:
            return None, True
    finally:
        if proc.poll() is None:
            _kill_session(proc)


def _kill_session(proc: subprocess.Popen) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)


def _tail(path: str, limit: int = 4096) -> str:
    with open(path, "rb") as fh:
        fh.seek(max(0, os.path.getsize(path) - limit))
        return fh.read().decode("utf-8", "replace")


@functools.cache
def _works(backend: str) -> bool:
    """True when ``backend`` runs a trivial program to completion here (checked once per process)."""
    if sys.platform != "linux" or shutil.which(backend) is None:
        return False
    if backend == "unshare" and os.geteuid() != 0:
        return False
    probe = "import os\nassert not os.path.exists('/etc/passwd')\n"
    try:
        return run_untrusted(probe, backend, timeout_s=20.0).completed
    except OSError:
        return False


def resolve_backend(choice: str = "auto", allow_unsandboxed: bool = False) -> str:
    """The backend to use for ``choice``; ConfigError (one line) when it is unusable or not opted into."""
    if choice not in BACKENDS:
        raise ConfigError(f"sandbox must be one of {', '.join(BACKENDS)}, got {choice!r}")
    allowed = allow_unsandboxed or os.environ.get(OPT_IN_ENV) == "1"
    if choice == "none":
        if not allowed:
            raise ConfigError(
                f"sandbox='none' runs untrusted code unconfined; set {OPT_IN_ENV}=1 to allow it"
            )
        return "none"
    for backend in ("bwrap", "unshare") if choice == "auto" else (choice,):
        if _works(backend):
            return backend
    if choice == "auto" and allowed:
        return "none"
    raise ConfigError(
        f"no working sandbox ({'bwrap or unshare' if choice == 'auto' else choice}) for untrusted code: install "
        f"bubblewrap (apt-get install bubblewrap) or run as root for unshare; {OPT_IN_ENV}=1 with "
        "sandbox='none' runs it unconfined"
    )
