"""Get a Backend Services access token with a key file written by the demo bootstrap.

    python -m app.auth.get_token [var/demo-backend-key.json] [--scope "system/*.rs"]

Signs a one-time ``private_key_jwt`` assertion (SAL-ASYM), posts it to the token endpoint and
prints the access token alone, so it composes with curl:

    curl -H "Authorization: Bearer $(python -m app.auth.get_token)" http://127.0.0.1:8000/fhir/Patient
"""
from __future__ import annotations

import argparse
import json
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
from joserfc import jwk, jwt

ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"


def client_assertion(client_id: str, token_url: str, key: jwk.Key, alg: str) -> str:
    now = int(time.time())
    claims = {"iss": client_id, "sub": client_id, "aud": token_url, "exp": now + 300,
              "iat": now, "jti": uuid.uuid4().hex}
    return jwt.encode({"alg": alg, "kid": key.kid, "typ": "JWT"}, claims, key, algorithms=[alg])


def request_token(key_file: Path, scope: str | None = None) -> dict[str, Any]:
    data = json.loads(key_file.read_text())
    key = jwk.import_key(data["private_jwk"])
    form = {
        "grant_type": "client_credentials",
        "scope": scope or data.get("scope", "system/*.rs"),
        "client_assertion_type": ASSERTION_TYPE,
        "client_assertion": client_assertion(data["client_id"], data["token_url"], key, data["alg"]),
    }
    resp = httpx.post(data["token_url"], data=form, timeout=10)
    body = resp.json()
    if resp.status_code != 200:
        raise SystemExit(f"token request failed: {body.get('error')}: {body.get('error_description')}")
    return body


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("key_file", nargs="?", default="var/demo-backend-key.json", type=Path)
    parser.add_argument("--scope", default=None)
    parser.add_argument("--json", action="store_true", help="print the whole token response")
    args = parser.parse_args(argv)
    body = request_token(args.key_file, args.scope)
    sys.stdout.write((json.dumps(body, indent=2) if args.json else body["access_token"]) + "\n")


if __name__ == "__main__":
    main()
