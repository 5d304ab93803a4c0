"""The command line: load, openapi (and the committed OpenAPI document staying in step), and
commands starting without loading the server."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from typer.testing import CliRunner

from app.cli import app as cli
from app.main import openapi_document
from tests.app.fhir.helpers import patient

ROOT = Path(__file__).resolve().parents[2]

# What a command that does not serve, migrate or load must not import: the server's modules and
# the libraries behind them (each adds tenths of a second to every start), and Rich, whose help
# formatting the command line does not use.
_SERVER_PACKAGES = ("fastapi", "starlette", "uvicorn", "sqlalchemy", "sqlmodel", "alembic", "asyncpg", "psycopg",
                    "httpx", "authlib", "joserfc", "cryptography", "fhir", "fhir_core", "pydantic_settings",
                    "asyncssh", "pyx12", "argon2", "rich", "markdown_it")
_PROBE = r"""
import json, sys
import typer.main
from app.cli import app

def paths(command, prefix):
    yield prefix
    for name, sub in sorted(getattr(command, "commands", {}).items()):
        yield from paths(sub, prefix + [name])

runs = [p + ["--help"] for p in paths(typer.main.get_command(app), [])] + json.loads(sys.argv[2])
loaded = {"import app.cli": sorted(sys.modules)}
for argv in runs:
    before = set(sys.modules)
    try:
        app(argv)
    except SystemExit as stop:
        assert stop.code in (0, None), (argv, stop.code)
    loaded[" ".join(argv)] = sorted(set(sys.modules) - before)
with open(sys.argv[1], "w") as out:
    json.dump(loaded, out)
"""


def _server_modules(modules: list[str], allowed: tuple[str, ...]) -> list[str]:
    """The modules of ``modules`` that belong to the server (or its libraries) and not to ``allowed``."""
    def heavy(name: str) -> bool:
        top = name.split(".")[0]
        if name.startswith(allowed):
            return False
        if top == "app":
            return name != "app" and not name.startswith("app.cli")
        return top in _SERVER_PACKAGES or top in ("fhir_mappings", "payer_adapters")
    return [m for m in modules if heavy(m)]


def test_commands_start_without_loading_the_server(tmp_path):
    """``--help`` of every command, ``rules list`` and ``x12 decode`` import neither the server nor its
    database, web and FHIR model libraries: only what the command itself runs."""
    ack = tmp_path / "ack.x12"
    ack.write_text("ISA*00*          *00*          *ZZ*CLEARHOUSE01   *ZZ*THERABRIDGE    *250115*1032*^*00501*"
                   "000000777*0*T*:~GS*FA*CLEARHOUSE01*THERABRIDGE*20250115*1032*777*X*005010X231A1~"
                   "ST*999*0001*005010X231A1~AK1*HC*105*005010X222A1~AK2*837*0001*005010X222A1~IK5*A~"
                   "AK9*A*1*1*1~SE*6*0001~GE*1*777~IEA*1*000000777~")
    report = tmp_path / "modules.json"
    commands = [["rules", "list"], ["rules", "list", "--json"], ["x12", "decode", "--compact", str(ack)]]
    proc = subprocess.run([sys.executable, "-c", _PROBE, str(report), json.dumps(commands)], cwd=ROOT,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    loaded = json.loads(report.read_text())
    assert len(loaded) > 25  # the import itself, every command's --help and the commands above
    # The codec names the product's systems from fhir_mappings.vocabulary (pure, like the codec).
    allowed = {"rules list": ("fhir_mappings",), "x12 decode": ("payer_adapters", "fhir_mappings")}
    for run, modules in loaded.items():
        permitted = next((a for prefix, a in allowed.items() if run.startswith(prefix) and "--help" not in run), ())
        assert _server_modules(modules, permitted) == [], f"`therabridge {run}` loads what it does not need"


def test_profile_help_lists_the_mapping_profiles():
    """``claim --profile``'s help reads the profile names from the data file without importing the
    mapping package; they are the names the package itself knows."""
    from app.cli.claim import _profile_names
    from fhir_mappings.profiles import profile_names

    assert _profile_names() == profile_names()


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
