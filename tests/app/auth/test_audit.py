"""Authentication events become AuditEvents that name who, what and the outcome, never secrets."""
from __future__ import annotations

import json

import httpx
import sqlalchemy as sa

from app.auth.models import T
from tests.app.auth.conftest import PASSWORD, assertion, backend_form, make_backend, pkce_pair
from tests.app.auth.launch_helpers import authorize_params, login, make_app, make_user


def events(engine, tenant: str) -> list[dict]:
    with engine.connect() as conn:
        rows = conn.execute(sa.select(T["audit"].c.content).where(T["audit"].c.tenant_id == tenant)
                            .order_by(T["audit"].c.pk)).scalars().all()
    return [json.loads(r) for r in rows]


async def test_token_and_login_events(http: httpx.AsyncClient, engine, tenant: str) -> None:
    backend = make_backend(engine, tenant)
    form = backend_form(assertion(backend.client_id, backend.key, "ES384"))
    token = (await http.post("/auth/token", data=form)).json()["access_token"]
    await http.post("/auth/token", data={**form, "scope": "system/*.rs"})  # replayed jti: refused
    app = make_app(engine, tenant)
    user = make_user(engine, tenant)
    _, challenge = pkce_pair()
    page = await http.get("/auth/authorize", params=authorize_params(app, challenge))
    await login(http, page, user, "wrong password!")
    await login(http, page, user)

    found = events(engine, tenant)
    summary = [(e["subtype"][0]["code"], e["outcome"]) for e in found]
    assert ("token", "0") in summary and ("token", "4") in summary
    assert ("110122", "4") in summary and ("110122", "0") in summary
    ok = next(e for e in found if e["subtype"][0]["code"] == "token" and e["outcome"] == "0")
    assert ok["resourceType"] == "AuditEvent" and ok["type"]["code"] == "110114"
    assert ok["agent"][0]["who"]["identifier"]["value"] == backend.client_id
    assert ok["agent"][0]["network"]["address"]
    signed_in = next(e for e in found if e["subtype"][0]["code"] == "110122" and e["outcome"] == "0")
    assert any(a["who"].get("identifier", {}).get("value") == user for a in signed_in["agent"])
    text = json.dumps(found)
    assert token not in text and form["client_assertion"] not in text and PASSWORD not in text
