"""``x12-directory`` and ``x12-sftp``: 837P, 270 and 276 files into a mailbox, 999/277CA/271/277/835 out.

Mailbox layout (folders configurable): we put ``inbox/837P_<key>.x12``,
``inbox/270_<trace>.x12`` and ``inbox/276_<inquiry key>.x12`` (claim status); the payer moves what it picked up to ``processed/`` and writes its
answers to ``outbox/``; we move collected answers to ``archive/``.

Exactly once: the file name is a function of the idempotency key, so after a crash the file is
found (in ``inbox/`` or ``processed/``) and its control numbers are read back from the file
itself with the codec's 837P decoder; a second ``submit_claims`` with the same key uploads
nothing. A file is either absent
or complete (atomic rename in the FileDrop). Batching: one file per call, up to ``batch_size``
claims (the codec writes one ST per billing NPI and payer id); the core names the batch.
"""
from __future__ import annotations

import re
from dataclasses import fields, replace
from typing import Any

import httpx

import fhir_mappings.identifiers as ids
from payer_adapters.contract import (
    Capabilities, ClaimPackage, EligibilityPackage, EligibilityResult, InboundMessage, Receipt, StatusResult, utcnow,
)
from payer_adapters.errors import PayerRejection, operation_outcome
from payer_adapters.transports.filedrop import DirectoryDrop, FileDrop
from payer_adapters.transports.sftp import SftpDrop
from payer_adapters.x12 import (
    BatchNumbers, ControlNumbers, EncodeError, Submission837, TradingPartner, X12Error, batch_numbers, decode,
    encode_270, encode_276, encode_837p_batch, headers, load_partner,
)

_GS_KIND = {"FA": "999", "HN": "277CA", "HP": "835", "HB": "271", "HC": "837P", "HS": "270", "HR": "276"}
#: GS08 versions that make an ``HN`` group a 277 claim status response rather than a 277CA.
_STATUS_277 = ("005010X212",)
_UNSAFE = re.compile(r"[^A-Za-z0-9_-]")


def safe_key(key: str) -> str:
    """An idempotency key usable in a file name: ``[A-Za-z0-9_-]`` only, ≤ 64 characters.

    Keys are minted by the core (UUIDs or ULIDs), so this only guards against path tricks."""
    cleaned = _UNSAFE.sub("-", key)[:64]
    if not cleaned.strip("-"):
        raise ValueError("idempotency key has no usable characters")
    return cleaned


def read_batch_numbers(data: bytes) -> BatchNumbers:
    """The control numbers of a claim file we wrote, read back with the codec's 837P decoder."""
    return batch_numbers(decode(data).of_type(Submission837))


def kind_of(data: bytes) -> str | None:
    """The transaction kind of an X12 answer from GS01 (FA 999, HN 277CA — or 277 when GS08 is
    the X212 claim status version —, HP 835, HB 271)."""
    try:
        found = list(headers(data))
    except X12Error:  # a corrupt file is the core's to quarantine; its kind is just unknown
        return None
    if not found:
        return None
    group = found[-1].group
    if group.functional_id == "HN" and group.version.startswith(_STATUS_277):
        return "277"
    return _GS_KIND.get(group.functional_id)


def _dedupe(resources: list[dict[str, Any]]) -> list[dict[str, Any]]:
    seen: set[tuple[str, str]] = set()
    out = []
    for r in resources:
        key = (r.get("resourceType", ""), r.get("id", "") or str(id(r)))
        if key not in seen:
            seen.add(key)
            out.append(r)
    return out


def batch_size(settings: dict[str, Any]) -> int:
    """Claims per 837P file (``batch_size`` setting; 500 by default, well inside what
    clearinghouses accept per file)."""
    return int(settings.get("batch_size", 500))


def capabilities(settings: dict[str, Any]) -> Capabilities:
    """Eligibility always queued (a 270 file; the 271 comes back through the mailbox) and claims
    in batches of :func:`batch_size`."""
    return Capabilities(realtime_eligibility=False, batch_claims=True, batch_size=batch_size(settings))


def _partner(settings: dict[str, Any]) -> TradingPartner:
    partner = load_partner(settings.get("partner", "sandbox"))
    overrides = settings.get("partner_overrides")
    if overrides:
        allowed = {f.name for f in fields(partner)}
        partner = replace(partner, **{k: v for k, v in overrides.items() if k in allowed})
    return partner


