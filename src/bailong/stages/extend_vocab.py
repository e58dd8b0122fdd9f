"""`bailong extend-vocab`: train a tokenizer on the corpus, merge it into the base, check it, write it (and, with
`model.name_or_path`, the extended checkpoint with initialized new rows)."""

from __future__ import annotations

import random
import time
from collections.abc import Iterator
from pathlib import Path

from bailong.artifacts import CONFIG_FILE, VOCAB_REPORT_FILE, atomic_output_dir, check_output_dir, write_json
from bailong.config import ExtendVocabConfig, dump_config
from bailong.console import print_table, say
from bailong.data import CorpusReader, split_held_out
from bailong.errors import BailongError
from bailong.loading import load_tokenizer
from bailong.vocab.checkpoint import write_extended_checkpoint
from bailong.vocab.checks import check_extension
from bailong.vocab.families import char_cost, detect_family, extend, known_texts
from bailong.vocab.train import train_candidates, training_sentences

CHECK_DOCS = 2000  # documents of each split kept for the checks


class _Split:
    """Streams documents once: training ones go on, a bounded sample of each split is kept for the checks."""

    def __init__(self, reader: CorpusReader, held_out: float, seed: int):
        self.reader, self.held_out = reader, held_out
        self.rng = random.Random(seed)
        self.train_sample: list[str] = []
        self.held: list[str] = []
        self.documents = self.characters = 0

    def __iter__(self) -> Iterator[str]:
        for doc in self.reader:
            self.documents += 1
            self.characters += len(doc)
            if split_held_out(doc, self.held_out):
                if len(self.held) < CHECK_DOCS:
                    self.held.append(doc)
                continue
            if len(self.train_sample) < CHECK_DOCS:
                self.train_sample.append(doc)
            elif (j := self.rng.randrange(self.documents)) < CHECK_DOCS:
                self.train_sample[j] = doc
            yield doc


def training_documents(cfg: ExtendVocabConfig) -> Iterator[str]:
    """The corpus's documents that are not held out, streamed again from the files."""
    return (doc for doc in CorpusReader(cfg.data) if not split_held_out(doc, cfg.data.validation))


def user_words(cfg: ExtendVocabConfig) -> list[str]:
    words = list(cfg.vocab.user_words)
    if cfg.vocab.user_words_file:
        words += Path(cfg.vocab.user_words_file).read_text(encoding="utf-8-sig").split()
    return [w for w in dict.fromkeys(w.strip() for w in words) if w]


