"""Fixtures for the X12 codec tests."""
from __future__ import annotations

from datetime import datetime
from pathlib import Path

import pytest

from payer_adapters.x12 import InMemoryControlNumbers, load_partner

EXAMPLES = Path("/work/shared/reference/x12-examples")
if not EXAMPLES.exists():  # repository checkout next to ../shared
    EXAMPLES = Path(__file__).resolve().parents[4] / "shared" / "reference" / "x12-examples"

NOW = datetime(2025, 1, 15, 10, 30)


@pytest.fixture
def partner():
    return load_partner("sandbox")


@pytest.fixture
def numbers():
    return InMemoryControlNumbers(start=101)


@pytest.fixture
def examples() -> Path:
    if not EXAMPLES.exists():
        pytest.skip("shared X12 examples not available")
    return EXAMPLES


