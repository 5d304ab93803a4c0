"""Drive the authorization endpoint, login and consent over HTTP, as a browser would."""
from __future__ import annotations


import secrets
from dataclasses import dataclass
from html.parser import HTMLParser
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx

from app.auth import admin
from tests.app.auth.conftest import FHIR, PASSWORD, pkce_pair, unique

REDIRECT = "https://app.example/callback"


class FormParser(HTMLParser):
    """Collects the inputs, selects and buttons of an HTML page's forms."""

    def __init__(self) -> None:
        super().__init__()
        self.inputs: dict[str, str] = {}
        self.checkboxes: list[str] = []
        self.selects: dict[str, list[str]] = {}
        self.buttons: list[dict[str, str]] = []
        self.actions: list[str] = []
        self._select: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        if tag == "form":
            self.actions.append(a.get("action", ""))
        elif tag == "input" and a.get("type") == "checkbox":
            self.checkboxes.append(a["value"])
        elif tag == "input" and "name" in a:
            self.inputs[a["name"]] = a.get("value", "")
        elif tag == "select":
            self._select = a["name"]
            self.selects[a["name"]] = []
        elif tag == "option" and self._select:
            self.selects[self._select].append(a["value"])
        elif tag == "button":
            self.buttons.append(a)

    def handle_endtag(self, tag: str) -> None:
        if tag == "select":
            self._select = None


def parse_forms(html: str) -> FormParser:
    parser = FormParser()
    parser.feed(html)
    return parser


@dataclass
class App:
    client_id: str
    secret: str | None
    tenant: str


def make_app(engine: Any, tenant: str, *, kind: str = "public",
             scope: str = "launch launch/patient openid fhirUser offline_access patient/*.rs user/*.cruds") -> App:
    created = admin.register_client(engine, tenant=tenant, name="Therapy notes app", scope=scope, kind=kind,
                                    redirect_uris=[REDIRECT])
    return App(created["client_id"], created.get("client_secret"), tenant)


def make_user(engine: Any, tenant: str, role: str = "clinician", fhir_user: str | None = "Practitioner/p1") -> str:
    username = unique("user")
    admin.create_user(engine, tenant=tenant, username=username, password=PASSWORD, role=role, fhir_user=fhir_user)
    return username


def authorize_params(app: App, challenge: str, **extra: str) -> dict[str, str]:
    params = {"response_type": "code", "client_id": app.client_id, "redirect_uri": REDIRECT,
              "scope": "launch/patient openid fhirUser offline_access patient/*.rs",
              "state": secrets.token_urlsafe(16), "aud": FHIR, "code_challenge": challenge,
              "code_challenge_method": "S256"}
    params.update(extra)
    return {k: v for k, v in params.items() if v is not None}


def redirect_query(resp: httpx.Response) -> dict[str, str]:
    assert resp.status_code == 302, resp.text
    location = resp.headers["location"]
    assert location.startswith(REDIRECT)
    return {k: v[0] for k, v in parse_qs(urlsplit(location).query).items()}


async def login(http: httpx.AsyncClient, login_page: httpx.Response, username: str,
                password: str = PASSWORD) -> httpx.Response:
    form = parse_forms(login_page.text)
    return await http.post("/auth/login", data={"req": form.inputs["req"], "username": username, "password": password})


async def consent(http: httpx.AsyncClient, consent_page: httpx.Response, *, decision: str = "approve",
                  patient: str | None = None, scopes: list[str] | None = None) -> httpx.Response:
    form = parse_forms(consent_page.text)
    data: dict[str, Any] = {"req": form.inputs["req"], "decision": decision}
    if "patient" in form.selects:
        data["patient"] = patient or form.selects["patient"][0]
    if scopes is not None:
        data["scopes_selected"] = "1"
        data["scope"] = scopes
    return await http.post("/auth/consent", data=data)


async def get_code(http: httpx.AsyncClient, app: App, username: str, *, method: str = "GET",
                   patient: str | None = None, **extra: str) -> tuple[str, str, dict[str, str]]:
    """Full browser leg; returns (code, verifier, params)."""
    verifier, challenge = pkce_pair()
    params = authorize_params(app, challenge, **extra)
    if method == "GET":
        page = await http.get("/auth/authorize", params=params)
    else:
        page = await http.post("/auth/authorize", data=params)
    assert page.status_code == 200, page.text
    consent_page = await login(http, page, username)
    assert consent_page.status_code == 200, consent_page.text
    query = redirect_query(await consent(http, consent_page, patient=patient))
    assert query["state"] == params["state"]
    return query["code"], verifier, params


def exchange_form(app: App, code: str, verifier: str | None) -> dict[str, str]:
    form = {"grant_type": "authorization_code", "code": code, "redirect_uri": REDIRECT}
    if verifier is not None:
        form["code_verifier"] = verifier
    if app.secret is None:
        form["client_id"] = app.client_id
    return form


def client_auth(app: App) -> httpx.BasicAuth | None:
    return httpx.BasicAuth(app.client_id, app.secret) if app.secret else None


