"""The ``therabridge claim`` and ``therabridge rules list`` commands."""
from __future__ import annotations

import json
import subprocess
from pathlib import Path

import typer
from tests.fhir_mappings.mapping_builders import Block, care_plan, make_encounter_bundle
from typer.testing import CliRunner

from app.cli import claim as claim_cli
from fhir_mappings.rules import catalog

THERABRIDGE = Path(__file__).resolve().parents[2] / ".venv" / "bin" / "therabridge"


def _app() -> typer.Typer:
    app = typer.Typer()
    claim_cli.register(app)
    return app


def _write(tmp_path: Path, bundle: dict, name: str = "in.json") -> Path:
    path = tmp_path / name
    path.write_text(json.dumps(bundle))
    return path


def test_clean_claim_exits_0_with_claim_and_outcome(tmp_path: Path) -> None:
    result = CliRunner().invoke(_app(), ["claim", str(_write(tmp_path, make_encounter_bundle())),
                                         "--claim-id", "c-1", "--created", "2025-01-20T15:00:00+00:00"])
    assert result.exit_code == 0, result.stdout
    out = json.loads(result.stdout)
    assert out["resourceType"] == "Bundle" and out["type"] == "collection"
    assert [e["resource"]["resourceType"] for e in out["entry"]] == ["Claim", "OperationOutcome"]
    assert out["entry"][0]["resource"]["id"] == "c-1"
    assert out["entry"][0]["resource"]["created"] == "2025-01-20T15:00:00+00:00"


def test_held_claim_exits_1(tmp_path: Path) -> None:
    bundle = make_encounter_bundle(care_plans=[care_plan("cp-ot", "OT", "2024-10-01", "2024-12-29")])
    result = CliRunner().invoke(_app(), ["claim", str(_write(tmp_path, bundle))])
    assert result.exit_code == 1
    outcome = json.loads(result.stdout)["entry"][1]["resource"]
    assert any(i["severity"] == "error" for i in outcome["issue"])


def test_unusable_input_exits_2_with_an_outcome(tmp_path: Path) -> None:
    bundle = make_encounter_bundle()
    bundle["entry"] = [e for e in bundle["entry"] if e["resource"]["resourceType"] != "Coverage"]
    result = CliRunner().invoke(_app(), ["claim", str(_write(tmp_path, bundle))])
    assert result.exit_code == 2
    outcome = json.loads(result.stdout)
    assert outcome["resourceType"] == "OperationOutcome"
    assert "Coverage" in outcome["issue"][0]["details"]["text"]


def test_not_json_exits_2(tmp_path: Path) -> None:
    path = tmp_path / "broken.json"
    path.write_text("{not json")
    result = CliRunner().invoke(_app(), ["claim", str(path)])
    assert result.exit_code == 2 and json.loads(result.stdout)["resourceType"] == "OperationOutcome"


def test_unknown_profile_and_naive_created_exit_2(tmp_path: Path) -> None:
    path = _write(tmp_path, make_encounter_bundle())
    bad_profile = CliRunner().invoke(_app(), ["claim", str(path), "--profile", "medicaid"])
    naive = CliRunner().invoke(_app(), ["claim", str(path), "--created", "2025-01-20T10:00:00"])
    assert bad_profile.exit_code == 2 and "medicaid" in bad_profile.stdout
    assert naive.exit_code == 2 and "offset" in naive.stdout


def test_profile_option_overrides_the_coverage(tmp_path: Path) -> None:
    bundle = make_encounter_bundle(blocks=[Block("97110", 0, 33), Block("97140", 33, 7)])
    path = _write(tmp_path, bundle)
    medicare = json.loads(CliRunner().invoke(_app(), ["claim", str(path)]).stdout)
    commercial = json.loads(CliRunner().invoke(_app(), ["claim", str(path), "--profile", "commercial"]).stdout)
    assert len(medicare["entry"][0]["resource"]["item"]) == 2
    assert len(commercial["entry"][0]["resource"]["item"]) == 1


def test_console_script_output_is_byte_identical(tmp_path: Path) -> None:
    """Same input and arguments through the installed script, twice: the same bytes and exit code."""
    path = _write(tmp_path, make_encounter_bundle(blocks=[Block("97530", 0, 15), Block("97530", 15, 23, performer="ota-1")]))
    runs = [subprocess.run([str(THERABRIDGE), "claim", str(path), "--profile", "medicare"], capture_output=True)
            for _ in range(2)]
    assert runs[0].returncode == runs[1].returncode == 0, runs[0].stderr.decode()
    assert runs[0].stdout == runs[1].stdout and len(runs[0].stdout) > 1000
    other = _write(tmp_path, make_encounter_bundle(), "other.json")
    third = subprocess.run([str(THERABRIDGE), "claim", str(other)], capture_output=True)
    assert third.stdout != runs[0].stdout


def test_rules_list_table_and_json() -> None:
    table = CliRunner().invoke(_app(), ["rules", "list"])
    assert table.exit_code == 0
    rows = table.stdout.splitlines()
    assert rows[0].split()[:3] == ["ID", "SEVERITY", "PROFILES"]
    assert len(rows) == len(catalog()) + 1
    assert any(r.startswith("THER-UNITS-8MIN") and "error" in r for r in rows)
    as_json = CliRunner().invoke(_app(), ["rules", "list", "--json"])
    data = json.loads(as_json.stdout)
    assert [r["id"] for r in data["rules"]] == [r.id for r in catalog()]
    assert all(r["source"] and r["summary"] for r in data["rules"])


def _prices(out: dict) -> dict[str, float]:
    claim = out["entry"][0]["resource"]
    return {it["productOrService"]["coding"][0]["code"]: it["unitPrice"]["value"] for it in claim["item"]}


def test_claim_bills_the_fee_schedule_in_its_bundle(tmp_path: Path) -> None:
    """The ChargeItemDefinitions in the input Bundle are the fee schedule: the one in force on the
    visit's date (2025-01-14) bills; without any, each code is a CHARGE-MISSING error (exit 1)."""
    from datetime import date
    from decimal import Decimal

    from fhir_mappings.charges import definition

    bundle = make_encounter_bundle(fees=False)
    fees = [definition("97165", [], Decimal("180.00"), definition_id="f1", start=date(2025, 1, 1)),
            definition("97530", [], Decimal("58.00"), definition_id="f2", start=date(2024, 1, 1), end=date(2025, 1, 13)),
            definition("97530", [], Decimal("63.25"), definition_id="f3", start=date(2025, 1, 14)),
            definition("97530", ["GO"], Decimal("64.75"), definition_id="f4", start=date(2025, 1, 14)) | {"status": "draft"}]
    bundle["entry"] += [{"fullUrl": f"urn:test:fee/{f['id']}", "resource": f} for f in fees]
    priced = CliRunner().invoke(_app(), ["claim", str(_write(tmp_path, bundle))])
    assert priced.exit_code == 0, priced.stdout
    assert _prices(json.loads(priced.stdout)) == {"97165": 180.0, "97530": 63.25}

    unpriced = CliRunner().invoke(_app(), ["claim", str(_write(tmp_path, make_encounter_bundle(fees=False), "bare.json"))])
    assert unpriced.exit_code == 1
    outcome = json.loads(unpriced.stdout)["entry"][1]["resource"]
    missing = [i["details"]["text"] for i in outcome["issue"] if i["details"]["coding"][0]["code"] == "CHARGE-MISSING"]
    assert [t.split()[0] for t in missing] == ["97165", "97530"] and all("2025-01-14" in t for t in missing)
