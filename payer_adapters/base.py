"""The payer adapter contract: what the server hands an adapter and what it gets back.

The core (outbox workers, inbound storage) talks to every payer through :class:`PayerAdapter`;
an adapter speaks one wire dialect (X12 files over a mailbox, a payer FHIR API, the CHC v3 JSON
clearinghouse API). Design: ``/work/shared/design.md`` §3; reference
``payer-apis-and-peers.md`` §1.1 (PAS), §2 (CHC v3), ``therapy-billing-and-x12.md`` §5.4–5.6.

Exactly once at the payer (issue 6, "Outbox and workers")::

    key = mint and store before sending            # one key per batch/file
    receipt = await adapter.find_submission(key)   # after a crash: did it already go out?
    if receipt is None:
        receipt = await adapter.submit_claims(pkgs, idempotency_key=key)

``submit_claims`` with a key that was already used never produces a second claim at the payer:
file adapters write a file whose name is derived from the key (and skip the upload when it is
already there); API adapters send the key in the ``Idempotency-Key`` header (the payer replays
its first answer) or look it up first.

Errors (the worker's retry decision rests on this split)::

    PayerError
     ├── TransientPayerError   timeouts, 5xx, connection resets, SFTP/IO errors -> retry, same key
     └── PayerRejection        a business answer (4xx with reasons, 999/277CA reject) -> no retry;
                               carries an OperationOutcome dict for the work queue

Foreign exceptions (httpx, asyncssh, OSError) are mapped once, at the edge, by
:func:`http_errors` / :func:`raise_for_http_status` and by the FileDrops. Messages never contain
PHI or credentials: they name the operation and the status, not the payload.

Per-request timeouts (httpx's, asyncssh's) bound the wait for the *next* bytes, not the call: a
payer that sends one byte every few seconds keeps such a call alive for hours. The core
therefore runs every call inside :func:`deadline`, which bounds the whole call (token, requests,
SFTP session) and turns its expiry into :class:`PayerDeadlineExceeded`, a transient failure.
"""
from __future__ import annotations

import asyncio
import contextlib
import re
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, AsyncIterator, Callable, Literal, Protocol, runtime_checkable

import httpx

from payer_adapters.x12.control import ControlNumbers

ContentType = Literal["x12", "fhir+json", "json"]


# -- packages handed to adapters ------------------------------------------------------------------

@dataclass
class ClaimPackage:
    """One Claim and every resource it references, as FHIR R4 dicts.

    ``resources`` holds the Patient, Coverage, Organizations (billing provider, payer),
    Practitioners/PractitionerRoles, Conditions, ServiceRequest… — whatever ``Claim`` points at,
    each once. ``patient_control_number`` is the CLM01 / ``patientControlNumber`` the payer
    echoes in 277CA and 835 (the Claim identifier with system ``…/patient-control-number``).
    """

    claim: dict[str, Any]
    resources: list[dict[str, Any]]
    patient_control_number: str

    def all_resources(self) -> list[dict[str, Any]]:
        """The Claim first, then the referenced resources (the PAS Bundle order, §1.1)."""
        return [self.claim, *self.resources]

    def find(self, reference: dict[str, Any] | str | None) -> dict[str, Any] | None:
        """Resolve a ``{"reference": "Type/id"}`` (or the string) among the resources."""
        ref = reference.get("reference") if isinstance(reference, dict) else reference
        return resolve(self.resources, ref)


@dataclass
class EligibilityPackage:
    """A CoverageEligibilityRequest and the Patient, Coverage and Organizations it references."""

    request: dict[str, Any]
    resources: list[dict[str, Any]]

    def all_resources(self) -> list[dict[str, Any]]:
        return [self.request, *self.resources]

    def find(self, reference: dict[str, Any] | str | None) -> dict[str, Any] | None:
        ref = reference.get("reference") if isinstance(reference, dict) else reference
        return resolve(self.resources, ref)


def resolve(resources: list[dict[str, Any]], ref: str | None) -> dict[str, Any] | None:
    """Find ``Type/id`` (or a ``urn:uuid:`` fullUrl equal to the id) in a list of resources."""
    if not ref:
        return None
    rtype, _, rid = ref.rpartition("/")
    for r in resources:
        if r.get("id") == rid and (not rtype or r.get("resourceType") == rtype.split("/")[-1]):
            return r
        if ref.startswith("urn:uuid:") and r.get("id") == ref.removeprefix("urn:uuid:"):
            return r
    return None


