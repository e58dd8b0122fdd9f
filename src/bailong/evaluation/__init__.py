"""Evaluation building blocks: language consistency without a judge, and an LLM-judge client with its prompts."""
