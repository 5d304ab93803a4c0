"""SMART Backend Services: client_credentials with private_key_jwt (SAL-BS, SAL-ASYM)."""
from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Iterator

import httpx
import pytest
from authlib.integrations.httpx_client import AsyncOAuth2Client
from authlib.oauth2.rfc7523 import PrivateKeyJWT

from app.auth import admin
from tests.app.auth.conftest import (
    FHIR, TOKEN_URL, Backend, assertion, b64url_json, backend_form, decode_unverified, make_backend,
    new_key, public_jwks,
)


async def token_request(http: httpx.AsyncClient, form: dict[str, str]) -> httpx.Response:
    return await http.post("/auth/token", data=form)


def assert_oauth_error(resp: httpx.Response, error: str, statuses: tuple[int, ...] = (400,)) -> None:
    assert resp.status_code in statuses, resp.text
    assert resp.headers["content-type"].startswith("application/json")
    assert resp.json()["error"] == error
    assert "no-store" in resp.headers["cache-control"]
    assert "no-cache" in resp.headers["pragma"]


@pytest.mark.parametrize("alg", ["RS384", "ES384", "RS256", "ES256"])
async def test_authlib_client_gets_a_token_and_reads(http: httpx.AsyncClient, engine, tenant: str, alg: str) -> None:
    backend = make_backend(engine, tenant, alg=alg)
    auth = PrivateKeyJWT(TOKEN_URL, alg=alg, headers={"kid": backend.key.kid, "typ": "JWT"},
                         claims={"exp": int(time.time()) + 300})
    async with AsyncOAuth2Client(client_id=backend.client_id, client_secret=backend.key,
                                 token_endpoint_auth_method=auth, scope="system/Patient.rs system/Claim.cruds",
                                 transport=http._transport, base_url=http.base_url) as client:
        token = await client.fetch_token(TOKEN_URL, grant_type="client_credentials")
        assert token["token_type"].lower() == "bearer"
        assert token["expires_in"] == 300
        assert set(token["scope"].split()) == {"system/Patient.rs", "system/Claim.cruds"}
        assert "refresh_token" not in token
        resp = await client.get(f"{FHIR}/Patient/1")
    assert resp.status_code == 200
    assert resp.json()["tenant"] == tenant
    assert resp.json()["client_id"] == backend.client_id


async def test_response_fields_and_headers(http: httpx.AsyncClient, engine, tenant: str) -> None:
    backend = make_backend(engine, tenant)
    resp = await token_request(http, backend_form(assertion(backend.client_id, backend.key, "ES384")))
    assert resp.status_code == 200
    body = resp.json()
    assert isinstance(body["access_token"], str) and isinstance(body["expires_in"], int)
    assert body["token_type"] == "bearer" and body["scope"] == "system/*.rs"
    assert resp.headers["cache-control"] == "no-store" and resp.headers["pragma"] == "no-cache"
    assert resp.headers["access-control-allow-origin"] == "*"
    head, claims = decode_unverified(body["access_token"])
    assert head["alg"] == "RS256" and head["kid"]
    assert claims["aud"] == FHIR and claims["tenant"] == tenant and claims["sub"] == backend.client_id
    assert claims["exp"] - claims["iat"] == 300


async def test_scopes_are_limited_to_the_registration(http: httpx.AsyncClient, engine, tenant: str) -> None:
    backend = make_backend(engine, tenant, scope="system/Patient.rs system/Claim.cruds")
    form = backend_form(assertion(backend.client_id, backend.key, "ES384"),
                        scope="system/*.cruds patient/*.rs user/Patient.rs")
    body = (await token_request(http, form)).json()
    assert set(body["scope"].split()) == {"system/Patient.rs", "system/Claim.cruds"}
    form = backend_form(assertion(backend.client_id, backend.key, "ES384"), scope="system/Coverage.rs")
    assert_oauth_error(await token_request(http, form), "invalid_scope")
    form = backend_form(assertion(backend.client_id, backend.key, "ES384"), scope="user/Patient.rs")
    assert_oauth_error(await token_request(http, form), "invalid_scope")


