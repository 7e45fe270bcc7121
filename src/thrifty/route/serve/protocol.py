"""The OpenAI-compatible wire protocol of the routing server (pydantic models) and its error shape.

Requests accept what stock OpenAI clients send (unknown fields are ignored); content may be a string or a list
of text parts. Routing extensions travel in OpenAI's own ``metadata`` field (``metadata.task``: the request's
task/domain tag) or in ``x-thrifty-*`` request headers, so unmodified clients keep working. Tools are checked here,
at the edge (OpenAI's function-tool shape), so a malformed tool list is the client's 400, never a backend failure.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field


class ChatMessage(BaseModel):
    model_config = ConfigDict(extra="allow")

    role: Literal["system", "developer", "user", "assistant", "tool"]
    content: str | list[dict[str, Any]] | None = None
    name: str | None = None
    tool_calls: list[dict[str, Any]] | None = None
    tool_call_id: str | None = None

    def text(self) -> str:
        """The message's text: a string as is, text parts joined, nothing for None."""
        if self.content is None:
            return ""
        if isinstance(self.content, str):
            return self.content
        return "".join(str(p.get("text", "")) for p in self.content if p.get("type", "text") == "text")


class ToolFunction(BaseModel):
    model_config = ConfigDict(extra="allow")

    name: str = Field(pattern=r"^[A-Za-z0-9_-]{1,64}$")
    description: str | None = None
    parameters: dict[str, Any] | None = None  # a JSON Schema object
    strict: bool | None = None


class Tool(BaseModel):
    type: Literal["function"]
    function: ToolFunction


class ChatCompletionRequest(BaseModel):
    model_config = ConfigDict(extra="allow")

    model: str
    messages: list[ChatMessage] = Field(min_length=1)
    stream: bool = False
    max_tokens: int | None = Field(default=None, ge=1)
    max_completion_tokens: int | None = Field(default=None, ge=1)
    temperature: float | None = Field(default=None, ge=0.0, le=2.0)
    top_p: float | None = Field(default=None, gt=0.0, le=1.0)
    seed: int | None = None
    stop: str | Annotated[list[str], Field(max_length=4)] | None = None
    n: int = Field(default=1, ge=1, le=1)
    tools: list[Tool] | None = None
    tool_choice: Any = None
    metadata: dict[str, Any] | None = None
    user: str | None = None

    def plain_messages(self) -> list[dict[str, str]]:
        """The conversation as {role, content} dicts of text (developer messages count as system)."""
        return [{"role": "system" if m.role == "developer" else m.role, "content": m.text()} for m in self.messages]

    def tool_dicts(self) -> list[dict[str, Any]]:
        """The tools as the client sent them (fields it did not send stay out)."""
        return [t.model_dump(exclude_unset=True) for t in self.tools or []]

    def answer_budget(self) -> int | None:
        return self.max_completion_tokens or self.max_tokens

    def stop_list(self) -> tuple[str, ...]:
        return () if self.stop is None else ((self.stop,) if isinstance(self.stop, str) else tuple(self.stop))


class Usage(BaseModel):
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int


class ChoiceMessage(BaseModel):
    role: Literal["assistant"] = "assistant"
    content: str | None
    tool_calls: list[dict[str, Any]] | None = None


class Choice(BaseModel):
    index: int = 0
    message: ChoiceMessage
    finish_reason: str


class ChatCompletion(BaseModel):
    id: str
    object: Literal["chat.completion"] = "chat.completion"
    created: int
    model: str
    choices: list[Choice]
    usage: Usage
    thrifty: dict[str, Any]


class ModelCard(BaseModel):
    id: str
    object: Literal["model"] = "model"
    created: int
    owned_by: str = "thrifty"


class ModelList(BaseModel):
    object: Literal["list"] = "list"
    data: list[ModelCard]


class ErrorDetail(BaseModel):
    message: str
    type: str
    param: str | None = None
    code: str | None = None


class ErrorBody(BaseModel):
    error: ErrorDetail


ERROR_STATUSES = {400: "invalid request (tools included), max_tokens over the cap, or refused by the model backend",
                  401: "missing or invalid API key",
                  404: "unknown model", 413: "request body too large", 429: "rate limit reached (Retry-After)",
                  500: "internal error", 503: "no backend could answer"}


def error_body(message: str, kind: str, code: str | None = None, param: str | None = None) -> dict[str, Any]:
    """OpenAI's error shape: {"error": {"message", "type", "param", "code"}}."""
    return {"error": {"message": message, "type": kind, "param": param, "code": code}}


__all__ = ["ERROR_STATUSES", "ChatCompletion", "ChatCompletionRequest", "ChatMessage", "Choice", "ChoiceMessage",
           "ErrorBody", "ErrorDetail", "ModelCard", "ModelList", "Tool", "ToolFunction", "Usage", "error_body"]
