"""Export a GGUF model to a local Hugging Face directory (safetensors + tokenizer) for torch-side work.

Fine-tuning (LoRA) and the ``hf`` backend need a transformers model; the bundled models ship as GGUF only.
transformers reads a GGUF file itself, dequantising every tensor to float32, but refuses to save such a model
(it still carries the GGUF quantisation config). So the export loads it once, builds a plain model of the same
architecture from the config without ``quantization_config``, copies the weights in, and saves that with the
tokenizer (whose chat template comes from the GGUF metadata).

The export is idempotent: the output directory carries ``thrifty_export.json`` naming the source file, its size
and modification time; a matching directory is reused as is. The files are written to a temporary sibling
directory and renamed into place, so an interrupted export never leaves a half-written model behind.
"""

from __future__ import annotations

import json
import shutil
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from thrifty.core.errors import ConfigError, ModelError

EXPORT_MARKER = "thrifty_export.json"
EXPORT_VERSION = 1
_DTYPES = ("float32", "bfloat16")


def default_export_dir(gguf: Path) -> Path:
    """Where an export of ``gguf`` goes by default: ``<models dir>/hf/<file stem>``."""
    return gguf.parent / "hf" / gguf.stem


def _source_info(gguf: Path, dtype: str) -> dict[str, Any]:
    st = gguf.stat()
    return {"source": gguf.name, "size": st.st_size, "mtime_ns": st.st_mtime_ns, "dtype": dtype,
            "v": EXPORT_VERSION}


def is_current(out_dir: Path, gguf: Path, dtype: str = "float32") -> bool:
    """True when ``out_dir`` already holds an export of this very ``gguf`` file in ``dtype``."""
    marker = out_dir / EXPORT_MARKER
    if not marker.is_file() or not (out_dir / "config.json").is_file():
        return False
    try:
        info = json.loads(marker.read_text())
    except (OSError, ValueError):
        return False
    want = _source_info(gguf, dtype)
    return all(info.get(k) == want[k] for k in want)


def export_hf(gguf: str | Path, out_dir: str | Path | None = None, dtype: str = "float32",
              force: bool = False, notify: Callable[[str], None] | None = None) -> tuple[Path, bool]:
    """Write a Hugging Face copy of ``gguf`` to ``out_dir``; returns (directory, whether it was written now).
    ``notify`` hears one line before a (slow) export starts; nothing when a current export is reused."""
    if dtype not in _DTYPES:
        raise ConfigError(f"dtype must be one of {', '.join(_DTYPES)}, got {dtype!r}")
    gguf = Path(gguf).expanduser()
    if not gguf.is_file():
        raise ConfigError(f"{gguf}: no such GGUF file")
    out = Path(out_dir).expanduser() if out_dir else default_export_dir(gguf)
    if out.exists() and not out.is_dir():
        raise ConfigError(f"{out}: exists and is not a directory")
    if not force and is_current(out, gguf, dtype):
        return out, False
    if out.is_dir() and any(out.iterdir()) and not (out / EXPORT_MARKER).is_file():
        raise ConfigError(f"{out}: a non-empty directory that is not a thrifty export; choose another --out")
    if notify is not None:
        notify(f"{gguf.name}: exporting to {out} (dequantising to {dtype}; may take a minute)")
    t0 = time.perf_counter()
    model, tokenizer = _load_plain(gguf, dtype)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}-", dir=out.parent))
    tmp.chmod(0o755)  # mkdtemp makes it private; an export is an ordinary model folder
    try:
        model.save_pretrained(tmp, safe_serialization=True)
        tokenizer.save_pretrained(tmp)
        info = {**_source_info(gguf, dtype), "seconds": round(time.perf_counter() - t0, 1),
                "architecture": type(model).__name__}
        (tmp / EXPORT_MARKER).write_text(json.dumps(info, indent=2) + "\n")
        if out.exists():
            shutil.rmtree(out)
        tmp.rename(out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out, True


def _load_plain(gguf: Path, dtype: str) -> tuple[Any, Any]:
    """The GGUF's tokenizer and a plain (unquantised-config) transformers model holding its weights."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    try:
        tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
        loaded = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32)
    except (OSError, ValueError, KeyError, RuntimeError) as exc:
        first = (str(exc).splitlines() or [type(exc).__name__])[0][:300]
        raise ModelError(f"{gguf}: transformers cannot read this GGUF: {first}") from None
    config = loaded.config
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    plain = AutoModelForCausalLM.from_config(config, dtype=getattr(torch, dtype))
    missing, unexpected = plain.load_state_dict(loaded.state_dict(), strict=False)
    tied = {"lm_head.weight"} if getattr(config, "tie_word_embeddings", False) else set()
    if set(missing) - tied or unexpected:
        raise ModelError(f"{gguf}: weights do not match the architecture (missing {sorted(missing)[:3]}, "
                         f"unexpected {sorted(unexpected)[:3]})")
    if tied:
        plain.tie_weights()
    if getattr(plain, "generation_config", None) is not None and getattr(loaded, "generation_config", None):
        plain.generation_config = loaded.generation_config
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return plain.eval(), tokenizer
