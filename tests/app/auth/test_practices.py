"""People who work for several practices: grants, choosing a practice at sign-in, switching
with the refresh token, and tokens that never reach a practice the person was not granted
(checked at the real FHIR API)."""
from __future__ import annotations

import asyncio
import json
from typing import AsyncIterator

import httpx
import pytest
import sqlalchemy as sa
from fastapi import FastAPI

from app.auth import admin, practices
from app.auth.models import T
from app.main import create_app
from app.measures.combine import CombineError, combine
from tests.app.auth.conftest import BASE, FHIR, add_patient, decode_unverified, pkce_pair, unique
from tests.app.auth.launch_helpers import (
    App, authorize_params, client_auth, consent, exchange_form, login, make_app, make_user, parse_forms,
    redirect_query,
)
from tests.app.auth.test_cli import run
from tests.app.measures.test_evaluate_measure import store_scenario

SCOPE = "openid fhirUser online_access user/*.rs"


@pytest.fixture(scope="module")
def fhir_app(engine, settings) -> FastAPI:
    """The production app (SMART bearer authentication) on the module's database."""
    return create_app(settings)


@pytest.fixture
async def fhir(fhir_app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=fhir_app), base_url=BASE) as client:
        yield client


@pytest.fixture
def company(engine) -> dict:
    """A billing company (its own tenant) whose biller is granted practice ``acme`` but not ``beta``."""
    home, acme, beta = (admin.create_tenant(engine, unique(p), name)["id"]
                        for p, name in (("billco", "Billing Co"), ("acme", "Acme Therapy"), ("beta", "Beta Rehab")))
    user = make_user(engine, home, role="biller", fhir_user="Practitioner/b1")
    practices.grant_practice(engine, tenant=home, username=user, practice=acme)
    add_patient(engine, acme, "pa-1", "Acme")
    add_patient(engine, beta, "pb-1", "Beta")
    app = make_app(engine, home, scope=SCOPE)
    return {"home": home, "acme": acme, "beta": beta, "user": user, "app": app}


async def sign_in(http: httpx.AsyncClient, app: App, user: str, **extra: str) -> tuple[httpx.Response, str, dict]:
    verifier, challenge = pkce_pair()
    params = authorize_params(app, challenge, scope=SCOPE, **extra)
    page = await http.get("/auth/authorize", params=params)
    assert page.status_code == 200, page.text
    return await login(http, page, user), verifier, params


async def tokens_for(http: httpx.AsyncClient, app: App, consent_page: httpx.Response, verifier: str) -> dict:
    assert consent_page.status_code == 200, consent_page.text
    query = redirect_query(await consent(http, consent_page))
    resp = await http.post("/auth/token", data=exchange_form(app, query["code"], verifier), auth=client_auth(app))
    assert resp.status_code == 200, resp.text
    return resp.json()


async def test_chooser_lists_granted_practices_and_token_is_confined_to_the_choice(
        http: httpx.AsyncClient, fhir: httpx.AsyncClient, engine, company: dict) -> None:
    chooser, verifier, _ = await sign_in(http, company["app"], company["user"])
    form = parse_forms(chooser.text)
    assert form.actions == ["practice"] and form.selects["practice"] == sorted([company["home"], company["acme"]],
                                                                               key=lambda t: t != company["home"])
    assert company["beta"] not in chooser.text and '<label for="practice">' in chooser.text
    consent_page = await http.post("/auth/practice", data={"req": form.inputs["req"], "practice": company["acme"]})
    assert company["acme"] in consent_page.text
    body = await tokens_for(http, company["app"], consent_page, verifier)
    _, claims = decode_unverified(body["access_token"])
    assert claims["tenant"] == company["acme"] and body["practice"] == company["acme"]
    assert "fhirUser" not in claims  # the person's FHIR identity lives in their own practice
    assert [p["id"] for p in body["practices"]] == [company["home"], company["acme"]]
    assert body["practices"][1] == {"id": company["acme"], "name": "Acme Therapy", "role": "biller"}
    auth = {"Authorization": f"Bearer {body['access_token']}"}
    assert (await fhir.get("/fhir/Patient/pa-1", headers=auth)).status_code == 200
    with engine.connect() as conn:  # the practice's audit trail records the token issued for it
        trail = [json.loads(r.content) for r in conn.execute(sa.select(T["audit"].c.content).where(
            T["audit"].c.tenant_id == company["acme"]))]
    assert any(e["subtype"][0]["code"] == "token" and company["home"] in e.get("outcomeDesc", "") for e in trail)
    other = await fhir.get("/fhir/Patient/pb-1", headers=auth)
    assert other.status_code == 404 and other.json()["resourceType"] == "OperationOutcome"
    assert "Beta" not in other.text
    found = (await fhir.get("/fhir/Patient", headers=auth)).json()
    assert [e["resource"]["id"] for e in found.get("entry", [])] == ["pa-1"]


