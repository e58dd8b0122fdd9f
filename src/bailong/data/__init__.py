"""Data loading shared by every stage."""

from bailong.data.corpus import CorpusReader, split_held_out

__all__ = ["CorpusReader", "split_held_out"]
