"""``therabridge claim`` (build and scrub a claim from an input Bundle) and ``therabridge rules``.

Exit codes of ``claim``: 0 clean, 1 held by an error, 2 input unusable. The output is a
collection Bundle (Claim + OperationOutcome) serialized with sorted keys, so the same input and
arguments always give the same bytes.
"""
from __future__ import annotations

import hashlib
import json
import sys
import uuid
from datetime import datetime, timezone
from importlib.util import find_spec
from pathlib import Path
from typing import TYPE_CHECKING, Any, Optional

import orjson
import typer

if TYPE_CHECKING:
    from fhir_mappings import ClaimInputs

EXIT_CLEAN, EXIT_HELD, EXIT_UNUSABLE = 0, 1, 2
_NAMESPACE = uuid.UUID("1b0e6d1c-5b38-4a55-8a3e-6f1f0c7f2a10")


def _dump(resource: dict[str, Any]) -> None:
    sys.stdout.buffer.write(orjson.dumps(resource, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS) + b"\n")
    sys.stdout.flush()


def _profile_names() -> list[str]:
    """The payer profiles for ``--profile``'s help, read from ``fhir_mappings``' data file.

    Importing ``fhir_mappings`` loads every rule table; locating the package without running it
    keeps ``--help`` and the other commands from paying for that.
    """
    spec = find_spec("fhir_mappings")
    assert spec is not None and spec.submodule_search_locations
    data = Path(list(spec.submodule_search_locations)[0]) / "data" / "profiles.json"
    return list(json.loads(data.read_text(encoding="utf-8"))["profiles"])


def _unusable(text: str, issues: list[dict[str, Any]] | None = None) -> None:
    from fhir_mappings.outcome import operation_outcome

    _dump(operation_outcome(issues or [{"severity": "fatal", "code": "invalid", "details": {"text": text}}]))
    raise typer.Exit(EXIT_UNUSABLE)


def _default_created(inputs: ClaimInputs) -> datetime:
    """Without --created the claim is dated at the Encounter's end (start), keeping runs reproducible."""
    period = inputs.encounter.resource.get("period") or {}
    value = period.get("end") or period.get("start") or "1970-01-01"
    dt = datetime.fromisoformat(value.replace("Z", "+00:00")) if len(value) > 10 else datetime.fromisoformat(value)
    return dt if dt.tzinfo else dt.replace(tzinfo=timezone.utc)


def claim_command(
    bundle: Path = typer.Argument(..., help="Input Bundle (JSON) with the Encounter, its resources and the fee schedule (ChargeItemDefinitions)."),
    profile: Optional[str] = typer.Option(None, "--profile", help=f"Payer profile: {', '.join(_profile_names())}."),
    claim_id: Optional[str] = typer.Option(None, "--claim-id", help="Claim id (default: derived from the input)."),
    created: Optional[str] = typer.Option(None, "--created", help="Claim.created, ISO datetime with offset."),
    encounter: Optional[str] = typer.Option(None, "--encounter", help="Encounter id when the Bundle has several."),
) -> None:
    """Build and scrub the claim; print a Bundle with the Claim and the OperationOutcome."""
    from fhir_mappings import ClaimInputs, InputError, generate, outcome_has_errors, profile_for

    try:
        raw = bundle.read_bytes()
        data = orjson.loads(raw)
    except (OSError, orjson.JSONDecodeError) as exc:
        _unusable(f"Cannot read {bundle.name} as JSON: {exc}")
    try:
        inputs = ClaimInputs.from_resources(data, encounter_id=encounter)
    except InputError as exc:
        _unusable("", exc.issues)
    try:
        prof = profile_for(inputs, profile)
    except KeyError as exc:
        _unusable(str(exc.args[0]))
    when = _default_created(inputs)
    if created is not None:
        try:
            when = datetime.fromisoformat(created.replace("Z", "+00:00"))
        except ValueError:
            _unusable(f"--created {created!r} is not an ISO datetime.")
        if when.tzinfo is None:
            _unusable("--created needs a UTC offset, e.g. 2025-01-15T10:00:00+00:00.")
    cid = claim_id or "claim-" + hashlib.sha256(raw).hexdigest()[:16]
    claim, outcome = generate(inputs, profile=prof, claim_id=cid, created=when)
    _dump({
        "resourceType": "Bundle",
        "id": f"{cid}-scrub",
        "type": "collection",
        "timestamp": claim["created"],
        "entry": [
            {"fullUrl": f"urn:uuid:{uuid.uuid5(_NAMESPACE, 'Claim/' + cid)}", "resource": claim},
            {"fullUrl": f"urn:uuid:{uuid.uuid5(_NAMESPACE, 'OperationOutcome/' + cid)}", "resource": outcome},
        ],
    })
    raise typer.Exit(EXIT_HELD if outcome_has_errors(outcome) else EXIT_CLEAN)


rules_app = typer.Typer(no_args_is_help=True, help="The scrub rule catalog.")


@rules_app.command("list")
def rules_list(as_json: bool = typer.Option(False, "--json", help="Machine-readable JSON.")) -> None:
    """Print every scrub rule: id, severity, profiles and summary (and source with --json)."""
    from fhir_mappings.rules import catalog

    rules = catalog()
    if as_json:
        _dump({"rules": [
            {"id": r.id, "severity": r.severity, "profiles": list(r.profiles), "when": r.when,
             "summary": r.summary, "source": r.source, "effective": r.effective.isoformat() if r.effective else None}
            for r in rules
        ]})
        return
    width_id = max(len(r.id) for r in rules)
    width_profiles = max(len(", ".join(r.profiles)) for r in rules)
    typer.echo(f"{'ID':<{width_id}}  {'SEVERITY':<8}  {'PROFILES':<{width_profiles}}  SUMMARY")
    for r in rules:
        typer.echo(f"{r.id:<{width_id}}  {r.severity:<8}  {', '.join(r.profiles):<{width_profiles}}  {r.summary}")


def register(app: typer.Typer) -> None:
    app.command("claim")(claim_command)
    app.add_typer(rules_app, name="rules")
