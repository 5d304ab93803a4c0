"""Bearer authentication on the FHIR side, introspection (RFC 7662), revocation (RFC 7009),
signing-key rotation."""
from __future__ import annotations

import time

import httpx
import pytest
from joserfc import jwk, jwt

from app.auth import admin, keys
from app.auth.tokens import Grant, mint_access_token
from tests.app.auth.conftest import FHIR, assertion, backend_form, make_backend, unique
from tests.app.auth.launch_helpers import client_auth, exchange_form, get_code, make_app, make_user


async def backend_token(http: httpx.AsyncClient, engine, tenant: str, scope: str = "system/*.rs") -> tuple[str, object]:
    backend = make_backend(engine, tenant)
    resp = await http.post("/auth/token", data=backend_form(assertion(backend.client_id, backend.key, "ES384"), scope))
    return resp.json()["access_token"], backend


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def test_missing_token_is_401_with_challenge(http: httpx.AsyncClient) -> None:
    resp = await http.get(f"{FHIR}/Patient/1")
    assert resp.status_code == 401
    assert resp.headers["www-authenticate"] == 'Bearer realm="therabridge"'
    assert resp.json()["resourceType"] == "OperationOutcome"
    assert resp.json()["issue"][0]["code"] == "login"


@pytest.mark.parametrize("header", ["Bearer", "Bearer not.a.jwt", "Basic abc", "Bearer " + "a" * 40])
async def test_malformed_tokens_are_401_invalid_token(http: httpx.AsyncClient, header: str) -> None:
    resp = await http.get(f"{FHIR}/Patient/1", headers={"Authorization": header})
    assert resp.status_code == 401
    assert 'error="invalid_token"' in resp.headers["www-authenticate"]


async def test_expired_foreign_and_wrongly_addressed_tokens(http: httpx.AsyncClient, engine, settings, tenant: str) -> None:
    grant = Grant(tenant=tenant, client_id="c", scope="system/*.rs", grant_id="g1", subject="c")
    expired = mint_access_token(engine, settings, grant, lifetime=-1)
    resp = await http.get(f"{FHIR}/Patient/1", headers=bearer(expired))
    assert resp.status_code == 401 and "expired" in resp.headers["www-authenticate"]
    other = settings.model_copy(update={"public_url": "http://elsewhere"})
    wrong_aud = mint_access_token(engine, other, grant, lifetime=60)
    assert (await http.get(f"{FHIR}/Patient/1", headers=bearer(wrong_aud))).status_code == 401
    stranger = jwk.RSAKey.generate_key(2048, parameters={"kid": keys.signing_key(engine).kid})
    now = int(time.time())
    forged = jwt.encode({"alg": "RS256", "kid": stranger.kid}, {
        "iss": "http://testserver", "aud": FHIR, "exp": now + 60, "iat": now, "jti": "j", "gid": "g",
        "tenant": tenant, "client_id": "c", "scope": "system/*.cruds", "sub": "c"}, stranger)
    assert (await http.get(f"{FHIR}/Patient/1", headers=bearer(forged))).status_code == 401
    good = mint_access_token(engine, settings, grant, lifetime=60)
    assert (await http.get(f"{FHIR}/Patient/1", headers=bearer(good))).status_code == 200


async def test_valid_token_without_scope_is_403(http: httpx.AsyncClient, engine, tenant: str) -> None:
    token, _ = await backend_token(http, engine, tenant, "system/Claim.rs")
    assert (await http.get(f"{FHIR}/Claim/1", headers=bearer(token))).status_code == 200
    resp = await http.get(f"{FHIR}/Patient/1", headers=bearer(token))
    assert resp.status_code == 403
    assert 'error="insufficient_scope"' in resp.headers["www-authenticate"]


async def test_token_carries_its_tenant(http: httpx.AsyncClient, engine, tenant: str) -> None:
    other = admin.create_tenant(engine, unique("t"))["id"]
    mine, _ = await backend_token(http, engine, tenant)
    theirs, _ = await backend_token(http, engine, other)
    assert (await http.get(f"{FHIR}/Patient/1", headers=bearer(mine))).json()["tenant"] == tenant
    assert (await http.get(f"{FHIR}/Patient/1", headers=bearer(theirs))).json()["tenant"] == other


# -- introspection ---------------------------------------------------------------------------

async def test_introspection_active_and_inactive(http: httpx.AsyncClient, engine, tenant: str) -> None:
    token, backend = await backend_token(http, engine, tenant)
    caller = {"Authorization": f"Bearer {token}"}
    resp = await http.post("/auth/introspect", data={"token": token}, headers=caller)
    assert resp.status_code == 200
    body = resp.json()
    assert body["active"] is True and body["client_id"] == backend.client_id
    assert body["scope"] == "system/*.rs" and body["exp"] > time.time()
    resp = await http.post("/auth/introspect", data={"token": "invalid_token_value"}, headers=caller)
    assert resp.status_code == 200 and resp.json() == {"active": False}


async def test_introspection_of_app_tokens_includes_context(http: httpx.AsyncClient, engine, tenant: str) -> None:
    from tests.app.auth.conftest import add_patient

    add_patient(engine, tenant, "pat-7")
    app = make_app(engine, tenant, kind="secret")
    code, verifier, _ = await get_code(http, app, make_user(engine, tenant), patient="pat-7")
    tokens = (await http.post("/auth/token", data=exchange_form(app, code, verifier), auth=client_auth(app))).json()
    body = (await http.post("/auth/introspect", data={"token": tokens["access_token"]}, auth=client_auth(app))).json()
    assert body["active"] and body["patient"] == "pat-7" and body["client_id"] == app.client_id
    assert set(body["scope"].split()) == set(tokens["scope"].split())
    assert body["fhirUser"].endswith("/Practitioner/p1") and body["iss"] and body["sub"]
    refresh = (await http.post("/auth/introspect", data={"token": tokens["refresh_token"]}, auth=client_auth(app))).json()
    assert refresh["active"] and refresh["patient"] == "pat-7"


