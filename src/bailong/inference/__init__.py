"""Inference: the chat model with one set of generation defaults, and the OpenAI-compatible API over it."""

from bailong.inference.chat_model import ChatModel, GenerationSettings, model_source

__all__ = ["ChatModel", "GenerationSettings", "model_source"]
