"""Server-sent events for a routed reply, streamed while the answering backend generates it.

The routing runs in a worker thread and reports through a queue: the HTTP response starts (status 200 and the
``x-thrifty-*`` headers of the decision) only once the answering tier is known — so a request that cannot be
served still gets a proper error status — then each generated piece goes out as a ``chat.completion.chunk``, and
the last chunk carries ``finish_reason``, ``usage`` and the full ``thrifty`` metadata, followed by
``data: [DONE]``. Every chunk carries the same id, ``chatcmpl-<request id>`` (the request id is known before the
first chunk). A backend failure after text went out ends the stream with an OpenAI-shaped error event (code
``stream_interrupted``) and no ``[DONE]``.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

from thrifty.route.serve.protocol import error_body
from thrifty.route.serve.service import Routed, ServiceError

log = logging.getLogger("thrifty.server")


def _chunk(base: dict[str, Any], delta: dict[str, Any], finish: str | None = None, **extra: Any) -> str:
    body = {**base, "choices": [{"index": 0, "delta": delta, "finish_reason": finish}], **extra}
    return f"data: {json.dumps(body)}\n\n"


def decision_headers(router: str, decided: dict[str, Any]) -> dict[str, str]:
    """The ``x-thrifty-*`` headers known when the answering tier is chosen (``decided`` names tiers as clients see
    them)."""
    out = {"x-thrifty-router": router, "x-thrifty-model": str(decided["model"]),
           "x-thrifty-action": str(decided["action"]), "x-thrifty-tier": str(decided["tier"])}
    preds = decided.get("predictions") or []
    if preds:
        first = preds[0]
        out["x-thrifty-label"] = str(first["label"])
        out.update({f"x-thrifty-{k.replace('_', '-')}": f"{first[k]:.4f}" for k in ("p_great", "p_ok", "p_bad")})
    return out


async def stream_reply(run: Callable[[Callable[[str, Any], None]], Routed], model: str, router: str,
                       error: Callable[..., Any], metadata: Callable[[Routed], dict[str, Any]]) -> Any:
    """Run ``run(on_event)`` (the service call) in a thread and answer with a streaming response, or with
    ``error(...)``'s response when the request fails before any text; ``metadata(res)`` is the last chunk's
    ``thrifty`` field."""
    from fastapi.responses import StreamingResponse
    from starlette.concurrency import run_in_threadpool

    loop = asyncio.get_running_loop()
    queue: asyncio.Queue = asyncio.Queue()

    def emit(kind: str, payload: Any) -> None:
        loop.call_soon_threadsafe(queue.put_nowait, (kind, payload))

    async def work() -> None:
        try:
            res = await run_in_threadpool(run, emit)
        except ServiceError as exc:
            queue.put_nowait(("error", exc))
        except Exception as exc:
            log.error("streamed request failed: %s: %s", type(exc).__name__, exc)
            queue.put_nowait(("error", ServiceError(500, "internal error", "server_error", "internal_error")))
        else:
            queue.put_nowait(("done", res))

    task = asyncio.create_task(work())
    kind, payload = await queue.get()
    if kind == "error":
        await task
        return error(payload.status, payload.message, payload.kind, payload.code)
    decided = payload
    created = int(time.time())

    async def events() -> AsyncIterator[str]:
        base: dict[str, Any] = {"id": f"chatcmpl-{decided['request_id']}", "object": "chat.completion.chunk",
                                "created": created, "model": model}
        yield _chunk(base, {"role": "assistant", "content": ""})
        while True:
            kind, payload = await queue.get()
            if kind == "text":
                yield _chunk(base, {"content": payload})
            elif kind == "done":
                res: Routed = payload
                if res.tool_calls:
                    yield _chunk(base, {"tool_calls": [{"index": j, **c} for j, c in enumerate(res.tool_calls)]})
                usage = {"prompt_tokens": res.tokens_in, "completion_tokens": res.tokens_out,
                         "total_tokens": res.tokens_in + res.tokens_out}
                yield _chunk(base, {}, res.finish_reason, thrifty=metadata(res), usage=usage)
                yield "data: [DONE]\n\n"
                return
            elif kind == "error":
                yield f"data: {json.dumps(error_body(payload.message, payload.kind, payload.code))}\n\n"
                return

    headers = {"x-thrifty-request-id": str(decided["request_id"]), **decision_headers(router, decided)}
    return StreamingResponse(events(), media_type="text/event-stream", headers=headers)


__all__ = ["decision_headers", "stream_reply"]
