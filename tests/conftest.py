"""Fixtures only; helpers live in helpers.py (import them from there, not from conftest)."""

import pytest

from helpers import MISTRAL_V1


@pytest.fixture(scope="session")
def mistral_model():
    return MISTRAL_V1
