"""The `choice` task's scoring: a question's context runs once and its choices are read from it (single tokens from
its last logits, longer continuations from its KV cache); the numbers equal one plain forward per question and
choice, tokenized the same way."""

import pytest
import torch

from bailong.evaluation.choice import (
    continuations,
    encode_pairs,
    few_shot_prefix,
    load_questions,
    log_likelihoods,
    prompt,
)
from helpers import DEMO_DATA, shared_file, tiny_llama


def one_forward_per_choice(model, tokenizer, pairs: list[tuple[str, str]]) -> list[float]:
    """The reference: each context + continuation on its own, no batch and no padding; the continuation's tokens are
    those after the context's (its last one too where the two merge at the boundary)."""
    scores = []
    with torch.no_grad():
        for context, continuation in pairs:
            context_ids = tokenizer(context)["input_ids"]
            whole = tokenizer(context + continuation)["input_ids"]
            start = len(context_ids) if whole[: len(context_ids)] == context_ids else len(context_ids) - 1
            logprobs = torch.log_softmax(model(input_ids=torch.tensor([whole])).logits[0].float(), dim=-1)
            scores.append(sum(logprobs[p - 1, whole[p]].item() for p in range(max(1, start), len(whole))))
    return scores


def choice_pairs(questions: list[dict], lettered: bool, prefix: str = "") -> list[tuple[str, str]]:
    return [(prefix + prompt(q, lettered), c) for q in questions for c in continuations(q, lettered)]


def test_shared_contexts_score_like_one_forward_each_on_a_tiny_model(tmp_path):
    model_dir = tiny_llama(tmp_path / "tiny", "smollm2-135m-instruct")
    from transformers import AutoModelForCausalLM

    from bailong.loading import load_tokenizer

    model, tokenizer = AutoModelForCausalLM.from_pretrained(model_dir).eval(), load_tokenizer(str(model_dir))
    pairs = [
        ("The word is hel", "lo"),  # merges with the context's last token: the context gives it up
        ("The word is hel", "p"),
        ("The word is hel", "icopter rides"),
        ("答案：", " A"),  # single tokens and longer continuations after one context
        ("答案：", " 玉山"),
        ("答案：", " B"),
        ("答案：", " 北大武山的山頂"),
        ("答案：", " 一二三四五六七八九十"),
        ("問題：", ""),  # nothing to score
    ]
    want = one_forward_per_choice(model, tokenizer, pairs)
    for batch_size in (1, 2, 8):  # contexts of different lengths in one batch: padding between context and tail
        got = log_likelihoods(model, tokenizer, pairs, batch_size)
        assert got == pytest.approx(want, abs=1e-4), batch_size
    encoded = encode_pairs(tokenizer, pairs)
    assert len(encoded[0][0]) == len(tokenizer("The word is hel")["input_ids"]) - 1  # the merge case is covered
    assert want[-1] == 0 and all(score < 0 for score in want[:-1])


@pytest.fixture(scope="module")
def smollm2():
    from bailong.inference import ChatModel

    return ChatModel("smollm2-135m-instruct")


@pytest.mark.slow
@pytest.mark.parametrize("lettered", [True, False], ids=["letter", "text"])
def test_choice_scores_equal_one_forward_each_on_real_items_with_smollm2(smollm2, lettered):
    bot = smollm2
    demo = load_questions(str(DEMO_DATA / "tc_choice.jsonl"), 2)
    tmmlu = load_questions(str(shared_file("bench/tmmlu_mc.jsonl")), 2)
    prefix = few_shot_prefix(load_questions(str(DEMO_DATA / "tc_choice_dev.jsonl"))[:1], lettered)
    pairs = choice_pairs(demo, lettered) + choice_pairs(tmmlu, lettered, prefix)
    want = one_forward_per_choice(bot.model, bot.tokenizer, pairs)
    assert log_likelihoods(bot.model, bot.tokenizer, pairs, batch_size=3) == pytest.approx(want, rel=2e-6, abs=1e-4)