async def test_practice_launch_parameter(http: httpx.AsyncClient, company: dict) -> None:
    consent_page, verifier, _ = await sign_in(http, company["app"], company["user"], practice=company["acme"])
    assert "consent" in parse_forms(consent_page.text).actions  # no chooser: the app asked for one
    body = await tokens_for(http, company["app"], consent_page, verifier)
    assert decode_unverified(body["access_token"])[1]["tenant"] == company["acme"]
    for practice in (company["beta"], "no-such-practice"):  # same answer whether it exists or not
        refused, _, params = await sign_in(http, company["app"], company["user"], practice=practice)
        query = redirect_query(refused)
        assert query["error"] == "access_denied" and query["state"] == params["state"]
    bad = await http.get("/auth/authorize", params=authorize_params(company["app"], pkce_pair()[1], practice="../x"))
    assert redirect_query(bad)["error"] == "invalid_request"


async def test_tampered_chooser_is_refused(http: httpx.AsyncClient, company: dict) -> None:
    chooser, _, params = await sign_in(http, company["app"], company["user"])
    req = parse_forms(chooser.text).inputs["req"]
    premature = await http.post("/auth/consent", data={"req": req, "decision": "approve"})
    assert premature.status_code == 400 and "Choose a practice" in premature.text
    refused = await http.post("/auth/practice", data={"req": req, "practice": company["beta"]})
    assert redirect_query(refused)["error"] == "access_denied"
    again = await http.post("/auth/practice", data={"req": req, "practice": company["acme"]})
    assert again.status_code == 400  # the request is gone


async def test_single_practice_user_sees_no_chooser(http: httpx.AsyncClient, engine, company: dict) -> None:
    user = make_user(engine, company["home"], role="biller")
    consent_page, verifier, _ = await sign_in(http, company["app"], user)
    body = await tokens_for(http, company["app"], consent_page, verifier)
    assert body["practice"] == company["home"] and [p["id"] for p in body["practices"]] == [company["home"]]


async def test_switch_practice_with_refresh_token_then_revoke(
        http: httpx.AsyncClient, fhir: httpx.AsyncClient, engine, settings, company: dict) -> None:
    app = company["app"]
    consent_page, verifier, _ = await sign_in(http, app, company["user"], practice=company["home"])
    body = await tokens_for(http, app, consent_page, verifier)
    assert body["practice"] == company["home"]

    async def refresh(token: str, **extra: str) -> httpx.Response:
        form = {"grant_type": "refresh_token", "refresh_token": token, "client_id": app.client_id, **extra}
        return await http.post("/auth/token", data=form, auth=client_auth(app))

    switched = await refresh(body["refresh_token"], practice=company["acme"])
    assert switched.status_code == 200, switched.text
    acme = switched.json()
    claims = decode_unverified(acme["access_token"])[1]
    assert claims["tenant"] == company["acme"] and acme["practice"] == company["acme"]
    assert set(acme["scope"].split()) == set(body["scope"].split())
    acme_auth = {"Authorization": f"Bearer {acme['access_token']}"}
    seen = (await http.post("/auth/introspect", data={"token": acme["access_token"], "client_id": app.client_id})).json()
    assert seen["active"] is True and seen["tenant"] == company["acme"]  # the app's own token, another practice
    stranger = make_app(engine, company["beta"], scope=SCOPE)
    hidden = await http.post("/auth/introspect", data={"token": acme["access_token"], "client_id": stranger.client_id})
    assert hidden.json() == {"active": False}
    assert (await fhir.get("/fhir/Patient/pa-1", headers=acme_auth)).status_code == 200

    denied = await refresh(acme["refresh_token"], practice=company["beta"])
    assert denied.status_code == 400 and denied.json()["error"] == "invalid_request"
    back = await refresh(acme["refresh_token"], practice=company["home"])
    assert back.status_code == 200, back.text
    home = back.json()
    assert decode_unverified(home["access_token"])[1]["fhirUser"] == f"{FHIR}/Practitioner/b1"
    acme_again = (await refresh(home["refresh_token"], practice=company["acme"])).json()

    revoked = practices.revoke_practice(engine, settings, tenant=company["home"], username=company["user"],
                                        practice=company["acme"])
    assert revoked["revoked_authorizations"] >= 1
    await asyncio.sleep(settings.revocation_poll_seconds + 0.2)  # the API process polls revocations
    gone = await fhir.get("/fhir/Patient/pa-1", headers={"Authorization": f"Bearer {acme_again['access_token']}"})
    assert gone.status_code == 401 and gone.json()["resourceType"] == "OperationOutcome"
    assert (await refresh(acme_again["refresh_token"])).json()["error"] == "invalid_grant"


async def test_refresh_of_a_withdrawn_practice_fails(http: httpx.AsyncClient, engine, settings, company: dict) -> None:
    app = company["app"]
    consent_page, verifier, _ = await sign_in(http, app, company["user"], practice=company["acme"])
    body = await tokens_for(http, app, consent_page, verifier)
    practices.revoke_practice(engine, settings, tenant=company["home"], username=company["user"],
                              practice=company["acme"])
    form = {"grant_type": "refresh_token", "refresh_token": body["refresh_token"], "client_id": app.client_id}
    resp = await http.post("/auth/token", data=form, auth=client_auth(app))
    assert resp.status_code == 400 and resp.json()["error"] == "invalid_grant"
    chooser, _, _ = await sign_in(http, app, company["user"])
    assert "consent" in parse_forms(chooser.text).actions  # one practice left: no chooser


