"""Read the header of a GGUF file (magic, version, key/value metadata) without loading any tensor data.

Only the standard library is used, so checking a model file stays cheap and import-light. Large arrays
(the tokenizer vocabulary, merges, scores) are skipped and summarised as :class:`GGUFArray`.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

from thrifty.core.errors import ModelError

MAGIC = b"GGUF"
CHAT_TEMPLATE_KEY = "tokenizer.chat_template"
ARCHITECTURE_KEY = "general.architecture"

# GGUF value type codes -> struct format of one scalar (little-endian).
_SCALARS: dict[int, str] = {
    0: "<B",  # uint8
    1: "<b",  # int8
    2: "<H",  # uint16
    3: "<h",  # int16
    4: "<I",  # uint32
    5: "<i",  # int32
    6: "<f",  # float32
    7: "<?",  # bool
    10: "<Q",  # uint64
    11: "<q",  # int64
    12: "<d",  # float64
}
_STRING = 8
_ARRAY = 9
_MAX_KV = 1_000_000
_KEEP_ARRAY = 64  # arrays up to this length are kept as lists; longer ones are summarised


@dataclass(frozen=True)
class GGUFArray:
    """A metadata array too large (or made of strings) to keep: its item type code and length."""

    item_type: int
    length: int


@dataclass
class GGUFHeader:
    """What a GGUF header says: format version, tensor count and the metadata key/value pairs."""

    path: Path
    version: int
    n_tensors: int
    metadata: dict[str, Any] = field(default_factory=dict)

    @property
    def architecture(self) -> str | None:
        """``general.architecture`` (e.g. "llama", "qwen2", "gemma3"), or None when absent."""
        value = self.metadata.get(ARCHITECTURE_KEY)
        return value if isinstance(value, str) else None

    @property
    def has_chat_template(self) -> bool:
        """True when the file carries a non-empty ``tokenizer.chat_template``."""
        value = self.metadata.get(CHAT_TEMPLATE_KEY)
        return isinstance(value, str) and bool(value.strip())


def has_magic(path: str | Path) -> bool:
    """True when ``path`` is a readable file that starts with the GGUF magic bytes."""
    try:
        with open(path, "rb") as fh:
            return fh.read(4) == MAGIC
    except OSError:
        return False


def read_header(path: str | Path) -> GGUFHeader:
    """Parse the GGUF header of ``path``; raises ModelError naming the file and the problem."""
    p = Path(path)
    try:
        size = p.stat().st_size
        with open(p, "rb", buffering=1 << 20) as fh:
            return _Reader(fh, p, size).header()
    except OSError as exc:
        raise ModelError(f"{p}: cannot read GGUF file ({exc.strerror or exc})") from exc


class _Reader:
    """Sequential little-endian reader over an open GGUF file with bounds checks."""

    def __init__(self, fh: BinaryIO, path: Path, size: int) -> None:
        self.fh = fh
        self.path = path
        self.size = size
        self.pos = 0

    def fail(self, problem: str) -> ModelError:
        return ModelError(f"{self.path}: not a valid GGUF file ({problem} at byte {self.pos})")

    def read(self, n: int) -> bytes:
        if n < 0 or self.pos + n > self.size:
            raise self.fail(f"truncated: needs {n} more bytes")
        data = self.fh.read(n)
        if len(data) != n:
            raise self.fail("truncated")
        self.pos += n
        return data

    def skip(self, n: int) -> None:
        if n < 0 or self.pos + n > self.size:
            raise self.fail(f"truncated: needs {n} more bytes")
        self.fh.seek(n, 1)
        self.pos += n

    def scalar(self, fmt: str) -> Any:
        return struct.unpack(fmt, self.read(struct.calcsize(fmt)))[0]

    def string(self) -> str:
        n = self.scalar("<Q")
        raw = self.read(n)
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError:
            return raw.decode("utf-8", errors="replace")

    def skip_string(self) -> None:
        self.skip(self.scalar("<Q"))

    def header(self) -> GGUFHeader:
        magic = self.read(4) if self.size >= 4 else b""
        if magic != MAGIC:
            self.pos = 0
            raise self.fail(f"magic is {magic!r}, expected {MAGIC!r}")
        version = self.scalar("<I")
        if version not in (2, 3):
            raise self.fail(f"unsupported version {version} (only 2 and 3 are read)")
        n_tensors = self.scalar("<Q")
        n_kv = self.scalar("<Q")
        if n_kv > _MAX_KV:
            raise self.fail(f"implausible metadata count {n_kv}")
        meta: dict[str, Any] = {}
        for _ in range(n_kv):
            key = self.string()
            meta[key] = self.value(self.scalar("<I"))
        return GGUFHeader(path=self.path, version=version, n_tensors=n_tensors, metadata=meta)

    def value(self, vtype: int) -> Any:
        if vtype in _SCALARS:
            return self.scalar(_SCALARS[vtype])
        if vtype == _STRING:
            return self.string()
        if vtype == _ARRAY:
            return self.array()
        raise self.fail(f"unknown value type {vtype}")

    def array(self) -> list[Any] | GGUFArray:
        item_type = self.scalar("<I")
        length = self.scalar("<Q")
        if item_type in _SCALARS:
            width = struct.calcsize(_SCALARS[item_type])
            if length <= _KEEP_ARRAY:
                return [self.scalar(_SCALARS[item_type]) for _ in range(length)]
            self.skip(width * length)
            return GGUFArray(item_type, length)
        if item_type == _STRING:
            if length <= _KEEP_ARRAY:
                return [self.string() for _ in range(length)]
            if length * 8 > self.size - self.pos:
                raise self.fail(f"string array of {length} items cannot fit")
            for _ in range(length):
                self.skip_string()
            return GGUFArray(item_type, length)
        if item_type == _ARRAY:
            for _ in range(length):
                self.array()
            return GGUFArray(item_type, length)
        raise self.fail(f"unknown array item type {item_type}")
