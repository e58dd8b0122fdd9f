"""Checks every guarantee of an extended tokenizer against its base, and measures what the extension buys."""

from __future__ import annotations

from importlib import resources

from bailong.vocab.bpe import ExtendedTokenizer
from bailong.vocab.families import token_text
from bailong.vocab.guarantees import check_base_kept
from bailong.vocab.train import ScriptChoice, has_cjk


def english_probe() -> list[str]:
    text = resources.files("bailong.demo_data").joinpath("english_probe.txt").read_text(encoding="utf-8")
    return [line for line in text.splitlines() if line.strip()]


def _ids(tokenizer, texts: list[str]) -> list[list[int]]:
    return tokenizer(texts, add_special_tokens=False)["input_ids"] if texts else []


def _base_ids(base_tok, result: ExtendedTokenizer, texts: list[str]) -> list[list[int]]:
    """The base's ids: for a SentencePiece base, as sentencepiece encodes (what the base model was trained on)."""
    if result.base_sp_model is None:
        return _ids(base_tok, texts)
    import sentencepiece as spm

    return spm.SentencePieceProcessor(model_file=str(result.base_sp_model)).encode(texts)


def tokens_per_char(tokenizer, texts: list[str]) -> float:
    chars = sum(len(t) for t in texts)
    return sum(len(ids) for ids in _ids(tokenizer, texts)) / max(1, chars)


def token_texts(result: ExtendedTokenizer) -> dict[int, str]:
    """id -> text for every appended token that is whole text (byte-level merge steps may be partial characters)."""
    vocab = result.tokenizer.get_vocab()
    out = {}
    for token in result.extension.tokens:
        if (text := token_text(result.family, token)) is not None:
            out[vocab[token]] = text
    return out


def check_extension(
    base_tok, result: ExtendedTokenizer, docs: list[str], held_out: list[str], scripts: ScriptChoice | None = None
) -> dict:
    """The report: what was added, tokens per character before and after, and each guarantee as a boolean.

    With Latin among `scripts`, English may change: the report counts the changed English probe texts instead."""
    new_tok = result.tokenizer
    failures: list[str] = []

    pattern = scripts.run_pattern() if scripts else None
    touches = pattern.search if pattern else has_cjk
    latin = bool(scripts and scripts.latin)
    untouched = english_probe() + ([] if latin else [d for d in docs if not touches(d)][:500])
    changed = [
        t for t, a, b in zip(untouched, _base_ids(base_tok, result, untouched), _ids(new_tok, untouched)) if a != b
    ]
    if changed and not latin:
        failures.append(f"text without new pieces changed ids, e.g. {changed[0][:60]!r}")

    texts = token_texts(result)
    prefix = new_tok.convert_tokens_to_ids("▁") if result.family != "byte-level" else None
    retry = []
    for (token_id, text), ids in zip(texts.items(), _ids(new_tok, list(texts.values()))):
        if ids != [token_id] and ids != [prefix, token_id]:
            retry.append((token_id, text))
    # A word-internal piece of a spaced script is reached inside a word, not after the word marker: after a line break.
    newline = _ids(new_tok, ["\n"])[0]
    unreachable = [
        text for (token_id, text), ids in zip(retry, _ids(new_tok, ["\n" + t for _, t in retry]))
        if ids != newline + [token_id]
    ]  # fmt: skip
    if unreachable:
        failures.append(f"{len(unreachable)} new pieces are not reachable, e.g. {unreachable[:3]}")

    sample = docs + held_out
    broken = 0
    for doc, base_ids, new_ids in zip(sample, _ids(base_tok, sample), _ids(new_tok, sample)):
        base_ok = base_tok.decode(base_ids) == doc
        if base_ok and new_tok.decode(new_ids) != doc:
            broken += 1
    if broken:
        failures.append(f"decode(encode(x)) != x for {broken} documents that the base round-trips")

    kept = check_base_kept(base_tok, new_tok)
    failures += kept.pop("failures")

    report = {
        "family": result.family,
        "base_vocab_size": result.base_size,
        "vocab_size": len(new_tok),
        "first_new_id": result.base_size,  # after every id the base uses, its added tokens included
        "tokens_added": len(result.extension.tokens),
        "pieces_added": len(result.extension.pieces),
        "merge_steps_added": len(result.extension.tokens) - len(texts),
        "tokens_per_char_before": round(tokens_per_char(base_tok, held_out or docs), 4),
        "tokens_per_char_after": round(tokens_per_char(new_tok, held_out or docs), 4),
        "measured_on": "held-out documents" if held_out else "training documents",
        "english_ids_unchanged": not changed,
        **({"english_probe_changed": len(changed)} if latin else {}),
        "all_new_pieces_reachable": not unreachable,
        "roundtrip_ok": broken == 0,
        **kept,
    }
    if result.sp_model is not None:
        disagree = _sentencepiece_disagreements(base_tok, result, sample)
        report["sentencepiece_matches_hf"] = disagree == 0
        if disagree:
            failures.append(f"sentencepiece and the HF tokenizer disagree on {disagree} documents")
    report["failures"] = failures
    return report


def _sentencepiece_disagreements(base_tok, result: ExtendedTokenizer, docs: list[str]) -> int:
    """Documents that sentencepiece and the HF tokenizer encode differently after the merge."""
    import sentencepiece as spm

    merged = spm.SentencePieceProcessor(model_file=str(result.sp_model))
    return sum(hf != sp for hf, sp in zip(_ids(result.tokenizer, docs), merged.encode(docs)))
