"""`bailong serve`: any model source behind an OpenAI-compatible chat API."""

import ipaddress
import os
from typing import Annotated

import typer

from bailong.stages.options import (
    DEFAULTS,
    Device,
    MaxNewTokens,
    RepetitionPenalty,
    Temperature,
    TopP,
    generation_settings,
)


def run(
    model: Annotated[str, typer.Argument(help="a run folder, model, or the embedded default", show_default=False)],
    host: Annotated[
        str, typer.Option("--host", metavar="ADDRESS", help="address to bind; 0.0.0.0 exposes it to the network")
    ] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", min=1, max=65535, metavar="N", help="port to listen on")] = 8000,
    name: Annotated[str | None, typer.Option("--name", help="the model id clients see; default: its name")] = None,
    api_key_env: Annotated[
        str | None,
        typer.Option(
            "--api-key-env",
            metavar="NAME",
            help="require the key in environment variable NAME as 'Authorization: Bearer KEY' (what OpenAI "
            "clients send as api_key); needed to bind beyond loopback",
        ),
    ] = None,
    insecure: Annotated[
        bool, typer.Option("--insecure", help="allow a non-loopback --host without --api-key-env (anyone may use it)")
    ] = False,
    max_new_tokens: MaxNewTokens = DEFAULTS.max_new_tokens,
    temperature: Temperature = DEFAULTS.temperature,
    top_p: TopP = DEFAULTS.top_p,
    repetition_penalty: RepetitionPenalty = DEFAULTS.repetition_penalty,
    device: Device = "auto",
) -> None:
    """Serve a model through an OpenAI-compatible API (GET /v1/models[/ID], POST /v1/chat/completions). The
    generation flags are the defaults for what a request leaves out."""
    from bailong.errors import BailongError
    from bailong.inference import ChatModel, model_source
    from bailong.inference.openai_api import create_app, reserve_port, serve_on, served_name

    key = os.environ.get(api_key_env, "") if api_key_env else None
    if api_key_env and not key:
        raise BailongError(f"--api-key-env {api_key_env}: the environment variable is not set or empty; export it")
    if key is None and not insecure and not _is_loopback(host):
        raise BailongError(
            f"--host {host} is reachable from other machines and no key is required: pass --api-key-env NAME (a "
            "variable holding the key), or --insecure to serve anyone"
        )
    sock = reserve_port(host, port)
    source = model_source(model)
    bot = ChatModel(source, device=device)
    model_name = name or served_name(source)
    defaults = generation_settings(max_new_tokens, temperature, top_p, repetition_penalty)
    print(f"serving {model_name} on http://{host}:{port}/v1{' (key required)' if key else ''}", flush=True)
    serve_on(create_app(bot, model_name, api_key=key, defaults=defaults), sock)


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
