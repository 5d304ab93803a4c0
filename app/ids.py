"""Identifiers minted on every request (request ids, AuditEvent ids).

``uuid.uuid4()`` reads the kernel's random source, a system call that costs tens of
microseconds on a virtual machine and is paid twice per read. These identifiers must be unique,
not secret, so 128 bits from the process's Mersenne Twister (seeded from the kernel at start
and reseeded in every forked child) do: they are formatted as version-4 UUIDs, 32 hex digits.
Anything that guards access (tokens, keys, secrets) keeps using ``secrets``.
"""
from __future__ import annotations

import random

_VERSION_4 = (0x4 << 76) | (0x2 << 62)
_KEEP = ~((0xF << 76) | (0x3 << 62)) & ((1 << 128) - 1)


def unique_hex() -> str:
    """A random version-4 UUID as 32 lowercase hex digits."""
    return f"{(random.getrandbits(128) & _KEEP) | _VERSION_4:032x}"
