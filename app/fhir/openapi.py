"""The FHIR API as OpenAPI: one set of paths per resource type, with its search parameters.

FastAPI describes a route as it is declared: ``/fhir/{rtype}`` with a free-text type and no
parameters or bodies, because the handlers read the query and body themselves. Generic clients
and fuzzers need more, so this module rewrites the FHIR part of the document from the same
sources the server runs on: the registry (types and their search parameters), the
OperationDefinitions the operations register, and ``data/openapi.json`` (the interactions and
their answers, FHIR R4 http.html and search.html).

Each resource type gets its own paths (``/fhir/Encounter``, ``/fhir/Encounter/{id}``, ...)
rather than one path with the type as an enumerated parameter: OpenAPI ties parameters and
bodies to a path, so only per-type paths can say that ``Encounter`` is searched by ``date`` and
``patient`` while ``Patient`` is searched by ``birthdate``, and that a create of an Encounter
takes an Encounter.

Which interactions a type offers comes from the routes: the generic ``/fhir/{rtype}...`` routes
for most types; a type with routes of its own (``AuditEvent``, read and search only) offers
exactly those.
"""
from __future__ import annotations

import json
import re
from functools import lru_cache
from pathlib import Path
from typing import Any

from app.fhir.registry import Registry, ResourceType

DATA = Path(__file__).resolve().parent / "data" / "openapi.json"
FHIR_JSON = "application/fhir+json"
PREFIX = "/fhir"
GENERIC = "{rtype}"
SECURITY = [{"smart": []}, {"bearer": []}]
SPEC = "http://hl7.org/fhir/R4"

# A FHIR string holds no control characters but tab, carriage return and line feed (R4
# datatypes.html#string); search values and string parameters are FHIR strings.
FHIR_STRING = "^[^\\u0000-\\u0008\\u000B\\u000C\\u000E-\\u001F]+$"
NO_SPACE = "[^\\s\\u0000-\\u001F]+"

# Operation parameter types that travel in the query string (``name=value``) as well as in a
# Parameters body, as JSON Schema: the primitives, and a Reference written ``Type/id``.
QUERY_TYPES: dict[str, dict[str, Any]] = {
    "code": {"type": "string", "pattern": f"^{NO_SPACE}( {NO_SPACE})*$"},
    "string": {"type": "string", "pattern": FHIR_STRING},
    "uri": {"type": "string", "pattern": f"^{NO_SPACE}$"},
    "id": {"type": "string", "pattern": "^[A-Za-z0-9\\-.]{1,64}$"},
    "date": {"type": "string", "pattern": "^[0-9]{4}(-(0[1-9]|1[0-2])(-(0[1-9]|[12][0-9]|3[01]))?)?$"},
    "dateTime": {"type": "string", "pattern": "^[0-9]{4}(-[0-9]{2}(-[0-9]{2}(T[0-9:.]+(Z|[+-][0-9]{2}:[0-9]{2}))?)?)?$"},
    "boolean": {"type": "boolean"},
    "integer": {"type": "integer"},
    "decimal": {"type": "number"},
    "Reference": {"type": "string", "pattern": "^[A-Z][A-Za-z]+/[A-Za-z0-9\\-.]{1,64}$"},
}


@lru_cache(maxsize=1)
def _data() -> dict[str, Any]:
    return json.loads(DATA.read_text(encoding="utf-8"))


def _ref(kind: str, name: str) -> dict[str, str]:
    return {"$ref": f"#/components/{kind}/{name}"}


def _shape(path: str) -> str:
    """A path below ``/fhir/<type>`` with every ``{placeholder}`` written ``{}``: the key that
    maps a route to an interaction whatever its parameters are called."""
    return re.sub(r"\{[^}]*\}", "{}", path)


def _interaction_paths() -> dict[tuple[str, str], str]:
    """(method, shape below the type) → interaction name, from the interactions table."""
    return {(spec["method"], _shape(spec["path"])): name for name, spec in _data()["interactions"].items()}


