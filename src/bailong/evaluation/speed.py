"""The `speed` task: characters and tokens per second of greedy generation on fixed Traditional Chinese prompts.

Every model writes the same number of new characters per prompt (end-of-text is suppressed, so no model stops
early), after untimed warm-up generations. A tokenizer that needs fewer tokens per character needs fewer forward
passes for the same text: that is vocabulary extension's inference-time benefit, measured here rather than inferred
from tokens per character.
"""

from __future__ import annotations

import time
from importlib import resources

import torch
from transformers import StoppingCriteria, StoppingCriteriaList

from bailong.config import SpeedTask
from bailong.errors import BailongError


def default_prompts() -> list[str]:
    """Five TC sentence openings written for this project (bailong/demo_data/tc_prompts.txt)."""
    text = resources.files("bailong.demo_data").joinpath("tc_prompts.txt").read_text(encoding="utf-8")
    return [line.strip() for line in text.splitlines() if line.strip()]


class EnoughCharacters(StoppingCriteria):
    """Stops once the new tokens decode to at least `characters` characters (a byte-level token that ends inside a
    multi-byte character does not count until the character is complete)."""

    def __init__(self, tokenizer, prompt_length: int, characters: int):
        self.tokenizer, self.prompt_length, self.characters = tokenizer, prompt_length, characters

    def __call__(self, input_ids, scores, **kwargs) -> torch.BoolTensor:
        done = new_characters(self.tokenizer, input_ids[0, self.prompt_length :]) >= self.characters
        return torch.full((input_ids.shape[0],), done, dtype=torch.bool, device=input_ids.device)


def new_characters(tokenizer, ids) -> int:
    return len(tokenizer.decode(ids, skip_special_tokens=True).rstrip("\ufffd"))


@torch.no_grad()
def generation_speed(model, tokenizer, prompts: list[str], characters: int = 64, warmup: int = 1) -> dict:
    """Greedy generation of `characters` new characters after each prompt, batch size 1 (a chat's regime), after
    `warmup` short untimed generations."""
    if not prompts:
        raise BailongError("speed task: no prompts")
    device = next(model.parameters()).device
    start = tokenizer.bos_token_id if tokenizer.bos_token_id is not None else tokenizer.eos_token_id
    configured = getattr(getattr(model, "generation_config", None), "eos_token_id", None)
    configured = configured if isinstance(configured, list) else [configured]
    stop_ids = {i for i in [*tokenizer.all_special_ids, *configured] if i is not None}
    was_training = model.training
    model.eval()

    def generate(prompt: str, characters: int) -> tuple[int, int, float]:
        ids = torch.tensor([[start] + tokenizer(prompt, add_special_tokens=False)["input_ids"]], device=device)
        began = time.perf_counter()
        out = model.generate(
            ids,
            attention_mask=torch.ones_like(ids),
            do_sample=False,
            max_new_tokens=4 * characters + 8,  # a byte-level tokenizer spends up to 3 tokens on one CJK character
            stopping_criteria=StoppingCriteriaList([EnoughCharacters(tokenizer, ids.shape[1], characters)]),
            suppress_tokens=sorted(stop_ids),
            pad_token_id=tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id,
            use_cache=True,
        )
        seconds = time.perf_counter() - began
        new = out[0, ids.shape[1] :]
        return new_characters(tokenizer, new), len(new), seconds

    for prompt in prompts[:warmup]:  # a few tokens are enough to set up the first calls' buffers
        generate(prompt, min(8, characters))
    chars = tokens = 0
    seconds = 0.0
    for prompt in prompts:
        c, t, s = generate(prompt, characters)
        chars, tokens, seconds = chars + c, tokens + t, seconds + s
    model.train(was_training)
    return {
        "chars_per_s": chars / seconds,
        "tokens_per_s": tokens / seconds,
        "new_characters": chars,
        "new_tokens": tokens,
        "generation_seconds": round(seconds, 3),
    }


def run_speed(task: SpeedTask, model, tokenizer) -> dict:
    if task.prompts:
        text = open(task.prompts, encoding="utf-8").read()
        prompts = [line.strip() for line in text.splitlines() if line.strip()]
    else:
        prompts = default_prompts()
    prompts = prompts[: task.limit] if task.limit else prompts
    if not prompts:
        raise BailongError(f"speed task: no prompts in {task.prompts}; give one prompt a line")
    result = generation_speed(model, tokenizer, prompts, task.characters, task.warmup)
    return {"prompts": len(prompts), **result}
