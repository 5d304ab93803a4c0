"""Builders for test resources."""
from __future__ import annotations

import threading
from typing import Any, Callable


def patient(family: str = "Rivera", given: str = "Ana", mrn: str | None = None, **extra: Any) -> dict[str, Any]:
    r: dict[str, Any] = {"resourceType": "Patient", "name": [{"family": family, "given": [given]}]}
    if mrn:
        r["identifier"] = [{"system": "urn:mrn", "value": mrn}]
    r.update(extra)
    return r


def encounter(patient_ref: str, start: str = "2024-03-01T10:00:00Z", status: str = "finished", **extra: Any) -> dict[str, Any]:
    r: dict[str, Any] = {
        "resourceType": "Encounter", "status": status,
        "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "AMB"},
        "subject": {"reference": patient_ref}, "period": {"start": start},
    }
    r.update(extra)
    return r


def race(n: int, fn: Callable[[int], Any]) -> list[Any]:
    """``fn(0)`` … ``fn(n-1)`` on n threads released together; each result, or the exception it raised."""
    barrier = threading.Barrier(n)
    results: list[Any] = [None] * n

    def run(i: int) -> None:
        barrier.wait()
        try:
            results[i] = fn(i)
        except Exception as exc:  # returned to the test, which asserts on it
            results[i] = exc

    threads = [threading.Thread(target=run, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return results