def offered_interactions(paths: dict[str, Any], registry: Registry) -> dict[str, dict[str, str | None]]:
    """For each resource type, its interactions, each with the summary of the type's own route
    serving it (None for the generic routes).

    ``paths`` is FastAPI's description of the routes. A type with non-operation routes of its own
    is served by those alone (they are matched before the generic ones); the others by the
    generic ``/fhir/{rtype}`` routes.
    """
    by_shape = _interaction_paths()

    def interactions(prefix: str) -> dict[str, str | None]:
        found: dict[str, str | None] = {}
        for path, item in paths.items():
            if "$" in path or not (path == prefix or path.startswith(prefix + "/")):
                continue
            for method, operation in item.items():
                name = by_shape.get((method, _shape(path[len(prefix):])))
                if name:
                    found[name] = operation.get("summary", "")
        return found

    generic = dict.fromkeys(interactions(f"{PREFIX}/{GENERIC}"))
    return {name: interactions(f"{PREFIX}/{name}") or generic for name in sorted(registry.types)}


def _search_parameter(rtype: ResourceType | None, name: str, ptype: str, paths: tuple[str, ...],
                      targets: tuple[str, ...], description: str | None = None) -> dict[str, Any]:
    """One search parameter: repeatable (AND), each value a comma-separated list (OR)."""
    where = ", ".join(f"{rtype.name}.{p}" for p in paths) if rtype and paths else None
    text = description or (f"Searches {where}." if where else "")
    if targets:
        text += f" Points at {', '.join(targets)}."
    return {"name": name, "in": "query", "required": False, "style": "form", "explode": True,
            "description": f"{text} {_data()['value_syntax'][ptype]['description']}".strip(),
            "schema": {"type": "array", "items": _ref("schemas", f"SearchValue-{ptype}")}}


def _value_schemas() -> dict[str, Any]:
    """The syntax of one search value of each parameter type (several may be joined by commas)."""
    out = {}
    for ptype, syntax in _data()["value_syntax"].items():
        schema: dict[str, Any] = {"type": "string", "minLength": 1, "description": f"A {ptype} search value.",
                                  "pattern": FHIR_STRING}
        if "pattern" in syntax:
            one = syntax["pattern"].removeprefix("^").removesuffix("$")
            schema["pattern"] = f"^{one}(,{one})*$"
        out[f"SearchValue-{ptype}"] = schema
    return out


def _includes(rtype: ResourceType) -> list[str]:
    out = []
    for p in rtype.reference_params:
        out.append(f"{rtype.name}:{p.name}")
        out += [f"{rtype.name}:{p.name}:{target}" for target in p.targets]
    return out


def _revincludes(rtype: ResourceType, registry: Registry) -> list[str]:
    return sorted(f"{other.name}:{p.name}" for other in registry.types.values() for p in other.reference_params
                  if not p.targets or rtype.name in p.targets)


def _result_parameter(name: str, schema: dict[str, Any]) -> dict[str, Any]:
    param: dict[str, Any] = {"name": name, "in": "query", "required": False,
                             "description": _data()["result_parameters"][name]["description"], "schema": schema}
    if schema.get("type") == "array":
        param.update(style="form", explode=True)
    return param


def _type_result_parameters(rtype: ResourceType, registry: Registry) -> dict[str, dict[str, Any]]:
    """``_sort``, ``_include`` and ``_revinclude`` with the type's sort keys and include paths."""
    sorts = ["_lastUpdated", "_id", *rtype.sort_params]
    out = {"_sort": _result_parameter("_sort", {"type": "string",
                                                "enum": [sign + key for key in sorts for sign in ("", "-")]})}
    if _includes(rtype):
        out["_include"] = _result_parameter("_include", {"type": "array", "items": {"type": "string",
                                                                                    "enum": _includes(rtype)}})
    if _revincludes(rtype, registry):
        out["_revinclude"] = _result_parameter("_revinclude", {"type": "array", "items": {
            "type": "string", "enum": _revincludes(rtype, registry)}})
    return out