async def test_introspection_needs_a_caller_and_hides_other_tenants(http: httpx.AsyncClient, engine, tenant: str) -> None:
    token, _ = await backend_token(http, engine, tenant)
    resp = await http.post("/auth/introspect", data={"token": token})
    assert resp.status_code in (400, 401) and resp.json()["error"] == "invalid_client"
    other = admin.create_tenant(engine, unique("t"))["id"]
    stranger, _ = await backend_token(http, engine, other)
    resp = await http.post("/auth/introspect", data={"token": token}, headers=bearer(stranger))
    assert resp.json() == {"active": False}


# -- revocation -------------------------------------------------------------------------------

async def test_revoking_an_access_token(http: httpx.AsyncClient, engine, tenant: str) -> None:
    token, backend = await backend_token(http, engine, tenant)
    assert (await http.get(f"{FHIR}/Patient/1", headers=bearer(token))).status_code == 200
    form = backend_form(assertion(backend.client_id, backend.key, "ES384"))
    resp = await http.post("/auth/revoke", data={"token": token, **{k: form[k] for k in ("client_assertion", "client_assertion_type")}})
    assert resp.status_code == 200
    assert (await http.get(f"{FHIR}/Patient/1", headers=bearer(token))).status_code == 401
    other, _ = await backend_token(http, engine, tenant)
    assert (await http.post("/auth/introspect", data={"token": token}, headers=bearer(other))).json() == {"active": False}


async def test_revocation_is_seen_by_other_processes(http: httpx.AsyncClient, engine, settings, tenant: str) -> None:
    """Another verifier (a replica) learns of a revocation from the database within its poll interval."""
    from app.auth import tokens as tokens_module

    token, backend = await backend_token(http, engine, tenant)
    replica = tokens_module._Verifier()
    claims = tokens_module._decode(engine, settings, token, time.time())
    replica.refresh_revocations(engine, 0, force=True)
    assert claims["jti"] not in replica.revoked
    form = backend_form(assertion(backend.client_id, backend.key, "ES384"))
    await http.post("/auth/revoke", data={"token": token, "client_assertion": form["client_assertion"],
                                          "client_assertion_type": form["client_assertion_type"]})
    replica.refresh_revocations(engine, 0, force=True)
    assert claims["jti"] in replica.revoked


async def test_revoking_a_refresh_token_revokes_the_grant(http: httpx.AsyncClient, engine, tenant: str) -> None:
    app = make_app(engine, tenant)
    code, verifier, _ = await get_code(http, app, make_user(engine, tenant), patient=None,
                                       scope="openid fhirUser offline_access user/Patient.rs")
    tokens = (await http.post("/auth/token", data=exchange_form(app, code, verifier))).json()
    resp = await http.post("/auth/revoke", data={"token": tokens["refresh_token"], "client_id": app.client_id})
    assert resp.status_code == 200
    assert (await http.get(f"{FHIR}/Patient/1", headers=bearer(tokens["access_token"]))).status_code == 401
    again = await http.post("/auth/token", data={"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"],
                                                 "client_id": app.client_id})
    assert again.status_code in (400, 401)


async def test_a_client_cannot_revoke_another_clients_token(http: httpx.AsyncClient, engine, tenant: str) -> None:
    token, _ = await backend_token(http, engine, tenant)
    app = make_app(engine, tenant)
    assert (await http.post("/auth/revoke", data={"token": token, "client_id": app.client_id})).status_code == 200
    assert (await http.get(f"{FHIR}/Patient/1", headers=bearer(token))).status_code == 200


# -- keys ---------------------------------------------------------------------------------------

async def test_rotation_keeps_old_tokens_valid_and_old_keys_published(http: httpx.AsyncClient, engine, settings,
                                                                      tenant: str) -> None:
    before, _ = await backend_token(http, engine, tenant)
    old_kid = keys.signing_key(engine).kid
    new_kid = keys.rotate(engine, settings)
    assert new_kid != old_kid
    published = {k["kid"] for k in (await http.get("/auth/jwks")).json()["keys"]}
    assert {old_kid, new_kid} <= published
    after, _ = await backend_token(http, engine, tenant)
    assert (await http.get(f"{FHIR}/Patient/1", headers=bearer(before))).status_code == 200
    assert (await http.get(f"{FHIR}/Patient/1", headers=bearer(after))).status_code == 200
    from tests.app.auth.conftest import decode_unverified

    assert decode_unverified(after)[0]["kid"] == new_kid


def test_housekeeping_deletes_only_expired_rows(engine, settings, tenant: str) -> None:
    import sqlalchemy as sa

    from app.auth.crypto import in_seconds
    from app.auth.housekeeping import purge_expired
    from app.auth.models import T

    admin.create_launch(engine, tenant, patient="keep-me")
    with engine.begin() as conn:
        conn.execute(sa.insert(T["launch"]).values(id=unique("old"), tenant_id=tenant, patient="gone",
                                                   created_at=in_seconds(-7200), expires_at=in_seconds(-3600)))
    counts = purge_expired(engine)
    assert counts["launch"] >= 1
    with engine.connect() as conn:
        patients = set(conn.execute(sa.select(T["launch"].c.patient).where(T["launch"].c.tenant_id == tenant)).scalars())
    assert patients == {"keep-me"}
