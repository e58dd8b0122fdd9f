"""What `bailong serve` accepts and answers, shaped like OpenAI's chat-completions API: the request body, its checks,
and errors as {"error": {"message", "type", "param", "code"}} with OpenAI's codes."""

from __future__ import annotations

import dataclasses
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from bailong.inference.chat_model import GenerationSettings

ROLES = ("system", "developer", "user", "assistant")  # developer: OpenAI's newer name for system


class ChatRequest(BaseModel):
    """The body of POST /v1/chat/completions; fields OpenAI has and this server does not use are ignored."""

    model_config = ConfigDict(extra="ignore")

    model: str | None = None  # absent: the served model
    messages: list[dict[str, Any]]
    temperature: float | None = Field(None, ge=0, le=2)  # None (or absent): GenerationSettings' default
    top_p: float | None = Field(None, gt=0, le=1)
    max_tokens: int | None = Field(None, ge=1)
    max_completion_tokens: int | None = Field(None, ge=1)  # OpenAI's newer name; wins over max_tokens
    stream: bool | None = False
    stream_options: dict[str, Any] | None = None
    stop: Any = None
    seed: int | None = None
    n: int | None = Field(None, ge=1, le=1)
    repetition_penalty: float | None = Field(None, gt=0)

    @property
    def completion_limit(self) -> tuple[str, int | None]:
        """The field that limits the completion and its value (None: not given)."""
        if self.max_completion_tokens is not None:
            return "max_completion_tokens", self.max_completion_tokens
        return "max_tokens", self.max_tokens

    def settings(
        self, max_new_tokens: int | None = None, defaults: GenerationSettings | None = None
    ) -> GenerationSettings:
        given = {
            "max_new_tokens": max_new_tokens or self.completion_limit[1],
            "temperature": self.temperature,
            "top_p": self.top_p,
            "repetition_penalty": self.repetition_penalty,
            "seed": self.seed,
        }
        base = defaults or GenerationSettings()
        return dataclasses.replace(base, **{k: v for k, v in given.items() if v is not None})


class ApiError(Exception):
    """A request the client must fix, answered in OpenAI's error shape (400 unless `status` says otherwise)."""

    def __init__(self, message: str, param: str | None = None, code: str | None = None, status: int = 400):
        super().__init__(message)
        self.param, self.code, self.status = param, code, status

    def body(self) -> dict:
        return error_body(str(self), self.param, code=self.code)


def unauthorized() -> ApiError:
    return ApiError(
        "Incorrect or missing API key: send the header 'Authorization: Bearer <key>' with the key this server was "
        "started with (bailong serve --api-key-env NAME)",
        code="invalid_api_key",
        status=401,
    )


def error_body(
    message: str, param: str | None = None, kind: str = "invalid_request_error", code: str | None = None
) -> dict:
    return {"error": {"message": message, "type": kind, "param": param, "code": code}}


def model_not_found(name: str, served: str) -> ApiError:
    return ApiError(
        f"The model {name!r} does not exist; this server serves {served!r} (GET /v1/models)",
        "model",
        "model_not_found",
        404,
    )


# pydantic's error types -> OpenAI's error codes for a value out of range, of the wrong type, or missing.
_BELOW = {"greater_than", "greater_than_equal", "too_short"}
_ABOVE = {"less_than", "less_than_equal", "too_long"}
_DECIMALS = {"temperature", "top_p", "repetition_penalty"}


def validation_error(err: dict) -> ApiError:
    """The first error of a RequestValidationError as OpenAI reports it."""
    kind = str(err.get("type", ""))
    if kind == "json_invalid":
        return ApiError(f"the body is not valid JSON: {err.get('msg')}")
    loc = [p for p in err.get("loc", ()) if p != "body"]
    param = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in loc).lstrip(".") or None
    message = f"{param}: {err.get('msg')}" if param else str(err.get("msg"))
    number = "decimal" if param in _DECIMALS else "integer"
    if kind == "missing":
        code = "missing_required_parameter"
    elif kind in _BELOW:
        code = f"{number}_below_min_value"
    elif kind in _ABOVE:
        code = f"{number}_above_max_value"
    elif kind.endswith(("_type", "_parsing")):
        code = "invalid_type"
    else:
        code = "invalid_value"
    return ApiError(message, param, code)


def check_messages(raw: list[dict[str, Any]]) -> list[dict[str, str]]:
    """Checks the conversation; text-part lists become plain strings, the developer role becomes system."""
    if not raw:
        raise ApiError("messages: must hold at least one message", "messages", "empty_array")
    out = []
    for i, message in enumerate(raw):
        role, content, at = message.get("role"), message.get("content"), f"messages[{i}]"
        if role not in ROLES:
            raise ApiError(f"{at}.role: {role!r} is not one of {', '.join(ROLES)}", f"{at}.role", "invalid_value")
        if isinstance(content, list) and all(
            isinstance(p, dict) and p.get("type") == "text" and isinstance(p.get("text"), str) for p in content
        ):
            content = "".join(p["text"] for p in content)
        if not isinstance(content, str):
            raise ApiError(f"{at}.content: must be a string or a list of text parts", f"{at}.content", "invalid_type")
        out.append({"role": "system" if role == "developer" else role, "content": content})
    return out


def check_stops(stop: Any) -> list[str]:
    stops = [] if stop is None else [stop] if isinstance(stop, str) else stop
    if not isinstance(stops, list) or not all(isinstance(s, str) for s in stops):
        raise ApiError("stop: must be a string or a list of strings", "stop", "invalid_type")
    return [s for s in stops if s]


def completion_budget(
    req: ChatRequest, prompt_tokens: int, context: int | None, default: int = GenerationSettings.max_new_tokens
) -> int | None:
    """The completion's token limit: the request's, or without one the default cut to what the context has left.
    Raises ApiError (context_length_exceeded) when the prompt, or the prompt and the asked limit, do not fit."""
    field, asked = req.completion_limit
    if context is None:
        return asked
    if prompt_tokens >= context:
        raise ApiError(
            f"This model's maximum context length is {context} tokens, but the messages take {prompt_tokens} tokens, "
            "which leaves no room for a reply; shorten the messages",
            "messages",
            "context_length_exceeded",
        )
    if asked is not None and prompt_tokens + asked > context:
        raise ApiError(
            f"This model's maximum context length is {context} tokens, but you requested {prompt_tokens + asked} "
            f"tokens ({prompt_tokens} in the messages, {asked} in the completion); shorten the messages or lower "
            f"{field} to at most {context - prompt_tokens}",
            field,
            "context_length_exceeded",
        )
    return asked if asked is not None else min(default, context - prompt_tokens)


def cut(text: str, stops: list[str]) -> str:
    """The text before the first stop string."""
    hits = [i for i in (text.find(s) for s in stops) if i >= 0]
    return text[: min(hits)] if hits else text


def shown(text: str, stops: list[str]) -> str:
    """The part of a reply still being generated that is final: no partial stop string or trailing whitespace."""
    before = cut(text, stops)
    if len(before) == len(text):
        held = max((k for s in stops for k in range(1, len(s)) if text.endswith(s[:k])), default=0)
        before = text[: len(text) - held]
    return before.strip()
