"""The long-running processes set the garbage collector once they have loaded what they keep."""
from __future__ import annotations

import os
import subprocess
import sys

from app import heap


def _in_fresh_interpreter(code: str) -> str:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()


def test_settle_freezes_what_exists_and_collects_less_often():
    out = _in_fresh_interpreter(
        "import gc; from app import heap; before = gc.get_freeze_count(); heap.settle(); "
        "print(before, gc.get_freeze_count() > 1_000, gc.get_threshold())")
    assert out == f"0 True {heap.THRESHOLDS}"


def test_cycles_made_after_settling_are_still_collected():
    out = _in_fresh_interpreter(
        "import gc, weakref\nfrom app import heap\nheap.settle()\n"
        "class Node: pass\n"
        "a, b = Node(), Node(); a.other, b.other = b, a\n"
        "gone = weakref.ref(a); del a, b\n"
        "gc.collect(); print(gone() is None)")
    assert out == "True"


def test_the_worker_command_settles_the_heap_before_it_runs_jobs(tmp_path):
    """``therabridge worker --once`` on a fresh database: the collector is set when jobs run."""
    code = (
        "import gc, sys\n"
        "from app.jobs import Worker\n"
        "seen = []\n"
        "def run_once(self):\n"
        "    seen.append((gc.get_threshold(), gc.get_freeze_count() > 0)); return 0\n"
        "Worker.run_once = run_once\n"
        "from app.cli import app\n"
        "sys.argv = ['therabridge', 'worker', '--once']\n"
        "try:\n    app()\nexcept SystemExit:\n    pass\n"
        "print(seen)\n")
    env_url = f"sqlite:///{tmp_path / 'worker.db'}"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env={**os.environ, "THERABRIDGE_DATABASE_URL": env_url}).stdout.strip()
    assert out.endswith(f"[({heap.THRESHOLDS}, True)]")
