"""Golden scenarios: input Bundle -> CLI output Bundle (Claim + OperationOutcome), byte for byte.

Files live in tests/fhir_mappings/golden/<scenario>.input.json and <scenario>.expected.json. When a
change is intended, regenerate with ``THERABRIDGE_UPDATE_GOLDEN=1 pytest tests/fhir_mappings`` and
have a person review the diff of the expected files before committing.
"""
from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import typer
from fhir.resources.R4B.claim import Claim
from fhir.resources.R4B.operationoutcome import OperationOutcome
from tests.fhir_mappings.mapping_builders import SOPT, Block, care_plan, eob, make_encounter_bundle, preauth
from typer.testing import CliRunner

from app.cli import claim as claim_cli

GOLDEN = Path(__file__).parent / "golden"
UPDATE = os.environ.get("THERABRIDGE_UPDATE_GOLDEN") == "1"
CREATED = "2025-01-20T15:00:00+00:00"

WC = {
    "coverage_type": ("http://terminology.hl7.org/CodeSystem/v3-ActCode", "WCBPOL"),
    "payer_id": "WC123", "payer_name": "State Comp Fund",
    "coverage_extra": {
        "identifier": [{"system": "https://therabridge.dev/fhir/sid/property-casualty-claim-number", "value": "WC-2024-55821"}],
        "extension": [{"url": "https://therabridge.dev/fhir/StructureDefinition/accident-date", "valueDate": "2024-12-02"}],
    },
}

# name -> (input builder, extra CLI arguments, expected exit code, rule ids expected in the outcome)
SCENARIOS: dict[str, tuple[Callable[[], dict[str, Any]], list[str], int, list[str]]] = {
    "medicare-ot-eval-treatment": (
        lambda: make_encounter_bundle(blocks=[Block("97165", 0, 45), Block("97530", 45, 24), Block("97535", 69, 23)]),
        [], 0, []),
    "medicare-ota-units": (
        lambda: make_encounter_bundle(blocks=[Block("97530", 0, 15), Block("97530", 15, 23, performer="ota-1"),
                                              Block("97110", 38, 12, performer="ota-1")]),
        [], 0, []),
    "medicare-kx-crossing": (
        lambda: make_encounter_bundle(
            blocks=[Block("97110", 0, 15), Block("97530", 15, 15)],
            extra=[eob("eob-1", "2025-01-06", "97530", "GO", 1200.0), eob("eob-2", "2025-01-08", "97110", "GO", 1160.0)]),
        [], 0, ["THER-KX-APPLIED"]),
    "medicare-uncertified-date": (
        lambda: make_encounter_bundle(care_plans=[care_plan("cp-ot", "OT", "2024-10-01", "2024-12-29")]),
        [], 1, ["THER-POC-DOS-OUTSIDE", "THER-POC-90-DAYS"]),
    "medicare-ncci-distinct": (
        lambda: make_encounter_bundle(blocks=[Block("97140", 0, 15), Block("97530", 15, 30)]),
        [], 0, ["NCCI-PAIR-DISTINCT"]),
    "medicare-ncci-overlap": (
        lambda: make_encounter_bundle(blocks=[Block("97140", 0, 20), Block("97530", 10, 30)]),
        [], 1, ["NCCI-PAIR-OVERLAP"]),
    "workers-comp": (
        lambda: make_encounter_bundle(blocks=[Block("97110", 0, 30), Block("97140", 30, 15)], **WC,
                                      extra=[preauth("auth-1", "2025-01-01", "2025-03-31")]),
        [], 0, []),
    "commercial-per-code": (
        lambda: make_encounter_bundle(blocks=[Block("97110", 0, 33), Block("97112", 33, 7), Block("97530", 40, 8)],
                                      coverage_type=(SOPT, "5"), payer_id="87726", payer_name="Acme Health PPO"),
        [], 0, ["THER-UNITS-ZERO"]),
}


def _app() -> typer.Typer:
    app = typer.Typer()
    claim_cli.register(app)
    return app


def _run(input_path: Path, extra: list[str]) -> tuple[int, bytes]:
    result = CliRunner().invoke(
        _app(), ["claim", str(input_path), "--claim-id", f"golden-{input_path.name.split('.')[0]}",
                 "--created", CREATED, *extra])
    return result.exit_code, result.stdout_bytes


@pytest.mark.parametrize("name", sorted(SCENARIOS))
def test_golden(name: str) -> None:
    build, extra, exit_code, expected_rules = SCENARIOS[name]
    input_path = GOLDEN / f"{name}.input.json"
    expected_path = GOLDEN / f"{name}.expected.json"
    if UPDATE:
        GOLDEN.mkdir(exist_ok=True)
        input_path.write_text(json.dumps(build(), indent=2) + "\n")
    code, out = _run(input_path, extra)
    if UPDATE:
        expected_path.write_bytes(out)
    assert code == exit_code, out.decode()
    assert out == expected_path.read_bytes(), f"{name}: output differs from {expected_path.name}"
    bundle = json.loads(out)
    claim, outcome = (e["resource"] for e in bundle["entry"])
    Claim.model_validate(claim)
    OperationOutcome.model_validate(outcome)
    rules = [i["details"]["coding"][0]["code"] for i in outcome["issue"] if "coding" in i.get("details", {})]
    assert rules == expected_rules


def test_golden_inputs_match_their_builders() -> None:
    """The stored input bundles are what the scenarios describe (regenerate both together)."""
    for name, (build, *_rest) in SCENARIOS.items():
        stored = json.loads((GOLDEN / f"{name}.input.json").read_text())
        assert stored == build(), name
