"""An OpenAI-compatible chat API (`/v1/chat/completions`, `/v1/models`) over a loaded chat model.

Any OpenAI client can talk to a stage's output: set its base URL to `http://127.0.0.1:8000/v1`. One model is shared,
so generations run one at a time. A value a request leaves out takes `GenerationSettings`' default (the same as
`bailong chat`); temperature 0 means greedy decoding. `repetition_penalty` is a vLLM-style extension.
"""

from __future__ import annotations

import json
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field

from bailong.errors import BailongError
from bailong.inference.chat_model import GenerationSettings

if TYPE_CHECKING:
    import fastapi
    import uvicorn

    from bailong.inference.chat_model import ChatModel

ROLES = ("system", "user", "assistant")


class ChatRequest(BaseModel):
    """The body of POST /v1/chat/completions; fields OpenAI has and this server does not use are ignored."""

    model_config = ConfigDict(extra="ignore")

    model: str | None = None
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

    def settings(self) -> GenerationSettings:
        given = {
            "max_new_tokens": self.max_completion_tokens or self.max_tokens,
            "temperature": self.temperature,
            "top_p": self.top_p,
            "repetition_penalty": self.repetition_penalty,
            "seed": self.seed,
        }
        return GenerationSettings(**{k: v for k, v in given.items() if v is not None})


class ApiError(Exception):
    """A request the client must fix: answered 400 in OpenAI's error shape."""

    def __init__(self, message: str, param: str | None = None):
        super().__init__(message)
        self.param = param


@dataclass
class _Result:
    text: str
    prompt_tokens: int
    completion_tokens: int
    finish_reason: str

    @property
    def usage(self) -> dict:
        return {
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "total_tokens": self.prompt_tokens + self.completion_tokens,
        }


def _error_body(message: str, param: str | None = None, kind: str = "invalid_request_error") -> dict:
    return {"error": {"message": message, "type": kind, "param": param, "code": None}}


def _messages(raw: list[dict[str, Any]]) -> list[dict[str, str]]:
    """Checks the conversation; text-part lists become plain strings."""
    if not raw:
        raise ApiError("messages: must hold at least one message", "messages")
    out = []
    for i, message in enumerate(raw):
        role, content, at = message.get("role"), message.get("content"), f"messages[{i}]"
        if role not in ROLES:
            raise ApiError(f"{at}.role: {role!r} is not one of {', '.join(ROLES)}", f"{at}.role")
        if isinstance(content, list) and all(
            isinstance(p, dict) and p.get("type") == "text" and isinstance(p.get("text"), str) for p in content
        ):
            content = "".join(p["text"] for p in content)
        if not isinstance(content, str):
            raise ApiError(f"{at}.content: must be a string or a list of text parts", f"{at}.content")
        out.append({"role": role, "content": content})
    return out


def _stops(stop: Any) -> list[str]:
    stops = [] if stop is None else [stop] if isinstance(stop, str) else stop
    if not isinstance(stops, list) or not all(isinstance(s, str) for s in stops):
        raise ApiError("stop: must be a string or a list of strings", "stop")
    return [s for s in stops if s]


def _cut(text: str, stops: list[str]) -> str:
    """The text before the first stop string."""
    hits = [i for i in (text.find(s) for s in stops) if i >= 0]
    return text[: min(hits)] if hits else text


def _shown(text: str, stops: list[str]) -> str:
    """The part of a reply still being generated that is final: no partial stop string or trailing whitespace."""
    cut = _cut(text, stops)
    if len(cut) == len(text):
        held = max((k for s in stops for k in range(1, len(s)) if text.endswith(s[:k])), default=0)
        cut = text[: len(text) - held]
    return cut.strip()


def _generate(bot: ChatModel, ids, req: ChatRequest, stops: list[str], streamer=None, cancel=None) -> _Result:
    """One completion; the caller holds the generation lock."""
    import torch
    from transformers import StoppingCriteria, StoppingCriteriaList

    prompt_len, eos = ids.shape[1], bot.eos_ids()
    hit = threading.Event()

    class Stop(StoppingCriteria):  # at a stop string, or when a streaming client went away
        def __call__(self, input_ids, scores, **kwargs):
            text = bot.tokenizer.decode(input_ids[0, prompt_len:], skip_special_tokens=True) if stops else ""
            if any(s in text for s in stops):
                hit.set()
            done = hit.is_set() or (cancel is not None and cancel.is_set())
            return torch.full((input_ids.shape[0],), done, dtype=torch.bool, device=input_ids.device)

    settings = req.settings()
    new = bot.generate(ids, settings, streamer=streamer, stopping_criteria=StoppingCriteriaList([Stop()]))
    raw = bot.tokenizer.decode(new, skip_special_tokens=True)
    length = len(new) >= settings.max_new_tokens and not hit.is_set() and (not new or new[-1] not in eos)
    return _Result(_cut(raw, stops).strip(), prompt_len, len(new), "length" if length else "stop")


