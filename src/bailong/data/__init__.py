"""Data for every stage: one record reader, corpora, conversations, chat templates, pretrain and sft samples."""

from bailong.data.corpus import CorpusReader, split_held_out
from bailong.data.readers import BadRecord, RecordReader
from bailong.data.training_set import TrainingData

__all__ = ["BadRecord", "CorpusReader", "RecordReader", "TrainingData", "split_held_out"]
