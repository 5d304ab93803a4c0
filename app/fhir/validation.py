"""Validate incoming resources with the ``fhir.resources.R4B`` models (FHIR 4.0.1 on the wire)
and their codes against the value sets of required bindings (``bindings``).

Pydantic reports error locations as tuples such as ``('identifier', 0, 'system')``; they are
turned into FHIRPath expressions (``Patient.identifier[0].system``) so a client sees exactly
which element is wrong.

The models check an id's characters but not its length: a FHIR id is at most 64 characters
(R4 datatypes ``id``), in ``Resource.id`` and in the ``Type/id`` of every literal reference.
Both are checked here, so a longer one is refused as invalid on every database alike (the
store's columns hold 64).
"""
from __future__ import annotations

from functools import lru_cache
from typing import Any, Iterator

from fhir.resources.R4B import get_fhir_model_class
from pydantic import ValidationError

from app.fhir.bindings import binding_issues
from app.fhir.errors import FhirError, issue
from app.fhir.registry import registry

MAX_ISSUES = 25
MAX_ID = 64


@lru_cache(maxsize=64)
def _model(resource_type: str) -> Any:
    return get_fhir_model_class(resource_type)


def fhirpath(prefix: str, loc: tuple[Any, ...]) -> str:
    out = prefix
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif part in ("__root__", "root") or (isinstance(part, str) and part.startswith("function-")):
            continue
        else:
            out += f".{part}"
    return out


def check_resource(resource: Any, *, expected_type: str | None = None, where: str | None = None,
                   served: bool = True) -> str:
    """Validate ``resource``; return its type or raise a 400/404 ``FhirError``.

    ``where`` is the FHIRPath of the resource inside a larger document (e.g. a Bundle entry);
    by default errors are located from the resource type itself. ``served=False`` admits a type
    the store does not serve (an operation's Parameters).
    """
    if not isinstance(resource, dict):
        raise FhirError(400, "structure", "The body must be a JSON object holding a FHIR resource",
                        expression=[where or expected_type or "Resource"])
    rtype = resource.get("resourceType")
    if not isinstance(rtype, str) or not rtype:
        raise FhirError(400, "required", "The resource has no resourceType",
                        expression=[f"{where}.resourceType" if where else "resourceType"])
    if expected_type and rtype != expected_type:
        raise FhirError(400, "invalid", f"The body holds a {rtype} but the URL names {expected_type}",
                        expression=[f"{where}.resourceType" if where else f"{rtype}.resourceType"])
    if served and rtype not in registry():
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
    except KeyError:  # the models look up a nested resource's type (contained, Bundle.entry) by name
        raise FhirError(400, "value", "The resource holds a resource of an unknown type",
                        expression=[where or rtype]) from None
    problems = binding_issues(resource, where or rtype, MAX_ISSUES)
    if problems:
        raise FhirError(400, "code-invalid", "A code is not in the value set its element requires",
                        issues=problems)
    check_ids(resource, where or rtype)
    return rtype


def check_ids(resource: dict[str, Any], prefix: str) -> None:
    """400 for an id over 64 characters: the resource's own, or one in a literal reference."""
    rid = resource.get("id")
    if isinstance(rid, str) and len(rid) > MAX_ID:
        raise FhirError(400, "value", f"An id is at most {MAX_ID} characters; this one has {len(rid)}",
                        expression=[f"{prefix}.id"])
    issues = [issue("value", f"{path}: the reference names an id (or type) over {MAX_ID} characters, which no "
                    "FHIR resource can have", expression=[path])
              for path in _long_references(resource, prefix)][:MAX_ISSUES]
    if issues:
        raise FhirError(400, "value", issues[0]["diagnostics"], issues=issues)


def _long_references(node: Any, path: str) -> Iterator[str]:
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "reference" and isinstance(value, str):
                parts = _literal_parts(value)
                if parts and max(len(parts[0]), len(parts[1])) > MAX_ID:
                    yield f"{path}.reference"
            elif isinstance(value, (dict, list)):
                yield from _long_references(value, f"{path}.{key}")
    elif isinstance(node, list):
        for i, item in enumerate(node):
            yield from _long_references(item, f"{path}[{i}]")


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


def _literal_parts(ref: str) -> tuple[str, str] | None:
    """(type, id) of a literal reference ``[absolute base/]Type/id[/_history/version]`` (R4
    references.html); None for ``urn:``, ``#local`` and conditional (``Type?query``) ones."""
    if ref.startswith(("urn:", "#")) or "?" in ref:
        return None
    absolute = "://" in ref
    parts = (ref.split("://", 1)[1] if absolute else ref).split("/")
    if len(parts) >= 4 and parts[-2] == "_history":
        parts = parts[:-2]
    if absolute:
        parts = parts[1:]  # the host
        return (parts[-2], parts[-1]) if len(parts) >= 2 else None
    return (parts[0], parts[1]) if len(parts) == 2 else None
