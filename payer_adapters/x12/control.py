"""Control numbers for ISA13, GS06 and ST02.

The codec only asks for the next number; where it comes from is the caller's business. The server
supplies a database-backed sequence (unique and increasing across processes and restarts); tests and
the CLI use :class:`InMemoryControlNumbers`. :class:`BatchNumbers` are those written into one
claim file.
"""
from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Literal, Protocol

Kind = Literal["ISA", "GS", "ST"]

#: Largest value each element can hold (ISA13 9 digits, GS06 9 digits, ST02 we keep at 4..9 digits).
LIMITS: dict[str, int] = {"ISA": 999_999_999, "GS": 999_999_999, "ST": 999_999_999}


class ControlNumbers(Protocol):
    def next(self, partner: str, kind: Kind) -> int:
        """Return a fresh number for ``kind`` towards ``partner``; never repeat one."""


class InMemoryControlNumbers:
    """Per-partner counters held in memory (thread-safe; lost on restart)."""

    def __init__(self, start: int = 1) -> None:
        self._lock = threading.Lock()
        self._next: dict[tuple[str, str], int] = {}
        self._start = start

    def next(self, partner: str, kind: Kind) -> int:
        with self._lock:
            value = self._next.get((partner, kind), self._start)
            if value > LIMITS[kind]:
                raise OverflowError(f"{kind} control numbers exhausted for {partner}")
            self._next[(partner, kind)] = value + 1
            return value


@dataclass(frozen=True)
class BatchNumbers:
    """The control numbers of one claim file as written in it: ISA13, GS06 and, per transaction
    set, its ST02 with the patient control numbers (CLM01) it carries. A 999 answers by GS06 and
    ST02, a 277CA by the BHT03 made of ISA13 and ST02: the receipt of a submission records them."""

    isa: str
    gs: str
    sets: tuple[tuple[str, tuple[str, ...]], ...]

    @property
    def st(self) -> list[str]:
        """Every ST02, in file order."""
        return [st for st, _ in self.sets]

    @property
    def claims(self) -> list[str]:
        """Every CLM01, in file order."""
        return [pcn for _, pcns in self.sets for pcn in pcns]

    @property
    def claim_sets(self) -> dict[str, str]:
        """CLM01 → the ST02 of the set carrying it."""
        return {pcn: st for st, pcns in self.sets for pcn in pcns}
