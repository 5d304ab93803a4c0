"""The command line: load, openapi (and the committed OpenAPI document staying in step)."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from typer.testing import CliRunner

from app.cli import app as cli
from app.openapi_doc import openapi_document
from tests.core.helpers import patient

ROOT = Path(__file__).resolve().parents[2]


def test_openapi_document_in_repo_matches_served():
    committed = json.loads((ROOT / "openapi" / "openapi.json").read_text())
    assert committed == openapi_document(), "run: therabridge openapi > openapi/openapi.json"


def test_openapi_command_prints_document():
    result = CliRunner().invoke(cli, ["openapi"])
    assert result.exit_code == 0
    assert json.loads(result.stdout)["info"]["title"] == "TheraBridge"


def test_load_reports_failures_and_loads_the_rest(tmp_path, database_url):
    data = tmp_path / "data"
    (data / "nested").mkdir(parents=True)
    (data / "good.json").write_text(json.dumps({**patient(mrn="LOAD1"), "id": "load-good"}))
    (data / "nested" / "bundle.json").write_text(json.dumps({"resourceType": "Bundle", "type": "batch", "entry": [
        {"resource": patient(mrn="LOAD2"), "request": {"method": "POST", "url": "Patient"}},
        {"resource": {"resourceType": "Patient", "gender": 7}, "request": {"method": "POST", "url": "Patient"}}]}))
    (data / "broken.json").write_text("{not json")
    (data / "invalid.json").write_text(json.dumps({"resourceType": "Patient", "birthDate": "soon"}))
    env = {**os.environ, "THERABRIDGE_DATABASE_URL": database_url, "THERABRIDGE_DEFAULT_TENANT": "cli-load-test"}
    proc = subprocess.run([sys.executable, "-m", "app.cli", "load", str(data)], env=env, capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 1, proc.stderr
    assert "loaded 2 item(s) from 4 file(s); 3 failed" in proc.stdout
    assert "broken.json: not readable JSON" in proc.stderr
    assert "Patient.birthDate" in proc.stderr and "entry 1" in proc.stderr
    again = subprocess.run([sys.executable, "-m", "app.cli", "load", str(data / "good.json")], env=env,
                           capture_output=True, text=True, timeout=120)
    assert again.returncode == 0 and "loaded 1 item(s)" in again.stdout
