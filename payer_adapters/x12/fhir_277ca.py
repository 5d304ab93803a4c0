"""277CA records → FHIR: a ClaimResponse per claim (2200D) and an OperationOutcome per rejecting
level above the claims (2200A/B/C).

Ids come from what identifies the acknowledgment (source, BHT03, traces, statuses, dates), never
from envelope control numbers, so a 277CA delivered again in a new envelope maps onto the same
resources. References to the patient, payer and billing provider are logical (by identifier)
unless the matching Claim is passed in.
"""
from __future__ import annotations

from typing import Any

import fhir_mappings.vocabulary as vocabulary
from payer_adapters.x12.codes import ENTITY_SYSTEM, STC_CATEGORY_SYSTEM, STC_STATUS_SYSTEM, describe, table
from payer_adapters.x12.decode_277ca import LEVELS, Ack277, ClaimAck, LevelAck, Status
from payer_adapters.x12.fhir_out import coding, concept, entry, money, reference_by_identifier
from payer_adapters.x12.resources import NPI, extension

ID_QUALIFIER_SYSTEM = "https://x12.org/codes/identification-code-qualifier"


def ack277_to_fhir(ack: Ack277, claims: dict[str, dict[str, Any]] | None = None) -> list[dict[str, Any]]:
    """One ClaimResponse per claim (in ``ack.claims`` order), then one OperationOutcome per
    rejecting level. ``claims`` (patient control number → Claim) links the answers to our Claims."""
    claims = claims or {}
    out = [entry(claim_ack_to_fhir(ack, c, claims.get(c.patient_control_number)), *claim_ack_identity(ack, c))
           for c in ack.claims]
    out += [entry(level_rejection_to_fhir(ack, lvl), *level_identity(ack, lvl)) for lvl in ack.level_rejections]
    return out


def status_key(s: Status) -> str:
    return f"{s.element}:{s.category}:{s.code}:{s.entity}:{s.action}:{s.date or ''}:{s.amount if s.amount is not None else ''}"


def _source_key(ack: Ack277) -> tuple[str, ...]:
    return ack.source_entity, ack.source_id, ack.reference, ack.receipt_date or "", ack.process_date or ""


def claim_ack_identity(ack: Ack277, c: ClaimAck) -> tuple[str, ...]:
    """What identifies one claim's acknowledgment across deliveries: who sent it (2100A), the
    277CA's BHT03 and dates, the batch, the claim's TRN02 and payer numbers, and its statuses."""
    return ("277CA", *_source_key(ack), c.batch_trace or "", c.patient_control_number,
            c.payer_claim_control_number or "", c.clearinghouse_trace or "", c.service_date or "",
            *(status_key(s) for s in c.statuses),
            *(f"{ln.line_control_number}|{'/'.join(status_key(s) for s in ln.statuses)}" for ln in c.lines))


def level_identity(ack: Ack277, lvl: LevelAck) -> tuple[str, ...]:
    """What identifies one level rejection across deliveries: the source, the level and its
    identifiers and traces, and its statuses."""
    return ("277CA-level", *_source_key(ack), lvl.loop, lvl.entity, lvl.id_qualifier, lvl.id,
            lvl.trace or "", lvl.batch_trace or "", *(status_key(s) for s in lvl.statuses))


def status_text(s: Status) -> str:
    cat = describe("stc_categories", s.category) or s.category
    text = f"{s.category}:{s.code}{':' + s.entity if s.entity else ''} {cat}"
    if s.code:
        text += f" — {describe('stc_status', s.code) or 'status ' + s.code}"
    if s.entity:
        text += f" ({describe('entity_codes', s.entity) or s.entity})"
    return text


def status_concept(s: Status) -> dict[str, Any]:
    codings = [coding(STC_CATEGORY_SYSTEM, s.category, describe("stc_categories", s.category))]
    if s.code:
        codings.append(coding(STC_STATUS_SYSTEM, s.code, describe("stc_status", s.code)))
    if s.entity:
        codings.append(coding(ENTITY_SYSTEM, s.entity))
    return {"coding": codings, "text": status_text(s)}


