"""Property-based check of the server against its own OpenAPI schema (schemathesis): for generated requests, no
5xx, only documented status codes and content types, and every response body matches its schema (OpenAI-shaped
errors included)."""

from __future__ import annotations

import tempfile
from pathlib import Path

import pytest

schemathesis = pytest.importorskip("schemathesis")

from _serve_fakes import service  # noqa: E402
from hypothesis import HealthCheck, settings  # noqa: E402

from thrifty.route.serve.app import build_app  # noqa: E402

_svc, _ = service(Path(tempfile.mkdtemp(prefix="thrifty-schema-")), burst=1_000_000, rate=1_000_000.0)
schema = schemathesis.openapi.from_asgi("/openapi.json", build_app(_svc))


@schema.parametrize()
@settings(max_examples=60, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck))
def test_server_conforms_to_its_openapi_schema(case):
    case.call_and_validate()
