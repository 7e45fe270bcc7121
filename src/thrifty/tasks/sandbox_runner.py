"""Runs one untrusted Python program inside the sandbox and reports, with a secret token, that it completed.

This file is executed by a bare interpreter inside the sandbox (standard library only, no ``thrifty``):
``python -I sandbox_runner.py CONFIG_JSON``. CONFIG_JSON names the program file, the descriptor the token is
read from, the descriptor the token is written to on success, the uid/gid to drop to (or null) and the
resource limits. Order matters: read the token and close its descriptor, drop privileges, set the limits,
then run the program in a fresh ``__main__`` module. Only when the program returns normally (no exception,
no ``SystemExit`` of any code) is the token written; the process then ends with ``os._exit`` so nothing the
program registered (atexit hooks, threads) runs after the verdict.
"""

import contextlib
import json
import os
import sys
import types


def _read_token(fd: int):
    chunks = []
    while True:
        chunk = os.read(fd, 256)
        if not chunk:
            break
        chunks.append(chunk)
    os.close(fd)
    secret = b"".join(chunks).strip()
    write = os.write  # bound now: the program may replace os.write

    def emit(out_fd: int) -> None:
        write(out_fd, secret + b"\n")

    return emit


def _drop_privileges(uid: int, gid: int) -> None:
    os.setgroups([])
    os.setresgid(gid, gid, gid)
    os.setresuid(uid, uid, uid)
    if os.getuid() != uid or os.geteuid() != uid or os.getgid() != gid:
        raise OSError(f"still uid {os.getuid()}/gid {os.getgid()} after dropping to {uid}/{gid}")


def _no_new_privileges() -> None:
    try:
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(38, 1, 0, 0, 0)  # PR_SET_NO_NEW_PRIVS
    except (ImportError, OSError, AttributeError):
        pass  # the sandbox mounts are nosuid as well


def _set_limits(limits: dict) -> None:
    import resource

    for name, value in limits.items():
        resource.setrlimit(getattr(resource, name), (value, value))


def _flush() -> None:
    for stream in (sys.stdout, sys.stderr, sys.__stdout__, sys.__stderr__):
        with contextlib.suppress(Exception):
            stream.flush()


def main() -> None:
    import traceback

    cfg = json.loads(sys.argv[1])
    emit = _read_token(cfg.pop("token_fd"))
    result_fd, exit_, write = cfg["result_fd"], os._exit, os.write  # bound before the program can patch them
    try:
        if cfg.get("uid") is not None and os.getuid() == 0:
            _drop_privileges(cfg["uid"], cfg["gid"])
        _no_new_privileges()
        _set_limits(cfg["limits"])
        with open(cfg["program"], encoding="utf-8") as fh:
            source = fh.read()
    except (OSError, ValueError) as exc:
        write(2, f"sandbox setup failed: {exc}\n".encode())
        exit_(125)
    module = types.ModuleType("__main__")
    module.__file__ = "program.py"
    sys.modules["__main__"] = module
    sys.argv = ["program.py"]
    status, completed = 1, False
    try:
        exec(compile(source, "program.py", "exec"), module.__dict__)
        status, completed = 0, True
    except SystemExit as exc:
        write(2, b"SystemExit: the program exited before its checks finished\n")
        status = exc.code & 0xFF if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    except BaseException:
        traceback.print_exc()
    try:
        _flush()
    finally:
        if completed:
            emit(result_fd)
        exit_(status)


if __name__ == "__main__":
    main()
