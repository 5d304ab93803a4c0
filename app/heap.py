"""The cyclic garbage collector, set for the long-running processes (API server, workers).

CPython's default (collect the youngest objects every 700 allocations, and every object the
process holds after ten of those ten times over) is made for short scripts. A worker holds a
few hundred thousand objects for its whole life (modules, the FHIR models and search
registry, the code tables, SQLAlchemy's compiled statements) and allocates millions more while
it posts a payer's answers, almost none of them in reference cycles (reference counting frees
them). Measured on a worker posting answers (``bench.posting``, 1,000 claims): sixteen full
collections took 2.7 s of its 16 s of CPU, and the allocation-heavy parsing they interrupted
looked five times slower than it is. Frozen and collected less often: one full collection,
0.25 s in all, the worker's CPU per claim about halved.
"""
from __future__ import annotations

import gc

#: Allocations between collections of the youngest generation, then how many of those (and of
#: the middle generation's) before an older one is collected.
THRESHOLDS = (20_000, 10, 10)


def settle() -> None:
    """Collect once, move every object that exists now out of the collector's sight for good
    (``gc.freeze``: they live as long as the process), and collect less often from now on.
    Called once a process has loaded what it keeps."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(*THRESHOLDS)
