"""`bailong serve`: any model source behind an OpenAI-compatible chat API."""

from typing import Annotated

import typer


def run(
    model: Annotated[str, typer.Argument(help="a run folder, model, or the embedded default", show_default=False)],
    host: Annotated[str, typer.Option("--host", help="address to bind; 0.0.0.0 exposes it to the network")] = (
        "127.0.0.1"
    ),
    port: Annotated[int, typer.Option("--port", min=1, max=65535)] = 8000,
    name: Annotated[str | None, typer.Option("--name", help="the model id clients see; default: its name")] = None,
    device: Annotated[str, typer.Option("--device", help="auto, cpu, cuda, cuda:1, ...")] = "auto",
) -> None:
    """Serve a model through an OpenAI-compatible API (GET /v1/models[/ID], POST /v1/chat/completions)."""
    from bailong.inference import ChatModel, model_source
    from bailong.inference.openai_api import create_app, reserve_port, serve_on, served_name

    sock = reserve_port(host, port)
    source = model_source(model)
    bot = ChatModel(source, device=device)
    model_name = name or served_name(source)
    print(f"serving {model_name} on http://{host}:{port}/v1", flush=True)
    serve_on(create_app(bot, model_name), sock)
