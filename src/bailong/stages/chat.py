"""`bailong chat`: a multi-turn terminal chat with any stage's output, replies streamed token by token.

Reads one user turn per line, from the keyboard or a pipe; `/reset` starts a new conversation, `/exit` ends.
"""

import sys
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
    model: Annotated[
        str, typer.Argument(help="a run folder, model, or a stage's YAML config (its output_dir)", show_default=False)
    ],
    system: Annotated[str | None, typer.Option("--system", help="a system prompt for every conversation")] = None,
    max_new_tokens: MaxNewTokens = DEFAULTS.max_new_tokens,
    temperature: Temperature = DEFAULTS.temperature,
    top_p: TopP = DEFAULTS.top_p,
    repetition_penalty: RepetitionPenalty = DEFAULTS.repetition_penalty,
    device: Device = "auto",
) -> int:
    """Chat with a model in the terminal (one user turn per line; also reads a pipe); /reset, /exit."""
    from transformers import TextStreamer

    from bailong.inference import ChatModel, model_source

    settings = generation_settings(max_new_tokens, temperature, top_p, repetition_penalty)
    interactive = sys.stdin.isatty()
    bot = ChatModel(model_source(model), device=device)
    streamer = TextStreamer(bot.tokenizer, skip_prompt=True, skip_special_tokens=True)
    start = [{"role": "system", "content": system}] if system else []
    history = list(start)
    if interactive:
        print("bailong chat: type a message; /reset starts over, /exit quits.")
    replies = 0
    while True:
        if interactive:
            print("> ", end="", flush=True)
        line = sys.stdin.readline()
        if not line:
            break
        text = line.strip()
        if not text:
            continue
        if text == "/exit":
            break
        if text == "/reset":
            history = list(start)
            print("(new conversation)")
            continue
        history.append({"role": "user", "content": text})
        answer = bot.reply(history, settings, streamer=streamer)
        sys.stdout.flush()
        history.append({"role": "assistant", "content": answer})
        replies += 1
    return replies
