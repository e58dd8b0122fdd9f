"""A model that answers conversations, with one set of generation defaults for chat, serve and eval."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from bailong.errors import BailongError


@dataclass
class GenerationSettings:
    """How replies are sampled; `temperature` 0 means greedy decoding. The defaults serve `bailong chat`,
    `bailong serve` (for a request that leaves a value out) and eval's answers alike. No repetition penalty by
    default, as the OpenAI API and FastChat's MT-bench answers have none (a judge served by bailong must be able to
    repeat its `Rating: [[N]]` format)."""

    max_new_tokens: int = 512
    temperature: float = 0.7
    top_p: float = 0.9
    repetition_penalty: float = 1.0
    seed: int | None = None


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
        from bailong.data.chat_template import set_template
        from bailong.loading import load_model, load_tokenizer

        self.tokenizer = load_tokenizer(source)
        if not self.tokenizer.chat_template:
            set_template(self.tokenizer, "speaker-labels")
        self.model = load_model(ModelConfig(name_or_path=source, device=device, dtype=dtype))
        self.model.eval()

    def prompt_ids(self, messages: list[dict]):
        text = self.tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        return self.tokenizer(text, add_special_tokens=False, return_tensors="pt")["input_ids"].to(self.model.device)

    def eos_ids(self) -> list[int]:
        """The tokenizer's EOS plus any the model's generation config names (chat models often end turns with those)."""
        extra = getattr(getattr(self.model, "generation_config", None), "eos_token_id", None)
        return sorted({self.tokenizer.eos_token_id, *(extra if isinstance(extra, list) else [extra])} - {None})

    def context_length(self) -> int | None:
        """The most tokens the model attends to (prompt and reply together), from its config; None if it says none."""
        config = getattr(self.model, "config", None)
        for name in ("max_position_embeddings", "n_positions", "max_sequence_length", "seq_length"):
            value = getattr(config, name, None)
            if isinstance(value, int) and value > 0:
                return value
        return None

    def generate(self, ids, settings: GenerationSettings, streamer=None, stopping_criteria=None) -> list[int]:
        """The new token ids after the prompt `ids`."""
        import torch

        sample = settings.temperature > 0
        kwargs = {"temperature": settings.temperature, "top_p": settings.top_p} if sample else {}
        if settings.repetition_penalty != 1.0:
            kwargs["repetition_penalty"] = settings.repetition_penalty
        if settings.seed is not None:
            torch.manual_seed(settings.seed)
        eos = self.eos_ids()
        with torch.no_grad():
            out = self.model.generate(
                input_ids=ids,
                attention_mask=torch.ones_like(ids),
                max_new_tokens=settings.max_new_tokens,
                do_sample=sample,
                streamer=streamer,
                stopping_criteria=stopping_criteria,
                eos_token_id=eos,
                pad_token_id=self.tokenizer.pad_token_id or eos[0],
                **kwargs,
            )
        return out[0, ids.shape[1] :].tolist()

    def reply(self, messages: list[dict], settings: GenerationSettings, streamer=None) -> str:
        """The assistant's next turn (streamed to `streamer` as it is generated)."""
        new = self.generate(self.prompt_ids(messages), settings, streamer=streamer)
        return self.tokenizer.decode(new, skip_special_tokens=True).strip()
