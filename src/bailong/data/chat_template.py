"""Chat templates and the token-level view of a conversation that training uses.

The template chosen by `chat.template` is stored in the tokenizer (`chat_template`), so
`tokenizer.apply_chat_template` in any tool later renders exactly what training saw. Training tokenizes the rendered
text once (as apply_chat_template does: no extra special tokens) and keeps labels only on the characters each
assistant turn adds to the rendering, its end-of-turn marker included, so the model learns to stop.
"""

from __future__ import annotations

from pathlib import Path

from bailong.errors import BailongError

IGNORE = -100

LLAMA2_TEMPLATE = (
    "{%- if messages and messages[0]['role'] == 'system' -%}"
    "{%- set system = messages[0]['content'].strip() -%}{%- set turns = messages[1:] -%}"
    "{%- else -%}{%- set system = '' -%}{%- set turns = messages -%}{%- endif -%}"
    "{%- for message in turns -%}"
    "{%- if message['role'] == 'user' -%}"
    "{%- set content = message['content'].strip() -%}"
    "{%- if loop.first and system -%}{%- set content = '<<SYS>>\\n' + system + '\\n<</SYS>>\\n\\n' + content -%}"
    "{%- endif -%}"
    "{{- bos_token + '[INST] ' + content + ' [/INST]' -}}"
    "{%- else -%}{{- ' ' + message['content'].strip() + ' ' + eos_token -}}{%- endif -%}"
    "{%- endfor -%}"
)

# "User:" / "Assistant:" lines, the form the paper's demo shows; `{bos}` is filled in for tokenizers that start
# every text with BOS. The generation prompt stops before the space so that a reply's first word keeps its space.
SPEAKER_LABELS_TEMPLATE = (
    "{bos}"
    "{%- for message in messages -%}"
    "{%- if message['role'] == 'system' -%}{{- message['content'].strip() + '\\n\\n' -}}"
    "{%- elif message['role'] == 'user' -%}{{- 'User: ' + message['content'].strip() + '\\n' -}}"
    "{%- else -%}{{- 'Assistant: ' + message['content'].strip() + eos_token + '\\n' -}}{%- endif -%}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}{{- 'Assistant:' -}}{%- endif -%}"
)


def adds_bos(tokenizer) -> bool:
    ids = tokenizer("a")["input_ids"]
    return tokenizer.bos_token_id is not None and bool(ids) and ids[0] == tokenizer.bos_token_id


def choose_template(tokenizer, template: str) -> str:
    """The Jinja source `chat.template` names for this tokenizer."""
    own = tokenizer.chat_template if isinstance(tokenizer.chat_template, str) else None
    if template == "auto":
        template = "base" if own else "speaker-labels"
    if template == "base":
        if not own:
            raise BailongError(
                "chat.template: base, but the base tokenizer has no chat template; "
                "use llama-2, speaker-labels or a Jinja file"
            )
        return own
    if template == "llama-2":
        return LLAMA2_TEMPLATE
    if template == "speaker-labels":
        return SPEAKER_LABELS_TEMPLATE.replace("{bos}", "{{- bos_token -}}" if adds_bos(tokenizer) else "")
    path = Path(template)
    if not path.is_file():
        raise BailongError(f"chat.template: {template!r} is neither auto, base, llama-2, speaker-labels nor a file")
    return path.read_text(encoding="utf-8-sig")


def set_template(tokenizer, template: str) -> None:
    """Stores the chosen template in the tokenizer; gives it a padding token when it has none."""
    tokenizer.chat_template = choose_template(tokenizer, template)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    if tokenizer.eos_token is None:
        raise BailongError("the tokenizer has no end-of-sequence token, which chat turns need")


def render(tokenizer, messages: list[dict], generation_prompt: bool = False) -> str:
    return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=generation_prompt)


def assistant_spans(tokenizer, messages: list[dict], train_on: str) -> tuple[str, list[tuple[int, int]]]:
    """The rendered conversation and the character spans that train: each assistant turn's addition to the text."""
    text = render(tokenizer, messages)
    if train_on == "all":
        return text, [(0, len(text))]
    spans = []
    for i, message in enumerate(messages):
        if message["role"] != "assistant":
            continue
        before = render(tokenizer, messages[:i], generation_prompt=True)
        upto = render(tokenizer, messages[: i + 1])
        if not (text.startswith(upto) and upto.startswith(before)):
            raise BailongError(
                "the chat template renders a conversation differently from its beginning, so the "
                "assistant turns cannot be located; use llama-2, speaker-labels or another template"
            )
        spans.append((len(before), len(upto)))
    return text, spans[-1:] if train_on == "last" else spans


def encode(tokenizer, messages: list[dict], train_on: str) -> dict:
    """input_ids as apply_chat_template makes them, labels = input_ids inside the training spans, else IGNORE."""
    text, spans = assistant_spans(tokenizer, messages, train_on)
    encoded = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
    labels = []
    for token, (start, end) in zip(encoded["input_ids"], encoded["offset_mapping"]):
        inside = any(a <= start < b for a, b in spans) and end > start
        labels.append(token if inside else IGNORE)
    return {"input_ids": encoded["input_ids"], "labels": labels}