def parameter_components(registry: Registry) -> dict[str, dict[str, Any]]:
    """Every query and header parameter, once: the operations refer to them by name.

    Names: ``<Type>-<param>`` for a type's own parameters, ``_id`` ... ``_total`` for the ones
    every type shares, ``history-<param>`` and the header names."""
    data = _data()
    out: dict[str, dict[str, Any]] = {}
    for name, spec in data["common_search_parameters"].items():
        out[name] = _search_parameter(None, name, spec["type"], (), (), spec["description"])
    for name, spec in data["result_parameters"].items():
        if "schema" in spec:
            out[name] = _result_parameter(name, spec["schema"])
    for name, spec in data["history_parameters"].items():
        out[f"history-{name}"] = {"name": name, "in": "query", "required": False, "description": spec["description"],
                                  "schema": spec["schema"]}
    for name, spec in data["headers"].items():
        out[name] = {"name": name, "in": "header", "required": False, "description": spec["description"],
                     "schema": spec["schema"]}
    for rtype in registry.types.values():
        for p in rtype.params.values():
            out[f"{rtype.name}-{p.name}"] = _search_parameter(rtype, p.name, p.type, p.paths, p.targets, p.documentation)
        for name, param in _type_result_parameters(rtype, registry).items():
            out[f"{rtype.name}-{name}"] = param
    return dict(sorted(out.items()))


def _search_names(rtype: ResourceType) -> list[str]:
    return [*_data()["common_search_parameters"], *(f"{rtype.name}-{p}" for p in rtype.params)]


def _result_names(rtype: ResourceType, registry: Registry) -> list[str]:
    per_type = _type_result_parameters(rtype, registry)
    return [f"{rtype.name}-{name}" if name in per_type else name
            for name, spec in _data()["result_parameters"].items() if name in per_type or "schema" in spec]


def _refs(names: list[str]) -> list[dict[str, str]]:
    return [_ref("parameters", name) for name in names]


