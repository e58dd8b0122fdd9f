"""Generation speed of models side by side: eval's speed task (greedy, the same new characters after each shipped
TC prompt, batch size 1), with the models taking turns prompt by prompt so that a changing machine load weighs on
all of them alike. Prints characters and tokens per second and tokens per character of the generated text.

    python scripts/bench_generation_speed.py smollm2-135m-instruct runs/demo/pretrain
    python scripts/bench_generation_speed.py smollm2-135m-instruct runs/demo/pretrain --prompts 5 --characters 64
"""

from __future__ import annotations

import argparse

from bailong.console import format_table
from bailong.evaluation.speed import default_prompts, generation_speed
from bailong.inference import ChatModel


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("models", nargs="+", help="model sources or run folders")
    parser.add_argument("--prompts", type=int, default=3, help="the first N shipped prompts")
    parser.add_argument("--characters", type=int, default=32, help="new characters after each prompt")
    args = parser.parse_args()

    models = {source: ChatModel(source) for source in args.models}
    totals = {source: {"new_characters": 0, "new_tokens": 0, "generation_seconds": 0.0} for source in models}
    for bot in models.values():  # the warm-up
        generation_speed(bot.model, bot.tokenizer, default_prompts()[-1:], characters=8, warmup=0)
    for prompt in default_prompts()[: args.prompts]:
        for source, bot in models.items():
            result = generation_speed(bot.model, bot.tokenizer, [prompt], characters=args.characters, warmup=0)
            for key in totals[source]:
                totals[source][key] += result[key]
    rows = [
        [
            source,
            str(t["new_characters"]),
            str(t["new_tokens"]),
            f"{t['new_tokens'] / t['new_characters']:.2f}",
            f"{t['new_characters'] / t['generation_seconds']:.2f}",
            f"{t['new_tokens'] / t['generation_seconds']:.2f}",
        ]
        for source, t in totals.items()
    ]
    print(format_table(["model", "characters", "tokens", "tokens/char", "chars/s", "tokens/s"], rows))


if __name__ == "__main__":
    main()
