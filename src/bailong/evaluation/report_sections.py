"""What each kind of folder adds to report.html: an eval output, a training run (pretrain, sft) or an extend-vocab
output, told apart by the files bailong writes into them (see artifacts.py)."""

from __future__ import annotations

import re
from pathlib import Path

from bailong.artifacts import (
    CONFIG_FILE,
    EXTENSION_FILE,
    METRICS_FILE,
    METRICS_PNG,
    RUN_FILE,
    VOCAB_REPORT_FILE,
    read_json,
    read_metrics,
    read_run,
)
from bailong.errors import BailongError
from bailong.evaluation.html_report import eval_section, image_uri, is_eval_output

REPORTABLE = (
    f"an eval output_dir (results.json), a pretrain or sft output_dir ({METRICS_FILE}) or an extend-vocab "
    f"output_dir ({VOCAB_REPORT_FILE})"
)
SAMPLE_SENTENCES = 6
SENTENCE_CHARS = 90
HELD_OUT_BPC_KEYS = ("eval_packed_bits_per_char", "eval_bits_per_char")  # the second: metrics of bailong 0.1
_KIND_ORDER = {"eval": 0, "run": 1, "vocab": 2}


def folder_kind(folder: Path) -> str | None:
    if is_eval_output(folder):
        return "eval"
    if (folder / METRICS_FILE).is_file() or (folder / RUN_FILE).is_file():
        return "run"
    if (folder / VOCAB_REPORT_FILE).is_file() or (folder / EXTENSION_FILE).is_file():
        return "vocab"
    return None


def collect_sections(folders: list[Path]) -> list[dict]:
    """One section per folder, in the given order; a folder of run folders (e.g. runs/demo) stands for them all,
    evals first. Raises BailongError for a missing folder or one with nothing to report."""
    if not folders:
        raise BailongError(f"report: name at least one folder: {REPORTABLE}")
    sections = []
    for folder in map(Path, folders):
        if not folder.exists():
            raise BailongError(f"report: {folder} does not exist; pass {REPORTABLE}")
        if not folder.is_dir():
            raise BailongError(f"report: {folder} is a file; pass its folder: {REPORTABLE}")
        kind = folder_kind(folder)
        inner = (
            [(kind, folder)]
            if kind
            else sorted(
                ((folder_kind(p), p) for p in folder.iterdir() if p.is_dir() and folder_kind(p)),
                key=lambda pair: (_KIND_ORDER[pair[0]], pair[1].name),
            )
        )
        if not inner:
            raise BailongError(
                f"report: {folder} holds nothing to report; pass {REPORTABLE}, or a folder of those (e.g. runs/demo)"
            )
        sections += [SECTION_OF[k](p) for k, p in inner]
    return sections


def run_section(folder: Path) -> dict:
    """A training run: what it trained from, its losses first and last, and its curves (loss.png)."""
    rows = read_metrics(folder)
    run = read_run(folder) or {}
    train = [r for r in rows if "loss" in r]
    held = [r for r in rows if "eval_loss" in r]
    bpc = [(r["step"], next(r[k] for k in HELD_OUT_BPC_KEYS if k in r)) for r in rows if _has_bpc(r)]
    facts = [
        ("stage", run.get("stage") or "unfinished run (no bailong_run.json)"),
        ("base model", run.get("base_model")),
        ("steps", run.get("steps") or max((r.get("step", 0) for r in rows), default=None)),
        ("training loss (first → last)", _first_last([(r.get("step"), r["loss"]) for r in train])),
        ("held-out loss (first → last)", _first_last([(r.get("step"), r["eval_loss"]) for r in held])),
        ("held-out bits/char (first → last)", _first_last(bpc)),
        ("trainable parameters", _count(run.get("trainable_parameters"))),
    ]
    png = folder / METRICS_PNG
    return {
        "kind": "run",
        "title": f"training run: {folder.name}",
        "path": str(folder),
        "facts": [(k, v) for k, v in facts if v not in (None, "")],
        "images": [{"title": "training and held-out curves", "uri": image_uri(png)}] if png.is_file() else [],
    }


