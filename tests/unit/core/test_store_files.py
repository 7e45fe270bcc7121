"""Run store as a file: owner-only mode, empty and corrupted files refused, tag indexes used, shards merged."""

from __future__ import annotations

import sqlite3
import stat

import pytest

from thrifty.core.errors import DataError
from thrifty.core.store import RunStore, merge_stores


def _fill(path, n: int, start: int = 0, model: str = "m") -> None:
    with RunStore(path) as store:
        store.put_many([("generation", f"k{i}", {"text": "x" * 400, "i": i}, {"model": model, "split": "train"})
                        for i in range(start, start + n)])


def test_a_new_store_is_readable_by_its_owner_only(tmp_path):
    path = tmp_path / "runs" / "store.sqlite"
    _fill(path, 3)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert sorted(p.name for p in path.parent.iterdir()) == ["store.sqlite"]  # no temporary file left behind
    with RunStore(path) as store:
        assert store.count("generation", model="m") == 3


def test_an_empty_file_is_refused_not_reinitialised(tmp_path):
    path = tmp_path / "store.sqlite"
    path.touch()
    with pytest.raises(DataError, match=f"^{path}: empty file, not a thrifty store") as exc:
        RunStore(path)
    assert "\n" not in str(exc.value) and path.stat().st_size == 0


def test_a_corrupted_file_is_refused_on_open_naming_it(tmp_path):
    path = tmp_path / "store.sqlite"
    _fill(path, 300)
    size = path.stat().st_size
    with open(path, "r+b") as fh:  # damage pages in the middle of the b-tree
        fh.seek(size // 2)
        fh.write(bytes(range(256)) * 32)
    with pytest.raises(DataError, match=f"^{path}: ") as exc:
        RunStore(path)
    assert "\n" not in str(exc.value)


class _Broken:
    """A connection whose every statement fails the way a file damaged under a running store does."""

    total_changes = 0

    def execute(self, *args, **kwargs):
        raise sqlite3.DatabaseError("database disk image is malformed")

    executemany = execute

    def close(self):
        pass


def test_an_sqlite_failure_mid_run_names_the_file(tmp_path):
    path = tmp_path / "store.sqlite"
    store = RunStore(path)
    store._db = _Broken()
    calls = [lambda: store.get("score", "k"), lambda: store.put("score", "k", 1), lambda: store.count("score"),
             lambda: list(store.records("score", model="m")), lambda: store.has("score", "k"),
             lambda: store.put_many([("score", "k", 1, None)])]
    for call in calls:
        with pytest.raises(DataError, match=f"^{path}: store error \\(database disk image is malformed\\)$"):
            call()


@pytest.mark.parametrize(("tags", "index"), [({"model": "m"}, "records_model"),
                                             ({"split": "train", "judge": "v"}, "records_split"),
                                             ({"router": "r"}, "records_router"),
                                             ({"model": "m", "split": "train"}, "records_model")])
def test_tag_filters_use_an_index(tmp_path, tags, index):
    path = tmp_path / "store.sqlite"
    _fill(path, 20)
    with RunStore(path) as store:
        where, args = store._where("generation", tags)
        plan = store._db.execute(f"EXPLAIN QUERY PLAN SELECT key FROM records{where} ORDER BY created, key",
                                 args).fetchall()
        assert any(f"USING INDEX {index}" in row[-1] for row in plan), plan
        assert store.count("generation", **tags) == (0 if set(tags) - {"model", "split"} else 20)


def test_an_old_store_gets_the_indexes_when_opened(tmp_path):
    path = tmp_path / "old.sqlite"
    db = sqlite3.connect(path)
    db.executescript("CREATE TABLE records (kind TEXT NOT NULL, key TEXT NOT NULL, value TEXT NOT NULL, tags TEXT "
                     "NOT NULL DEFAULT '{}', created REAL NOT NULL, PRIMARY KEY (kind, key)) WITHOUT ROWID;"
                     "CREATE TABLE info (name TEXT PRIMARY KEY, value TEXT NOT NULL);"
                     "INSERT INTO info VALUES ('schema_version', '1');"
                     """INSERT INTO records VALUES ('score', 'a', '1', '{"model":"m"}', 0);""")
    db.close()
    with RunStore(path) as store:
        assert store.count("score", model="m") == 1
        names = {r[0] for r in store._db.execute("SELECT name FROM sqlite_master WHERE type='index'")}
    assert {"records_model", "records_split", "records_router"} <= names


def test_merge_overlapping_shards_keeps_every_record_once(tmp_path):
    a, b, out = tmp_path / "a.sqlite", tmp_path / "b.sqlite", tmp_path / "merged.sqlite"
    _fill(a, 30)
    _fill(b, 30, start=20)  # k20..k29 are in both
    with RunStore(b) as store:
        store.put("score", "s1", 1.0, {"model": "m"})
    result = merge_stores([a, b], out)
    assert [(s["records"], s["added"], s["present"], s["differing"]) for s in result["sources"]] == [
        (30, 30, 0, 0), (31, 21, 10, 0)]
    assert result["records"] == 51
    with RunStore(out) as store:
        keys = [r.key for r in store.records("generation", model="m")]
        assert len(keys) == len(set(keys)) == 50 and store.count("score") == 1
    assert stat.S_IMODE(out.stat().st_mode) == 0o600


def test_merge_keeps_the_earlier_value_and_counts_the_disagreement(tmp_path):
    a, b, out = tmp_path / "a.sqlite", tmp_path / "b.sqlite", tmp_path / "m.sqlite"
    with RunStore(a) as s:
        s.put("generation", "k", {"text": "first"})
    with RunStore(b) as s:
        s.put("generation", "k", {"text": "second"})
    assert merge_stores([a, b], out)["sources"][1]["differing"] == 1
    with RunStore(out) as s:
        assert s.get("generation", "k") == {"text": "first"}


def test_merge_refuses_an_existing_output_and_bad_inputs(tmp_path):
    a, out = tmp_path / "a.sqlite", tmp_path / "out.sqlite"
    _fill(a, 2)
    _fill(out, 1)
    with pytest.raises(DataError, match=f"^{out}: already exists; merge into a new file$"):
        merge_stores([a], out)
    fresh = tmp_path / "fresh.sqlite"
    with pytest.raises(DataError, match="no such store"):
        merge_stores([a, tmp_path / "missing.sqlite"], fresh)
    junk = tmp_path / "junk.sqlite"
    junk.write_bytes(b"not sqlite" * 200)
    with pytest.raises(DataError, match=f"^{junk}: not a usable thrifty store"):
        merge_stores([a, junk], fresh)
    assert not fresh.exists()
    with pytest.raises(DataError, match="nothing to merge"):
        merge_stores([], fresh)