def search_form_schema(rtype: ResourceType, registry: Registry, params: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """The form body of ``POST <Type>/_search``: the same parameters as the query of a GET
    (``params``: the parameter components)."""
    fields = [params[name] for name in _search_names(rtype) + _result_names(rtype, registry)]
    return {"type": "object", "description": f"Search parameters of {rtype.name}, form-encoded.",
            "properties": {p["name"]: p["schema"] for p in fields}}


def _body(schema: dict[str, Any], *, required: bool = True, description: str = "") -> dict[str, Any]:
    return {"required": required, "description": description,
            "content": {FHIR_JSON: {"schema": schema}, "application/json": {"schema": schema}}}


def _answer(description: str, schema: dict[str, Any] | None, headers: list[str] = ()) -> dict[str, Any]:
    out: dict[str, Any] = {"description": description}
    if schema is not None:
        out["content"] = {FHIR_JSON: {"schema": schema}}
    if headers:
        out["headers"] = {h: _ref("headers", h) for h in headers}
    return out


def _errors(codes: list[str]) -> dict[str, Any]:
    out: dict[str, Any] = {code: _ref("responses", f"Error{code}") for code in codes}
    out["default"] = _ref("responses", "OperationOutcome")
    return out


def _schema_of(type_name: str, registry: Registry) -> dict[str, Any]:
    known = type_name in registry.types or type_name in STRUCTURAL_SCHEMAS
    return _ref("schemas", type_name) if known else _ref("schemas", "Resource")


def interaction_operation(rtype: ResourceType, registry: Registry, name: str, summary: str | None) -> dict[str, Any]:
    """One interaction of one type as an OpenAPI operation."""
    spec = _data()["interactions"][name]
    type_schema = _ref("schemas", rtype.name)
    params: list[dict[str, Any]] = []
    if "{id}" in spec["path"]:
        params.append({"name": "id", "in": "path", "required": True, "description": f"Logical id of the {rtype.name}",
                       "schema": _ref("schemas", "id")})
    if "{vid}" in spec["path"]:
        params.append({"name": "vid", "in": "path", "required": True, "description": "Version id (1, 2, ...)",
                       "schema": {"type": "string", "pattern": "^[0-9]{1,18}$"}})
    if spec.get("search"):
        params += _refs(_search_names(rtype) + _result_names(rtype, registry))
    if spec.get("criteria"):
        params += _refs(_search_names(rtype))
    if spec.get("history"):
        params += _refs([f"history-{name}" for name in _data()["history_parameters"]])
    if spec.get("elements"):
        params += _refs(["_elements"])
    params += _refs(spec.get("headers", []))

    returns = {"type": type_schema, "Bundle": _ref("schemas", "Bundle"),
               "OperationOutcome": _ref("schemas", "OperationOutcome")}[spec["returns"]]
    headers = ["ETag", "Last-Modified"] if spec.get("version_headers") else []
    if spec.get("body"):
        headers = ["ETag", "Last-Modified", "Location"]
    answers = {code: _answer(text.format(type=rtype.name), returns, headers) for code, text in spec["success"].items()}
    operation: dict[str, Any] = {
        "tags": [rtype.name],
        "operationId": f"{rtype.name}-{name}",
        "summary": spec["summary"].format(type=rtype.name),
        "description": f"FHIR `{name.removesuffix('-post')}` interaction" + (f": {summary}." if summary else "."),
        "parameters": params,
        "responses": {**answers, **_errors(spec["errors"])},
        "security": SECURITY,
    }
    if spec.get("body"):
        schema = type_schema
        if name == "update":
            schema = {"allOf": [type_schema], "required": ["resourceType", "id"]}
        operation["requestBody"] = _body(schema, description=f"The {rtype.name} (FHIR R4 JSON).")
    if spec.get("form"):
        operation["requestBody"] = {"required": False, "content": {
            "application/x-www-form-urlencoded": {"schema": _ref("schemas", f"{rtype.name}-search-form")}}}
    return operation


def type_paths(registry: Registry, offered: dict[str, dict[str, str | None]]) -> dict[str, dict[str, Any]]:
    """``/fhir/<Type>...`` paths for every type and interaction it offers."""
    paths: dict[str, dict[str, Any]] = {}
    interactions = _data()["interactions"]
    for type_name, names in offered.items():
        rtype = registry.types[type_name]
        for name, summary in names.items():
            spec = interactions[name]
            item = paths.setdefault(f"{PREFIX}/{type_name}{spec['path']}", {})
            item[spec["method"]] = interaction_operation(rtype, registry, name, summary)
    return paths


# -- operations ($name) ------------------------------------------------------------------
def _operation_target(path: str) -> tuple[str, str, bool] | None:
    """(resource type, operation code, instance level) of ``/fhir/Type[/{id}]/$code``."""
    m = re.fullmatch(rf"{PREFIX}/([A-Z][A-Za-z]+)(/\{{[^}}]+\}})?/\$([a-z][a-z\-]*)", path)
    return (m.group(1), m.group(3), m.group(2) is not None) if m else None


def describe_operation(path: str, operation: dict[str, Any], definitions: list[dict[str, Any]],
                       registry: Registry) -> dict[str, Any]:
    """Parameters, body and answers of a ``$operation`` route, from its OperationDefinition."""
    target = _operation_target(path)
    if target is None:
        return operation
    type_name, code, instance = target
    definition = next((d for d in definitions if d["code"] == code and type_name in d.get("resource", [])
                       and d.get("instance" if instance else "type")), None)
    if definition is None:
        return operation
    inputs = [p for p in definition["parameter"] if p["use"] == "in"]
    primitive = [p for p in inputs if p["type"] in QUERY_TYPES]
    resources = [p for p in inputs if p["type"] not in QUERY_TYPES]
    params = [dict(p, schema=_ref("schemas", "id"), description=f"Logical id of the {type_name}")
              for p in operation.get("parameters", []) if p.get("in") == "path"]
    params += [{"name": p["name"], "in": "query", "required": False, "schema": QUERY_TYPES[p["type"]],
                "description": f"`{p['name']}` ({p['type']}); may also be sent in a Parameters body."} for p in primitive]
    answers_by_code = _data()["operation_answers"].get(definition["id"])
    if answers_by_code is None:
        out = next((p["type"] for p in definition["parameter"] if p["use"] == "out" and p["name"] == "return"), None)
        answers_by_code = {"200": out or "OperationOutcome"}
    answers = {code_: _answer(f"`{type_}`", _schema_of(type_, registry)) for code_, type_ in answers_by_code.items()}
    errors = ["400", "401", "403", "413", "415"] + (["404"] if instance else []) + \
             ([] if "422" in answers else ["422"])
    parameters_body = {"type": "object", "required": ["resourceType"], "properties": {
        "resourceType": {"type": "string", "enum": ["Parameters"]},
        "parameter": {"type": "array", "items": {
            "type": "object", "required": ["name"], "additionalProperties": True,
            "properties": {"name": {"type": "string", "enum": [p["name"] for p in inputs]}}}}}}
    body_schemas = [parameters_body] + [_schema_of(p["type"], registry) for p in resources]
    body_required = bool(resources) and not instance
    described = {
        "tags": [type_name],
        "operationId": f"{type_name}-{code}-{'instance' if instance else 'type'}",
        "summary": operation.get("summary", f"${code}"),
        "description": f"{definition['description']} Definition: `GET {PREFIX}/OperationDefinition/{definition['id']}`.",
        "parameters": params,
        "requestBody": _body(body_schemas[0] if len(body_schemas) == 1 else {"oneOf": body_schemas},
                             required=body_required,
                             description="A Parameters resource" + (
                                 f", or the {' or '.join(p['type'] for p in resources)} itself" if resources else "")
                             + "."),
        "responses": {**answers, **_errors(errors)},
        "security": SECURITY,
    }
    return described


# -- shared components -------------------------------------------------------------------
def _resource_schema(name: str, description: str, extra: dict[str, Any] | None = None,
                     required: tuple[str, ...] = ()) -> dict[str, Any]:
    return {
        "type": "object",
        "description": description,
        "required": ["resourceType", *required],
        "properties": {"resourceType": {"type": "string", "enum": [name]}, "id": _ref("schemas", "id"),
                       "meta": _ref("schemas", "Meta"), **(extra or {})},
        "additionalProperties": True,
        "externalDocs": {"url": f"{SPEC}/{name.lower()}.html"},
    }


_ENTRY_REQUEST = {"type": "object", "required": ["method", "url"], "properties": {
    "method": {"type": "string", "enum": ["GET", "HEAD", "POST", "PUT", "DELETE"]},
    "url": {"type": "string", "minLength": 1}, "ifNoneExist": {"type": "string"}, "ifMatch": {"type": "string"},
    "ifNoneMatch": {"type": "string"}, "ifModifiedSince": {"type": "string"}}}

STRUCTURAL_SCHEMAS: dict[str, dict[str, Any]] = {
    "OperationOutcome": _resource_schema("OperationOutcome", "What went wrong (or what happened), issue by issue.", {
        "issue": {"type": "array", "minItems": 1, "items": {"type": "object", "required": ["severity", "code"],
                                                             "properties": {
            "severity": {"type": "string", "enum": ["fatal", "error", "warning", "information"]},
            "code": {"type": "string"}, "diagnostics": {"type": "string"},
            "details": {"type": "object"},
            "expression": {"type": "array", "items": {"type": "string"},
                           "description": "FHIRPath of the element at fault"}}}}}, ("issue",)),
    "Bundle": _resource_schema("Bundle", "A searchset, history, transaction-response or batch-response Bundle.", {
        "type": {"type": "string"}, "total": {"type": "integer", "minimum": 0},
        "link": {"type": "array", "items": {"type": "object", "properties": {
            "relation": {"type": "string"}, "url": {"type": "string"}}}},
        "entry": {"type": "array", "items": {"type": "object", "properties": {
            "fullUrl": {"type": "string"}, "resource": _ref("schemas", "Resource"),
            "search": {"type": "object"}, "request": {"type": "object"}, "response": {"type": "object"}}}}},
        ("type",)),
    "TransactionBundle": _resource_schema("Bundle", "A transaction (all or nothing) or batch (each entry on its "
                                                    "own) Bundle: every entry has a request.", {
        "type": {"type": "string", "enum": ["transaction", "batch"]},
        "entry": {"type": "array", "items": {"type": "object", "required": ["request"], "properties": {
            "fullUrl": {"type": "string"}, "resource": _ref("schemas", "Resource"), "request": _ENTRY_REQUEST}}}},
        ("type",)),
    "Parameters": _resource_schema("Parameters", "Operation parameters.", {
        "parameter": {"type": "array", "items": {"type": "object", "required": ["name"],
                                                 "properties": {"name": {"type": "string"}}}}}),
    "CapabilityStatement": _resource_schema("CapabilityStatement", "What this server offers."),
    "OperationDefinition": _resource_schema("OperationDefinition", "An operation this server offers."),
}


def components(registry: Registry) -> dict[str, Any]:
    """Schemas (one per resource type, kept shallow: the server validates the full structure),
    error answers, headers and the security schemes."""
    data = _data()
    schemas: dict[str, Any] = {
        "id": {"type": "string", "pattern": data["id_pattern"], "description": "FHIR id"},
        "Meta": {"type": "object", "properties": {
            "versionId": {"type": "string"}, "lastUpdated": {"type": "string"},
            "profile": {"type": "array", "items": {"type": "string"}},
            "tag": {"type": "array", "items": {"type": "object"}}}},
        "Resource": {"type": "object", "required": ["resourceType"], "additionalProperties": True,
                     "properties": {"resourceType": {"type": "string"}, "id": _ref("schemas", "id"),
                                    "meta": _ref("schemas", "Meta")}},
        **STRUCTURAL_SCHEMAS,
    }
    schemas.update(_value_schemas())
    params = parameter_components(registry)
    for name in sorted(registry.types):
        schemas[name] = _resource_schema(name, f"A FHIR R4 {name}; the server checks it against the R4 structure "
                                               "and answers 400 with the FHIRPath of each problem.")
        schemas[f"{name}-search-form"] = search_form_schema(registry.types[name], registry, params)
    outcome = {FHIR_JSON: {"schema": _ref("schemas", "OperationOutcome")}}
    responses = {f"Error{code}": {"description": text, "content": outcome} for code, text in data["errors"].items()}
    responses["Error401"]["headers"] = {"WWW-Authenticate": _ref("headers", "WWW-Authenticate")}
    responses["Error429"]["headers"] = {"Retry-After": _ref("headers", "Retry-After")}
    responses["OperationOutcome"] = {"description": "Any other failure, as an OperationOutcome.", "content": outcome}
    text = {"schema": {"type": "string"}}
    headers = {
        "ETag": {"description": "Version of the resource, `W/\"<versionId>\"`", **text},
        "Last-Modified": {"description": "When this version was recorded (HTTP date)", **text},
        "Location": {"description": "URL of the version written: `<base>/<Type>/<id>/_history/<vid>`", **text},
        "WWW-Authenticate": {"description": "Bearer challenge (RFC 6750)", **text},
        "Retry-After": {"description": "Seconds to wait", "schema": {"type": "integer"}},
    }
    return {"schemas": schemas, "parameters": params, "responses": responses,
            "headers": headers}


def security_schemes(scopes: list[str]) -> dict[str, Any]:
    """SMART on FHIR (OAuth 2.0: Backend Services and App Launch) and the bearer token it issues."""
    flows_scopes = {s: "SMART scope" for s in scopes}
    return {
        "smart": {
            "type": "oauth2",
            "description": "SMART on FHIR. Systems: client_credentials with a private_key_jwt assertion (Backend "
                           "Services); people and apps: authorization code with PKCE (App Launch). Scopes "
                           "`patient|user|system/<Type or *>.<cruds or read/write>` (SMART v1 and v2). "
                           f"Discovery: `{PREFIX}/.well-known/smart-configuration`.",
            "flows": {
                "clientCredentials": {"tokenUrl": "/auth/token", "scopes": flows_scopes},
                "authorizationCode": {"authorizationUrl": "/auth/authorize", "tokenUrl": "/auth/token",
                                      "refreshUrl": "/auth/token", "scopes": flows_scopes},
            },
        },
        "bearer": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT",
                   "description": "An access token from `/auth/token`."},
    }


