"""Run store: content addressing, first-write-wins, filters, and resume after a real SIGKILL."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import threading
import time

import pytest

from thrifty.core.errors import DataError
from thrifty.core.store import RunStore, record_key


def test_get_or_compute_computes_once(tmp_path):
    calls = []
    with RunStore(tmp_path / "s.sqlite") as store:
        v1, hit1 = store.get_or_compute("generation", {"m": "a", "p": "hi"}, lambda: calls.append(1) or {"t": 1})
        v2, hit2 = store.get_or_compute("generation", {"p": "hi", "m": "a"}, lambda: calls.append(1) or {"t": 2})
    assert (v1, hit1, v2, hit2) == ({"t": 1}, False, {"t": 1}, True)
    assert len(calls) == 1  # key order in fields does not change the address


def test_keys_depend_on_kind_and_fields():
    assert record_key("grade", {"a": 1}) != record_key("generation", {"a": 1})
    assert record_key("grade", {"a": 1}) != record_key("grade", {"a": 2})
    with pytest.raises(DataError):
        record_key("nonsense", {})


def test_first_write_wins_and_tag_filters(tmp_path):
    store = RunStore(tmp_path / "s.sqlite")
    assert store.put("score", "k1", 0.5, {"model": "small", "task": "t"})
    assert not store.put("score", "k1", 0.9, {"model": "small", "task": "t"})
    store.put("score", "k2", 1.0, {"model": "large", "task": "t"})
    assert store.get("score", "k1") == 0.5
    assert store.count("score") == 2
    assert store.count("score", model="large") == 1
    assert [r.value for r in store.records("score", task="t")] == [0.5, 1.0]
    store.close()
    # persisted across re-open
    assert RunStore(tmp_path / "s.sqlite").count() == 2


def test_put_many_is_one_transaction_that_keeps_existing_keys(tmp_path):
    store = RunStore(tmp_path / "s.sqlite")
    store.put("decision", "a", {"v": 1})
    assert store.put_many([("decision", "a", {"v": 2}, None), ("decision", "b", {"v": 3}, {"router": "r"})]) == 1
    assert store.get("decision", "a") == {"v": 1} and store.count("decision", router="r") == 1
    with pytest.raises(DataError):  # a bad row anywhere stores none of them
        store.put_many([("decision", "c", {"v": 4}, None), ("nonsense", "d", {}, None)])
    assert not store.has("decision", "c") and store.put_many([]) == 0
    store.close()


def test_threads_share_one_store_without_duplicates(tmp_path):
    store = RunStore(tmp_path / "s.sqlite")

    def work(offset: int) -> None:
        for i in range(50):
            store.get_or_compute("generation", {"i": (i + offset) % 60}, lambda i=i: {"i": i})

    threads = [threading.Thread(target=work, args=(k * 7,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert store.count("generation") == 60


def test_not_a_store_is_a_clear_error(tmp_path):
    bad = tmp_path / "junk.sqlite"
    bad.write_bytes(b"this is not sqlite at all" * 100)
    with pytest.raises(DataError, match="not a usable thrifty store"):
        RunStore(bad)


_WORKER = textwrap.dedent(
    """
    import sys, time
    from thrifty.core.store import RunStore
    store = RunStore(sys.argv[1])
    log = open(sys.argv[2], "a", buffering=1)
    for i in range(int(sys.argv[3])):
        def compute(i=i):
            log.write(f"start {i}\\n")
            time.sleep(0.02)
            return {"i": i, "square": i * i}
        value, hit = store.get_or_compute("generation", {"item": i}, compute, {"run": "kill-test"})
        if not hit:
            log.write(f"done {i}\\n")
    log.write("finished\\n")
    """
)


def test_sigkill_mid_run_resumes_without_loss_or_duplicates(tmp_path):
    db, log, n = tmp_path / "store.sqlite", tmp_path / "log.txt", 80
    script = tmp_path / "worker.py"
    script.write_text(_WORKER)
    env = dict(os.environ)
    proc = subprocess.Popen([sys.executable, str(script), str(db), str(log), str(n)], env=env)
    deadline = time.time() + 60
    while time.time() < deadline:  # wait until a good part of the work is done, then kill hard
        if log.exists() and log.read_text().count("done") >= 15:
            break
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL
    first = log.read_text()
    assert "finished" not in first, "worker finished before it was killed; the test proved nothing"
    done_before = {int(line.split()[1]) for line in first.splitlines() if line.startswith("done")}

    store = RunStore(db)
    stored_after_kill = {r.value["i"] for r in store.records("generation")}
    assert done_before <= stored_after_kill  # nothing that finished was lost
    store.close()

    log.write_text("")
    subprocess.run([sys.executable, str(script), str(db), str(log), str(n)], env=env, check=True, timeout=120)
    second = log.read_text()
    recomputed = {int(line.split()[1]) for line in second.splitlines() if line.startswith("start")}
    assert recomputed == set(range(n)) - stored_after_kill  # only the unfinished ones were recomputed
    store = RunStore(db)
    values = [r.value for r in store.records("generation", run="kill-test")]
    assert sorted(v["i"] for v in values) == list(range(n))  # each exactly once
    assert all(v["square"] == v["i"] ** 2 for v in values)
