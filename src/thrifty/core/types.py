"""Small shared types and the canonical content hash used to address records."""

from __future__ import annotations

import dataclasses
import hashlib
import json
from typing import Any, TypeAlias

Message: TypeAlias = dict[str, Any]
"""One chat message: {"role": "system"|"user"|"assistant"|"tool", "content": str, ...}."""

Messages: TypeAlias = list[Message]


def to_jsonable(obj: Any) -> Any:
    """Turn dataclasses, tuples, sets and paths into plain JSON values (dict keys sorted on dump)."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: to_jsonable(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, dict):
        return {str(k): to_jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [to_jsonable(v) for v in obj]
    if isinstance(obj, (set, frozenset)):
        return sorted(to_jsonable(v) for v in obj)
    if isinstance(obj, float) and obj != obj:  # NaN has no canonical JSON form
        return "NaN"
    if isinstance(obj, (str, int, float, bool)) or obj is None:
        return obj
    return str(obj)


def canonical_json(obj: Any) -> str:
    """Deterministic JSON: sorted keys, no whitespace, UTF-8 kept."""
    return json.dumps(to_jsonable(obj), sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def content_hash(obj: Any) -> str:
    """sha256 hex digest of the canonical JSON of ``obj`` — the address of a record."""
    return hashlib.sha256(canonical_json(obj).encode("utf-8")).hexdigest()
