"""ELIG-* edits offline: ``therabridge claim`` with the payer's eligibility answer and the earlier
claims in the Bundle."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import typer
from typer.testing import CliRunner

from app.cli import claim as claim_cli
from tests.fhir_mappings.mapping_builders import CPT, make_encounter_bundle

SERVICE_TYPE = "https://x12.org/codes/service-type-codes"
BENEFIT = "http://terminology.hl7.org/CodeSystem/benefit-type"
CREATED = "2025-01-20T15:00:00+00:00"  # the claim's creation (the visit is on 2025-01-14, OT)


def answer(*, created: str = "2025-01-10", inforce: bool = True, allowed: int | None = 20, used: int = 0,
           coverage: str = "Coverage/cov-1", rid: str = "elig-1", **extra: Any) -> dict[str, Any]:
    """A CoverageEligibilityResponse as the server keeps a 271: per service type, visits allowed/used."""
    item: dict[str, Any] = {"category": {"coding": [{"system": SERVICE_TYPE, "code": "AD"}]}}
    if allowed is not None:
        item["benefit"] = [{"type": {"coding": [{"system": BENEFIT, "code": "visit"}]},
                            "allowedUnsignedInt": allowed, "usedUnsignedInt": used}]
    return {"resourceType": "CoverageEligibilityResponse", "id": rid, "status": "active",
            "purpose": ["benefits"], "patient": {"reference": "Patient/pat-1"}, "created": created,
            "request": {"reference": "CoverageEligibilityRequest/req-1"},
            "insurer": {"reference": "Organization/org-payer"}, "outcome": "complete",
            "insurance": [{"coverage": {"reference": coverage}, "inforce": inforce, "item": [item]}], **extra}


def earlier_claim(cid: str, day: str, created: str, modifier: str = "GO") -> dict[str, Any]:
    return {"resourceType": "Claim", "id": cid, "status": "active", "use": "claim",
            "type": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/claim-type", "code": "professional"}]},
            "patient": {"reference": "Patient/pat-1"}, "created": created,
            "provider": {"reference": "Organization/org-clinic"}, "priority": {"coding": [{"code": "normal"}]},
            "insurance": [{"sequence": 1, "focal": True, "coverage": {"reference": "Coverage/cov-1"}}],
            "item": [{"sequence": 1, "servicedDate": day,
                      "productOrService": {"coding": [{"system": CPT, "code": "97530"}]},
                      "modifier": [{"coding": [{"system": "https://www.cms.gov/Medicare/Coding/HCPCSReleaseCodeSets",
                                                "code": modifier}]}],
                      "quantity": {"value": 2}}]}


def _entry_of(extra: list[dict[str, Any]], rid: str) -> int:
    bundle = make_encounter_bundle(extra=extra)
    return next(i for i, e in enumerate(bundle["entry"]) if e["resource"]["id"] == rid)


def run(tmp_path: Path, extra: list[dict[str, Any]]) -> tuple[int, dict[str, dict[str, Any]]]:
    """Exit code and the issues by rule id of ``therabridge claim`` on the bundle plus ``extra``."""
    app = typer.Typer()
    claim_cli.register(app)
    path = tmp_path / "in.json"
    path.write_text(json.dumps(make_encounter_bundle(extra=extra)))
    result = CliRunner().invoke(app, ["claim", str(path), "--claim-id", "c-1", "--created", CREATED])
    assert result.exit_code in (0, 1), result.stdout
    outcome = json.loads(result.stdout)["entry"][1]["resource"]
    issues = {i["details"]["coding"][0]["code"]: i for i in outcome["issue"] if i.get("details", {}).get("coding")}
    return result.exit_code, issues


def test_visit_beyond_the_limit_counts_visits_billed_since_the_answer(tmp_path: Path) -> None:
    extra = [answer(allowed=20, used=18),
             earlier_claim("before", "2025-01-08", "2025-01-09T10:00:00+00:00"),  # the payer counted it
             earlier_claim("since", "2025-01-12", "2025-01-12T18:00:00+00:00"),
             earlier_claim("pt-since", "2025-01-13", "2025-01-13T18:00:00+00:00", modifier="GP")]  # not OT
    code, issues = run(tmp_path, extra)
    assert code == 0 and "ELIG-VISIT-LIMIT" not in issues  # 18 + 1 billed since + this one = 20 of 20
    extra.append(earlier_claim("since-2", "2025-01-13", "2025-01-13T19:00:00+00:00"))
    code, issues = run(tmp_path, extra)
    assert code == 1
    found = issues["ELIG-VISIT-LIMIT"]
    assert found["severity"] == "error"
    assert found["expression"] == [f"Bundle.entry[{_entry_of(extra, 'elig-1')}].resource.insurance"]
    text = found["details"]["text"]
    assert "CoverageEligibilityResponse/elig-1 of 2025-01-10" in text
    assert "20 OT visits allowed, 18 used when the payer answered and 2 billed since" in text


def test_inactive_or_unknown_coverage_holds_the_claim(tmp_path: Path) -> None:
    code, issues = run(tmp_path, [answer(inforce=False, created="2025-01-11")])
    assert code == 1
    assert "CoverageEligibilityResponse/elig-1 of 2025-01-11" in issues["ELIG-INACTIVE"]["details"]["text"]
    unknown = answer(created="2025-01-11", outcome="error",
                     error=[{"code": {"coding": [{"system": "https://x12.org/codes/aaa-reject-reason", "code": "75"}]}}])
    code, issues = run(tmp_path, [unknown])
    assert code == 1 and "AAA 75" in issues["ELIG-INACTIVE"]["details"]["text"]
    # the newest answer about the claim's own coverage is the one that counts
    code, issues = run(tmp_path, [answer(inforce=False, created="2025-01-02", rid="old"),
                                  answer(created="2025-01-11", rid="new"),
                                  answer(inforce=False, created="2025-01-12", rid="other", coverage="Coverage/cov-9")])
    assert code == 0 and "ELIG-INACTIVE" not in issues


def test_a_stale_answer_is_used_with_a_warning(tmp_path: Path) -> None:
    code, issues = run(tmp_path, [answer(created="2024-11-01", allowed=20, used=20)])
    assert code == 1
    assert issues["ELIG-STALE"]["severity"] == "warning"
    assert "80 days old" in issues["ELIG-STALE"]["details"]["text"]
    assert "ELIG-VISIT-LIMIT" in issues  # the old answer still counts
    code, issues = run(tmp_path, [answer(created="2025-01-10")])
    assert code == 0 and "ELIG-STALE" not in issues


def test_rules_list_shows_the_eligibility_rules() -> None:
    app = typer.Typer()
    claim_cli.register(app)
    result = CliRunner().invoke(app, ["rules", "list", "--json"])
    rules = {r["id"]: r for r in json.loads(result.stdout)["rules"]}
    for rid in ("ELIG-INACTIVE", "ELIG-VISIT-LIMIT", "ELIG-STALE"):
        assert rules[rid]["source"] and rules[rid]["effective"] == "2012-01-01"