class X12FileAdapter:
    """837P/270 out, 999/277CA/271/835 in, over any :class:`FileDrop`."""

    def __init__(self, kind: str, drop: FileDrop, settings: dict[str, Any], control_numbers: ControlNumbers) -> None:
        self.kind = kind
        self.drop = drop
        self.partner = _partner(settings)
        self.control_numbers = control_numbers
        self.inbox = settings.get("inbox", "inbox")
        self.outbox = settings.get("outbox", "outbox")
        self.archive_folder = settings.get("archive", "archive")
        self.processed = settings.get("processed", "processed")
        self.capabilities = capabilities(settings)

    # -- names --------------------------------------------------------------------------------
    def claim_file(self, key: str) -> str:
        return f"837P_{safe_key(key)}.x12"

    def _places(self, fname: str) -> list[str]:
        return [f"{self.inbox}/{fname}", f"{self.processed}/{fname}"]

    async def _locate(self, fname: str) -> str | None:
        for name in self._places(fname):
            if await self.drop.exists(name):
                return name
        return None

    def _receipt(self, key: str, fname: str, numbers: BatchNumbers, *, replayed: bool) -> Receipt:
        return Receipt(submission_id=fname, idempotency_key=key, file_name=fname,
                       control_numbers={"ISA": numbers.isa, "GS": numbers.gs, "ST": numbers.st},
                       patient_control_numbers=numbers.claims, replayed=replayed, claim_sets=numbers.claim_sets)

    # -- claims -------------------------------------------------------------------------------
    async def submit_claims(self, pkgs: list[ClaimPackage], *, idempotency_key: str) -> Receipt:
        if not pkgs:
            raise ValueError("submit_claims needs at least one claim")
        if len(pkgs) > self.capabilities.batch_size:
            raise ValueError(f"batch of {len(pkgs)} exceeds batch_size {self.capabilities.batch_size}")
        fname = self.claim_file(idempotency_key)
        existing = await self.find_submission(idempotency_key)
        if existing is not None:
            return existing
        resources = _dedupe([p.claim for p in pkgs] + [r for p in pkgs for r in p.resources])
        try:
            encoded = encode_837p_batch(resources, self.partner, self.control_numbers)
        except EncodeError as exc:
            # Our data cannot be written as an 837P: nothing was sent; a person must fix it.
            raise PayerRejection("837P could not be encoded", operation_outcome([{
                "code": "invalid", "diagnostics": str(exc),
                "expression": [f"{exc.loop_id or ''}/{exc.segment_id or ''}".strip("/")]}])) from None
        await self.drop.put(f"{self.inbox}/{fname}", encoded.data)
        return self._receipt(idempotency_key, fname, encoded.numbers, replayed=False)

    async def find_submission(self, idempotency_key: str) -> Receipt | None:
        fname = self.claim_file(idempotency_key)
        where = await self._locate(fname)
        if where is None:
            return None
        return self._receipt(idempotency_key, fname, read_batch_numbers(await self.drop.get(where)), replayed=True)

    # -- eligibility --------------------------------------------------------------------------
    async def check_eligibility(self, pkg: EligibilityPackage, *, timeout: float) -> EligibilityResult:
        """Always batch: write a 270 named by its trace number; the 271 comes via the outbox."""
        trace = ids.trace_number(pkg.request)
        if not trace:
            raise PayerRejection("270 needs a trace number", operation_outcome([{
                "code": "required", "diagnostics": "CoverageEligibilityRequest.identifier with the trace system, "
                                                   "or one of the request's own that fits TRN02",
                "expression": ["CoverageEligibilityRequest.identifier"]}]))
        fname = f"270_{safe_key(trace)}.x12"
        if await self._locate(fname) is None:
            try:
                data = encode_270(pkg.all_resources(), self.partner, self.control_numbers)
            except EncodeError as exc:
                raise PayerRejection("270 could not be encoded", operation_outcome([{
                    "code": "invalid", "diagnostics": str(exc)}])) from None
            await self.drop.put(f"{self.inbox}/{fname}", data)
        return EligibilityResult(response=None, queued=True, reference=fname)

    # -- answers ------------------------------------------------------------------------------
    async def fetch_responses(self) -> list[InboundMessage]:
        out = []
        for name in await self.drop.list_new(self.outbox):
            data = await self.drop.get(name)
            out.append(InboundMessage(name=name, data=data, content_type="x12", received_at=utcnow(),
                                      kind=kind_of(data)))
        return out

    async def acknowledge(self, msg: InboundMessage) -> None:
        await self.drop.archive(msg.name, self.archive_folder)

    async def inquire(self, claim_ref: dict[str, Any]) -> dict[str, Any] | None:
        return None

    # -- claim status -------------------------------------------------------------------------
    async def claim_status(self, pkg: ClaimPackage, *, key: str) -> StatusResult:
        """Always batch: write a 276 named by the inquiry key; the 277 comes via the outbox."""
        fname = f"276_{safe_key(key)}.x12"
        if await self._locate(fname) is None:
            try:
                data = encode_276(pkg.all_resources(), self.partner, self.control_numbers)
            except EncodeError as exc:
                raise PayerRejection("276 could not be encoded", operation_outcome([{
                    "code": "invalid", "diagnostics": str(exc),
                    "expression": [f"{exc.loop_id or ''}/{exc.segment_id or ''}".strip("/")]}])) from None
            await self.drop.put(f"{self.inbox}/{fname}", data)
        return StatusResult(response=None, queued=True, reference=fname)

    async def close(self) -> None:
        close = getattr(self.drop, "close", None)
        if close is not None:
            await close()


def directory_factory(settings: dict[str, Any], *, http: httpx.AsyncClient,
                      control_numbers: ControlNumbers) -> X12FileAdapter:
    if not settings.get("root"):
        raise ValueError("x12-directory settings need 'root'")
    return X12FileAdapter("x12-directory", DirectoryDrop(settings["root"]), settings, control_numbers)


def sftp_factory(settings: dict[str, Any], *, http: httpx.AsyncClient,
                 control_numbers: ControlNumbers) -> X12FileAdapter:
    return X12FileAdapter("x12-sftp", SftpDrop(settings), settings, control_numbers)
