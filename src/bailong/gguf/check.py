"""Reading a GGUF export back with the real llama.cpp (llama-cpp-python, the `gguf-check` extra): tokenizing, greedy
tokens, and one chat answer, next to the same from transformers on the merged HF export."""

from __future__ import annotations

from pathlib import Path

from bailong.errors import BailongError


def open_gguf(path: str | Path, *, vocab_only: bool = False, n_ctx: int = 512):
    """llama.cpp's model (or only its vocabulary) from a GGUF file."""
    try:
        from llama_cpp import Llama
    except ImportError:
        raise BailongError(
            "llama-cpp-python is not installed: pip install 'bailong[gguf-check]' with CMAKE_ARGS="
            '"-DGGML_NATIVE=OFF -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON" (the Makefile does)'
        ) from None
    return Llama(
        model_path=str(path), vocab_only=vocab_only, n_ctx=n_ctx, logits_all=not vocab_only, verbose=False, seed=0
    )


def llama_cpp_tokenize(llm, text: str, with_bos: bool) -> list[int]:
    """llama.cpp's ids for `text`, with the special tokens its vocabulary adds (BOS) or without."""
    return llm.tokenize(text.encode("utf-8"), add_bos=with_bos, special=False)


def llama_cpp_greedy(llm, ids: list[int], n: int) -> list[int]:
    """The next `n` tokens llama.cpp picks greedily (the argmax of its logits) after `ids`, past an EOS too."""
    import numpy as np

    llm.reset()
    llm.eval(ids)
    picked = []
    for _ in range(n):
        token = int(np.argmax(llm.scores[llm.n_tokens - 1]))
        picked.append(token)
        llm.eval([token])
    return picked


def transformers_greedy(model, ids: list[int], n: int) -> list[int]:
    """The next `n` tokens transformers picks greedily (the argmax of its logits) after `ids`, past an EOS too."""
    import torch

    picked, cache, step = [], None, torch.tensor([ids])
    with torch.no_grad():
        for _ in range(n):
            out = model(input_ids=step, cache=cache, use_cache=True)
            cache = out.cache
            picked.append(int(out.logits[0, -1].argmax()))
            step = torch.tensor([[picked[-1]]])
    return picked


def llama_cpp_answer(path: str | Path, prompt: str, max_tokens: int = 48) -> str:
    """One greedy chat answer from llama.cpp, with the chat template stored in the GGUF."""
    llm = open_gguf(path, n_ctx=1024)
    try:
        reply = llm.create_chat_completion(
            [{"role": "user", "content": prompt}], max_tokens=max_tokens, temperature=0.0, top_k=1
        )
    finally:
        llm.close()  # freed now: llama-cpp-python's own finalizer fails at interpreter exit
    return reply["choices"][0]["message"]["content"]
