"""Shared guard for the crypto tests: no test may leave another signature provider installed."""

from __future__ import annotations

import pytest

from crypto import get_provider

_ORIGINAL_PROVIDER = get_provider()


@pytest.fixture(autouse=True)
def _provider_is_restored():
    """A test that swaps the provider must put the original back."""
    yield
    assert get_provider() is _ORIGINAL_PROVIDER, "a test left another signature provider installed"
