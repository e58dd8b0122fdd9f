"""Tokenizer expansion: train on a corpus, merge into the base, check every guarantee."""
