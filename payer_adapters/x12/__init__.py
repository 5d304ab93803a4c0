"""X12 5010 codec: 837P, 270 and 276 out; 999, 277CA, 277, 271 and 835 in, as FHIR R4.

Outbound::

    encode_837p(bundle, partner, control_numbers) -> bytes      # Claims → 837P 005010X222A1
    encode_837p_batch(...) -> Encoded837P                       # the same, with the BatchNumbers written
    encode_270(bundle, partner, control_numbers) -> bytes       # CoverageEligibilityRequests → 270
    encode_276(bundle, partner, control_numbers) -> bytes       # submitted Claims → 276 status requests

Inbound::

    decode(data) -> DecodeResult          # auto-detected 835 / 999 / 277CA / 277 / 271 (837P, 276 typed only)
    result.to_fhir(claims=None) -> dict   # collection Bundle (one mapper per transaction, below)
    remittance_to_fhir(rem, claims)       # 835 → ExplanationOfBenefits + PaymentReconciliation
    ack999_to_fhir(ack) / ack277_to_fhir(ack, claims) / eligibility_to_fhir(elig)
    status277_to_fhir(response, claims)   # 277 → a ClaimResponse per claim; result.claim_statuses
    iter_835_claims(stream)               # streaming typed 835 claims for large files
    iter_835_fhir(stream, claims=None)    # streaming Bundle entries (EOBs, then PaymentReconciliation)
    validate(data) -> list[X12Error]      # structural checks + pyx12 where it has a map
    headers(data)                         # each set's ISA/GS/ST header, nothing checked

Errors: every failure is an :class:`X12Error` subclass naming segment index, set position,
segment id, loop id and element position (see ``errors.py``).
"""
from payer_adapters.x12.control import BatchNumbers, ControlNumbers, InMemoryControlNumbers
from payer_adapters.x12.decode import DecodeResult, decode, iter_835_claims, iter_835_fhir
from payer_adapters.x12.decode_271 import Eligibility, ServiceSummary
from payer_adapters.x12.decode_276 import StatusInquiry, StatusRequest276
from payer_adapters.x12.decode_277 import ClaimStatus, LineStatus277, Stc, StatusResponse277
from payer_adapters.x12.decode_277ca import Ack277, ClaimAck, LevelAck
from payer_adapters.x12.decode_835 import ClaimPayment, Remittance, ServicePayment
from payer_adapters.x12.decode_837p import ClaimSubmission, Submission837, batch_numbers
from payer_adapters.x12.decode_999 import Ack999, SetAck
from payer_adapters.x12.encode_270 import encode_270
from payer_adapters.x12.encode_276 import encode_276, status_trace
from payer_adapters.x12.encode_837p import Encoded837P, batch_trace, encode_837p, encode_837p_batch
from payer_adapters.x12.envelope import SetHeader, headers
from payer_adapters.x12.errors import (
    BalanceError,
    DataElementError,
    EncodeError,
    EnvelopeError,
    StructureError,
    UnsupportedTransaction,
    X12Error,
    X12SyntaxError,
)
from payer_adapters.x12.fhir_271 import eligibility_to_fhir
from payer_adapters.x12.fhir_277 import status277_to_fhir
from payer_adapters.x12.fhir_277ca import ack277_to_fhir, level_identity, level_rejection_to_fhir
from payer_adapters.x12.fhir_835 import match_lines, remittance_to_fhir
from payer_adapters.x12.fhir_999 import ack999_to_fhir, set_to_outcome
from payer_adapters.x12.fhir_out import operation_outcome
from payer_adapters.x12.partners import TradingPartner, load_partner
from payer_adapters.x12.validate import pyx12_errors, validate

__all__ = [
    "batch_trace", "encode_837p", "encode_837p_batch", "Encoded837P", "encode_270", "encode_276", "status_trace",
    "ClaimStatus", "LineStatus277", "Stc", "StatusResponse277", "StatusInquiry", "StatusRequest276",
    "status277_to_fhir", "decode", "iter_835_claims",
    "iter_835_fhir", "validate", "pyx12_errors", "headers", "SetHeader", "BatchNumbers", "batch_numbers",
    "DecodeResult", "Remittance", "ClaimPayment", "ServicePayment", "Ack999", "SetAck", "Ack277", "ClaimAck",
    "Submission837", "ClaimSubmission",
    "LevelAck", "Eligibility", "ServiceSummary", "match_lines", "operation_outcome",
    "remittance_to_fhir", "ack999_to_fhir", "ack277_to_fhir", "eligibility_to_fhir", "set_to_outcome",
    "level_rejection_to_fhir", "level_identity",
    "TradingPartner", "load_partner", "ControlNumbers", "InMemoryControlNumbers",
    "X12Error", "X12SyntaxError", "EnvelopeError", "UnsupportedTransaction", "StructureError",
    "DataElementError", "BalanceError", "EncodeError",
]
