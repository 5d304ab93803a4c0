"""SMART App Launch: authorization code with PKCE, login, consent, tokens, refresh, id_token."""
from __future__ import annotations

import time

import httpx
import pytest
from joserfc import jwk, jwt

from app.auth import admin
from tests.app.auth.conftest import BASE, FHIR, PASSWORD, add_patient, decode_unverified, pkce_pair, unique
from tests.app.auth.launch_helpers import (
    REDIRECT, App, authorize_params, client_auth, consent, exchange_form, get_code, login, make_app, make_user,
    parse_forms, redirect_query,
)


@pytest.fixture
def practice(engine, tenant: str) -> dict:
    add_patient(engine, tenant, "pat-1", "Rivera")
    add_patient(engine, tenant, "pat-2", "Okafor")
    return {"tenant": tenant, "app": make_app(engine, tenant), "user": make_user(engine, tenant)}


async def exchange(http: httpx.AsyncClient, app: App, code: str, verifier: str | None) -> httpx.Response:
    return await http.post("/auth/token", data=exchange_form(app, code, verifier), auth=client_auth(app))


@pytest.mark.parametrize("method", ["GET", "POST"])
async def test_standalone_launch_end_to_end(http: httpx.AsyncClient, practice: dict, method: str) -> None:
    app, user = practice["app"], practice["user"]
    code, verifier, _ = await get_code(http, app, user, method=method, patient="pat-2")
    resp = await exchange(http, app, code, verifier)
    assert resp.status_code == 200, resp.text
    assert resp.headers["cache-control"] == "no-store" and resp.headers["pragma"] == "no-cache"
    assert resp.headers["access-control-allow-origin"] == "*"
    body = resp.json()
    assert body["token_type"] == "Bearer" and body["expires_in"] == 3600
    assert set(body["scope"].split()) == {"launch/patient", "openid", "fhirUser", "offline_access", "patient/*.rs"}
    assert body["patient"] == "pat-2" and body["need_patient_banner"] is True
    assert isinstance(body["refresh_token"], str) and body["smart_style_url"].startswith(BASE)
    read = await http.get(f"{FHIR}/Patient/pat-2", headers={"Authorization": f"Bearer {body['access_token']}"})
    assert read.status_code == 200
    assert read.json()["patient"] == "pat-2" and read.json()["fhirUser"] == f"{FHIR}/Practitioner/p1"
    style = await http.get(body["smart_style_url"])
    assert style.status_code == 200 and style.json()


async def test_confidential_symmetric_client(http: httpx.AsyncClient, engine, practice: dict) -> None:
    app = make_app(engine, practice["tenant"], kind="secret")
    code, verifier, _ = await get_code(http, app, practice["user"])
    wrong = httpx.BasicAuth(app.client_id, "not-the-secret")
    resp = await http.post("/auth/token", data=exchange_form(app, code, verifier), auth=wrong)
    assert resp.status_code == 401 and resp.json()["error"] == "invalid_client"
    assert resp.headers["www-authenticate"].startswith("Basic")
    resp = await exchange(http, app, code, verifier)
    assert resp.status_code == 200, resp.text


async def test_id_token_verifies_with_published_jwks(http: httpx.AsyncClient, practice: dict) -> None:
    app = practice["app"]
    code, verifier, _ = await get_code(http, app, practice["user"], nonce="n-123")
    body = (await exchange(http, app, code, verifier)).json()
    id_token = body["id_token"]
    header, _ = decode_unverified(id_token)
    assert header["alg"] == "RS256"
    config = (await http.get(f"{BASE}/.well-known/openid-configuration")).json()
    keys = (await http.get(config["jwks_uri"])).json()
    key = jwk.KeySet.import_key_set(keys).get_by_kid(header["kid"])
    claims = jwt.decode(id_token, key, algorithms=["RS256"]).claims
    assert claims["iss"] == config["issuer"] and claims["aud"] == app.client_id
    assert claims["fhirUser"] == f"{FHIR}/Practitioner/p1" and claims["nonce"] == "n-123"
    assert 0 < len(claims["sub"]) < 256 and claims["exp"] > time.time() and claims["iat"] <= time.time() + 1


