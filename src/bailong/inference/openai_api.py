"""An OpenAI-compatible chat API (`/v1/chat/completions`, `/v1/models`) over a loaded chat model.

Any OpenAI client can talk to a stage's output: set its base URL to `http://127.0.0.1:8000/v1`. One model is shared,
so generations run one at a time. A value a request leaves out takes `GenerationSettings`' default (the same as
`bailong chat`); temperature 0 means greedy decoding. `repetition_penalty` is a vLLM-style extension. A client that
goes away (a dropped stream, a timed-out request) stops its generation at the next token, so the model is free for the
next request at once.
"""

from __future__ import annotations

import hmac
import json
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from starlette.requests import Request  # at module level: FastAPI resolves the endpoint's annotations from here

from bailong.errors import BailongError
from bailong.inference.chat_model import GenerationSettings
from bailong.inference.openai_protocol import (
    ApiError,
    ChatRequest,
    check_messages,
    check_stops,
    completion_budget,
    cut,
    error_body,
    model_not_found,
    shown,
    unauthorized,
    validation_error,
)

if TYPE_CHECKING:
    import fastapi
    import uvicorn

    from bailong.inference.chat_model import ChatModel

_DISCONNECT_POLL_S = 0.1  # how often a non-streaming request checks that its client is still there


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


def _generate(
    bot: ChatModel, ids, settings: GenerationSettings, stops: list[str], streamer=None, cancel=None
) -> _Result:
    """One completion; the caller holds the generation lock. `cancel` set (the client went away) stops it at the next
    token."""
    import torch
    from transformers import StoppingCriteria, StoppingCriteriaList

    prompt_len, eos = ids.shape[1], bot.eos_ids()
    hit = threading.Event()

    class Stop(StoppingCriteria):  # at a stop string, or when the client went away
        def __call__(self, input_ids, scores, **kwargs):
            text = bot.tokenizer.decode(input_ids[0, prompt_len:], skip_special_tokens=True) if stops else ""
            if any(s in text for s in stops):
                hit.set()
            done = hit.is_set() or (cancel is not None and cancel.is_set())
            return torch.full((input_ids.shape[0],), done, dtype=torch.bool, device=input_ids.device)

    new = bot.generate(ids, settings, streamer=streamer, stopping_criteria=StoppingCriteriaList([Stop()]))
    raw = bot.tokenizer.decode(new, skip_special_tokens=True)
    length = len(new) >= settings.max_new_tokens and not hit.is_set() and (not new or new[-1] not in eos)
    return _Result(cut(raw, stops).strip(), prompt_len, len(new), "length" if length else "stop")


