"""Answers one prompt with llama.cpp from a GGUF export, through the chat template stored in the GGUF (greedy).

Run: python scripts/gguf_answer.py runs/demo/gguf/sft-f16.gguf "台灣最高的山是哪一座？"
"""

import sys

from bailong.gguf.check import llama_cpp_answer

if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit("usage: python scripts/gguf_answer.py FILE.gguf PROMPT")
    path, prompt = sys.argv[1], sys.argv[2]
    print(f"llama.cpp ({path}) > {prompt}\n{llama_cpp_answer(path, prompt)}")
