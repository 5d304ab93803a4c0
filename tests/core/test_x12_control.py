"""The durable control-number sequence: unique and increasing across threads and restarts."""
from __future__ import annotations

import threading

from app.db import make_engine
from app.x12_control import DatabaseControlNumbers


def test_numbers_are_unique_and_increasing_across_threads_and_engines(database_url, tenant):
    seen: list[int] = []
    lock = threading.Lock()

    def worker() -> None:
        seq = DatabaseControlNumbers(make_engine(database_url), tenant)  # like separate processes
        mine = [seq.next("clearinghouse", "ISA") for _ in range(15)]
        assert mine == sorted(mine)
        with lock:
            seen.extend(mine)

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(seen) == list(range(1, 61))
    restarted = DatabaseControlNumbers(make_engine(database_url), tenant)
    assert restarted.next("clearinghouse", "ISA") == 61
    assert restarted.next("clearinghouse", "ST") == 1  # each kind and partner has its own sequence
    assert DatabaseControlNumbers(make_engine(database_url), tenant + "-b").next("clearinghouse", "ISA") == 1