def create_app(
    bot: ChatModel, model_name: str, api_key: str | None = None, defaults: GenerationSettings | None = None
) -> fastapi.FastAPI:
    """The OpenAI-compatible API app over a loaded model. With `api_key`, every /v1 request must send it as
    `Authorization: Bearer <key>` (as OpenAI clients do); `defaults` fill what a request leaves out."""
    import anyio
    from fastapi import Depends, FastAPI
    from fastapi.exceptions import RequestValidationError
    from fastapi.responses import JSONResponse
    from starlette.exceptions import HTTPException

    def check_key(request: Request) -> None:  # a dependency, not a middleware: those hide a client's disconnect
        sent = request.headers.get("authorization", "")
        if api_key and request.url.path.startswith("/v1") and not hmac.compare_digest(sent, f"Bearer {api_key}"):
            raise unauthorized()

    app = FastAPI(title=f"bailong serve: {model_name}", dependencies=[Depends(check_key)])
    lock = threading.Lock()
    created = int(time.time())
    card = {"id": model_name, "object": "model", "created": created, "owned_by": "bailong"}

    @app.exception_handler(ApiError)
    def _api_error(request, exc: ApiError):
        return JSONResponse(exc.body(), status_code=exc.status)

    @app.exception_handler(RequestValidationError)
    def _invalid(request, exc: RequestValidationError):
        return _api_error(request, validation_error(exc.errors()[0]))

    @app.exception_handler(HTTPException)
    def _http(request, exc: HTTPException):
        kind = "invalid_request_error" if exc.status_code < 500 else "server_error"
        return JSONResponse(error_body(str(exc.detail), kind=kind), status_code=exc.status_code)

    defaults = defaults or GenerationSettings()

    @app.get("/health")
    def health() -> dict:
        return {"status": "ok"}

    @app.get("/v1/models")
    def models() -> dict:
        return {"object": "list", "data": [card]}

    @app.get("/v1/models/{model_id:path}")
    def model(model_id: str) -> dict:
        if model_id != model_name:
            raise model_not_found(model_id, model_name)
        return card

    def prepare(req: ChatRequest) -> tuple:
        """The prompt ids and the generation settings, or an ApiError before any generation."""
        if req.model is not None and req.model != model_name:
            raise model_not_found(req.model, model_name)
        messages, stops = check_messages(req.messages), check_stops(req.stop)
        with lock:
            try:
                ids = bot.prompt_ids(messages)
            except Exception as exc:  # noqa: BLE001 - a template that rejects this conversation
                raise ApiError(
                    f"messages: the chat template cannot render them: {exc}", "messages", "invalid_value"
                ) from None
        budget = completion_budget(req, ids.shape[1], bot.context_length(), defaults.max_new_tokens)
        return ids, req.settings(budget, defaults), stops

    @app.post("/v1/chat/completions")
    async def completions(req: ChatRequest, request: Request):
        ids, settings, stops = await anyio.to_thread.run_sync(prepare, req)
        head = {"id": f"chatcmpl-{uuid.uuid4().hex}", "created": int(time.time()), "model": model_name}
        cancel = threading.Event()
        if req.stream:
            events = _events(bot, lock, ids, settings, stops, head, cancel, (req.stream_options or {}))
            return _stream_response(events, cancel)

        def work() -> _Result | None:
            with lock:
                return None if cancel.is_set() else _generate(bot, ids, settings, stops, cancel=cancel)

        async def watch() -> None:  # a client that went away (e.g. timed out) frees the model
            while not await request.is_disconnected():
                await anyio.sleep(_DISCONNECT_POLL_S)
            cancel.set()

        async with anyio.create_task_group() as group:
            group.start_soon(watch)
            result = await anyio.to_thread.run_sync(work)
            group.cancel_scope.cancel()
        if result is None:  # nobody is listening
            return JSONResponse(error_body("the client went away", kind="server_error"), status_code=499)
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


def _stream_response(events: Iterator[str], cancel: threading.Event):
    """A server-sent-events response that sets `cancel` as soon as it ends for any reason: starlette stops sending
    when the client disconnects, and the generator's own cleanup would wait for the garbage collector."""
    from starlette.responses import StreamingResponse

    class CancellingStream(StreamingResponse):
        async def __call__(self, scope, receive, send) -> None:
            try:
                await super().__call__(scope, receive, send)
            finally:
                cancel.set()

    return CancellingStream(events, media_type="text/event-stream", headers={"Cache-Control": "no-cache"})


def _events(
    bot: ChatModel,
    lock: threading.Lock,
    ids,
    settings: GenerationSettings,
    stops: list[str],
    head: dict,
    cancel: threading.Event,
    options: dict,
) -> Iterator[str]:
    """Server-sent events of chat.completion.chunk objects; generation runs in a background thread."""
    from transformers import TextIteratorStreamer

    streamer = TextIteratorStreamer(bot.tokenizer, skip_prompt=True, skip_special_tokens=True)
    box = {}

    def work() -> None:
        try:
            with lock:
                if cancel.is_set():  # the client left while waiting for the model
                    streamer.end()
                    return
                box["result"] = _generate(bot, ids, settings, stops, streamer, cancel)
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
            final = shown(raw, stops)
            if len(final) > len(sent) and final.startswith(sent):
                yield event({"content": final[len(sent) :]})
                sent = final
        thread.join()
        if "error" in box:
            yield f"data: {json.dumps(error_body(str(box['error']), kind='server_error'))}\n\n"
        elif "result" in box:
            result = box["result"]
            if len(result.text) > len(sent) and result.text.startswith(sent):
                yield event({"content": result.text[len(sent) :]})
            yield event({}, result.finish_reason)
            if options.get("include_usage"):
                yield event(None, usage=result.usage)
        yield "data: [DONE]\n\n"
    finally:
        cancel.set()


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
