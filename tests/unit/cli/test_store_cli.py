"""`thrifty store merge`: two shards with overlapping records become one store; an existing output is refused."""

from __future__ import annotations

from thrifty.cli.main import main
from thrifty.core.store import RunStore


def _shard(path, keys) -> None:
    with RunStore(path) as store:
        for k in keys:
            store.put("generation", f"k{k}", {"text": str(k)}, {"model": "m"})


def test_merge_reports_counts_and_writes_one_store(tmp_path, capsys):
    a, b, out = tmp_path / "a.sqlite", tmp_path / "b.sqlite", tmp_path / "all.sqlite"
    _shard(a, range(5))
    _shard(b, range(3, 8))
    assert main(["store", "merge", str(a), str(b), "--out", str(out)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines == [f"{a}: 5 records, 5 added, 0 already present",
                     f"{b}: 5 records, 3 added, 2 already present",
                     f"{out}: 8 records from 2 stores"]
    with RunStore(out) as store:
        assert sorted(r.value["text"] for r in store.records("generation")) == [str(i) for i in range(8)]


def test_merge_refuses_an_existing_output_in_one_line(tmp_path, capsys):
    a, out = tmp_path / "a.sqlite", tmp_path / "out.sqlite"
    _shard(a, range(2))
    _shard(out, range(1))
    assert main(["store", "merge", str(a), "--out", str(out)]) == 1
    err = capsys.readouterr().err
    assert err == f"thrifty: error: {out}: already exists; merge into a new file\n"
    with RunStore(out) as store:
        assert store.count() == 1  # untouched