def create_app(bot: ChatModel, model_name: str) -> fastapi.FastAPI:
    """The OpenAI-compatible API app over a loaded model."""
    from fastapi import FastAPI
    from fastapi.exceptions import RequestValidationError
    from fastapi.responses import JSONResponse, StreamingResponse
    from starlette.exceptions import HTTPException

    app = FastAPI(title=f"bailong serve: {model_name}")
    lock = threading.Lock()
    created = int(time.time())

    @app.exception_handler(ApiError)
    def _api_error(request, exc: ApiError):
        return JSONResponse(_error_body(str(exc), exc.param), status_code=400)

    @app.exception_handler(RequestValidationError)
    def _invalid(request, exc: RequestValidationError):
        err = exc.errors()[0]
        loc = [p for p in err.get("loc", ()) if p != "body"]
        if err.get("type") == "json_invalid":
            return JSONResponse(_error_body(f"the body is not valid JSON: {err.get('msg')}"), status_code=400)
        param = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in loc).lstrip(".") or None
        message = f"{param}: {err.get('msg')}" if param else str(err.get("msg"))
        return JSONResponse(_error_body(message, param), status_code=400)

    @app.exception_handler(HTTPException)
    def _http(request, exc: HTTPException):
        kind = "invalid_request_error" if exc.status_code < 500 else "server_error"
        return JSONResponse(_error_body(str(exc.detail), kind=kind), status_code=exc.status_code)

    @app.get("/health")
    def health() -> dict:
        return {"status": "ok"}

    @app.get("/v1/models")
    def models() -> dict:
        return {
            "object": "list",
            "data": [{"id": model_name, "object": "model", "created": created, "owned_by": "bailong"}],
        }

    @app.post("/v1/chat/completions")
    def completions(req: ChatRequest):
        messages, stops = _messages(req.messages), _stops(req.stop)
        with lock:
            try:
                ids = bot.prompt_ids(messages)
            except Exception as exc:  # noqa: BLE001 - a template that rejects this conversation
                raise ApiError(f"messages: the chat template cannot render them: {exc}", "messages") from None
        head = {"id": f"chatcmpl-{uuid.uuid4().hex}", "created": int(time.time()), "model": model_name}
        if req.stream:
            return StreamingResponse(
                _events(bot, lock, ids, req, stops, head),
                media_type="text/event-stream",
                headers={"Cache-Control": "no-cache"},
            )
        with lock:
            result = _generate(bot, ids, req, stops)
        return {
            **head,
            "object": "chat.completion",
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": result.text},
                    "finish_reason": result.finish_reason,
                }
            ],
            "usage": result.usage,
        }

    return app


def _events(bot: ChatModel, lock: threading.Lock, ids, req: ChatRequest, stops: list[str], head: dict) -> Iterator[str]:
    """Server-sent events of chat.completion.chunk objects; generation runs in a background thread."""
    from transformers import TextIteratorStreamer

    streamer = TextIteratorStreamer(bot.tokenizer, skip_prompt=True, skip_special_tokens=True)
    cancel, box = threading.Event(), {}

    def work() -> None:
        try:
            with lock:
                box["result"] = _generate(bot, ids, req, stops, streamer, cancel)
        except Exception as exc:  # noqa: BLE001 - reported to the client as an error event
            box["error"] = exc
            streamer.end()

    def event(delta: dict | None, finish: str | None = None, **extra) -> str:
        choices = [] if delta is None else [{"index": 0, "delta": delta, "finish_reason": finish}]
        chunk = {**head, "object": "chat.completion.chunk", "choices": choices, **extra}
        return f"data: {json.dumps(chunk, ensure_ascii=False)}\n\n"

    thread = threading.Thread(target=work, daemon=True)
    thread.start()
    try:
        yield event({"role": "assistant", "content": ""})
        raw, sent = "", ""
        for piece in streamer:
            raw += piece
            shown = _shown(raw, stops)
            if len(shown) > len(sent) and shown.startswith(sent):
                yield event({"content": shown[len(sent) :]})
                sent = shown
        thread.join()
        if "error" in box:
            yield f"data: {json.dumps(_error_body(str(box['error']), kind='server_error'))}\n\n"
        else:
            result = box["result"]
            if len(result.text) > len(sent) and result.text.startswith(sent):
                yield event({"content": result.text[len(sent) :]})
            yield event({}, result.finish_reason)
            if (req.stream_options or {}).get("include_usage"):
                yield event(None, usage=result.usage)
        yield "data: [DONE]\n\n"
    finally:
        cancel.set()  # a client that went away stops the generation


def start_in_thread(
    app: fastapi.FastAPI, host: str = "127.0.0.1", port: int = 0, timeout: float = 30.0
) -> tuple[uvicorn.Server, threading.Thread, str]:
    """Serves `app` from a daemon thread; returns the server, the thread and the base URL (`http://host:port/v1`)."""
    import uvicorn

    server = uvicorn.Server(uvicorn.Config(app, host=host, port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True, name="bailong-serve")
    thread.start()
    deadline = time.monotonic() + timeout
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            server.should_exit = True
            raise BailongError(f"cannot serve on {host}:{port} (port in use?)")
        time.sleep(0.02)
    bound = server.servers[0].sockets[0].getsockname()[1]
    shown = "127.0.0.1" if host in ("0.0.0.0", "::", "") else host
    shown = f"[{shown}]" if ":" in shown else shown
    return server, thread, f"http://{shown}:{bound}/v1"


def stop(server: uvicorn.Server, thread: threading.Thread, timeout: float = 10.0) -> None:
    """Shuts down a server started by `start_in_thread`."""
    server.should_exit = True
    thread.join(timeout)


def served_name(model: str) -> str:
    """A local folder's or file's own name; a hub id or the embedded default as written."""
    path = Path(model).expanduser()
    return path.resolve().name if path.exists() else model


def reserve_port(host: str, port: int) -> socket.socket:
    """Binds `host:port` now, before a model loads, so a taken port is one line instead of uvicorn's exit 3 after
    the "serving on" line; `serve_on` then serves on this socket."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn does
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise BailongError(
            f"cannot serve on {host}:{port}: {exc.strerror or exc}; stop what runs there or choose another --port"
        ) from None
    return sock


def serve_on(app: fastapi.FastAPI, sock: socket.socket) -> None:
    """Serves `app` on the socket from `reserve_port` until Ctrl-C."""
    import uvicorn

    uvicorn.Server(uvicorn.Config(app, log_level="warning")).run(sockets=[sock])