async def test_bad_grant_type_and_assertion_type(http: httpx.AsyncClient, engine, tenant: str) -> None:
    backend = make_backend(engine, tenant)
    form = backend_form(assertion(backend.client_id, backend.key, "ES384"))
    assert_oauth_error(await token_request(http, {**form, "grant_type": "password"}), "unsupported_grant_type")
    assert_oauth_error(await token_request(http, {**form, "client_assertion_type": "not_an_assertion_type"}),
                       "invalid_client", (400, 401))
    assert_oauth_error(await token_request(http, {k: v for k, v in form.items() if k != "scope"}), "invalid_request")
    resp = await http.post("/auth/token", json=form)
    assert_oauth_error(resp, "invalid_request")
    resp = await http.post("/auth/token", content="grant_type=client_credentials&grant_type=client_credentials",
                           headers={"content-type": "application/x-www-form-urlencoded"})
    assert_oauth_error(resp, "invalid_request")


@pytest.fixture
def backend(engine, tenant: str) -> Backend:
    return make_backend(engine, tenant)


REJECTIONS: dict[str, Any] = {
    "expired": dict(claims={"exp": int(time.time()) - 120}),
    "far_future_exp": dict(claims={"exp": int(time.time()) + 600}),
    "exp_not_int": dict(claims={"exp": str(int(time.time()) + 60)}),
    "wrong_aud": dict(claims={"aud": "http://testserver/auth/other"}),
    "iss_not_sub": dict(claims={"iss": "someone-else"}),
    "missing_jti": dict(claims={"jti": None}),
    "missing_kid": dict(header={"kid": None}),
    "wrong_typ": dict(header={"typ": "at+jwt"}),
    "unknown_kid": dict(header={"kid": "nope"}),
    "unregistered_jku": dict(header={"jku": "https://attacker.example/jwks.json"}),
}


@pytest.mark.parametrize("case", sorted(REJECTIONS))
async def test_assertion_rejections(http: httpx.AsyncClient, backend: Backend, case: str) -> None:
    spec = REJECTIONS[case]
    token = assertion(backend.client_id, backend.key, "ES384", header=spec.get("header"), **spec.get("claims", {}))
    assert_oauth_error(await token_request(http, backend_form(token)), "invalid_client", (400, 401))


async def test_now_plus_300_with_skew_is_accepted(http: httpx.AsyncClient, backend: Backend) -> None:
    token = assertion(backend.client_id, backend.key, "ES384", exp=int(time.time()) + 330)
    assert (await token_request(http, backend_form(token))).status_code == 200


async def test_replayed_jti_is_rejected(http: httpx.AsyncClient, backend: Backend) -> None:
    token = assertion(backend.client_id, backend.key, "ES384", jti="once-only")
    assert (await token_request(http, backend_form(token))).status_code == 200
    assert_oauth_error(await token_request(http, backend_form(token)), "invalid_client", (400, 401))
    again = assertion(backend.client_id, backend.key, "ES384", jti="once-only")
    assert_oauth_error(await token_request(http, backend_form(again)), "invalid_client", (400, 401))


async def test_replay_cache_is_shared_through_the_database(engine, settings, backend: Backend) -> None:
    """A second app instance on the same database (another replica) refuses the same jti."""
    from tests.app.auth.conftest import build_app

    token = assertion(backend.client_id, backend.key, "ES384")
    for expected in (200, 400):
        replica = build_app(engine, settings)
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=replica), base_url="http://testserver") as c:
            assert (await token_request(c, backend_form(token))).status_code == expected


async def test_unknown_client(http: httpx.AsyncClient) -> None:
    key = new_key("ES384")
    assert_oauth_error(await token_request(http, backend_form(assertion("no-such-client", key, "ES384"))),
                       "invalid_client", (400, 401))


async def test_bad_signature(http: httpx.AsyncClient, backend: Backend) -> None:
    impostor = new_key("ES384", kid=backend.key.kid)
    token = assertion(backend.client_id, impostor, "ES384")
    assert_oauth_error(await token_request(http, backend_form(token)), "invalid_client", (400, 401))
    good = assertion(backend.client_id, backend.key, "ES384")
    head, payload, sig = good.split(".")
    tampered = ".".join([head, b64url_json({**decode_unverified(good)[1], "sub": "x", "iss": "x"}), sig])
    assert_oauth_error(await token_request(http, backend_form(tampered)), "invalid_client", (400, 401))


