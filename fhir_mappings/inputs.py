"""The boundary: gather and validate the FHIR R4 resources a claim is built from.

``ClaimInputs.from_resources`` takes a Bundle dict or a list of resource dicts, validates each
resource with ``fhir.resources.R4B`` (the only place outputs of other systems are trusted or not),
indexes them for reference resolution and picks the Encounter, its Procedures, the patient's
primary Coverage, the payer and the billing Organization; ChargeItemDefinitions among them are
the practice's fee schedule. When a claim cannot be formed at all it
raises ``InputError`` carrying OperationOutcome issues with FHIRPath expressions; everything
short of that becomes a scrub finding on the claim instead (see PROFILE.md).

Expressions for input resources are relative to the input Bundle (``Bundle.entry[i].resource``)
when a Bundle is given; resources given as a list are addressed by type and id
(``Procedure.where(id='p1').performedPeriod``).
"""
from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from fhir_mappings.outcome import operation_outcome


class InputError(Exception):
    """The inputs cannot produce a claim; ``issues`` explain why (OperationOutcome issue dicts)."""

    def __init__(self, issues: list[dict[str, Any]]):
        self.issues = issues
        super().__init__("; ".join(i["details"]["text"] for i in issues))

    @property
    def outcome(self) -> dict[str, Any]:
        return operation_outcome(self.issues)


def _input_issue(code: str, text: str, expression: str | None) -> dict[str, Any]:
    issue: dict[str, Any] = {"severity": "fatal" if code == "structure" else "error", "code": code,
                             "details": {"text": text}}
    if expression:
        issue["expression"] = [expression]
    return issue


@dataclass(frozen=True)
class Entry:
    """One input resource and the FHIRPath prefix that addresses it in the input."""

    resource: dict[str, Any]
    path: str

    @property
    def key(self) -> str:
        return f"{self.resource['resourceType']}/{self.resource.get('id', '')}"

    @property
    def id(self) -> str:
        return self.resource.get("id", "")