# -- the whole FHIR part -----------------------------------------------------------------
def _system_operation(path: str, method: str, operation: dict[str, Any], definitions: list[dict[str, Any]],
                      registry: Registry) -> dict[str, Any]:
    """The routes of the FHIR base itself: batch/transaction, system history, metadata and the
    OperationDefinitions."""
    base = {"tags": ["FHIR"], "summary": operation.get("summary", ""), "operationId": operation.get("operationId")}
    if (path, method) == (PREFIX, "post"):
        return {**base, "operationId": "batch-or-transaction",
                "description": "FHIR `transaction` (all entries or none) and `batch` (each entry on its own) "
                               "interactions.",
                "parameters": _refs(["Prefer"]),
                "requestBody": _body(_ref("schemas", "TransactionBundle"), description="A transaction or batch Bundle."),
                "responses": {"200": _answer("A transaction-response or batch-response Bundle.", _ref("schemas", "Bundle")),
                              **_errors(["400", "401", "403", "404", "409", "412", "413", "415", "422"])},
                "security": SECURITY}
    if (path, method) == (f"{PREFIX}/_history", "get"):
        return {**base, "operationId": "history-system", "description": "FHIR `history-system` interaction.",
                "parameters": _refs([f"history-{name}" for name in _data()["history_parameters"]]),
                "responses": {"200": _answer("A history Bundle, newest first.", _ref("schemas", "Bundle")),
                              **_errors(["400", "401", "403"])},
                "security": SECURITY}
    if (path, method) == (f"{PREFIX}/metadata", "get"):
        return {**base, "operationId": "capabilities", "description": "FHIR `capabilities` interaction; no token needed.",
                "responses": {"200": _answer("The CapabilityStatement.", _ref("schemas", "CapabilityStatement")),
                              **_errors(["406"])},
                "security": []}
    if path.startswith(f"{PREFIX}/OperationDefinition/") and method == "get":
        name = operation["parameters"][0]["name"]
        return {**base, "operationId": "OperationDefinition-read", "description": "No token needed.",
                "parameters": [{"name": name, "in": "path", "required": True, "description": "Operation id",
                                "schema": {"type": "string", "enum": sorted(d["id"] for d in definitions)}}],
                "responses": {"200": _answer("The OperationDefinition.", _ref("schemas", "OperationDefinition")),
                              **_errors(["404"])},
                "security": []}
    if "$" in path:
        described = describe_operation(path, operation, definitions, registry)
        if method == "get" and described is not operation:  # an operation that reads: GET takes no body
            described = {k: v for k, v in described.items() if k != "requestBody"}
            described["operationId"] += "-get"
        return described
    return operation


