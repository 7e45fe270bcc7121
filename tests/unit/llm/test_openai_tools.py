"""OpenAI tools through the OpenAI-compatible backend: sent as given, tool calls read back."""

from __future__ import annotations

import json

import httpx

from thrifty.llm.base import GenParams
from thrifty.llm.openai_compat import OpenAICompatModel

TOOLS = [{"type": "function", "function": {"name": "add", "parameters": {"type": "object"}}}]
CALL = {"id": "call_9", "type": "function", "function": {"name": "add", "arguments": "{\"a\": 1}"}}


def test_chat_tools_sends_tools_and_raw_turns_and_returns_the_calls():
    seen = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(json.loads(request.content))
        return httpx.Response(200, json={"model": "m", "usage": {"prompt_tokens": 9, "completion_tokens": 3},
                                         "choices": [{"index": 0, "finish_reason": "tool_calls",
                                                      "message": {"role": "assistant", "content": None,
                                                                  "tool_calls": [CALL]}}]})

    model = OpenAICompatModel("http://127.0.0.1:9/v1", "m", transport=httpx.MockTransport(handler))
    turns = [{"role": "user", "content": "add"}, {"role": "assistant", "content": None, "tool_calls": [CALL]},
             {"role": "tool", "tool_call_id": "call_9", "content": "1"}]
    done = model.chat_tools(turns, GenParams(max_tokens=5), TOOLS, "auto")
    body = seen[-1]
    assert body["tools"] == TOOLS and body["tool_choice"] == "auto" and body["messages"] == turns
    assert done.extra["tool_calls"] == [CALL] and done.extra["finish_reason_raw"] == "tool_calls"
    assert done.text == "" and (done.tokens_in, done.tokens_out) == (9, 3)
    model.chat_tools(turns[:1], None, None)
    assert "tools" not in seen[-1] and "tool_choice" not in seen[-1]  # no tools: a plain request
