"""The served OpenAPI document describes the FHIR API well enough for generic clients and fuzzers:
valid OpenAPI, one set of paths per resource type with its search parameters, request bodies,
operations with their parameters, SMART security and OperationOutcome errors."""
from __future__ import annotations

from typing import Any

import httpx
import pytest
from openapi_spec_validator import validate

from app.fhir.operations import operation_definitions
from app.fhir.registry import registry

RESULT_PARAMETERS = ("_count", "_page", "_sort", "_include", "_revinclude", "_elements", "_summary", "_total")


@pytest.fixture(scope="module")
async def document(app) -> dict[str, Any]:  # type: ignore[no-untyped-def]
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://testserver") as client:
        response = await client.get("/openapi.json")
    assert response.status_code == 200
    return response.json()


def resolve(doc: dict[str, Any], node: dict[str, Any]) -> dict[str, Any]:
    """Follow a local ``$ref`` (``#/components/...``)."""
    while "$ref" in node:
        target: Any = doc
        for part in node["$ref"].removeprefix("#/").split("/"):
            target = target[part]
        node = target
    return node


def parameters(doc: dict[str, Any], operation: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {p["name"]: p for p in (resolve(doc, p) for p in operation.get("parameters", []))}


def test_document_is_valid_openapi(document):
    validate(document)  # raises on any violation of the OpenAPI 3.1 schema or unresolvable $ref


def test_each_type_is_searched_by_its_own_parameters(document):
    reg = registry()
    for name, rtype in reg.types.items():
        search = document["paths"][f"/fhir/{name}"]["get"]
        params = parameters(document, search)
        for pname, spec in rtype.params.items():
            assert pname in params, f"{name}?{pname} is not described"
            assert params[pname]["in"] == "query"
            value = resolve(document, params[pname]["schema"]["items"])
            assert value["description"].startswith(f"A {spec.type} ")
        assert {"_id", "_lastUpdated", *RESULT_PARAMETERS} - {"_include", "_revinclude"} <= set(params)
        sort = params["_sort"]["schema"]["enum"]
        assert {"_lastUpdated", "-_lastUpdated", "_id", *rtype.date_params} <= set(sort)
        if rtype.reference_params:
            includes = params["_include"]["schema"]["items"]["enum"]
            assert {f"{name}:{p.name}" for p in rtype.reference_params} <= set(includes)
    encounter = parameters(document, document["paths"]["/fhir/Encounter"]["get"])
    assert "Procedure:encounter" in encounter["_revinclude"]["schema"]["items"]["enum"]
    assert "birthdate" not in encounter and "birthdate" in parameters(document, document["paths"]["/fhir/Patient"]["get"])


def test_date_values_follow_the_fhir_syntax(document):
    import re

    date = resolve(document, {"$ref": "#/components/schemas/SearchValue-date"})
    for good in ("2024", "ge2024-03-01", "lt2024-03-01T10:00:00Z", "2024-03,2024-05", "eq2024-03-01T10:00+01:00"):
        assert re.fullmatch(date["pattern"], good), good
    for bad in ("yesterday", "2024-13", "gte2024-01-01", "2024-03-01 10:00"):
        assert not re.fullmatch(date["pattern"], bad), bad


def test_writes_take_the_resource_and_search_takes_a_form(document):
    paths = document["paths"]
    create = paths["/fhir/Encounter"]["post"]
    assert create["requestBody"]["required"] is True
    schema = resolve(document, create["requestBody"]["content"]["application/fhir+json"]["schema"])
    assert schema["properties"]["resourceType"]["enum"] == ["Encounter"]
    assert {"201", "200", "400", "412"} <= set(create["responses"])
    assert "If-None-Exist" in parameters(document, create)
    update = paths["/fhir/Encounter/{id}"]["put"]
    assert update["requestBody"]["content"]["application/fhir+json"]["schema"]["required"] == ["resourceType", "id"]
    assert "If-Match" in parameters(document, update) and "id" in parameters(document, update)
    conditional = paths["/fhir/Encounter"]["put"]
    assert "patient" in parameters(document, conditional)
    form = paths["/fhir/Encounter/_search"]["post"]["requestBody"]["content"]["application/x-www-form-urlencoded"]
    assert {"date", "patient", "_count", "_sort"} <= set(resolve(document, form["schema"])["properties"])
    bundle = resolve(document, paths["/fhir"]["post"]["requestBody"]["content"]["application/fhir+json"]["schema"])
    assert bundle["properties"]["type"]["enum"] == ["transaction", "batch"]
    assert bundle["properties"]["entry"]["items"]["required"] == ["request"]
    history = parameters(document, paths["/fhir/Encounter/{id}/_history"]["get"])
    assert {"_since", "_count", "_page"} <= set(history)
    assert {"vid", "_elements"} <= set(parameters(document, paths["/fhir/Encounter/{id}/_history/{vid}"]["get"]))
    assert "_elements" in parameters(document, paths["/fhir/Encounter/{id}"]["get"])


def test_operations_carry_their_parameters_and_bodies(document):
    paths = document["paths"]
    generate = paths["/fhir/Encounter/{encounter_id}/$generate-claim"]["post"]
    assert parameters(document, generate)["profile"]["in"] == "query"
    answer = generate["responses"]["200"]["content"]["application/fhir+json"]["schema"]
    assert answer == {"$ref": "#/components/schemas/Bundle"}
    scrub = paths["/fhir/Claim/$scrub"]["post"]["requestBody"]
    assert scrub["required"] is True
    choices = scrub["content"]["application/fhir+json"]["schema"]["oneOf"]
    assert choices[0]["properties"]["resourceType"]["enum"] == ["Parameters"]
    assert choices[1] == {"$ref": "#/components/schemas/Claim"}
    eligibility = parameters(document, paths["/fhir/Coverage/{coverage_id}/$eligibility-request"]["post"])
    assert {"servicedDate", "discipline", "provider", "coverage_id"} <= set(eligibility)
    submit = paths["/fhir/CoverageEligibilityRequest/$submit"]["post"]
    assert {"200", "202"} <= set(submit["responses"])
    definitions = paths["/fhir/OperationDefinition/{op_id}"]["get"]
    assert parameters(document, definitions)["op_id"]["schema"]["enum"] == sorted(d["id"] for d in operation_definitions())


def test_audit_trail_is_described_read_only(document):
    assert set(document["paths"]["/fhir/AuditEvent"]) == {"get"}
    assert set(document["paths"]["/fhir/AuditEvent/{id}"]) == {"get"}
    assert "/fhir/AuditEvent/_history" not in document["paths"]
    assert set(document["paths"]["/fhir/Patient"]) == {"get", "post", "put", "delete"}


def test_security_and_errors_are_described(document):
    schemes = document["components"]["securitySchemes"]
    assert schemes["bearer"] == {"type": "http", "scheme": "bearer", "bearerFormat": "JWT",
                                 "description": schemes["bearer"]["description"]}
    flows = schemes["smart"]["flows"]
    assert flows["clientCredentials"]["tokenUrl"] == "/auth/token"
    assert flows["authorizationCode"]["authorizationUrl"] == "/auth/authorize"
    assert "system/*.rs" in flows["clientCredentials"]["scopes"]
    for path, item in document["paths"].items():
        for method, operation in item.items():
            responses = operation["responses"]
            assert "422" not in responses or "HTTPValidationError" not in str(responses["422"]), (method, path)
            if not path.startswith("/fhir"):
                continue
            open_paths = ("/fhir/metadata", "/fhir/OperationDefinition/{op_id}")
            assert operation["security"] == ([] if path in open_paths else [{"smart": []}, {"bearer": []}]), path
            default = resolve(document, responses["default"])
            assert default["content"]["application/fhir+json"]["schema"] == {
                "$ref": "#/components/schemas/OperationOutcome"}, (method, path)
    assert "HTTPValidationError" not in document["components"]["schemas"]


# A generic fuzzer, driven by the document alone, against the app in-process: the interactions
# of one type with the most search parameters, the FHIR base and the operations. Every answer
# must be a non-5xx the document declares, with the declared content type and shape.
FUZZED = [("/fhir/Encounter", "GET"), ("/fhir/Encounter/_search", "POST"), ("/fhir/Encounter", "POST"),
          ("/fhir/Encounter/{id}", "GET"), ("/fhir/Encounter/{id}", "PUT"), ("/fhir/Encounter/{id}", "DELETE"),
          ("/fhir/Encounter/{id}/_history", "GET"), ("/fhir/Encounter/{id}/_history/{vid}", "GET"),
          ("/fhir/Encounter/_history", "GET"), ("/fhir", "POST"), ("/fhir/_history", "GET"),
          ("/fhir/metadata", "GET"), ("/fhir/Claim/$scrub", "POST"), ("/fhir/Claim/{claim_id}/$scrub", "POST"),
          ("/fhir/Encounter/{encounter_id}/$generate-claim", "POST"),
          ("/fhir/Coverage/{coverage_id}/$eligibility-request", "POST")]


def test_a_generic_fuzzer_finds_the_answers_the_document_declares(settings):
    import schemathesis
    from hypothesis import HealthCheck, Phase, given
    from hypothesis import settings as fuzzing
    from schemathesis.checks import (
        content_type_conformance, not_a_server_error, response_schema_conformance, status_code_conformance,
    )
    from schemathesis.python import asgi

    from app.main import create_app
    from tests.conftest import tenant_from_header

    # An app of its own: the fuzzer's client runs it on an event loop of its own.
    app = create_app(settings, authenticate=tenant_from_header)
    app.state.services.store.ensure_tenant("openapi-fuzz")
    schema = schemathesis.openapi.from_asgi("/openapi.json", app)
    checks = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]
    calls = 0
    try:
        with asgi.get_client(app) as client:
            for path, method in FUZZED:
                operation = schema[path][method]

                @fuzzing(max_examples=5, derandomize=True, database=None, deadline=None,
                         phases=[Phase.explicit, Phase.generate], suppress_health_check=list(HealthCheck))
                @given(case=operation.as_strategy())
                def exchange(case: schemathesis.Case) -> None:
                    nonlocal calls
                    calls += 1
                    response = case.call(session=client, headers={"x-test-tenant": "openapi-fuzz"})
                    case.validate_response(response, checks=checks)

                exchange()
    finally:
        app.state.services.engine.dispose()  # its connections go back to the server
    assert calls > 3 * len(FUZZED)  # operations without parameters have a single case