def stc_claim_response(claim: dict[str, Any] | None, *, member_id: str | None, payer: tuple[str, str | None],
                       requestor: dict[str, Any], control_number: str, created: str, outcome: str,
                       statuses: list[Status], messages: list[str]) -> dict[str, Any]:
    """The ClaimResponse a claim's STC answer becomes, in a 277CA and a 277 alike: the claim's
    patient and payer when it is ours (else references by member and payer id), the request by
    patient control number, and each status (and each STC12 message, once) as a process note."""
    res: dict[str, Any] = {
        "resourceType": "ClaimResponse",
        "status": "active",
        "type": concept("http://terminology.hl7.org/CodeSystem/claim-type", "professional"),
        "use": "claim",
        "patient": (claim or {}).get("patient") or reference_by_identifier("Patient", vocabulary.MEMBER_ID, member_id),
        "created": created,
        "insurer": (claim or {}).get("insurer") or reference_by_identifier(
            "Organization", vocabulary.PAYER_ID, payer[0], payer[1] or None),
        "requestor": requestor,
        "request": {"type": "Claim", "identifier": {"system": vocabulary.PATIENT_CONTROL_NUMBER, "value": control_number},
                    **({"reference": f"Claim/{claim['id']}"} if claim and claim.get("id") else {})},
        "outcome": outcome,
        "disposition": "; ".join(status_text(s) for s in statuses),
        "processNote": [{"number": n, "type": "display", "text": status_text(s)}
                        for n, s in enumerate(statuses, start=1)],
    }
    for message in dict.fromkeys(m for m in messages if m):  # STC12, once per STC
        res["processNote"].append({"number": len(res["processNote"]) + 1, "type": "display", "text": message})
    return res


def claim_ack_to_fhir(ack: Ack277, c: ClaimAck, claim: dict[str, Any] | None = None) -> dict[str, Any]:
    created = ack.process_date or ack.receipt_date or next((s.date for s in c.statuses if s.date), None) \
        or f"{ack.header.group.date[:4]}-{ack.header.group.date[4:6]}-{ack.header.group.date[6:8]}"
    res = stc_claim_response(claim, member_id=c.member_id, payer=(ack.source_id, ack.source_name),
                             requestor=_billing_provider(c), control_number=c.patient_control_number,
                             created=created, outcome=c.outcome, statuses=c.statuses,
                             messages=[s.message for s in c.statuses])
    if c.payer_claim_control_number:
        res["identifier"] = [{"system": vocabulary.PAYER_CLAIM_NUMBER, "value": c.payer_claim_control_number}]
    if c.outcome == "error":
        res["error"] = [{"code": status_concept(s)} for s in c.statuses if s.rejected]
    seqs = line_sequences(c, claim)
    items = []
    for line, seq in zip(c.lines, seqs):
        adjudication = [{"category": status_concept(s)} for s in line.statuses] or [
            {"category": concept(STC_CATEGORY_SYSTEM, "A1")}]
        item: dict[str, Any] = {"itemSequence": seq, "adjudication": adjudication}
        if line.line_control_number:
            item["extension"] = [{"url": vocabulary.LINE_CONTROL_NUMBER, "valueString": line.line_control_number}]
        items.append(item)
        if any(s.rejected for s in line.statuses):
            res.setdefault("error", []).extend(
                {"itemSequence": seq, "code": status_concept(s)} for s in line.statuses if s.rejected)
    if items:
        res["item"] = items
    return res


def _billing_provider(c: ClaimAck) -> dict[str, Any]:
    """The 2100C billing provider by its NPI, else by the id under its qualifier (FI: TIN)."""
    if c.billing_npi or not c.billing_provider_id:
        return reference_by_identifier("Organization", NPI, c.billing_npi)
    system = (table("id_qualifiers").get(c.billing_provider_qualifier or "") or {}).get("system")
    if system is None:
        return {"type": "Organization"}
    return reference_by_identifier("Organization", system, c.billing_provider_id)


def _identifier(qualifier: str, value: str) -> dict[str, Any]:
    known = table("id_qualifiers").get(qualifier) or {}
    ident: dict[str, Any] = {"type": concept(ID_QUALIFIER_SYSTEM, qualifier, known.get("text")), "value": value}
    if known:
        ident["system"] = known["system"]
    return ident


