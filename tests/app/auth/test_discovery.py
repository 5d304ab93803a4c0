"""Discovery documents field by field (SAL-CONF, OIDC Discovery), JWKS, CapabilityStatement security."""
from __future__ import annotations

import httpx
from joserfc import jwk

from app.auth.capability import smart_security
from tests.app.auth.conftest import BASE, FHIR

CAPABILITIES = {
    "launch-ehr", "launch-standalone", "client-public", "client-confidential-symmetric",
    "client-confidential-asymmetric", "context-ehr-patient", "context-ehr-encounter",
    "context-standalone-patient", "permission-offline", "permission-patient", "permission-user",
    "permission-v1", "permission-v2", "sso-openid-connect", "authorize-post",
}


async def test_smart_configuration(http: httpx.AsyncClient) -> None:
    for accept in ("application/fhir+json", "text/html", None):
        headers = {"Origin": "https://inferno.example"} | ({"Accept": accept} if accept else {})
        resp = await http.get(f"{FHIR}/.well-known/smart-configuration", headers=headers)
        assert resp.status_code == 200
        assert resp.headers["content-type"].startswith("application/json")
        assert resp.headers["access-control-allow-origin"] == "*"
    doc = resp.json()
    assert doc["issuer"] == BASE
    assert doc["jwks_uri"] == f"{BASE}/auth/jwks"
    assert doc["authorization_endpoint"] == f"{BASE}/auth/authorize"
    assert doc["token_endpoint"] == f"{BASE}/auth/token"
    assert doc["introspection_endpoint"] == f"{BASE}/auth/introspect"
    assert doc["revocation_endpoint"] == f"{BASE}/auth/revoke"
    assert doc["registration_endpoint"] == f"{BASE}/auth/register"
    assert set(doc["grant_types_supported"]) == {"authorization_code", "client_credentials", "refresh_token"}
    assert doc["code_challenge_methods_supported"] == ["S256"]
    assert set(doc["token_endpoint_auth_methods_supported"]) == {"private_key_jwt", "client_secret_basic", "none"}
    assert {"RS384", "ES384"} <= set(doc["token_endpoint_auth_signing_alg_values_supported"])
    assert "none" not in doc["token_endpoint_auth_signing_alg_values_supported"]
    assert set(doc["capabilities"]) == CAPABILITIES and all(isinstance(c, str) for c in doc["capabilities"])
    assert {"openid", "fhirUser", "launch/patient", "offline_access", "system/*.rs"} <= set(doc["scopes_supported"])
    assert doc["response_types_supported"] == ["code"]
    for key in ("jwks_uri", "authorization_endpoint", "token_endpoint"):
        assert doc[key].startswith("http://")


async def test_openid_configuration_at_the_issuer(http: httpx.AsyncClient) -> None:
    issuer = (await http.get(f"{FHIR}/.well-known/smart-configuration")).json()["issuer"]
    resp = await http.get(f"{issuer}/.well-known/openid-configuration")
    assert resp.status_code == 200 and resp.headers["content-type"].startswith("application/json")
    doc = resp.json()
    for field in ("issuer", "authorization_endpoint", "token_endpoint", "jwks_uri", "response_types_supported",
                  "subject_types_supported", "id_token_signing_alg_values_supported"):
        assert field in doc
    assert doc["issuer"] == issuer and "RS256" in doc["id_token_signing_alg_values_supported"]


async def test_jwks_publishes_importable_rsa_keys(http: httpx.AsyncClient) -> None:
    resp = await http.get("/auth/jwks")
    assert resp.status_code == 200 and resp.headers["access-control-allow-origin"] == "*"
    keys = resp.json()["keys"]
    assert keys and all(k["kty"] == "RSA" and k["kid"] and k["alg"] == "RS256" for k in keys)
    assert all("d" not in k and "p" not in k for k in keys)
    for key in keys:
        assert not jwk.import_key(key).is_private


async def test_token_endpoint_preflight(http: httpx.AsyncClient) -> None:
    resp = await http.options("/auth/token", headers={"Origin": "https://app.example",
                                                      "Access-Control-Request-Method": "POST"})
    assert resp.status_code == 204 and resp.headers["access-control-allow-origin"] == "*"


def test_capability_security_element(settings) -> None:
    sec = smart_security(settings)
    assert sec["service"][0]["coding"][0] == {
        "system": "http://terminology.hl7.org/CodeSystem/restful-security-service",
        "code": "SMART-on-FHIR", "display": "SMART-on-FHIR"}
    ext = sec["extension"][0]
    assert ext["url"] == "http://fhir-registry.smarthealthit.org/StructureDefinition/oauth-uris"
    uris = {e["url"]: e["valueUri"] for e in ext["extension"]}
    assert uris["token"] == f"{BASE}/auth/token" and uris["authorize"] == f"{BASE}/auth/authorize"
    assert {"introspect", "revoke", "register"} <= set(uris)