async def test_alg_none_is_rejected(http: httpx.AsyncClient, backend: Backend) -> None:
    claims = decode_unverified(assertion(backend.client_id, backend.key, "ES384"))[1]
    unsigned = b64url_json({"alg": "none", "kid": backend.key.kid, "typ": "JWT"}) + "." + b64url_json(claims) + "."
    assert_oauth_error(await token_request(http, backend_form(unsigned)), "invalid_client", (400, 401))


async def test_hmac_signed_with_the_public_key_is_rejected(http: httpx.AsyncClient, engine, tenant: str) -> None:
    """The classic key-confusion forgery: HS256 keyed with the client's public key bytes."""
    import base64
    import hashlib
    import hmac

    backend = make_backend(engine, tenant, alg="RS384")
    claims = decode_unverified(assertion(backend.client_id, backend.key, "RS384"))[1]
    signing_input = b64url_json({"alg": "HS256", "kid": backend.key.kid, "typ": "JWT"}) + "." + b64url_json(claims)
    for secret in (backend.key.as_pem(private=False), json.dumps(backend.key.as_dict(private=False)).encode()):
        mac = hmac.new(secret, signing_input.encode(), hashlib.sha256).digest()
        forged = signing_input + "." + base64.urlsafe_b64encode(mac).rstrip(b"=").decode()
        assert_oauth_error(await token_request(http, backend_form(forged)), "invalid_client", (400, 401))


async def test_alg_must_match_key_type(http: httpx.AsyncClient, backend: Backend) -> None:
    rsa = new_key("RS384", kid=backend.key.kid)
    token = assertion(backend.client_id, rsa, "RS384")
    assert_oauth_error(await token_request(http, backend_form(token)), "invalid_client", (400, 401))


async def test_public_and_secret_clients_cannot_use_client_credentials(http: httpx.AsyncClient, engine, tenant: str) -> None:
    created = admin.register_client(engine, tenant=tenant, name="app", scope="system/*.rs", kind="secret",
                                    redirect_uris=["https://app.example/cb"])
    basic = httpx.BasicAuth(created["client_id"], created["client_secret"])
    resp = await http.post("/auth/token", data={"grant_type": "client_credentials", "scope": "system/*.rs"}, auth=basic)
    assert_oauth_error(resp, "unauthorized_client")


# -- JWKS URL clients ---------------------------------------------------------------------

class _JwksServer:
    def __init__(self) -> None:
        self.jwks: dict[str, Any] = {"keys": []}
        self.cache_control: str | None = "max-age=300"
        self.hits = 0
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802
                outer.hits += 1
                body = json.dumps(outer.jwks).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                if outer.cache_control:
                    self.send_header("Cache-Control", outer.cache_control)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/jwks.json"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


@pytest.fixture
def jwks_server() -> Iterator[_JwksServer]:
    server = _JwksServer()
    yield server
    server.server.shutdown()


async def test_jwks_uri_client_is_cached_and_refetched_on_unknown_kid(http: httpx.AsyncClient, engine, tenant: str,
                                                                      jwks_server: _JwksServer) -> None:
    first = new_key("RS384")
    jwks_server.jwks = public_jwks(first)
    backend = make_backend(engine, tenant, alg="RS384", jwks_uri=jwks_server.url)
    for _ in range(2):
        resp = await token_request(http, backend_form(assertion(backend.client_id, first, "RS384")))
        assert resp.status_code == 200, resp.text
    assert jwks_server.hits == 1  # cached per max-age
    rotated = new_key("ES384")
    jwks_server.jwks = public_jwks(first, rotated)
    resp = await token_request(http, backend_form(assertion(backend.client_id, rotated, "ES384")))
    assert resp.status_code == 200, resp.text
    assert jwks_server.hits == 2  # unknown kid: fetched again once
    jku = assertion(backend.client_id, rotated, "ES384", header={"jku": jwks_server.url})
    assert (await token_request(http, backend_form(jku))).status_code == 200


async def test_jwks_uri_without_cache_control_is_not_cached(http: httpx.AsyncClient, engine, tenant: str,
                                                            jwks_server: _JwksServer) -> None:
    key = new_key("ES384")
    jwks_server.jwks = public_jwks(key)
    jwks_server.cache_control = "no-store"
    backend = make_backend(engine, tenant, jwks_uri=jwks_server.url)
    for _ in range(2):
        assert (await token_request(http, backend_form(assertion(backend.client_id, key, "ES384")))).status_code == 200
    assert jwks_server.hits == 2
