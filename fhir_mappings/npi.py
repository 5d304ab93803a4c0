"""NPI check digit: Luhn (ISO/IEC 7812) over the prefix 80840 plus the first nine digits."""
from __future__ import annotations


def npi_is_valid(npi: str) -> bool:
    """True when ``npi`` is ten digits and its last digit is the Luhn check digit with prefix 80840."""
    if len(npi) != 10 or not npi.isdigit():
        return False
    digits = [int(c) for c in "80840" + npi[:9]]
    total = 0
    # Double every second digit counting from the right of the payload (the check digit is excluded).
    for i, d in enumerate(reversed(digits)):
        if i % 2 == 0:
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return (10 - total % 10) % 10 == int(npi[9])