def vocab_section(folder: Path) -> dict:
    """An extend-vocab output: its figures, and held-out sentences cut by the base's and the extended tokenizer."""
    report = read_json(folder / VOCAB_REPORT_FILE) or (read_json(folder / EXTENSION_FILE) or {}).get(
        "tokenizer_report", {}
    )
    facts = [
        ("base tokenizer", report.get("base_tokenizer")),
        ("family", report.get("family")),
        ("vocabulary", _arrow(report.get("base_vocab_size"), report.get("vocab_size"))),
        ("tokens added", report.get("tokens_added")),
        (
            "held-out tokens per character",
            _arrow(report.get("tokens_per_char_before"), report.get("tokens_per_char_after")),
        ),
        ("English ids unchanged", report.get("english_ids_unchanged")),
    ]
    samples, note = [], None
    sentences, source = held_out_sentences(folder)
    base = report.get("base_tokenizer")
    if not sentences:
        note = source
    elif not base:
        note = f"{VOCAB_REPORT_FILE} does not name the base tokenizer"
    else:
        from bailong.loading import load_tokenizer

        try:
            base_tok, extended_tok = load_tokenizer(str(base)), load_tokenizer(str(folder))
        except (BailongError, OSError, ValueError) as err:
            base_tok = None
            note = f"the tokenizers could not be loaded to show token boundaries: {err}"
        if base_tok is not None:
            for sentence in sentences:
                cut_base, cut_extended = token_segments(base_tok, sentence), token_segments(extended_tok, sentence)
                samples.append(
                    {
                        "text": sentence,
                        "base": cut_base,
                        "extended": cut_extended,
                        "base_tokens": sum(s["tokens"] for s in cut_base),
                        "extended_tokens": sum(s["tokens"] for s in cut_extended),
                    }
                )
    return {
        "kind": "vocab",
        "title": f"extend-vocab: {folder.name}",
        "path": str(folder),
        "facts": [(k, v) for k, v in facts if v not in (None, "")],
        "new_tokens": [t for t in report.get("new_tokens_sample") or [] if isinstance(t, str)],
        "samples": samples,
        "samples_from": source if samples else None,
        "note": note,
    }


def held_out_sentences(folder: Path) -> tuple[list[str], str]:
    """The first sentences of the documents extend-vocab held out (read again from its corpus by the same stable
    split), and where they come from; the corpus's first documents when nothing was held out."""
    import yaml

    from bailong.config.data import VocabDataConfig
    from bailong.data import CorpusReader, split_held_out

    config = folder / CONFIG_FILE
    if not config.is_file():
        return [], f"no {CONFIG_FILE} in {folder}: the corpus is unknown, so no sentences are shown"
    try:
        data = VocabDataConfig(**(yaml.safe_load(config.read_text(encoding="utf-8")) or {}).get("data", {}))
        picked, first = [], []
        for document in CorpusReader(data):
            if len(first) < SAMPLE_SENTENCES:
                first.append(document)
            if split_held_out(document, data.validation):
                picked.append(document)
                if len(picked) == SAMPLE_SENTENCES:
                    break
    except (BailongError, OSError, ValueError) as err:
        return [], f"the corpus named in {config} could not be read ({err}), so no sentences are shown"
    where = ", ".join(Path(f).name for f in data.files)
    if picked:
        return [_first_sentence(d) for d in picked], f"documents held out of tokenizer training ({where})"
    return [_first_sentence(d) for d in first], f"the first documents of the corpus ({where}; none was held out)"


def token_segments(tokenizer, text: str) -> list[dict]:
    """`text` cut where the tokenizer cuts it: [{"text", "tokens"}], "tokens" > 1 where several tokens (bytes of
    one character) share the same characters. Text no token covers (a space a piece carries) stays plain."""
    encoded = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
    spans: list[list[int]] = []
    for start, end in encoded["offset_mapping"]:
        if spans and start < spans[-1][1]:  # a byte piece of the character(s) the previous token began
            spans[-1][1], spans[-1][2] = max(end, spans[-1][1]), spans[-1][2] + 1
        elif end > start:
            spans.append([start, end, 1])
        elif spans:  # a token without characters of its own (a prefix marker): counted with the one before
            spans[-1][2] += 1
    segments, at = [], 0
    for start, end, tokens in spans:
        if start > at:
            segments.append({"text": text[at:start], "tokens": 0})
        segments.append({"text": text[start:end], "tokens": tokens})
        at = end
    if at < len(text):
        segments.append({"text": text[at:], "tokens": 0})
    return segments


def _first_sentence(document: str) -> str:
    document = " ".join(document.split())
    match = re.match(r".+?[。！？!?.](?=\s|$|[^\d])", document)
    sentence = match.group(0) if match and len(match.group(0)) >= 8 else document
    return sentence if len(sentence) <= SENTENCE_CHARS else sentence[:SENTENCE_CHARS] + "…"


def _has_bpc(row: dict) -> bool:
    return "step" in row and any(k in row for k in HELD_OUT_BPC_KEYS)


def _first_last(points: list[tuple]) -> str | None:
    points = [(s, v) for s, v in points if isinstance(v, (int, float))]
    if not points:
        return None
    (s0, v0), (s1, v1) = points[0], points[-1]
    return f"{v0:.3f} (step {s0})" if len(points) == 1 else f"{v0:.3f} (step {s0}) → {v1:.3f} (step {s1})"


def _arrow(before, after) -> str | None:
    return None if before is None or after is None else f"{before} → {after}"


def _count(value) -> str | None:
    return f"{value:,}" if isinstance(value, int) else None


SECTION_OF = {"eval": eval_section, "run": run_section, "vocab": vocab_section}
