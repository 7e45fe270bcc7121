"""TensorBoard event files by hand: CRC32C and its mask, protobuf varints, a written file read back value for value,
corruption caught, and the metrics log mirroring its records (and its resume trim) to event files."""

from __future__ import annotations

import json
import struct

import pytest

from thrifty.core.errors import ConfigError
from thrifty.core.metrics_log import MetricsLog
from thrifty.core.tb_events import (
    EventWriter,
    crc32c,
    decode_event,
    encode_event,
    frame,
    mask_crc,
    read_events,
    varint,
)


def _f32(x: float) -> float:
    return struct.unpack("<f", struct.pack("<f", x))[0]


def test_crc32c_known_answers():
    assert crc32c(b"123456789") == 0xE3069283
    assert crc32c(b"") == 0
    assert crc32c(bytes(32)) == 0x8A9136AA  # iSCSI test vectors (RFC 3720, B.4)
    assert crc32c(b"\xff" * 32) == 0x62A8AB43
    assert crc32c(bytes(range(32))) == 0x46DD794E


def test_mask_rotates_right_by_15_and_adds_the_constant():
    assert mask_crc(0) == 0xA282EAD8
    assert mask_crc(0x8000) == 0xA282EAD9  # bit 15 rotates down to bit 0
    assert mask_crc(1) == 0xA284EAD8  # bit 0 rotates up to bit 17
    assert mask_crc(0xFFFFFFFF) == (0xFFFFFFFF + 0xA282EAD8) % 2**32  # the sum wraps


def test_varints_and_a_header_record_by_hand():
    assert varint(0) == b"\x00" and varint(1) == b"\x01" and varint(127) == b"\x7f"
    assert varint(300) == b"\xac\x02"
    assert varint(-1) == b"\xff" * 9 + b"\x01"  # int64 two's complement: ten bytes
    data = encode_event(1.0, file_version="brain.Event:2")
    assert data == b"\x09" + struct.pack("<d", 1.0) + b"\x1a\x0dbrain.Event:2"
    record = frame(data)
    assert record[:8] == struct.pack("<Q", 24) and record[8:12] == b'\xa3\x7fK"'  # the start of every such file
    assert record[-4:] == struct.pack("<I", mask_crc(crc32c(data)))


def test_a_written_file_reads_back_exactly(tmp_path):
    with EventWriter(tmp_path / "tb") as w:
        w.add_scalars(1, {"loss": 0.1, "eval_reward": 2, "ok": True, "note": "x", "bad": float("nan"),
                          "big": 1e39, "inf": float("inf")}, wall_time=100.5)
        w.add_scalars(2, {"loss": -3.25}, wall_time=101.0)
        w.add_scalars(3, {"nan": float("nan")})  # nothing finite: no event
        w.add_scalars(300, {"loss": 1e-3}, wall_time=102.0)
    assert w.path.parent == tmp_path / "tb" and w.path.name.startswith("events.out.tfevents.")
    assert w.path.name.endswith(".thrifty")
    events = read_events(w.path)
    assert events == [
        {"step": 1, "wall_time": 100.5, "scalars": {"loss": _f32(0.1), "eval_reward": 2.0}},
        {"step": 2, "wall_time": 101.0, "scalars": {"loss": -3.25}},
        {"step": 300, "wall_time": 102.0, "scalars": {"loss": _f32(1e-3)}},
    ]
    header = w.path.read_bytes()
    assert decode_event(header[12:12 + 24])["file_version"] == "brain.Event:2"


def test_a_second_writer_in_the_same_second_gets_its_own_file(tmp_path):
    with EventWriter(tmp_path) as a, EventWriter(tmp_path) as b:
        a.add_scalars(1, {"x": 1.0})
        b.add_scalars(1, {"x": 2.0})
    assert a.path != b.path and len(list(tmp_path.iterdir())) == 2
    assert read_events(b.path)[0]["scalars"] == {"x": 2.0}


@pytest.mark.parametrize("where", ["length", "data", "data_crc", "truncated"])
def test_corruption_is_a_one_line_config_error(tmp_path, where):
    with EventWriter(tmp_path) as w:
        w.add_scalars(5, {"loss": 1.5})
    raw = bytearray(w.path.read_bytes())
    second = len(frame(encode_event(0.0, file_version="brain.Event:2")))  # where the scalar record starts
    if where == "truncated":
        raw = raw[:-3]
    else:
        at = {"length": second, "data": second + 20, "data_crc": len(raw) - 1}[where]
        raw[at] ^= 0x01
    w.path.write_bytes(bytes(raw))
    with pytest.raises(ConfigError, match="record 2 is corrupt") as err:
        read_events(w.path)
    assert "\n" not in str(err.value)


def test_metrics_log_mirrors_numeric_fields_and_trims_on_resume(tmp_path):
    with MetricsLog(tmp_path, tensorboard=True) as log:
        for step in (1, 2, 3):
            log.write({"step": step, "loss": step / 2, "stage": "a", "done": False})
    with MetricsLog(tmp_path, resume_step=2, tensorboard=True) as log:  # resumed from a step-2 checkpoint
        log.write({"step": 3, "loss": 9.0})
    lines = [json.loads(ln) for ln in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in lines] == [1, 2, 3] and lines[-1]["loss"] == 9.0
    first, resumed = sorted((tmp_path / "tb").iterdir())
    assert [(e["step"], e["scalars"]) for e in read_events(first)] == [(1, {"loss": 0.5}), (2, {"loss": 1.0}),
                                                                       (3, {"loss": 1.5})]
    assert [(e["step"], e["scalars"]) for e in read_events(resumed)] == [(3, {"loss": 9.0})]
    with MetricsLog(tmp_path / "plain") as log:
        log.write({"step": 1, "loss": 1.0})
    assert not (tmp_path / "plain" / "tb").exists()
