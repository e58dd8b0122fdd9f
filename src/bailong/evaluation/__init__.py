"""Evaluation tasks (bits per character, multiple choice, an LLM-judge bench), language consistency, the report."""
