"""What an adapter may raise, the one place foreign failures are mapped, and the call deadline.

The worker's retry decision rests on this split::

    PayerError
     ├── TransientPayerError   timeouts, 5xx, connection resets, SFTP/IO errors -> retry, same key
     │    └── PayerDeadlineExceeded   the whole call ran past its deadline
     └── PayerRejection        a business answer (4xx with reasons, refused credentials) -> no
                               retry; carries an OperationOutcome dict for the work queue

Foreign exceptions are mapped once, at the edge: httpx here (:func:`send`, :func:`http_errors`,
:func:`raise_for_http_status`, :func:`json_body`), file systems and SFTP in the FileDrops.
Messages never contain PHI or credentials: they name the operation and the status, not the
payload.

Per-request timeouts (httpx's, asyncssh's) bound the wait for the *next* bytes, not the call: a
payer that sends one byte every few seconds keeps such a call alive for hours. The core
therefore runs every call inside :func:`deadline`, which bounds the whole call (token, requests,
SFTP session) and turns its expiry into :class:`PayerDeadlineExceeded`, a transient failure.

HTTP answers are classified the way the Da Vinci PAS transport rules and the CHC v3 APIs say:
4xx is "not recoverable" (a rejection), 5xx is "temporary"; 409 (the same idempotency key is
still being processed) and 408/425/429 are worth retrying too.
"""
from __future__ import annotations

import asyncio
import contextlib
from typing import Any, AsyncIterator

import httpx

import fhir_mappings.vocabulary as vocabulary


class PayerError(Exception):
    """Base of adapter errors. ``str()`` never includes PHI or credentials."""


class TransientPayerError(PayerError):
    """Try again later with the same idempotency key: timeout, 5xx, reset, SFTP/IO failure."""

    def __init__(self, message: str, *, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class PayerRejection(PayerError):
    """The payer answered and said no (4xx with reasons, 999/277CA reject). Do not retry: fix
    the data. ``outcome`` is an OperationOutcome dict whose issues carry the payer's codes."""

    def __init__(self, message: str, outcome: dict[str, Any] | None = None, *, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.outcome = outcome or operation_outcome([{"code": "processing", "diagnostics": message}])


class PayerDeadlineExceeded(TransientPayerError):
    """The whole call took longer than its deadline (a payer trickling its answer, a hung mailbox).
    Transient: nothing is known about what the payer did, so the retry uses the same key."""


def operation_outcome(issues: list[dict[str, Any]]) -> dict[str, Any]:
    """An OperationOutcome with ``severity: error`` defaulted on each issue."""
    return {"resourceType": "OperationOutcome",
            "issue": [{"severity": "error", "code": "processing", **i} for i in issues]}


# -- the HTTP edge --------------------------------------------------------------------------------

def _retry_after(response: httpx.Response) -> float | None:
    value = response.headers.get("Retry-After")
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None


def raise_for_http_status(response: httpx.Response, what: str) -> None:
    """Classify an HTTP answer: 2xx passes; 5xx, 429, 425, 408 and 409 (request still in
    flight) are transient; other 4xx are rejections carrying the payer's OperationOutcome or
    the CHC ``errors[]`` mapped to one."""
    status = response.status_code
    if status < 400:
        return
    if status >= 500 or status in (408, 409, 425, 429):
        raise TransientPayerError(f"{what}: payer answered HTTP {status}", retry_after=_retry_after(response))
    try:
        body = response.json()
    except ValueError:
        body = None
    raise PayerRejection(f"{what}: payer rejected the request (HTTP {status})", _outcome_from_body(body, status),
                         status=status)


def _outcome_from_body(body: Any, status: int) -> dict[str, Any]:
    if isinstance(body, dict) and body.get("resourceType") == "OperationOutcome":
        return body
    issues: list[dict[str, Any]] = []
    if isinstance(body, dict):
        for err in body.get("errors") or []:
            if not isinstance(err, dict):
                continue
            issue: dict[str, Any] = {"code": "business-rule", "diagnostics": str(err.get("description", ""))}
            if err.get("code"):
                issue["details"] = {"coding": [{"system": vocabulary.CHC_ERROR, "code": str(err["code"])}],
                                    "text": str(err.get("description", ""))}
            if err.get("followupAction"):
                issue["diagnostics"] += f" ({err['followupAction']})"
            issues.append(issue)
    return operation_outcome(issues or [{"code": "processing", "diagnostics": f"HTTP {status}"}])


@contextlib.asynccontextmanager
async def http_errors(what: str) -> AsyncIterator[None]:
    """Map httpx transport failures to :class:`TransientPayerError` (the one edge for httpx).

    A truncated or non-JSON 2xx body is transient too: we cannot know what the payer decided,
    so the worker retries with the same key and the payer replays."""
    try:
        yield
    except httpx.TimeoutException as exc:
        raise TransientPayerError(f"{what}: timed out ({type(exc).__name__})") from None
    except (httpx.TransportError, httpx.DecodingError) as exc:  # connect/read errors, resets, bad chunking
        raise TransientPayerError(f"{what}: transport failure ({type(exc).__name__})") from None
    except ValueError as exc:  # JSONDecodeError from a cut-off body
        raise TransientPayerError(f"{what}: unreadable answer ({type(exc).__name__})") from None


async def send(http: httpx.AsyncClient, method: str, url: str, what: str, **kwargs: Any) -> httpx.Response:
    """One HTTP request, its transport failures mapped by :func:`http_errors`; the answer's status
    is the caller's to classify (:func:`raise_for_http_status`)."""
    async with http_errors(what):
        return await http.request(method, url, **kwargs)


def json_body(response: httpx.Response, what: str) -> dict[str, Any]:
    """The JSON object of a 2xx answer; anything else is transient (see :func:`http_errors`)."""
    try:
        body = response.json()
    except ValueError:
        raise TransientPayerError(f"{what}: unreadable answer body") from None
    if not isinstance(body, dict):
        raise TransientPayerError(f"{what}: answer is not a JSON object")
    return body


# -- the call deadline ----------------------------------------------------------------------------

@contextlib.asynccontextmanager
async def deadline(seconds: float, what: str) -> AsyncIterator[None]:
    """Bound everything awaited inside to ``seconds`` in total; past it the work is cancelled and
    :class:`PayerDeadlineExceeded` raised. Cancellation is safe for every adapter: a call cut off
    after the payer took a submission is the crash-between-send-and-record case the idempotency
    key already covers."""
    try:
        async with asyncio.timeout(seconds):
            yield
    except TimeoutError:
        raise PayerDeadlineExceeded(f"{what}: no complete answer within {seconds:g} s") from None
