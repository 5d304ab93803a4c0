"""Pure claim mapping and scrubbing for OT, PT and SLP (FHIR R4 in, FHIR R4 dicts out).

Imports nothing of the server; no clock, database or network — time and ids are arguments.
Entry points: ``ClaimInputs.from_resources``, ``generate``, ``build_claim``, ``scrub``,
``scrub_claim``, ``build_eligibility_request``, ``outcome_has_errors``. See PROFILE.md.

The names below are loaded on first use (PEP 562), so a module that needs only the vocabulary
or the identifier resolver (the X12 codec, a CLI command) does not load the whole mapper.
"""
from __future__ import annotations

import importlib
from typing import Any

#: public name -> the module that defines it
_PUBLIC = {
    "ChargeMaster": "charges", "build_claim": "claim", "patient_control_number": "claim",
    "build_eligibility_request": "eligibility", "generate": "pipeline", "generate_planned": "pipeline",
    "Generated": "pipeline", "profile_for": "pipeline",
    "scrub_claim": "pipeline", "ClaimInputs": "inputs", "InputError": "inputs", "outcome_has_errors": "outcome",
    "PayerProfile": "profiles", "get_profile": "profiles", "ScrubRule": "rules", "catalog": "rules",
    "scrub": "scrubbing",
}
__all__ = sorted(_PUBLIC)


def __getattr__(name: str) -> Any:
    if name not in _PUBLIC:
        raise AttributeError(f"module 'fhir_mappings' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"fhir_mappings.{_PUBLIC[name]}"), name)
    globals()[name] = value
    return value
