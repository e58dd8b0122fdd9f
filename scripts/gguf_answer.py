"""Answers one prompt with llama.cpp from a GGUF export, through the chat template stored in the GGUF (greedy).

Run: python scripts/gguf_answer.py runs/demo/gguf/sft-f16.gguf "台灣最高的山是哪一座？"
"""

import argparse


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("gguf", help="a .gguf file written by bailong export --format gguf")
    parser.add_argument("prompt", help="one user turn")
    parser.add_argument("--max-tokens", type=int, default=48)
    args = parser.parse_args()

    from bailong.gguf.check import llama_cpp_answer

    print(f"llama.cpp ({args.gguf}) > {args.prompt}\n{llama_cpp_answer(args.gguf, args.prompt, args.max_tokens)}")


if __name__ == "__main__":
    main()
