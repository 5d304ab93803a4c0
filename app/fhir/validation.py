"""Validate incoming resources with the ``fhir.resources.R4B`` models (FHIR 4.0.1 on the wire)
and their codes against the value sets of required bindings (``bindings``).

Pydantic reports error locations as tuples such as ``('identifier', 0, 'system')``; they are
turned into FHIRPath expressions (``Patient.identifier[0].system``) so a client sees exactly
which element is wrong.
"""
from __future__ import annotations

from functools import lru_cache
from typing import Any

from fhir.resources.R4B import get_fhir_model_class
from pydantic import ValidationError

from app.fhir.bindings import binding_issues
from app.fhir.errors import FhirError, issue
from app.fhir.registry import registry

MAX_ISSUES = 25


@lru_cache(maxsize=64)
def _model(resource_type: str) -> Any:
    return get_fhir_model_class(resource_type)


def fhirpath(prefix: str, loc: tuple[Any, ...]) -> str:
    out = prefix
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif part in ("__root__",) or (isinstance(part, str) and part.startswith("function-")):
            continue
        else:
            out += f".{part}"
    return out


def check_resource(resource: Any, *, expected_type: str | None = None, where: str | None = None) -> str:
    """Validate ``resource``; return its type or raise a 400/404 ``FhirError``.

    ``where`` is the FHIRPath of the resource inside a larger document (e.g. a Bundle entry);
    by default errors are located from the resource type itself.
    """
    if not isinstance(resource, dict):
        raise FhirError(400, "structure", "The body must be a JSON object holding a FHIR resource",
                        expression=[where] if where else None)
    rtype = resource.get("resourceType")
    if not isinstance(rtype, str) or not rtype:
        raise FhirError(400, "required", "The resource has no resourceType",
                        expression=[f"{where}.resourceType" if where else "resourceType"])
    if expected_type and rtype != expected_type:
        raise FhirError(400, "invalid", f"The body holds a {rtype} but the URL names {expected_type}",
                        expression=[f"{where}.resourceType" if where else f"{rtype}.resourceType"])
    if rtype not in registry():
        raise FhirError(404 if where is None else 400, "not-supported",
                        f"Resource type '{rtype}' is not supported by this server",
                        expression=[f"{where}.resourceType" if where else "resourceType"])
    try:
        _model(rtype).model_validate(resource)
    except ValidationError as exc:
        prefix = where or rtype
        issues = [
            issue("structure" if err["type"] in ("extra_forbidden", "missing") else "value",
                  f"{fhirpath(prefix, err['loc'])}: {err['msg']}",
                  expression=[fhirpath(prefix, err["loc"])])
            for err in exc.errors()[:MAX_ISSUES]
        ]
        raise FhirError(400, issues[0]["code"], "The resource is not valid FHIR R4", issues=issues) from None
    except (ValueError, TypeError) as exc:
        raise FhirError(400, "value", f"The resource is not valid FHIR R4: {exc}",
                        expression=[where or rtype]) from None
    problems = binding_issues(resource, where or rtype, MAX_ISSUES)
    if problems:
        raise FhirError(400, "code-invalid", "A code is not in the value set its element requires",
                        issues=problems)
    return rtype


def check_bundle(body: Any) -> dict[str, Any]:
    """Check the envelope of a batch/transaction Bundle; its entries are validated one by one."""
    if not isinstance(body, dict) or body.get("resourceType") != "Bundle":
        found = body.get("resourceType") if isinstance(body, dict) else type(body).__name__
        raise FhirError(400, "invalid", f"POST to the base URL takes a Bundle, not {found}",
                        expression=["Bundle.resourceType"])
    if body.get("type") not in ("transaction", "batch"):
        raise FhirError(400, "invalid", f"Bundle.type must be transaction or batch, not {body.get('type')!r}",
                        expression=["Bundle.type"])
    if "entry" in body and not isinstance(body["entry"], list):
        raise FhirError(400, "structure", "Bundle.entry must be an array", expression=["Bundle.entry"])
    return body