# -- results --------------------------------------------------------------------------------------

@dataclass
class Receipt:
    """What the payer (or clearinghouse) acknowledged receiving.

    ``submission_id``: the payer's id for the submission when it gives one (CHC
    ``claimReference.correlationId``, PAS ClaimResponse id), else the file name.
    ``file_name``: the mailbox file (X12 kinds). ``transaction_id``: an API transaction id.
    ``control_numbers``: ``{"ISA": "000000012", "GS": "12", "ST": ["0001", …]}`` for files,
    ``{"controlNumber": "…"}`` for CHC. ``synchronous_response``: a FHIR dict when the payer
    answered inline (PAS ClaimResponse; for a pended answer ``outcome == "queued"``).
    ``raw_response``: the payer's JSON answer as received (CHC), for the audit trail.
    ``replayed`` is true when the submission was found rather than sent now. ``claim_sets`` maps
    each claim's patient control number to the ST02 of the transaction set carrying it (a 999
    accepts or rejects sets, and a batch file may hold several).
    """

    submission_id: str
    idempotency_key: str
    file_name: str | None = None
    transaction_id: str | None = None
    control_numbers: dict[str, Any] = field(default_factory=dict)
    patient_control_numbers: list[str] = field(default_factory=list)
    synchronous_response: dict[str, Any] | None = None
    raw_response: dict[str, Any] | None = None
    replayed: bool = False
    claim_sets: dict[str, str] = field(default_factory=dict)


@dataclass
class EligibilityResult:
    """``response`` is a CoverageEligibilityResponse dict when the payer answered in time;
    ``queued`` is true when the request went out in a batch (X12 270) and the 271 will arrive
    through :meth:`PayerAdapter.fetch_responses`."""

    response: dict[str, Any] | None
    queued: bool = False
    reference: str | None = None  # file name or transaction id of the queued request


@dataclass
class InboundMessage:
    """A payer answer as received. The core stores ``data`` first, hashes it, dedupes, then
    decodes (``x12`` with ``payer_adapters.x12.decode``; ``fhir+json`` is a FHIR resource or
    Bundle; ``json`` is a clearinghouse report). ``name`` is the file name or report id and is
    what :meth:`PayerAdapter.acknowledge` needs."""

    name: str
    data: bytes
    content_type: ContentType
    received_at: datetime
    kind: str | None = None  # "999", "277CA", "835", "271", "ClaimResponse"… when known


@dataclass(frozen=True)
class Capabilities:
    """What the core may expect: real-time eligibility (answer inside the request, else 202 and
    queue) and whether claims go in batches (``batch_size`` claims per file/call at most)."""

    realtime_eligibility: bool
    batch_claims: bool
    batch_size: int = 1
    inquire: bool = False


# -- errors ---------------------------------------------------------------------------------------

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


def _retry_after(response: httpx.Response) -> float | None:
    value = response.headers.get("Retry-After")
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None


