"""``therabridge x12 encode | decode | validate`` through the real command line."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from app.cli import app

from . import builders as B
from .fhir_check import assert_valid_bundle, resources
from .pyx12_check import assert_pyx12_ok

runner = CliRunner()


def run(*args: str):
    return runner.invoke(app, ["x12", *args])


def test_encode_claims_then_validate(tmp_path: Path):
    src = tmp_path / "claims.json"
    src.write_text(json.dumps(B.workers_comp_bundle()))
    res = run("encode", str(src), "--partner", "sandbox", "--control-number", "42")
    assert res.exit_code == 0, res.output
    assert res.stdout.startswith("ISA*") and "*000000042*1*T*:~" in res.stdout
    assert_pyx12_ok(res.stdout)
    out = tmp_path / "claims.x12"
    out.write_text(res.stdout)
    res = run("validate", str(out))
    assert res.exit_code == 0 and res.stdout.strip() == "claims.x12: OK"


def test_encode_eligibility(tmp_path: Path):
    src = tmp_path / "elig.json"
    src.write_text(json.dumps(B.eligibility_bundle()))
    res = run("encode", str(src))
    assert res.exit_code == 0 and "ST*270*" in res.stdout and "EQ*AD~" in res.stdout


def test_encode_bad_input_prints_outcome(tmp_path: Path):
    b = B.medicare_ot_bundle()
    b["entry"][0]["resource"]["identifier"] = []
    src = tmp_path / "bad.json"
    src.write_text(json.dumps(b))
    res = run("encode", str(src))
    assert res.exit_code == 1
    outcome = json.loads(res.stdout)
    assert outcome["resourceType"] == "OperationOutcome"
    assert outcome["issue"][0]["expression"] == ["2300/CLM/CLM01"]


def test_decode_prints_bundle(examples):
    res = run("decode", str(examples / "835_ot_remittance.x12"))
    assert res.exit_code == 0
    bundle = json.loads(res.stdout)
    assert_valid_bundle(bundle)
    assert len(resources(bundle, "ExplanationOfBenefit")) == 2


def test_decode_unusable_file_exit_1_with_outcome(examples, tmp_path: Path):
    bad = tmp_path / "bad.x12"
    bad.write_text((examples / "835_ot_remittance.x12").read_text().replace("SE*34*", "SE*35*"))
    res = run("decode", str(bad))
    assert res.exit_code == 1
    outcome = json.loads(res.stdout)
    assert outcome["resourceType"] == "OperationOutcome"
    assert "SE01" in outcome["issue"][0]["details"]["text"]
    assert bad.read_text().count("SE*35*") == 1  # the original file is left as it was


def test_validate_exit_codes(examples, tmp_path: Path):
    res = run("validate", str(examples / "837p_ot_INVALID_sv103_expected_fail.x12"))
    assert res.exit_code == 1 and "SV103" in res.stdout
    junk = tmp_path / "junk.x12"
    junk.write_text("not an x12 file at all")
    assert run("validate", str(junk)).exit_code == 2
    assert run("validate", str(tmp_path / "missing.x12")).exit_code == 2


def test_console_script_exit_code(examples):
    exe = Path(sys.executable).parent / "therabridge"
    if not exe.exists():
        pytest.skip("console script not installed")
    ok = subprocess.run([str(exe), "x12", "validate", str(examples / "999_accept_837p.x12")], capture_output=True,
                        text=True)
    assert ok.returncode == 0 and ok.stdout.strip().endswith("OK")
    bad = subprocess.run([str(exe), "x12", "validate", str(examples / "837p_ot_INVALID_sv103_expected_fail.x12")],
                         capture_output=True, text=True)
    assert bad.returncode == 1


_ACK = ("ISA*00*          *00*          *ZZ*CLEARHOUSE01   *ZZ*THERABRIDGE    *250115*1032*^*00501*000000777*0*T*:~\n"
        "GS*FA*CLEARHOUSE01*THERABRIDGE*20250115*1032*777*X*005010X231A1~\nST*999*0001*005010X231A1~\n"
        "AK1*HC*105*005010X222A1~\nAK2*837*0001*005010X222A1~\nIK5*A~\nAK2*837*0002*005010X222A1~\n"
        "IK3*NM1*12*2010BB*3~\nIK5*R*5~\nAK9*P*2*2*1~\nSE*9*0001~\nGE*1*777~\nIEA*1*000000777~\n")


def test_decode_compact_prints_one_line_of_the_same_bundle(tmp_path: Path):
    ack = tmp_path / "ack.x12"
    ack.write_text(_ACK)
    indented = run("decode", str(ack))
    compact = run("decode", "--compact", str(ack))
    assert indented.exit_code == compact.exit_code == 0, compact.output
    assert indented.stdout.count("\n") > 20
    assert compact.stdout.endswith("\n") and compact.stdout.count("\n") == 1
    assert json.loads(compact.stdout) == json.loads(indented.stdout)
    assert len(resources(json.loads(compact.stdout), "OperationOutcome")) == 2


def test_decode_compact_outcome_on_unusable_file(tmp_path: Path):
    bad = tmp_path / "bad.x12"
    bad.write_text(_ACK.replace("SE*9*", "SE*10*"))
    res = run("decode", str(bad), "--compact")
    assert res.exit_code == 1 and res.stdout.count("\n") == 1
    assert json.loads(res.stdout)["resourceType"] == "OperationOutcome"
    missing = run("decode", "--compact", str(tmp_path / "missing.x12"))
    assert missing.exit_code == 1 and missing.stdout.count("\n") == 1
    assert "file not found" in json.loads(missing.stdout)["issue"][0]["diagnostics"]