def _loc_to_fhirpath(loc: Sequence[Any]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif str(part) not in ("__root__",):
            out += f".{part}"
    return out


def validate_resource(resource: dict[str, Any], path: str) -> list[dict[str, Any]]:
    """Validate one resource with its ``fhir.resources.R4B`` model; issues on failure, [] when valid."""
    from fhir.resources.R4B import get_fhir_model_class
    from pydantic import ValidationError

    rtype = resource.get("resourceType") if isinstance(resource, dict) else None
    if not rtype:
        return [_input_issue("structure", "Each entry must be a FHIR resource with a resourceType.", path)]
    try:
        model = get_fhir_model_class(rtype)
    except (KeyError, ValueError):
        return [_input_issue("not-supported", f"{rtype} is not an R4 resource type.", path)]
    try:
        model.model_validate(resource)
    except ValidationError as exc:
        return [
            _input_issue("structure", f"{rtype} is not valid FHIR R4: {err['msg']}.", path + _loc_to_fhirpath(err["loc"]))
            for err in exc.errors()[:10]
        ]
    return []


@dataclass
class ClaimInputs:
    """Everything ``build_claim`` reads, already validated and indexed."""

    encounter: Entry
    patient: Entry
    coverage: Entry
    billing_org: Entry
    payer: Entry | None
    procedures: list[Entry]
    care_plans: list[Entry] = field(default_factory=list)
    conditions: list[Entry] = field(default_factory=list)
    service_requests: list[Entry] = field(default_factory=list)
    prior_claims: list[Entry] = field(default_factory=list)
    eobs: list[Entry] = field(default_factory=list)
    authorizations: list[Entry] = field(default_factory=list)
    documents: list[Entry] = field(default_factory=list)
    charge_definitions: list[Entry] = field(default_factory=list)  # the practice's fee schedule
    index: dict[str, Entry] = field(default_factory=dict)
    eligibility: list[Entry] = field(default_factory=list)  # the payer's CoverageEligibilityResponses
    eligibility_max_age_days: int | None = None  # None: the data file's default

    def resolve(self, ref: dict[str, Any] | None) -> Entry | None:
        """Resolve a Reference by ``Type/id``, absolute URL ending in ``Type/id``, or Bundle fullUrl."""
        if not ref or "reference" not in ref:
            return None
        target = ref["reference"]
        hit = self.index.get(target)
        if hit is None and "/" in target and not target.startswith("urn:"):
            parts = target.rstrip("/").split("/")
            if len(parts) >= 2:
                hit = self.index.get(f"{parts[-2]}/{parts[-1]}")
        return hit

    @classmethod
    def from_resources(
        cls,
        resources: dict[str, Any] | Iterable[dict[str, Any]],
        *,
        encounter_id: str | None = None,
        validate: bool = True,
    ) -> "ClaimInputs":
        """Gather claim inputs from a Bundle dict or a list of resources.

        ``encounter_id`` picks the Encounter when several are present. ``validate=False`` skips
        the R4B model validation for inputs that were already validated (the server's store).
        Raises ``InputError`` when no claim can be formed.
        """
        entries = _entries(resources)
        issues: list[dict[str, Any]] = []
        if validate:
            for e in entries:
                issues.extend(validate_resource(e.resource, e.path))
        if issues:
            raise InputError(issues)

        index: dict[str, Entry] = {}
        by_type: dict[str, list[Entry]] = {}
        for e in entries:
            if not isinstance(e.resource, dict) or not e.resource.get("resourceType"):
                raise InputError([_input_issue("structure", "Each entry must be a FHIR resource with a resourceType.", e.path)])
            index[e.key] = e
            by_type.setdefault(e.resource["resourceType"], []).append(e)
        for e, full_url in _full_urls(resources, entries):
            index[full_url] = e

        encounter = _pick_encounter(by_type.get("Encounter", []), encounter_id)
        probe = cls(encounter=encounter, patient=encounter, coverage=encounter, billing_org=encounter,
                    payer=None, procedures=[], index=index)
        problems: list[dict[str, Any]] = []
        if encounter.resource.get("status") != "finished":
            problems.append(_input_issue(
                "business-rule", "Claims are generated for finished encounters only; finish the Encounter first.",
                f"{encounter.path}.status"))
        if not (encounter.resource.get("period") or {}).get("start"):
            problems.append(_input_issue(
                "required", "The Encounter has no period.start, so the date of service is unknown.",
                f"{encounter.path}.period"))
        patient = probe.resolve(encounter.resource.get("subject"))
        if patient is None or patient.resource["resourceType"] != "Patient":
            problems.append(_input_issue("required", "The Encounter's subject Patient is not in the input.",
                                         f"{encounter.path}.subject"))
        procedures = [
            e for e in by_type.get("Procedure", [])
            if probe.resolve(e.resource.get("encounter")) is encounter
        ]
        if not procedures:
            problems.append(_input_issue(
                "required", "No Procedure references this Encounter (Procedure.encounter), so there is nothing to bill.",
                encounter.path))
        coverage = _pick_coverage(by_type.get("Coverage", []), patient, probe)
        if coverage is None:
            problems.append(_input_issue(
                "required", "No active Coverage for the patient; add the patient's insurance to bill.", None))
        billing = probe.resolve(encounter.resource.get("serviceProvider"))
        if billing is None:
            # Payers and policy holders (a workers' comp employer) are never the billing practice.
            held = [p for c in by_type.get("Coverage", []) for p in
                    [*c.resource.get("payor", ()), c.resource.get("policyHolder")] if p]
            not_billing = {probe.resolve(p).key for p in held if probe.resolve(p)}
            candidates = [o for o in by_type.get("Organization", []) if o.key not in not_billing]
            billing = candidates[0] if len(candidates) == 1 else None
        if billing is None:
            problems.append(_input_issue(
                "required", "The billing Organization is missing; set Encounter.serviceProvider to the practice.",
                f"{encounter.path}.serviceProvider"))
        if problems:
            raise InputError(problems)
        assert patient is not None and coverage is not None and billing is not None
        payer = next((probe.resolve(p) for p in coverage.resource.get("payor", ()) if probe.resolve(p)), None)
        procedures.sort(key=lambda e: (_proc_start(e.resource), e.id))

        def of_patient(items: list[Entry], attr: str) -> list[Entry]:
            return [e for e in items if probe.resolve(e.resource.get(attr)) is patient]

        auths = [e for e in by_type.get("ClaimResponse", []) if e.resource.get("use") == "preauthorization"]
        # A visit's claims to its secondary/tertiary payers repeat the primary's lines: they are
        # neither earlier claims of the visit nor usage (KX, visits) to count again.
        claims = of_patient(by_type.get("Claim", []), "patient")
        later = {e.id for e in claims if follows_another_payer(e.resource)}
        eobs = [e for e in of_patient(by_type.get("ExplanationOfBenefit", []), "patient")
                if str((e.resource.get("claim") or {}).get("reference") or "").split("/")[-1] not in later]
        return cls(
            encounter=encounter,
            patient=patient,
            coverage=coverage,
            billing_org=billing,
            payer=payer,
            procedures=procedures,
            care_plans=of_patient(by_type.get("CarePlan", []), "subject"),
            conditions=by_type.get("Condition", []),
            service_requests=of_patient(by_type.get("ServiceRequest", []), "subject"),
            prior_claims=[e for e in claims if e.id not in later],
            eobs=eobs,
            authorizations=of_patient(auths, "patient"),
            documents=of_patient(by_type.get("DocumentReference", []), "subject"),
            charge_definitions=by_type.get("ChargeItemDefinition", []),
            index=index,
            eligibility=by_type.get("CoverageEligibilityResponse", []),
        )


def follows_another_payer(claim: dict[str, Any]) -> bool:
    """Whether ``claim`` bills a payer after another one (a secondary or tertiary claim): its
    focal insurance has a sequence above 1, or an insurance entry carries a prior payer's
    ``claimResponse``."""
    insurances = claim.get("insurance") or []
    focal = next((i for i in insurances if i.get("focal")), None)
    return any(i.get("claimResponse") for i in insurances) or int((focal or {}).get("sequence", 1) or 1) > 1


def _entries(resources: dict[str, Any] | Iterable[dict[str, Any]]) -> list[Entry]:
    if isinstance(resources, dict):
        if resources.get("resourceType") != "Bundle":
            raise InputError([_input_issue("structure", "Input must be a Bundle or a list of resources.", None)])
        return [
            Entry(entry.get("resource") or {}, f"Bundle.entry[{i}].resource")
            for i, entry in enumerate(resources.get("entry") or ())
        ]
    return [Entry(r, _list_path(r, i)) for i, r in enumerate(resources)]


def _list_path(resource: Any, i: int) -> str:
    """A resource from a list (the server's store) is addressed by type and id, e.g.
    ``Procedure.where(id='p1')``; without them, by position as if the list were a Bundle."""
    if isinstance(resource, dict) and resource.get("resourceType") and resource.get("id"):
        return f"{resource['resourceType']}.where(id='{resource['id']}')"
    return f"Bundle.entry[{i}].resource"


def _full_urls(resources: Any, entries: list[Entry]) -> list[tuple[Entry, str]]:
    if not isinstance(resources, dict):
        return []
    out = []
    for entry, e in zip(resources.get("entry") or (), entries):
        if entry.get("fullUrl"):
            out.append((e, entry["fullUrl"]))
    return out


def _pick_encounter(encounters: list[Entry], encounter_id: str | None) -> Entry:
    if encounter_id is not None:
        for e in encounters:
            if e.id == encounter_id:
                return e
        raise InputError([_input_issue("not-found", f"Encounter {encounter_id} is not in the input.", None)])
    if len(encounters) == 1:
        return encounters[0]
    if not encounters:
        raise InputError([_input_issue("required", "The input has no Encounter to bill.", None)])
    raise InputError([_input_issue(
        "multiple-matches", "The input has several Encounters; say which one to bill (encounter id).", None)])


def _pick_coverage(coverages: list[Entry], patient: Entry | None, probe: "ClaimInputs") -> Entry | None:
    """The patient's active Coverage with the lowest ``order`` (primary first), then by id."""
    if patient is None:
        return None
    own = [
        c for c in coverages
        if c.resource.get("status") == "active" and probe.resolve(c.resource.get("beneficiary")) is patient
    ]
    own.sort(key=lambda c: (c.resource.get("order", 1), c.id))
    return own[0] if own else None


def _proc_start(proc: dict[str, Any]) -> str:
    period = proc.get("performedPeriod") or {}
    return period.get("start") or proc.get("performedDateTime") or ""
