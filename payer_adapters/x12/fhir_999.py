"""999 records → one OperationOutcome per acknowledged transaction set.

The outcome's first issue is the set's verdict (IK5: information for accepted, warning for
accepted with errors, error for rejected); each IK3/IK4 note follows with its location as an
``expression`` (``2300/CLM[12]/CLM02``) and, when the 999 names the claim in a CTX segment, the
patient control number in an extension. Ids come from what the 999 says about the set, never from
its own envelope, so a 999 delivered again maps onto the same resources.
"""
from __future__ import annotations

from typing import Any

import fhir_mappings.vocabulary as vocabulary
from payer_adapters.x12.codes import table
from payer_adapters.x12.decode_999 import Ack999, SetAck
from payer_adapters.x12.fhir_out import entry


def ack999_to_fhir(ack: Ack999, claims: Any = None) -> list[dict[str, Any]]:
    """One Bundle entry (an OperationOutcome) per acknowledged set, in AK2 order."""
    return [entry(set_to_outcome(ack, s), *set_ack_identity(ack, s)) for s in ack.sets]


def set_ack_identity(ack: Ack999, s: SetAck) -> tuple[str, ...]:
    """What identifies the acknowledgment of one of our sets across deliveries: who sent the 999
    (ISA05/06, GS02), the group and set it acknowledges (AK1, AK2) and what it says (IK3/IK4/IK5),
    never the 999's own envelope control numbers."""
    isa = ack.header.interchange
    notes = [f"{n.segment_id}:{n.position}:{n.loop_id}:{n.code}:{','.join(n.context)}:"
             + ",".join(f"{e.position}.{e.component}:{e.element_reference}:{e.code}" for e in n.elements)
             for n in s.segments]
    return ("999", isa.sender_qualifier, isa.sender_id, ack.header.group.sender, ack.group_functional_id,
            ack.group_control_number, ack.group_version, s.transaction, s.control_number, s.version, s.status,
            ",".join(s.set_errors), *notes)


def set_to_outcome(ack: Ack999, s: SetAck) -> dict[str, Any]:
    """The OperationOutcome for one acknowledged set: the IK5 verdict, then one issue per IK502-506
    set error and per IK3 segment or IK4 element note, located by loop, segment and position."""
    acks = table("ack_codes")
    status_text = acks["ack"].get(s.status, s.status)
    issues: list[dict[str, Any]] = [{
        "severity": "information" if s.status == "A" else ("warning" if s.status == "E" else "error"),
        "code": "informational" if s.status in ("A", "E") else "processing",
        "details": {"coding": [{"system": "https://x12.org/codes/ik5-ack", "code": s.status, "display": status_text}],
                    "text": f"{s.transaction} set {s.control_number} in group {ack.group_control_number}: {status_text}"},
    }]
    for code in s.set_errors:
        issues.append({"severity": "error", "code": "structure",
                       "details": {"coding": [{"system": "https://x12.org/codes/ik5-error", "code": code}],
                                   "text": acks["set_errors"].get(code, code)}})
    severity = "warning" if s.status == "E" else "error"
    for n in s.segments:
        base_text = acks["segment_errors"].get(n.code, n.code)
        pcn = n.patient_control_number
        ext = [{"url": vocabulary.X12_PATIENT_CONTROL_NUMBER,
                "valueIdentifier": {"system": vocabulary.PATIENT_CONTROL_NUMBER, "value": pcn}}] if pcn else []
        where = f"{n.loop_id or '?'}/{n.segment_id}[{n.position}]"
        if not n.elements:
            issues.append({"severity": severity, "code": "structure", **({"extension": ext} if ext else {}),
                           "details": {"coding": [{"system": "https://x12.org/codes/ik3-error", "code": n.code}],
                                       "text": f"{n.segment_id} at position {n.position} in loop {n.loop_id or '?'}: {base_text}"},
                           "expression": [where]})
        for e in n.elements:
            ele = f"{n.segment_id}{e.position:02d}" + (f"-{e.component}" if e.component else "")
            text = acks["element_errors"].get(e.code, e.code)
            issues.append({"severity": severity, "code": "value", **({"extension": ext} if ext else {}),
                           "details": {"coding": [{"system": "https://x12.org/codes/ik4-error", "code": e.code}],
                                       "text": f"{ele} (element {e.element_reference}) at position {n.position} "
                                               f"in loop {n.loop_id or '?'}: {text}"},
                           "expression": [f"{where}/{ele}"]})
    return {"resourceType": "OperationOutcome",
            "extension": [{"url": vocabulary.X12_ACKNOWLEDGED_SET,
                           "valueString": f"{ack.group_functional_id}/{ack.group_control_number}/{s.control_number}/{s.status}"}],
            "issue": issues}