def run(cfg: ExtendVocabConfig, overwrite: bool = False) -> dict:
    """Runs the stage; returns the report that it also writes to `output_dir`."""
    check_output_dir(Path(cfg.output_dir), overwrite)
    timings: dict[str, float] = {}
    start = time.perf_counter()
    split = _Split(CorpusReader(cfg.data), cfg.data.validation, cfg.vocab.seed)
    sentences, scripts = training_sentences(split, cfg.vocab)
    if split.documents == 0:
        raise BailongError(
            f"the corpus is empty: no non-empty documents in {', '.join(cfg.data.files)}; put text in it (a .txt "
            f"file: one document a line; .jsonl: one {{{cfg.data.text_field!r}: ...}} object a line) or list "
            "another file in data.files"
        )
    say(scripts.reason)
    if scripts.latin:
        say(
            "warning: vocab.scripts names Latin: new pieces may change the ids of English text; the report counts "
            "the English probe texts whose ids changed instead of failing"
        )
    timings["read_corpus_s"] = time.perf_counter() - start

    start = time.perf_counter()
    source = cfg.model.tokenizer_source
    base_tok = load_tokenizer(source, revision=cfg.model.revision, trust_remote_code=cfg.model.trust_remote_code)
    family = detect_family(source, base_tok)
    timings["load_base_s"] = time.perf_counter() - start

    start = time.perf_counter()
    known = known_texts(family, base_tok)
    candidates = train_candidates(
        sentences, scripts, cfg.vocab, cfg.vocab.new_tokens, known, char_cost(family, base_tok)
    )
    timings["train_tokenizer_s"] = time.perf_counter() - start

    with atomic_output_dir(cfg.output_dir, overwrite) as out:
        start = time.perf_counter()
        ordered = user_words(cfg) + candidates.pieces
        result = extend(family, source, base_tok, ordered, cfg.vocab.new_tokens, out)
        timings["merge_s"] = time.perf_counter() - start

        start = time.perf_counter()
        report = check_extension(base_tok, result, split.train_sample, split.held, scripts)
        timings["check_s"] = time.perf_counter() - start
        if report["failures"]:
            raise RuntimeError("the extended tokenizer failed its checks: " + "; ".join(report["failures"]))
        report.update(
            base_tokenizer=source,
            scripts=list(scripts.scripts) if scripts.scripts else "all",
            scripts_reason=scripts.reason,
            letter_shares=scripts.letter_shares,
            tokens_requested=cfg.vocab.new_tokens,
            corpus_documents=split.documents,
            corpus_characters=split.characters,
            held_out_documents=len(split.held),
            training_sentences=candidates.sentences,
            trained_vocab_size=candidates.trained_vocab_size,
            skipped_bad_records=split.reader.skipped_records,
            bad_records=split.reader.reader.report(),
            new_tokens_sample=result.extension.pieces[:20],
            timings={k: round(v, 2) for k, v in timings.items()},
        )
        if cfg.model.name_or_path:
            same = cfg.model.tokenizer in (None, cfg.model.name_or_path)  # then the base tokenizer is the model's
            extension = write_extended_checkpoint(
                cfg, result.tokenizer, report, out, base_tok if same else None, lambda: training_documents(cfg)
            )
            report["checkpoint"] = {
                k: extension[k]
                for k in (
                    "embedding_rows_before",
                    "embedding_rows",
                    "spare_rows_filled",
                    "rows_appended",
                    "tied_embeddings",
                    "dtype",
                    "init_seconds",
                )
            }
            if extension["align"]:
                curve = extension["align"]["loss_curve"]
                report["checkpoint"]["align"] = {
                    "seconds": extension["align"]["seconds"],
                    "loss_first": curve[0]["loss"],
                    "loss_last": curve[-1]["loss"],
                }
        write_json(out / VOCAB_REPORT_FILE, report)
        (out / CONFIG_FILE).write_text(dump_config(cfg), encoding="utf-8")

    _print_report(report, cfg)
    return report


def _print_report(report: dict, cfg: ExtendVocabConfig) -> None:
    keys = [
        "family",
        "base_vocab_size",
        "vocab_size",
        "tokens_requested",
        "tokens_added",
        "pieces_added",
        "merge_steps_added",
        "tokens_per_char_before",
        "tokens_per_char_after",
        "english_ids_unchanged",
        "english_probe_changed",
        "all_new_pieces_reachable",
        "roundtrip_ok",
        "base_tokens_kept",
        "special_token_ids_kept",
        "chat_template_kept",
        "sentencepiece_matches_hf",
        "corpus_documents",
        "held_out_documents",
        "skipped_bad_records",
    ]
    print_table("extend-vocab", [(k, report[k]) for k in keys if k in report])
    if report["tokens_added"] < report["tokens_requested"]:
        say(
            f"note: the corpus supports {report['tokens_added']} new tokens, fewer than the "
            f"{report['tokens_requested']} asked for (vocab.new_tokens); add text to get more"
        )
    if report["skipped_bad_records"]:
        say(f"note: {report['bad_records']}")
    if "checkpoint" in report:
        ckpt = report["checkpoint"]
        say(
            f"checkpoint: {ckpt['embedding_rows']} embedding rows ({ckpt['dtype']}, "
            f"{'tied' if ckpt['tied_embeddings'] else 'untied'}), new rows by {cfg.new_rows.init} "
            f"in {ckpt['init_seconds']} s"
        )
        if ckpt["spare_rows_filled"]:
            say(
                f"new rows: {ckpt['spare_rows_filled']} new tokens took the checkpoint's spare rows (it had "
                f"{ckpt['embedding_rows_before']} rows for {report['base_vocab_size']} tokens); "
                f"{ckpt['rows_appended']} rows appended"
            )
        if "align" in ckpt:
            a = ckpt["align"]
            say(f"align: loss {a['loss_first']:.4f} -> {a['loss_last']:.4f} in {a['seconds']} s")
    say(f"wrote {cfg.output_dir}")
