"""The payer adapter contract: what the server hands an adapter and what it gets back.

The core (outbox workers, inbound storage) talks to every payer through :class:`PayerAdapter`;
an adapter speaks one wire dialect (X12 files over a mailbox, a payer FHIR API in the Da Vinci
PAS style, the CHC v3 JSON clearinghouse API). Which adapter serves which kind of connection is
the registry's business (``registry.py``); what an adapter may raise is ``errors.py``.

Exactly once at the payer::

    key = mint and store before sending            # one key per batch/file
    receipt = await adapter.find_submission(key)   # after a crash: did it already go out?
    if receipt is None:
        receipt = await adapter.submit_claims(pkgs, idempotency_key=key)

``submit_claims`` with a key that was already used never produces a second claim at the payer:
file adapters write a file whose name is derived from the key (and skip the upload when it is
already there); API adapters send the key in the ``Idempotency-Key`` header (the payer replays
its first answer) or look it up first.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Literal, Protocol, runtime_checkable

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
        """The Claim first, then the referenced resources (the order a PAS Bundle wants)."""
        return [self.claim, *self.resources]

    def find(self, reference: dict[str, Any] | str | None) -> dict[str, Any] | None:
        """Resolve a ``{"reference": "Type/id"}`` (or the string) among the resources."""
        return _find(self.resources, reference)


@dataclass
class EligibilityPackage:
    """A CoverageEligibilityRequest and the Patient, Coverage and Organizations it references."""

    request: dict[str, Any]
    resources: list[dict[str, Any]]

    def all_resources(self) -> list[dict[str, Any]]:
        return [self.request, *self.resources]

    def find(self, reference: dict[str, Any] | str | None) -> dict[str, Any] | None:
        return _find(self.resources, reference)


def _find(resources: list[dict[str, Any]], reference: dict[str, Any] | str | None) -> dict[str, Any] | None:
    ref = reference.get("reference") if isinstance(reference, dict) else reference
    return resolve(resources, ref)


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


def utcnow() -> datetime:
    """The time an adapter stamps on what it receives (``InboundMessage.received_at``)."""
    return datetime.now(timezone.utc)


@dataclass(frozen=True)
class Capabilities:
    """What the core may expect: real-time eligibility (answer inside the request, else 202 and
    queue) and whether claims go in batches (``batch_size`` claims per file/call at most)."""

    realtime_eligibility: bool
    batch_claims: bool
    batch_size: int = 1
    inquire: bool = False
    #: Appeals go to the payer through the adapter (``send_appeal``); otherwise a person mails
    #: or uploads them.
    appeals: bool = False


# -- the adapter ----------------------------------------------------------------------------------

@runtime_checkable
class PayerAdapter(Protocol):
    """One payer connection. Instances are cheap; the core creates one per payer and job.

    Every method raises :class:`~payer_adapters.errors.TransientPayerError` or
    :class:`~payer_adapters.errors.PayerRejection`, nothing else (programming errors aside)."""

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

    # Adapters whose ``capabilities.appeals`` is true also have
    # ``async def send_appeal(self, communication: dict) -> dict``: file an appeal (a FHIR
    # Communication about the claim, the letter and its enclosures as attachments) and return
    # what the payer filed. Not part of the Protocol: other adapters need not have it.
