"""RFC 7591 dynamic registration with initial access tokens; the admin API."""
from __future__ import annotations

import httpx

from app.auth import admin
from tests.app.auth.conftest import PASSWORD, assertion, backend_form, make_backend, new_key, public_jwks, unique
from tests.app.auth.launch_helpers import REDIRECT


async def test_registration_needs_an_initial_access_token(http: httpx.AsyncClient, engine, tenant: str) -> None:
    metadata = {"client_name": "App", "redirect_uris": [REDIRECT], "token_endpoint_auth_method": "none",
                "scope": "launch/patient openid fhirUser patient/*.rs"}
    resp = await http.post("/auth/register", json=metadata)
    assert resp.status_code == 401 and resp.json()["error"] == "invalid_token"
    resp = await http.post("/auth/register", json=metadata, headers={"Authorization": "Bearer made-up"})
    assert resp.status_code == 401
    token = admin.issue_initial_token(engine, tenant)["initial_access_token"]
    resp = await http.post("/auth/register", json=metadata, headers={"Authorization": f"Bearer {token}"})
    assert resp.status_code == 201, resp.text
    body = resp.json()
    assert body["client_id"] and "client_secret" not in body
    assert body["redirect_uris"] == [REDIRECT] and body["token_endpoint_auth_method"] == "none"
    again = await http.post("/auth/register", json=metadata, headers={"Authorization": f"Bearer {token}"})
    assert again.status_code == 401  # single use


async def test_registered_asymmetric_client_can_get_tokens(http: httpx.AsyncClient, engine, tenant: str) -> None:
    key = new_key("RS384")
    token = admin.issue_initial_token(engine, tenant)["initial_access_token"]
    resp = await http.post("/auth/register", headers={"Authorization": f"Bearer {token}"}, json={
        "client_name": "EHR", "token_endpoint_auth_method": "private_key_jwt", "jwks": public_jwks(key),
        "scope": "system/Patient.rs"})
    assert resp.status_code == 201, resp.text
    client_id = resp.json()["client_id"]
    resp = await http.post("/auth/token", data=backend_form(assertion(client_id, key, "RS384"), "system/Patient.rs"))
    assert resp.status_code == 200


async def test_registration_rejects_bad_metadata(http: httpx.AsyncClient, engine, tenant: str) -> None:
    cases = [
        ({"token_endpoint_auth_method": "none", "redirect_uris": ["not a url"], "scope": "openid"}, "invalid_redirect_uri"),
        ({"token_endpoint_auth_method": "none", "redirect_uris": [], "scope": "openid"}, "invalid_redirect_uri"),
        ({"token_endpoint_auth_method": "private_key_jwt", "jwks": {"keys": [new_key("ES384").as_dict(private=True)]},
          "scope": "system/*.rs"}, "invalid_client_metadata"),
        ({"token_endpoint_auth_method": "none", "redirect_uris": [REDIRECT], "scope": "openid __admin"}, "invalid_client_metadata"),
        ({"token_endpoint_auth_method": "client_secret_post", "redirect_uris": [REDIRECT], "scope": "openid"}, "invalid_client_metadata"),
    ]
    for metadata, error in cases:
        token = admin.issue_initial_token(engine, tenant)["initial_access_token"]
        resp = await http.post("/auth/register", json=metadata, headers={"Authorization": f"Bearer {token}"})
        assert resp.status_code == 400 and resp.json()["error"] == error, metadata


async def test_admin_api_needs_the_admin_scope(http: httpx.AsyncClient, engine, tenant: str) -> None:
    plain = make_backend(engine, tenant)
    token = (await http.post("/auth/token", data=backend_form(assertion(plain.client_id, plain.key, "ES384")))).json()
    body = {"username": unique("u"), "password": PASSWORD, "role": "biller"}
    assert (await http.post("/admin/users", json=body)).status_code == 401
    resp = await http.post("/admin/users", json=body, headers={"Authorization": f"Bearer {token['access_token']}"})
    assert resp.status_code == 403

    operator = make_backend(engine, tenant, scope="system/*.rs __admin")
    form = backend_form(assertion(operator.client_id, operator.key, "ES384"), "__admin")
    admin_token = (await http.post("/auth/token", data=form)).json()
    assert admin_token["scope"] == "__admin"
    auth = {"Authorization": f"Bearer {admin_token['access_token']}"}
    resp = await http.post("/admin/users", json=body, headers=auth)
    assert resp.status_code == 201 and resp.json()["role"] == "biller"
    resp = await http.post("/admin/users", json={**body, "role": "superuser"}, headers=auth)
    assert resp.status_code == 400
    resp = await http.post("/admin/clients", headers=auth, json={"name": "x", "scope": "system/*.rs", "kind": "jwks",
                                                                 "jwks": public_jwks(new_key("ES384"))})
    assert resp.status_code == 201 and resp.json()["client_id"]
    resp = await http.post("/admin/launches", headers=auth, json={"patient": "pat-1"})
    assert resp.status_code == 201 and resp.json()["launch"]
    resp = await http.post("/admin/initial-tokens", headers=auth)
    assert resp.status_code == 201 and resp.json()["tenant"] == tenant


def test_admin_validation(engine, tenant: str) -> None:
    import pytest

    with pytest.raises(admin.AdminError):
        admin.create_tenant(engine, tenant)
    with pytest.raises(admin.AdminError):
        admin.create_tenant(engine, "Not A Slug")
    with pytest.raises(admin.AdminError):
        admin.create_user(engine, tenant=tenant, username="u", password="short", role="biller")
    with pytest.raises(admin.AdminError):
        admin.create_user(engine, tenant=tenant, username="u", password=PASSWORD, role="biller", fhir_user="Claim/1")
    with pytest.raises(admin.AdminError):
        admin.register_client(engine, tenant="no-such-tenant", name="x", scope="system/*.rs", kind="jwks",
                              jwks=public_jwks(new_key("ES384")))
    with pytest.raises(admin.AdminError):
        admin.register_client(engine, tenant=tenant, name="x", scope="system/*.rs nonsense", kind="jwks",
                              jwks=public_jwks(new_key("ES384")))
