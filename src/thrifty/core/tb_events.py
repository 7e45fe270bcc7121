"""TensorBoard scalar event files, written and read with the standard library alone (no tensorboard, no protobuf).

An event file is a run of TFRecords (``uint64`` LE length, masked CRC32C of those 8 bytes, data, masked CRC32C of
the data), each a serialised ``Event{wall_time=1 double, step=2 int64, file_version=3 string, summary=5}``, with
``Summary{value=1 repeated Value}`` and ``Value{tag=1 string, simple_value=2 float}``. The first record names the
format (``brain.Event:2``); each later one holds the scalars of one step.

Kept as the documented no-dependency fallback (training runs write TensorBoard files without installing
tensorboard or protobuf); ``tests/unit/core/test_tb_real_reader.py`` checks that the real ``tensorboard`` reader
(dev extra) reads what it writes. Other trackers (W&B, MLflow, …) are not wired in."""

from __future__ import annotations

import functools
import itertools
import math
import numbers
import struct
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, BinaryIO

from thrifty.core.errors import ConfigError

FILE_VERSION = "brain.Event:2"
LABEL = "thrifty"  # the last part of the file name, where TensorFlow puts the host name
_U32 = 0xFFFFFFFF


# CRC-32C: reflected Castagnoli polynomial, one table entry per byte value (8 shift-and-xor rounds each)
_TABLE = tuple(functools.reduce(lambda c, _: c >> 1 ^ (0x82F63B78 if c & 1 else 0), range(8), b) for b in range(256))


def crc32c(data: bytes) -> int:
    """CRC-32C (Castagnoli, reflected), table driven: ``crc32c(b"123456789") == 0xE3069283``."""
    crc = _U32
    for byte in data:
        crc = _TABLE[(crc ^ byte) & 0xFF] ^ (crc >> 8)
    return crc ^ _U32


def mask_crc(crc: int) -> int:
    """The TFRecord mask: rotate right by 15 bits, add a constant, modulo 2**32."""
    return ((((crc >> 15) | (crc << 17)) & _U32) + 0xA282EAD8) & _U32


def varint(value: int) -> bytes:
    """Protobuf base-128 varint; a negative int64 is written as its 64-bit two's complement (ten bytes)."""
    value &= (1 << 64) - 1
    out = bytearray()
    while value > 0x7F:
        out.append(value & 0x7F | 0x80)
        value >>= 7
    return bytes(out) + bytes([value])


def _bytes_field(field: int, data: bytes) -> bytes:  # wire type 2: length-delimited
    return varint(field << 3 | 2) + varint(len(data)) + data


def encode_event(wall_time: float, step: int = 0, file_version: str | None = None,
                 scalars: Mapping[str, float] | None = None) -> bytes:
    """One serialised ``Event`` (keys are ``field << 3 | wire``: 0x09 field 1 fixed64, 0x10 field 2 varint, 0x15
    field 2 fixed32); a step of 0 is left out, as protobuf leaves out defaults."""
    out = b"\x09" + struct.pack("<d", wall_time)
    if step:
        out += b"\x10" + varint(step)
    if file_version is not None:
        out += _bytes_field(3, file_version.encode())
    if scalars is not None:
        summary = b"".join(_bytes_field(1, _bytes_field(1, tag.encode()) + b"\x15" + struct.pack("<f", value))
                           for tag, value in scalars.items())
        out += _bytes_field(5, summary)
    return out


def frame(data: bytes) -> bytes:
    """``data`` as one TFRecord: length, its masked CRC, the data, its masked CRC."""
    length = struct.pack("<Q", len(data))
    return length + struct.pack("<I", mask_crc(crc32c(length))) + data + struct.pack("<I", mask_crc(crc32c(data)))


