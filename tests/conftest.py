"""Fixtures only; helpers live in helpers.py (import them from there, not from conftest)."""

import pytest

from helpers import MISTRAL_V1


@pytest.fixture(scope="session")
def mistral_model():
    return MISTRAL_V1


@pytest.fixture(scope="session")
def real_tokenizers(tmp_path_factory):
    """Today's base tokenizers (see real_tokenizers.py), each converted once per session on first use."""
    import real_tokenizers

    root = tmp_path_factory.mktemp("real_tokenizers")
    built = {}

    def get(name: str):
        if name not in built:
            built[name] = getattr(real_tokenizers, name)(root / name)
        return built[name]

    return get


@pytest.fixture(scope="session")
def gemma3_run(tmp_path_factory):
    """The real Gemma 3 270M, extended and pretrained a few steps (helpers.extended_gemma3_run): a few minutes, so
    built once per session for test_gemma3 and the llama.cpp checks."""
    from helpers import extended_gemma3_run

    return extended_gemma3_run(tmp_path_factory.mktemp("gemma3"))
