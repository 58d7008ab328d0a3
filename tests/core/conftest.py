"""Fixtures for the core's tests; the helpers themselves live in ``core_kit``."""

from __future__ import annotations

import pytest
from core_kit import DictCounter


@pytest.fixture
def counter() -> DictCounter:
    """A fresh in-memory rate counter."""
    return DictCounter()
