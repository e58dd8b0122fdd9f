"""Vocabulary extension: tokenizer training, the growable BPE vocabularies, the writers, the guarantees, the
initialization of new embedding rows, and the extended checkpoint."""
