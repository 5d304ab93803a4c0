import pytest

from fhir_mappings.identifiers import npi_is_valid


@pytest.mark.parametrize("npi", ["1234567893", "1245319599", "1982736450"])
def test_valid_npis(npi: str) -> None:
    assert npi_is_valid(npi)


@pytest.mark.parametrize("npi", ["1234567890", "1245319598", "123456789", "12345678930", "12345678a3", ""])
def test_invalid_npis(npi: str) -> None:
    assert not npi_is_valid(npi)
