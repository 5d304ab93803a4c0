"""Inbound entry points: detect the transaction from ISA/GS/ST, decode it, map it to FHIR.

``decode(data)`` reads every interchange in the file, checks envelopes and structure, and returns
a :class:`DecodeResult` only if the whole file is usable (no partial results); otherwise it raises
an :class:`X12Error` naming the segment position and loop. ``iter_835_claims`` streams claims of a
large 835 without keeping them.

This module joins the two halves of the codec's inbound side: the decoders (``decode_*.py``,
records that know nothing of FHIR) and the mappers (``fhir_*.py``, one per transaction).
"""
from __future__ import annotations

import gc
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator

from payer_adapters.x12.decode_271 import Decoder271, Eligibility
from payer_adapters.x12.decode_276 import Decoder276, StatusRequest276
from payer_adapters.x12.decode_277 import ClaimStatus, Decoder277, StatusResponse277
from payer_adapters.x12.decode_277ca import Ack277, Decoder277CA
from payer_adapters.x12.decode_835 import ClaimPayment, Decoder835, Remittance
from payer_adapters.x12.decode_837p import ClaimSubmission, Decoder837P, Submission837
from payer_adapters.x12.decode_999 import Ack999, Decoder999
from payer_adapters.x12.envelope import SetHeader, SetHandler, walk
from payer_adapters.x12.errors import BalanceError, UnsupportedTransaction
from payer_adapters.x12.fhir_271 import eligibility_to_fhir
from payer_adapters.x12.fhir_277 import status277_to_fhir
from payer_adapters.x12.fhir_277ca import ack277_to_fhir
from payer_adapters.x12.fhir_835 import claim_to_eob, remittance_key, remittance_to_fhir
from payer_adapters.x12.fhir_999 import ack999_to_fhir
from payer_adapters.x12.fhir_out import entry
from payer_adapters.x12.segments import Source

#: (ST01, implementation guide version) → decoder. The version is ST03, else GS08.
DECODERS: dict[tuple[str, str], Callable[[SetHeader], SetHandler]] = {
    ("835", "005010X221A1"): Decoder835,
    ("999", "005010X231A1"): Decoder999,
    ("999", "005010X231"): Decoder999,
    ("277", "005010X214"): Decoder277CA,
    ("277", "005010X212"): Decoder277,
    ("276", "005010X212"): Decoder276,
    ("271", "005010X279A1"): Decoder271,
    ("837", "005010X222A1"): Decoder837P,
}

Decoded = Remittance | Ack999 | Ack277 | Eligibility | Submission837 | StatusResponse277 | StatusRequest276
Claims = dict[str, dict[str, Any]]

#: Record type → its FHIR mapper (Bundle entries). An 837P or 276 is our own outbound transaction:
#: nothing in it for a biller to act on, so it maps to nothing.
MAPPERS: dict[type, Callable[[Any, Claims | None], list[dict[str, Any]]]] = {
    Remittance: remittance_to_fhir,
    Ack999: ack999_to_fhir,
    Ack277: ack277_to_fhir,
    Eligibility: eligibility_to_fhir,
    Submission837: lambda submission, claims: [],
    StatusResponse277: status277_to_fhir,
    StatusRequest276: lambda request, claims: [],
}


def decoder_for(header: SetHeader, index: int) -> SetHandler:
    """The decoder for a transaction set (ST01 and version), or :class:`UnsupportedTransaction`."""
    decoder = DECODERS.get((header.transaction, header.version))
    if decoder is None:
        readable = ", ".join(f"{t} {v}" for t, v in sorted(DECODERS))
        raise UnsupportedTransaction(
            f"transaction {header.transaction[:3]} version {header.version[:12]} is not supported "
            f"(decode reads {readable})", segment_id="ST", element_position=1, loop_id="ST", code="1")
    return decoder(header)