def test_grant_role_rules(engine, company: dict) -> None:
    with pytest.raises(practices.PracticeError):
        practices.grant_practice(engine, tenant=company["home"], username=company["user"],
                                 practice=company["beta"], role="admin")
    with pytest.raises(practices.PracticeError):
        practices.grant_practice(engine, tenant=company["home"], username=company["user"], practice="nope")
    with pytest.raises(practices.PracticeError):
        practices.grant_practice(engine, tenant=company["home"], username=company["user"], practice=company["home"])
    changed = practices.grant_practice(engine, tenant=company["home"], username=company["user"],
                                       practice=company["acme"], role="auditor")
    assert changed["role"] == "auditor"
    listed = practices.list_practices(engine, tenant=company["home"], username=company["user"])["practices"]
    assert [(p["id"], p["role"], p["home"]) for p in listed] == [
        (company["home"], "biller", True), (company["acme"], "auditor", False)]


def test_users_grant_revoke_cli(db_url: str, engine, company: dict) -> None:
    who = ["--tenant", company["home"], "--username", company["user"]]
    out = run(db_url, "users", "grant", *who, "--practice", company["beta"], "--role", "clinician")
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["role"] == "clinician"
    listed = json.loads(run(db_url, "users", "practices", *who).stdout)["practices"]
    assert {p["id"] for p in listed} == {company["home"], company["acme"], company["beta"]}
    out = run(db_url, "users", "revoke", *who, "--practice", company["beta"])
    assert out.returncode == 0, out.stderr
    out = run(db_url, "users", "revoke", *who, "--practice", company["beta"])
    assert out.returncode == 2 and "no grant" in out.stderr


async def test_combined_kpis_over_the_granted_practices_only(
        http: httpx.AsyncClient, fhir: httpx.AsyncClient, fhir_app: FastAPI, company: dict) -> None:
    """The app's combined view: one token per practice (switching with the refresh token), each
    practice evaluated with its own token, the reports combined; beta's claims never count."""
    store = fhir_app.state.services.store
    for practice in (company["home"], company["acme"], company["beta"]):
        store_scenario(store, practice)
    app = company["app"]
    consent_page, verifier, _ = await sign_in(http, app, company["user"], practice=company["home"])
    body = await tokens_for(http, app, consent_page, verifier)
    june = "periodStart=2026-06-01&periodEnd=2026-06-30"
    reports, refresh_token = [], body["refresh_token"]
    for practice in [p["id"] for p in body["practices"]]:
        form = {"grant_type": "refresh_token", "refresh_token": refresh_token, "client_id": app.client_id,
                "practice": practice}
        switched = (await http.post("/auth/token", data=form, auth=client_auth(app))).json()
        refresh_token = switched["refresh_token"]
        r = await fhir.get(f"/fhir/Measure/denial-rate/$evaluate-measure?{june}",
                           headers={"Authorization": f"Bearer {switched['access_token']}"})
        assert r.status_code == 200, r.text
        reports.append(r.json())
    assert len(reports) == 2  # home and acme: beta is not on the list, and cannot be switched to
    combined = combine(reports)
    one = reports[0]["group"][0]
    counts = {p["code"]["coding"][0]["code"]: p["count"] for p in combined["group"][0]["population"]}
    assert counts["numerator"] == 2 * next(p["count"] for p in one["population"]
                                           if p["code"]["coding"][0]["code"] == "numerator")
    assert counts == {"initial-population": 6, "denominator": 6, "numerator": 4}  # 3 practices would be 9/9/6
    assert combined["group"][0]["measureScore"]["value"] == one["measureScore"]["value"]
    dollars = combined["group"][1]["population"]
    assert [p["extension"][0]["valueMoney"]["value"] for p in dollars if p["code"]["coding"][0]["code"] != "initial-population"] \
        == [840.0, 440.0]
    with pytest.raises(CombineError):
        combine([reports[0], {**reports[1], "period": {"start": "2026-05-01", "end": "2026-05-31"}}])


async def test_code_for_a_practice_withdrawn_before_the_exchange_is_refused(
        http: httpx.AsyncClient, engine, settings, company: dict) -> None:
    app = company["app"]
    consent_page, verifier, _ = await sign_in(http, app, company["user"], practice=company["acme"])
    query = redirect_query(await consent(http, consent_page))
    practices.revoke_practice(engine, settings, tenant=company["home"], username=company["user"],
                              practice=company["acme"])
    resp = await http.post("/auth/token", data=exchange_form(app, query["code"], verifier), auth=client_auth(app))
    assert resp.status_code == 400 and resp.json()["error"] == "invalid_grant"
