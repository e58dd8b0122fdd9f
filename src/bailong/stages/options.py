"""Command-line options more than one stage takes (the stage modules themselves do not import each other)."""

from typing import Annotated

import typer

from bailong.inference.chat_model import GenerationSettings

DEFAULTS = GenerationSettings()

MaxNewTokens = Annotated[int, typer.Option("--max-new-tokens", min=1, metavar="N", help="reply length limit")]
Temperature = Annotated[float, typer.Option("--temperature", min=0.0, metavar="X", help="0 for greedy decoding")]
TopP = Annotated[
    float,
    typer.Option(
        "--top-p", min=0.0, max=1.0, metavar="X", help="sample from the smallest set of tokens holding this probability"
    ),
]
RepetitionPenalty = Annotated[
    float,
    typer.Option("--repetition-penalty", min=0.0, metavar="X", help="above 1 discourages repeats (small models loop)"),
]
Device = Annotated[str, typer.Option("--device", metavar="DEVICE", help="auto, cpu, cuda, cuda:1, ...")]


def generation_settings(max_new_tokens: int, temperature: float, top_p: float, repetition_penalty: float):
    return GenerationSettings(
        max_new_tokens=max_new_tokens, temperature=temperature, top_p=top_p, repetition_penalty=repetition_penalty
    )
