"""Prompt templates for the LLM judge (original wording for bailong), with `str.format` fields.

Four templates, each a {"system", "user"} pair: "single" (question, answer), "reference" (question, reference,
answer), "multi_turn" (question_1, answer_1, question_2, answer_2) and "multi_turn_reference" (the same plus
reference_1, reference_2). Every template asks for a short explanation and then a last line `Rating: [[N]]`, and
states the language rule: a reply must be in the user's language unless the user asks for another; a language miss
caps the rating at 2. They work for English and Traditional Chinese questions alike.
"""

from __future__ import annotations

from pathlib import Path

from bailong.config.evaluation import JUDGE_TEMPLATE_FIELDS, read_judge_templates

LANGUAGE_RULE = (
    "Language rule: the assistant must reply in the language the user wrote in. An English question needs an "
    "English answer. A question in Traditional Chinese (繁體中文) needs an answer in Traditional Chinese: an answer "
    "in Simplified Chinese (简体中文) or in English breaks the rule, however good its content. The only exception is "
    'an explicit request for another language (for example "please answer in English", "請用英文回答", or a '
    "translation task): then the requested language is the right one. Names, quoted terms, code and formulas in "
    "another language do not break the rule. An answer that breaks the rule gets a rating of at most 2."
)

OUTPUT_RULE = (
    "First write a short explanation (a few sentences) of the answer's strengths and weaknesses. Then end with a "
    "line that is exactly `Rating: [[N]]`, where N is an integer from 1 (useless or wrong) to 10 (excellent), "
    "for example `Rating: [[6]]`. Write nothing after that line."
)

_SYSTEM = (
    "You are a strict, impartial judge of the replies of an AI assistant. The user may write in English or in "
    "Traditional Chinese. Do not let the length of a reply, its style or the position of the text sway you, "
    "and do not favour any assistant by name."
)

SINGLE_SYSTEM = _SYSTEM
SINGLE_USER = (
    "Rate the assistant's answer to the user's question below. Judge how helpful, correct, relevant, deep and "
    "clear it is, and whether it does what the question asks.\n\n" + LANGUAGE_RULE + "\n\n" + OUTPUT_RULE + "\n\n"
    "<question>\n{question}\n</question>\n\n<answer>\n{answer}\n</answer>"
)

REFERENCE_SYSTEM = _SYSTEM + " For this task you also get a reference answer known to be correct."
REFERENCE_USER = (
    "Rate the assistant's answer to the user's question below (mathematics, reasoning or programming). Compare it "
    "with the reference answer: correctness comes first, so a wrong final result or a broken program gets a low "
    "rating however well it is explained; a different but correct method is fine.\n\n"
    + LANGUAGE_RULE
    + "\n\n"
    + OUTPUT_RULE
    + "\n\n<question>\n{question}\n</question>\n\n<reference_answer>\n{reference}\n"
    "</reference_answer>\n\n<answer>\n{answer}\n</answer>"
)

MULTI_TURN_SYSTEM = _SYSTEM + " You will see a whole two-turn conversation; rate only the assistant's second answer."
MULTI_TURN_USER = (
    "Below is a conversation between a user and the assistant in two turns. Rate ONLY the assistant's SECOND "
    "answer, in the context of the whole conversation: how helpful, correct and relevant it is as a reply to the "
    "user's second message, and whether it stays consistent with what was said before. The first answer is there "
    "for context only. For the language rule, the user's language is that of the second message, unless an "
    "earlier request for a language still applies.\n\n" + LANGUAGE_RULE + "\n\n" + OUTPUT_RULE + "\n\n"
    "<conversation>\n<user_turn_1>\n{question_1}\n</user_turn_1>\n\n<assistant_turn_1>\n{answer_1}\n"
    "</assistant_turn_1>\n\n<user_turn_2>\n{question_2}\n</user_turn_2>\n\n<assistant_turn_2>\n{answer_2}\n"
    "</assistant_turn_2>\n</conversation>"
)

MULTI_TURN_REFERENCE_SYSTEM = MULTI_TURN_SYSTEM + " You also get reference answers known to be correct."
MULTI_TURN_REFERENCE_USER = (
    "Below is a conversation between a user and the assistant in two turns (mathematics, reasoning or "
    "programming), followed by reference answers for both turns. Rate ONLY the assistant's SECOND answer, in the "
    "context of the whole conversation, against the second reference answer: correctness comes first, so a wrong "
    "result or a broken program gets a low rating however well it is explained. The first answer is there for "
    "context only. For the language rule, the user's language is that of the second message, unless an earlier "
    "request for a language still applies.\n\n" + LANGUAGE_RULE + "\n\n" + OUTPUT_RULE + "\n\n"
    "<reference_answer_1>\n{reference_1}\n</reference_answer_1>\n\n<reference_answer_2>\n{reference_2}\n"
    "</reference_answer_2>\n\n<conversation>\n<user_turn_1>\n{question_1}\n</user_turn_1>\n\n<assistant_turn_1>\n"
    "{answer_1}\n</assistant_turn_1>\n\n<user_turn_2>\n{question_2}\n</user_turn_2>\n\n<assistant_turn_2>\n"
    "{answer_2}\n</assistant_turn_2>\n</conversation>"
)

DEFAULT_TEMPLATES: dict[str, dict[str, str]] = {
    "single": {"system": SINGLE_SYSTEM, "user": SINGLE_USER},
    "reference": {"system": REFERENCE_SYSTEM, "user": REFERENCE_USER},
    "multi_turn": {"system": MULTI_TURN_SYSTEM, "user": MULTI_TURN_USER},
    "multi_turn_reference": {"system": MULTI_TURN_REFERENCE_SYSTEM, "user": MULTI_TURN_REFERENCE_USER},
}

# The format fields each template may use (the templates file is checked against them when the config loads).
FIELDS = JUDGE_TEMPLATE_FIELDS


def load_templates(path: str | Path | None = None) -> dict[str, dict[str, str]]:
    """The default templates, or those of a YAML/JSON file with all four keys, each {system, user} strings.

    Raises ValueError naming the missing key or field, or a format field the template may not use.
    """
    if path is None:
        return {name: dict(pair) for name, pair in DEFAULT_TEMPLATES.items()}
    return read_judge_templates(path)


def render_messages(template: dict[str, str], **fields: str) -> list[dict[str, str]]:
    """Chat messages (system + user) from one template filled with `fields`."""
    return [
        {"role": "system", "content": template["system"].format(**fields)},
        {"role": "user", "content": template["user"].format(**fields)},
    ]
