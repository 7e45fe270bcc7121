"""`thrifty store`: work on run stores as files — merge the stores of a sharded run into one."""

from __future__ import annotations

import argparse

from thrifty.cli._common import add_verb, add_verbs


def register(rooms) -> None:
    """Add the ``store`` room with its verb ``merge``."""
    verbs = add_verbs(rooms, "store", "work on run stores (the SQLite files runs record into)")
    p = add_verb(verbs, "merge", "merge run stores (e.g. shards of one run) into a new store, without "
                 "duplicates", _merge)
    p.add_argument("stores", nargs="+", metavar="STORE",
                   help="stores to merge; where two hold one record, the earlier one's value is kept")
    p.add_argument("--out", required=True, metavar="FILE", help="the new store to write (must not exist)")


def _merge(args: argparse.Namespace) -> int:
    from thrifty.core.store import merge_stores

    result = merge_stores(args.stores, args.out)
    for src in result["sources"]:
        differing = (f", {src['differing']} of them with a different value (kept the earlier)"
                     if src["differing"] else "")
        print(f"{src['path']}: {src['records']} records, {src['added']} added, "
              f"{src['present']} already present{differing}")
    print(f"{result['out']}: {result['records']} records from {len(result['sources'])} stores")
    return 0