def _level_extension(lvl: LevelAck) -> dict[str, Any]:
    info = next(v for v in LEVELS.values() if v["loop"] == lvl.loop)
    parts: list[dict[str, Any]] = [{"url": "loop", "valueCoding": coding(
        vocabulary.X12_277CA_LEVEL_CODES, lvl.loop, info["text"])}]
    if lvl.entity:
        parts.append({"url": "entity", "valueCoding": coding(ENTITY_SYSTEM, lvl.entity,
                                                             describe("entity_codes", lvl.entity))})
    if lvl.id:
        parts.append({"url": "identifier", "valueIdentifier": _identifier(lvl.id_qualifier, lvl.id)})
    if lvl.tin and lvl.id_qualifier != "FI":
        parts.append({"url": "identifier", "valueIdentifier": _identifier("FI", lvl.tin)})
    if lvl.name:
        parts.append({"url": "name", "valueString": lvl.name})
    if lvl.batch_trace:
        parts.append({"url": "batchTrace", "valueIdentifier": {"system": vocabulary.CLAIM_BATCH, "value": lvl.batch_trace}})
    if lvl.trace and lvl.loop != "2200B":
        parts.append({"url": "trace", "valueIdentifier": {"system": vocabulary.X12_277CA_TRACE, "value": lvl.trace}})
    for name, value in (("acceptedQuantity", lvl.accepted_quantity), ("rejectedQuantity", lvl.rejected_quantity)):
        if value is not None:
            parts.append({"url": name, "valueDecimal": float(value)})
    for name, value in (("acceptedAmount", lvl.accepted_amount), ("rejectedAmount", lvl.rejected_amount)):
        if value is not None:
            parts.append({"url": name, "valueMoney": money(value)})
    return {"url": vocabulary.X12_277CA_LEVEL, "extension": parts}


def _level_subject(lvl: LevelAck) -> str:
    """``billing provider NPI 1234567893 under batch 000000101…`` — ids only, never a name."""
    info = next(v for v in LEVELS.values() if v["loop"] == lvl.loop)
    who = info["text"].split(" (")[0].lower()
    if lvl.id:
        label = (table("id_qualifiers").get(lvl.id_qualifier) or {}).get("text", lvl.id_qualifier or "id")
        short = label[label.find("(") + 1:label.find(")")] if "(" in label else label
        who += f" {short} {lvl.id}"
    if lvl.batch_trace and lvl.loop != "2200B":
        who += f" in batch {lvl.batch_trace}"
    elif lvl.batch_trace:
        who += f", batch {lvl.batch_trace}"
    return f"{lvl.loop} {who}"


def level_rejection_to_fhir(ack: Ack277 | None, lvl: LevelAck, *, transaction: str = "277CA") -> dict[str, Any]:
    """A rejection above the claim as an OperationOutcome: it concerns claims the 277CA does not
    list one by one (a ClaimResponse needs one claim and its patient), so it says where (loop,
    entity, identifier, batch trace — in the ``x12-277ca-level`` extension and the diagnostics)
    and why (each STC status as ``details.coding``: category, status, entity)."""
    subject = _level_subject(lvl)
    counts = []
    if lvl.rejected_quantity is not None:
        counts.append(f"{lvl.rejected_quantity:f} claim(s)")
    if lvl.rejected_amount is not None:
        counts.append(f"{lvl.rejected_amount:.2f} USD")
    issues = []
    for s in lvl.statuses:
        issue: dict[str, Any] = {
            "severity": "error" if s.rejected else "information",
            "code": "processing" if s.rejected else "informational",
            "details": status_concept(s),
            "diagnostics": f"{transaction} {subject}: {'rejected' if s.rejected else 'status'} {status_text(s)}"
                           + (f" (rejected: {', '.join(counts)})" if counts and s.rejected else "")
                           + (f" — {s.message}" if s.message else ""),
        }
        issues.append(issue)
    return {"resourceType": "OperationOutcome", "extension": [_level_extension(lvl)], "issue": issues}


def line_sequences(c: Any, claim: dict[str, Any] | None) -> list[int]:
    """Our Claim.item sequence of each answered line (by line control number, else its position):
    shared by the 277CA and 277 mappers, whose claim records both carry ``lines``."""
    by_control = {}
    for i in (claim or {}).get("item") or []:
        ctl = extension(i, vocabulary.LINE_CONTROL_NUMBER)
        if ctl:
            by_control[ctl] = i["sequence"]
    return [by_control.get(line.line_control_number or "", n) for n, line in enumerate(c.lines, start=1)]
