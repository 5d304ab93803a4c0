"""pyx12 as an independent check: its boolean verdict and the ERROR messages it logs."""
from __future__ import annotations

import io
import logging


class _Capture(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


def pyx12_result(x12: str | bytes) -> tuple[bool, list[str]]:
    """pyx12's own verdict (x12n_document's boolean) and the ERROR messages it logged."""
    import pyx12.params
    import pyx12.x12n_document

    text = x12.decode() if isinstance(x12, bytes) else x12
    logger = logging.getLogger("pyx12")
    cap = _Capture()
    logger.addHandler(cap)
    propagate, logger.propagate = logger.propagate, False
    try:
        ok = pyx12.x12n_document.x12n_document(param=pyx12.params.params(), src_file=io.StringIO(text),
                                               fd_997=io.StringIO(), fd_html=None)
    finally:
        logger.removeHandler(cap)
        logger.propagate = propagate
    return ok, [m for m in cap.messages if not m.startswith("Failed to create 999")]


def assert_pyx12_ok(x12: str | bytes) -> None:
    ok, errors = pyx12_result(x12)
    assert ok and not errors, f"pyx12 Failure: {errors}"
