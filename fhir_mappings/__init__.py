"""Pure claim mapping and scrubbing for OT, PT and SLP (FHIR R4 in, FHIR R4 dicts out).

Imports nothing of the server; no clock, database or network — time and ids are arguments.
Entry points: ``ClaimInputs.from_resources``, ``generate``, ``build_claim``, ``scrub``,
``scrub_claim``, ``build_eligibility_request``, ``outcome_has_errors``. See PROFILE.md.
"""
from fhir_mappings.charges import ChargeMaster
from fhir_mappings.claim import build_claim, patient_control_number
from fhir_mappings.eligibility import build_eligibility_request
from fhir_mappings.generate import generate, profile_for, scrub_claim
from fhir_mappings.inputs import ClaimInputs, InputError
from fhir_mappings.outcome import outcome_has_errors
from fhir_mappings.profiles import PayerProfile, get_profile
from fhir_mappings.rules import ScrubRule, catalog
from fhir_mappings.scrub import scrub

__all__ = [
    "ChargeMaster", "ClaimInputs", "InputError", "PayerProfile", "ScrubRule", "build_claim",
    "build_eligibility_request", "catalog", "generate", "get_profile", "outcome_has_errors",
    "patient_control_number", "profile_for", "scrub", "scrub_claim",
]