async def test_ehr_launch_uses_the_minted_context(http: httpx.AsyncClient, engine, practice: dict) -> None:
    app = practice["app"]
    launch = admin.create_launch(engine, practice["tenant"], patient="pat-1", encounter="enc-9")
    code, verifier, _ = await get_code(http, app, practice["user"], launch=launch["launch"],
                                       scope="launch openid fhirUser patient/*.rs")
    body = (await exchange(http, app, code, verifier)).json()
    assert body["patient"] == "pat-1" and body["encounter"] == "enc-9"
    assert body["need_patient_banner"] is False
    verifier, challenge = pkce_pair()
    resp = await http.get("/auth/authorize", params=authorize_params(app, challenge, launch="forged",
                                                                      scope="launch patient/*.rs"))
    assert redirect_query(resp)["error"] == "invalid_request"
    other = admin.create_tenant(engine, unique("t"))["id"]
    foreign = admin.create_launch(engine, other, patient="x")
    resp = await http.get("/auth/authorize", params=authorize_params(app, challenge, launch=foreign["launch"],
                                                                      scope="launch patient/*.rs"))
    assert redirect_query(resp)["error"] == "invalid_request"


async def test_consent_page_contract_and_patient_picker(http: httpx.AsyncClient, practice: dict) -> None:
    app = practice["app"]
    verifier, challenge = pkce_pair()
    page = await http.get("/auth/authorize", params=authorize_params(app, challenge))
    login_form = parse_forms(page.text)
    assert {"username", "password", "req"} <= set(login_form.inputs)
    consent_page = await login(http, page, practice["user"])
    form = parse_forms(consent_page.text)
    assert {"name": "decision", "value": "approve", "type": "submit"}.items() <= form.buttons[0].items()
    assert form.selects["patient"] == ["pat-1", "pat-2"]
    resp = await consent(http, consent_page, patient="not-a-patient")
    assert resp.status_code == 400
    resp = await consent(http, consent_page, decision="deny")
    assert redirect_query(resp)["error"] == "access_denied"


async def test_user_may_grant_less_than_requested(http: httpx.AsyncClient, practice: dict) -> None:
    app = practice["app"]
    verifier, challenge = pkce_pair()
    page = await http.get("/auth/authorize", params=authorize_params(
        app, challenge, scope="launch/patient openid fhirUser patient/Observation.rs patient/Condition.rs"))
    consent_page = await login(http, page, practice["user"])
    resp = await consent(http, consent_page, scopes=["launch/patient", "patient/Observation.rs?category=vital-signs"])
    code = redirect_query(resp)["code"]
    body = (await exchange(http, app, code, verifier)).json()
    assert body["scope"] == "patient/Observation.rs?category=vital-signs launch/patient"


async def test_role_ceiling_limits_the_grant(http: httpx.AsyncClient, engine, practice: dict) -> None:
    app = practice["app"]
    auditor = make_user(engine, practice["tenant"], role="auditor")
    code, verifier, _ = await get_code(http, app, auditor, scope="openid fhirUser user/*.cruds offline_access")
    body = (await exchange(http, app, code, verifier)).json()
    assert set(body["scope"].split()) == {"user/AuditEvent.rs", "user/Provenance.rs", "openid", "fhirUser",
                                          "offline_access"}


async def test_consent_requires_the_browser_that_signed_in(http: httpx.AsyncClient, app, practice: dict) -> None:
    verifier, challenge = pkce_pair()
    page = await http.get("/auth/authorize", params=authorize_params(practice["app"], challenge))
    consent_page = await login(http, page, practice["user"])
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=BASE) as stranger:
        resp = await consent(stranger, consent_page)
    assert resp.status_code == 400 and "location" not in resp.headers


# -- authorization endpoint rejections --------------------------------------------------------

async def test_unknown_client_or_redirect_is_not_redirected(http: httpx.AsyncClient, practice: dict) -> None:
    _, challenge = pkce_pair()
    for bad in ({"client_id": "nope"}, {"redirect_uri": "https://evil.example/cb"},
                {"redirect_uri": REDIRECT + "/"}, {"redirect_uri": None}):
        resp = await http.get("/auth/authorize", params=authorize_params(practice["app"], challenge, **bad))
        assert resp.status_code == 400 and "location" not in resp.headers
        assert resp.headers["content-type"].startswith("text/html")


