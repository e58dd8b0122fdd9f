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