def _is_type_route(path: str, registry: Registry) -> bool:
    """A non-operation route under ``/fhir/<type>`` (generic or a type's own), replaced by the per-type paths."""
    if "$" in path or not path.startswith(PREFIX + "/"):
        return False
    first = path[len(PREFIX) + 1:].split("/")[0]
    return first == GENERIC or first in registry.types


def describe_fhir(paths: dict[str, Any], registry: Registry, definitions: list[dict[str, Any]],
                  scopes: list[str]) -> tuple[dict[str, Any], dict[str, Any]]:
    """FastAPI's ``paths`` with the FHIR routes rewritten, and the components they use."""
    offered = offered_interactions(paths, registry)
    out: dict[str, Any] = {}
    for path, item in paths.items():
        if _is_type_route(path, registry):
            continue
        out[path] = {method: _system_operation(path, method, op, definitions, registry) if path.startswith(PREFIX)
                     else op for method, op in item.items()}
    out.update(type_paths(registry, offered))
    parts = components(registry)
    parts["securitySchemes"] = security_schemes(scopes)
    return out, parts


def tags(registry: Registry) -> list[dict[str, Any]]:
    """One tag per resource type, linking its FHIR R4 page."""
    return [{"name": name, "description": f"FHIR R4 {name}", "externalDocs": {"url": f"{SPEC}/{name.lower()}.html"}}
            for name in sorted(registry.types)]