@pytest.mark.parametrize("bad, error", [
    ({"aud": "https://inferno.healthit.gov/invalid_aud"}, "invalid_request"),
    ({"aud": None}, "invalid_request"),
    ({"code_challenge": None}, "invalid_request"),
    ({"code_challenge_method": "plain"}, "invalid_request"),
    ({"code_challenge_method": None}, "invalid_request"),
    ({"response_type": "token"}, "unsupported_response_type"),
    ({"scope": "system/*.rs"}, "invalid_scope"),
    ({"state": None}, "invalid_request"),
])
async def test_authorize_errors_redirect_with_state(http: httpx.AsyncClient, practice: dict, bad: dict, error: str) -> None:
    _, challenge = pkce_pair()
    params = authorize_params(practice["app"], challenge, **bad)
    query = redirect_query(await http.get("/auth/authorize", params=params))
    assert query["error"] == error and "code" not in query
    if params.get("state"):
        assert query["state"] == params["state"]


# -- token endpoint rejections -----------------------------------------------------------------

async def test_pkce_failures(http: httpx.AsyncClient, practice: dict) -> None:
    app, user = practice["app"], practice["user"]
    for verifier in (None, "", pkce_pair()[0], "challenge"):
        code, good_verifier, params = await get_code(http, app, user)
        if verifier == "challenge":
            verifier = params["code_challenge"]
        resp = await exchange(http, app, code, verifier)
        assert resp.status_code in (400, 401) and resp.json()["error"] == "invalid_grant"
        assert resp.headers["cache-control"] == "no-store"
        # A failed exchange spends the code.
        assert (await exchange(http, app, code, good_verifier)).json()["error"] == "invalid_grant"


async def test_bad_code_and_bad_client(http: httpx.AsyncClient, practice: dict) -> None:
    app = practice["app"]
    code, verifier, _ = await get_code(http, app, practice["user"])
    resp = await exchange(http, app, "BAD_CODE", verifier)
    assert resp.status_code == 400 and resp.json()["error"] == "invalid_grant"
    resp = await http.post("/auth/token", data={**exchange_form(app, code, verifier), "client_id": "BAD_CLIENT_ID"})
    assert resp.status_code in (400, 401) and resp.json()["error"] == "invalid_client"


async def test_redirect_uri_mismatch(http: httpx.AsyncClient, practice: dict) -> None:
    app = practice["app"]
    code, verifier, _ = await get_code(http, app, practice["user"])
    resp = await http.post("/auth/token", data={**exchange_form(app, code, verifier), "redirect_uri": REDIRECT + "?x=1"})
    assert resp.status_code == 400 and resp.json()["error"] == "invalid_grant"


async def test_code_of_another_client(http: httpx.AsyncClient, engine, practice: dict) -> None:
    code, verifier, _ = await get_code(http, practice["app"], practice["user"])
    other = make_app(engine, practice["tenant"])
    resp = await exchange(http, other, code, verifier)
    assert resp.json()["error"] == "invalid_grant"


async def test_reused_code_revokes_what_it_issued(http: httpx.AsyncClient, practice: dict) -> None:
    app = practice["app"]
    code, verifier, _ = await get_code(http, app, practice["user"])
    first = (await exchange(http, app, code, verifier)).json()
    auth = {"Authorization": f"Bearer {first['access_token']}"}
    assert (await http.get(f"{FHIR}/Patient/pat-1", headers=auth)).status_code == 200
    again = await exchange(http, app, code, verifier)
    assert again.status_code == 400 and again.json()["error"] == "invalid_grant"
    assert (await http.get(f"{FHIR}/Patient/pat-1", headers=auth)).status_code == 401
    refresh = await http.post("/auth/token", data={"grant_type": "refresh_token", "refresh_token": first["refresh_token"],
                                                   "client_id": app.client_id})
    assert refresh.json()["error"] == "invalid_grant"


async def test_expired_code(http: httpx.AsyncClient, engine, practice: dict) -> None:
    import sqlalchemy as sa
    from app.auth.crypto import digest, utcnow
    from app.auth.models import T

    app = practice["app"]
    code, verifier, _ = await get_code(http, app, practice["user"])
    with engine.begin() as conn:
        conn.execute(sa.update(T["code"]).where(T["code"].c.code_hash == digest(code)).values(expires_at=utcnow()))
    assert (await exchange(http, app, code, verifier)).json()["error"] == "invalid_grant"


