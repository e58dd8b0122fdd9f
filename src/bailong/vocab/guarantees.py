"""What an extended tokenizer must keep of its base, checked on every run: every token (normal, added or special)
keeps its id and text, BOS/EOS/PAD/UNK keep their ids, the special tokens the tokenizer adds around a text (a BOS
before it, say) stay the same, and the chat template renders a sample conversation to the same
text with its special tokens encoded to the same ids."""

from __future__ import annotations

SAMPLE_CONVERSATION = [
    {"role": "system", "content": "You are a helpful assistant."},
    {"role": "user", "content": "What is the capital of Taiwan?"},
    {"role": "assistant", "content": "Taipei."},
    {"role": "user", "content": "And its tallest building?"},
]
SPECIAL_IDS = ("bos_token_id", "eos_token_id", "pad_token_id", "unk_token_id")
PLAIN_TEXT = "Hello world"  # no new piece touches it: with special tokens it must encode as the base encodes it


def _render(tokenizer, messages: list[dict]) -> str:
    return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)


def render_sample(tokenizer) -> str | None:
    """The sample conversation as the tokenizer's chat template renders it (without the system turn where the template
    refuses one); None without a template."""
    if not tokenizer.chat_template:
        return None
    try:
        return _render(tokenizer, SAMPLE_CONVERSATION)
    except Exception:  # noqa: BLE001 - a template may raise on a system turn; try without it
        return _render(tokenizer, SAMPLE_CONVERSATION[1:])


def check_base_kept(base_tok, new_tok) -> dict:
    """Report entries for each guarantee (True/False; chat_template_kept is None when the base has no template) and
    "failures", one line per broken guarantee."""
    failures = []
    size = len(base_tok)
    ids = list(range(size))
    moved = [
        i for i, a, b in zip(ids, base_tok.convert_ids_to_tokens(ids), new_tok.convert_ids_to_tokens(ids)) if a != b
    ]
    base_added, new_added = base_tok.added_tokens_decoder, new_tok.added_tokens_decoder
    changed = [
        i
        for i, token in base_added.items()
        if i not in new_added or (new_added[i].content, new_added[i].special) != (token.content, token.special)
    ]
    contents = [token.content for token in base_added.values()]
    encoded = [
        content
        for content, a, b in zip(contents, _ids(base_tok, contents), _ids(new_tok, contents))
        if a != b  # an added token's text must still encode to its id
    ]
    if moved or changed or encoded:
        example = moved[:1] or changed[:1]
        what = f"id {example[0]} was {base_tok.convert_ids_to_tokens(example[0])!r}" if example else encoded[0]
        failures.append(
            f"{len(set(moved) | set(changed)) or len(encoded)} base tokens lost their id or text, e.g. {what}"
        )

    special = {key: (getattr(base_tok, key), getattr(new_tok, key)) for key in SPECIAL_IDS}
    special_moved = {key: ab for key, ab in special.items() if ab[0] != ab[1]}
    if special_moved:
        key, (a, b) = next(iter(special_moved.items()))
        failures.append(f"{key} moved from {a} to {b}")

    around = base_tok(PLAIN_TEXT)["input_ids"], new_tok(PLAIN_TEXT)["input_ids"]
    if around[0] != around[1]:
        failures.append(
            f"the special tokens added around a text changed: {PLAIN_TEXT!r} was {around[0]}, is {around[1]}"
        )

    chat_kept = None
    base_text = render_sample(base_tok)
    if base_text is not None:
        new_text = render_sample(new_tok) if new_tok.chat_template else None
        chat_kept = new_text == base_text and _ids(base_tok, [base_text]) == _ids(new_tok, [new_text or ""])
        if not chat_kept:
            failures.append("the chat template renders the sample conversation to other text or ids than the base's")
    return {
        "base_tokens_kept": not (moved or changed or encoded),
        "special_token_ids_kept": not special_moved,
        "special_tokens_added_kept": around[0] == around[1],
        "chat_template_kept": chat_kept,
        "failures": failures,
    }


def _ids(tokenizer, texts: list[str]) -> list[list[int]]:
    return tokenizer(texts, add_special_tokens=False)["input_ids"] if texts else []