def _float32(value: Any) -> float | None:
    """``value`` as a finite float32, or None for bools, non-numbers, NaN, infinities and values beyond float32."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        return None
    try:
        as32 = struct.unpack("<f", struct.pack("<f", float(value)))[0]
    except OverflowError:  # beyond float32 (or float64) range
        return None
    return as32 if math.isfinite(as32) else None


class EventWriter:
    """Scalars to ``<log_dir>/events.out.tfevents.<unix time>.thrifty`` (a suffix ``.1``, ``.2``… when that name is
    taken): one ``Event`` per :meth:`add_scalars` call. Use it as a context manager, or call :meth:`close`."""

    def __init__(self, log_dir: str | Path) -> None:
        self.log_dir = Path(log_dir)
        self.log_dir.mkdir(parents=True, exist_ok=True)
        now = time.time()
        names = (f"events.out.tfevents.{int(now)}.{LABEL}{f'.{n}' if n else ''}" for n in itertools.count())
        self.path = next(path for path in map(self.log_dir.joinpath, names) if not path.exists())
        self._file: BinaryIO = self.path.open("xb")
        self._file.write(frame(encode_event(now, file_version=FILE_VERSION)))

    def add_scalars(self, step: int, values: Mapping[str, Any], wall_time: float | None = None) -> None:
        """One event at ``step`` holding every finite number of ``values`` (bools, NaN, ±inf, values beyond float32
        and non-numbers are skipped; nothing is written when none is left)."""
        scalars = {str(tag): v for tag, raw in values.items() if (v := _float32(raw)) is not None}
        if scalars:
            self._file.write(frame(encode_event(time.time() if wall_time is None else wall_time, int(step),
                                                scalars=scalars)))

    def flush(self) -> None:
        self._file.flush()

    def close(self) -> None:
        self._file.close()

    def __enter__(self) -> EventWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _records(path: Path) -> Iterator[bytes]:
    raw, pos, n = path.read_bytes(), 0, 0
    while pos < len(raw):
        n, bad = n + 1, f"{path}: record {n + 1} is corrupt:"
        if len(raw) - pos < 12:
            raise ConfigError(f"{bad} truncated")
        length, end = raw[pos:pos + 8], pos + 16 + struct.unpack_from("<Q", raw, pos)[0]
        if struct.unpack_from("<I", raw, pos + 8)[0] != mask_crc(crc32c(length)):
            raise ConfigError(f"{bad} bad length checksum")
        if end > len(raw):
            raise ConfigError(f"{bad} truncated")
        if struct.unpack_from("<I", raw, end - 4)[0] != mask_crc(crc32c(raw[pos + 12:end - 4])):
            raise ConfigError(f"{bad} bad data checksum")
        yield raw[pos + 12:end - 4]
        pos = end


def _read_varint(buf: bytes, pos: int) -> tuple[int, int]:  # IndexError when it runs past the end
    value = shift = 0
    while buf[pos] & 0x80:
        value, pos, shift = value | (buf[pos] & 0x7F) << shift, pos + 1, shift + 7
    return value | buf[pos] << shift, pos + 1


def _fields(buf: bytes) -> Iterator[tuple[int, Any]]:
    """(field number, value) of a protobuf message: an int for varints, raw bytes for the other wire types."""
    pos = 0
    while pos < len(buf):
        key, pos = _read_varint(buf, pos)
        wire = key & 7
        if wire == 0:
            value, pos = _read_varint(buf, pos)
        elif wire in (1, 2, 5):
            size, pos = _read_varint(buf, pos) if wire == 2 else ({1: 8, 5: 4}[wire], pos)
            value, pos = buf[pos:pos + size], pos + size
            if pos > len(buf):
                raise ValueError("a field runs past the end")
        else:
            raise ValueError(f"unsupported wire type {wire}")
        yield key >> 3, value


def decode_event(data: bytes) -> dict[str, Any]:
    """``{"step", "wall_time", "scalars"}`` (+ ``file_version``); other fields and non-``simple_value`` values skipped."""
    event: dict[str, Any] = {"step": 0, "wall_time": 0.0, "scalars": {}}
    for field, value in _fields(data):
        if field == 1 and isinstance(value, bytes) and len(value) == 8:
            event["wall_time"] = struct.unpack("<d", value)[0]
        elif field == 2 and isinstance(value, int):
            event["step"] = value - (1 << 64) if value >= 1 << 63 else value
        elif field == 3 and isinstance(value, bytes):
            event["file_version"] = value.decode()
        elif field == 5 and isinstance(value, bytes):
            for item in (item for vfield, item in _fields(value) if vfield == 1 and isinstance(item, bytes)):
                parts = dict(_fields(item))
                if isinstance(parts.get(2), bytes) and len(parts[2]) == 4 and isinstance(parts.get(1), bytes):
                    event["scalars"][parts[1].decode()] = struct.unpack("<f", parts[2])[0]
    return event


def read_events(path: str | Path) -> list[dict[str, Any]]:
    """The events of an event file after its file-version header, in order, as ``{"step", "wall_time", "scalars"}``.
    A bad checksum, a truncated record or an undecodable event is a :class:`ConfigError`."""
    path, out = Path(path), []
    for n, data in enumerate(_records(path), 1):
        try:
            event = decode_event(data)
        except (ValueError, IndexError) as e:  # UnicodeDecodeError is a ValueError
            raise ConfigError(f"{path}: record {n} is not a readable event ({e})") from None
        if "file_version" not in event:
            out.append(event)
    return out


__all__ = ["EventWriter", "crc32c", "decode_event", "encode_event", "frame", "mask_crc", "read_events", "varint"]