def raise_for_http_status(response: httpx.Response, what: str) -> None:
    """Classify an HTTP answer: 2xx passes; 5xx, 429 and 409 (request in flight, CHC §2.1) are
    transient; other 4xx are rejections carrying the payer's OperationOutcome or CHC
    ``errors[]`` mapped to one. PAS: 4xx = "not recoverable", 5xx = "temporary" (§1.1)."""
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
                issue["details"] = {"coding": [{"system": "https://therabridge.dev/fhir/CodeSystem/chc-error",
                                                "code": str(err["code"])}],
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


def json_body(response: httpx.Response, what: str) -> dict[str, Any]:
    """The JSON object of a 2xx answer; anything else is transient (see :func:`http_errors`)."""
    try:
        body = response.json()
    except ValueError:
        raise TransientPayerError(f"{what}: unreadable answer body") from None
    if not isinstance(body, dict):
        raise TransientPayerError(f"{what}: answer is not a JSON object")
    return body


_SAFE = re.compile(r"[^A-Za-z0-9_-]")


def safe_key(key: str) -> str:
    """An idempotency key usable in a file name: ``[A-Za-z0-9_-]`` only, ≤ 64 characters.

    Keys are minted by the core (UUIDs or ULIDs), so this only guards against path tricks."""
    cleaned = _SAFE.sub("-", key)[:64]
    if not cleaned.strip("-"):
        raise ValueError("idempotency key has no usable characters")
    return cleaned


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


# -- the contract ---------------------------------------------------------------------------------

@runtime_checkable
class PayerAdapter(Protocol):
    """One payer connection. Instances are cheap; the core creates one per payer and job.

    Every method raises :class:`TransientPayerError` or :class:`PayerRejection`, nothing else
    (programming errors aside)."""

    kind: str
    capabilities: Capabilities

    async def check_eligibility(self, pkg: EligibilityPackage, *, timeout: float) -> EligibilityResult:
        """Real-time when ``capabilities.realtime_eligibility`` (answer within ``timeout``
        seconds, else TransientPayerError); otherwise queue a 270 and return ``queued=True``."""

    async def submit_claims(self, pkgs: list[ClaimPackage], *, idempotency_key: str) -> Receipt:
        """Send a batch (a single claim is a list of one) under one key. Calling it again with
        the same key and the same claims sends nothing new and returns the same receipt."""

    async def find_submission(self, idempotency_key: str) -> Receipt | None:
        """Read back after a crash: the receipt if a submission with this key reached the payer."""

    async def fetch_responses(self) -> list[InboundMessage]:
        """Answers waiting for us (999, 277CA, 271, 835 files; reports; pended ClaimResponses).
        Nothing is removed until :meth:`acknowledge`, so a crash in between loses nothing."""

    async def acknowledge(self, msg: InboundMessage) -> None:
        """Mark one answer collected (archive the file, tell the API) once the core stored it."""

    async def inquire(self, claim_ref: dict[str, Any]) -> dict[str, Any] | None:
        """PAS ``Claim/$inquire`` for a pended claim: the ClaimResponse, or None (other kinds)."""


AdapterFactory = Callable[..., PayerAdapter]
BatchSize = Callable[[dict[str, Any]], int]
_REGISTRY: dict[str, AdapterFactory] = {}
_BATCH_SIZE: dict[str, BatchSize] = {}


def register_adapter(kind: str, factory: AdapterFactory, *, batch_size: BatchSize | None = None) -> None:
    """Make ``kind`` available to :func:`create_adapter`.

    ``factory(settings, *, http, control_numbers)`` returns the adapter; a later registration
    of the same kind replaces the earlier one (tests use this for fakes). ``batch_size(settings)``
    says how many claims one ``submit_claims`` call may carry (default one)."""
    _REGISTRY[kind] = factory
    if batch_size is None:
        _BATCH_SIZE.pop(kind, None)
    else:
        _BATCH_SIZE[kind] = batch_size


def claim_batch_size(kind: str, settings: dict[str, Any]) -> int:
    """Claims per ``submit_claims`` for a connection, known before any adapter is built: the
    core fixes each batch (its members and key) before sending it."""
    _load_builtin()
    size = _BATCH_SIZE.get(kind)
    return max(1, size(settings)) if size else 1


def adapter_kinds() -> list[str]:
    _load_builtin()
    return sorted(_REGISTRY)


def create_adapter(kind: str, settings: dict[str, Any], *, http: httpx.AsyncClient,
                   control_numbers: ControlNumbers) -> PayerAdapter:
    """Build the adapter for a payer from its stored settings (keys per kind: ADAPTERS.md).

    ``http`` is the server's shared client (tests pass one over ``ASGITransport(app=sandbox)``);
    adapters never build their own. ``control_numbers`` is the durable X12 sequence.
    Raises KeyError for an unknown kind and ValueError for unusable settings."""
    _load_builtin()
    try:
        factory = _REGISTRY[kind]
    except KeyError:
        raise KeyError(f"unknown payer adapter kind {kind!r}; known: {', '.join(sorted(_REGISTRY))}") from None
    return factory(settings, http=http, control_numbers=control_numbers)


def _load_builtin() -> None:
    """Import the built-in adapter modules so they register themselves (no import cycle)."""
    import payer_adapters.clearinghouse_json  # noqa: F401
    import payer_adapters.fhir_payer  # noqa: F401
    import payer_adapters.x12_files  # noqa: F401
