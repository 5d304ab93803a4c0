"""The durable control-number sequence: unique and increasing across threads and restarts."""
from __future__ import annotations

from app.db import make_engine
from app.x12_control import DatabaseControlNumbers
from tests.app.fhir.helpers import race


def test_numbers_are_unique_and_increasing_across_threads_and_engines(database_url, tenant):
    def worker(_i: int) -> list[int]:
        seq = DatabaseControlNumbers(make_engine(database_url), tenant)  # like separate processes
        return [seq.next("clearinghouse", "ISA") for _ in range(15)]

    results = race(4, worker)
    assert all(mine == sorted(mine) for mine in results)
    assert sorted(n for mine in results for n in mine) == list(range(1, 61))
    restarted = DatabaseControlNumbers(make_engine(database_url), tenant)
    assert restarted.next("clearinghouse", "ISA") == 61
    assert restarted.next("clearinghouse", "ST") == 1  # each kind and partner has its own sequence
    assert DatabaseControlNumbers(make_engine(database_url), tenant + "-b").next("clearinghouse", "ISA") == 1