@contextmanager
def _gc_paused() -> Iterator[None]:
    """Building tens of thousands of small records/dicts makes the cyclic GC rescan them over and
    over (it was 75 % of parse-to-FHIR time); nothing here creates cycles, so pause it."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


@dataclass
class DecodeResult:
    """Everything one file decoded to, in file order."""

    transactions: list[Decoded] = field(default_factory=list)

    def of_type(self, cls: type) -> list[Any]:
        return [t for t in self.transactions if isinstance(t, cls)]

    @property
    def remittances(self) -> list[Remittance]:
        return self.of_type(Remittance)

    @property
    def acknowledgments(self) -> list[Ack999]:
        return self.of_type(Ack999)

    @property
    def claim_acknowledgments(self) -> list[Ack277]:
        return self.of_type(Ack277)

    @property
    def eligibility(self) -> list[Eligibility]:
        return self.of_type(Eligibility)

    @property
    def claim_statuses(self) -> list[ClaimStatus]:
        """Every claim answered by the file's 277s (claim status responses), in file order."""
        return [c for r in self.of_type(StatusResponse277) for c in r.claims]

    @property
    def warnings(self) -> list[BalanceError]:
        """Problems that do not make the file unusable (835 imbalances)."""
        return [e for r in self.remittances for e in r.balance_errors]

    def to_fhir(self, claims: Claims | None = None) -> dict[str, Any]:
        """A collection Bundle. ``claims`` (patient control number → Claim) lets EOBs and
        ClaimResponses reference the real Claim and match lines by REF*6R."""
        entries: list[dict[str, Any]] = []
        with _gc_paused():
            for t in self.transactions:
                entries.extend(MAPPERS[type(t)](t, claims))
        return {"resourceType": "Bundle", "type": "collection", "entry": entries}


def decode(data: Source) -> DecodeResult:
    """Decode a whole file (bytes, text, path or binary file object)."""
    with _gc_paused():
        return DecodeResult(list(walk(data, decoder_for)))


def iter_835_claims(stream: Source) -> Iterator[ClaimPayment | Remittance]:
    """Stream an 835: yields each :class:`ClaimPayment` as soon as it is complete, then the
    :class:`Remittance` (header, PLB, balance errors; its ``claims`` list stays empty) at each SE.

    Raises :class:`X12Error` when the file turns out to be bad — possibly after some claims were
    yielded, so callers must stage what they receive and commit only after the iterator ends.
    """

    def factory(header: SetHeader, index: int) -> SetHandler:
        if header.transaction != "835":
            raise UnsupportedTransaction(f"expected an 835, found {header.transaction[:3]}",
                                         segment_id="ST", element_position=1, code="1")
        return Decoder835(header, stream=True)

    for item in walk(stream, factory):
        if isinstance(item, Remittance):
            if item.last_claim is not None:
                yield item.last_claim
        yield item


def iter_835_fhir(stream: Source, claims: Claims | None = None) -> Iterator[dict[str, Any]]:
    """Stream an 835 as FHIR: one Bundle entry (ExplanationOfBenefit) per claim as it completes,
    then the PaymentReconciliation (and an OperationOutcome when it does not balance) per SE.
    Same staging caveat as :func:`iter_835_claims`."""
    claims = claims or {}
    decoders: list[Decoder835] = []

    def factory(header: SetHeader, index: int) -> SetHandler:
        if header.transaction != "835":
            raise UnsupportedTransaction(f"expected an 835, found {header.transaction[:3]}",
                                         segment_id="ST", element_position=1, code="1")
        decoders.append(Decoder835(header, stream=True))
        return decoders[-1]

    n = 0
    for item in walk(stream, factory):
        rem = decoders[-1].rem
        key = remittance_key(rem)
        last = item.last_claim if isinstance(item, Remittance) else item
        if last is not None:
            yield entry(claim_to_eob(rem, last, claims.get(last.patient_control_number)), *key, n,
                        last.patient_control_number)
            n += 1
        if isinstance(item, Remittance):
            yield from remittance_to_fhir(item, claims)
            n = 0


__all__ = ["decode", "decoder_for", "iter_835_claims", "iter_835_fhir", "DecodeResult", "DECODERS", "MAPPERS",
           "ClaimSubmission", "ClaimStatus"]
