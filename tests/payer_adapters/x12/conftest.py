"""Fixtures for the X12 codec tests."""
from __future__ import annotations

from datetime import datetime
from pathlib import Path

import pytest

from payer_adapters.x12 import InMemoryControlNumbers, load_partner

#: Hand-built 5010 files of an OT practice (837P original, replacement, workers' comp and one that
#: must fail; 999 accept and reject; 277CA; 835; 270; 271).
EXAMPLES = Path(__file__).resolve().parent / "examples"

NOW = datetime(2025, 1, 15, 10, 30)


@pytest.fixture
def partner():
    return load_partner("sandbox")


@pytest.fixture
def numbers():
    return InMemoryControlNumbers(start=101)


@pytest.fixture
def examples() -> Path:
    return EXAMPLES