# -- refresh -----------------------------------------------------------------------------------

async def refresh(http: httpx.AsyncClient, app: App, token: str, scope: str | None = None) -> httpx.Response:
    form = {"grant_type": "refresh_token", "refresh_token": token, "client_id": app.client_id}
    if scope is not None:
        form["scope"] = scope
    return await http.post("/auth/token", data=form)


async def test_refresh_rotation_and_scopes(http: httpx.AsyncClient, practice: dict) -> None:
    app = practice["app"]
    code, verifier, _ = await get_code(http, app, practice["user"])
    first = (await exchange(http, app, code, verifier)).json()
    same_scope = await refresh(http, app, first["refresh_token"], first["scope"])
    assert same_scope.status_code == 200, same_scope.text
    second = same_scope.json()
    assert second["patient"] == "pat-1" and second["expires_in"] == 3600
    assert set(second["scope"].split()) == set(first["scope"].split())
    assert second["refresh_token"] != first["refresh_token"]
    assert same_scope.headers["cache-control"] == "no-store" and same_scope.headers["pragma"] == "no-cache"
    narrower = await refresh(http, app, second["refresh_token"], "patient/Patient.rs openid")
    assert narrower.status_code == 200 and narrower.json()["scope"] == "patient/Patient.rs openid"
    third = narrower.json()
    unchanged = await refresh(http, app, third["refresh_token"])
    assert set(unchanged.json()["scope"].split()) == set(first["scope"].split())


async def test_scope_escalation_on_refresh_is_refused(http: httpx.AsyncClient, practice: dict) -> None:
    app = practice["app"]
    code, verifier, _ = await get_code(http, app, practice["user"])
    token = (await exchange(http, app, code, verifier)).json()["refresh_token"]
    for wider in ("patient/*.cruds", "user/*.rs", "patient/*.rs __admin", "patient/*.rs bogus/scope"):
        resp = await refresh(http, app, token, wider)
        assert resp.status_code == 400 and resp.json()["error"] == "invalid_scope", wider
    assert (await refresh(http, app, token)).status_code == 200


async def test_refresh_token_is_bound_to_client_and_reuse_revokes(http: httpx.AsyncClient, engine, practice: dict) -> None:
    app = practice["app"]
    code, verifier, _ = await get_code(http, app, practice["user"])
    first = (await exchange(http, app, code, verifier)).json()
    other = make_app(engine, practice["tenant"])
    assert (await refresh(http, other, first["refresh_token"])).json()["error"] == "invalid_grant"
    rotated = (await refresh(http, app, first["refresh_token"])).json()
    reuse = await refresh(http, app, first["refresh_token"])
    assert reuse.status_code == 400 and reuse.json()["error"] == "invalid_grant"
    assert (await refresh(http, app, rotated["refresh_token"])).json()["error"] == "invalid_grant"
    auth = {"Authorization": f"Bearer {rotated['access_token']}"}
    assert (await http.get(f"{FHIR}/Patient/pat-1", headers=auth)).status_code == 401
    assert (await refresh(http, app, "random-refresh-token")).status_code in (400, 401)


# -- login throttle ----------------------------------------------------------------------------

async def test_login_throttle_locks_after_repeated_failures(http: httpx.AsyncClient, settings, practice: dict) -> None:
    _, challenge = pkce_pair()
    page = await http.get("/auth/authorize", params=authorize_params(practice["app"], challenge))
    for _ in range(settings.login_max_failures - 1):
        resp = await login(http, page, practice["user"], "wrong password!")
        assert resp.status_code == 401
        assert "password" in parse_forms(resp.text).inputs
    assert (await login(http, page, practice["user"], "wrong password!")).status_code == 429
    locked = await login(http, page, practice["user"], PASSWORD)
    assert locked.status_code == 429 and "decision" not in locked.text
    unknown = await login(http, page, "nobody", PASSWORD)
    assert unknown.status_code == 401


async def test_users_of_other_tenants_cannot_sign_in(http: httpx.AsyncClient, engine, practice: dict) -> None:
    other = admin.create_tenant(engine, unique("t"))["id"]
    stranger = make_user(engine, other)
    _, challenge = pkce_pair()
    page = await http.get("/auth/authorize", params=authorize_params(practice["app"], challenge))
    assert (await login(http, page, stranger)).status_code == 401
