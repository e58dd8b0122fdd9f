"""`bailong chat`: a multi-turn terminal chat with any stage's output, replies streamed token by token.

Reads one user turn per line, from the keyboard or a pipe; `/reset` starts a new conversation, `/exit` ends.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

from bailong.errors import BailongError


@dataclass
class GenerationSettings:
    max_new_tokens: int = 256
    temperature: float = 0.7
    top_p: float = 0.9
    repetition_penalty: float = 1.1


def model_source(config_or_dir: str) -> str:
    """A stage's YAML config stands for its output_dir; anything else is a model source for the loading core."""
    path = Path(config_or_dir)
    if path.suffix in (".yaml", ".yml"):
        import yaml

        if not path.is_file():
            raise BailongError(f"{path}: config file not found")
        output_dir = (yaml.safe_load(path.read_text(encoding="utf-8")) or {}).get("output_dir")
        if not output_dir:
            raise BailongError(f"{path}: no output_dir to chat with; pass a run folder or model instead")
        return str((path.parent / output_dir).resolve())
    return config_or_dir


class ChatModel:
    """A model and its tokenizer (with the chat template it was trained with) that answers conversations."""

    def __init__(self, source: str, device: str = "auto", dtype: str = "auto"):
        from bailong.config import ModelConfig
        from bailong.loading import load_model, load_tokenizer

        self.tokenizer = load_tokenizer(source)
        if not self.tokenizer.chat_template:
            from bailong.chat_template import set_template

            set_template(self.tokenizer, "speaker-labels")
        self.model = load_model(ModelConfig(name_or_path=source, device=device, dtype=dtype))
        self.model.eval()

    def prompt_ids(self, messages: list[dict]):
        text = self.tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        return self.tokenizer(text, add_special_tokens=False, return_tensors="pt")["input_ids"].to(self.model.device)

    def reply(self, messages: list[dict], settings: GenerationSettings, streamer=None) -> str:
        """The assistant's next turn (streamed to `streamer` as it is generated)."""
        import torch

        ids = self.prompt_ids(messages)
        sample = settings.temperature > 0
        kwargs = {"temperature": settings.temperature, "top_p": settings.top_p} if sample else {}
        with torch.no_grad():
            out = self.model.generate(
                input_ids=ids, attention_mask=torch.ones_like(ids), max_new_tokens=settings.max_new_tokens,
                do_sample=sample, repetition_penalty=settings.repetition_penalty, streamer=streamer,
                eos_token_id=self.tokenizer.eos_token_id, pad_token_id=self.tokenizer.pad_token_id
                or self.tokenizer.eos_token_id, **kwargs)
        return self.tokenizer.decode(out[0, ids.shape[1]:], skip_special_tokens=True).strip()


def chat(config_or_dir: str, system: str | None, settings: GenerationSettings, device: str = "auto") -> int:
    """Runs the chat loop on stdin; returns the number of replies."""
    from transformers import TextStreamer

    interactive = sys.stdin.isatty()
    bot = ChatModel(model_source(config_or_dir), device=device)
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
