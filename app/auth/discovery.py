"""Discovery documents: SMART configuration (SAL-CONF), OpenID configuration (OIDC Discovery
§3) and the CapabilityStatement security element.

The issuer is the public URL (not the FHIR base): id_tokens carry it as ``iss`` and OIDC
clients, Inferno included, fetch ``{iss}/.well-known/openid-configuration``, which is served
at the root. The same document is also served under the FHIR base for clients that look there.
"""
from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path
from typing import Any

from app.auth.assertions import ALLOWED_ALGS
from app.auth.keys import ALG
from app.auth.tokens import issuer
from app.settings import Settings


@lru_cache(maxsize=1)
def _data() -> dict[str, Any]:
    return json.loads((Path(__file__).parent / "data" / "smart_capabilities.json").read_text())


def endpoints(settings: Settings) -> dict[str, str]:
    base = settings.public_url.rstrip("/") + "/auth"
    return {
        "authorization_endpoint": base + "/authorize",
        "token_endpoint": base + "/token",
        "introspection_endpoint": base + "/introspect",
        "revocation_endpoint": base + "/revoke",
        "registration_endpoint": base + "/register",
        "jwks_uri": base + "/jwks",
    }


def token_url(settings: Settings) -> str:
    """The token endpoint, the ``aud`` client assertions must carry (SAL-ASYM)."""
    return endpoints(settings)["token_endpoint"]


def smart_configuration(settings: Settings) -> dict[str, Any]:
    return {
        "issuer": issuer(settings),
        **endpoints(settings),
        "grant_types_supported": ["authorization_code", "client_credentials", "refresh_token"],
        "response_types_supported": ["code"],
        "code_challenge_methods_supported": ["S256"],
        "token_endpoint_auth_methods_supported": ["private_key_jwt", "client_secret_basic", "none"],
        "token_endpoint_auth_signing_alg_values_supported": list(ALLOWED_ALGS),
        "scopes_supported": list(_data()["scopes_supported"]),
        "capabilities": list(_data()["capabilities"]),
    }


def openid_configuration(settings: Settings) -> dict[str, Any]:
    return {
        "issuer": issuer(settings),
        **endpoints(settings),
        "response_types_supported": ["code"],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": [ALG],
        "scopes_supported": ["openid", "fhirUser", "profile"],
        "claims_supported": ["iss", "sub", "aud", "exp", "iat", "nonce", "fhirUser"],
        "grant_types_supported": ["authorization_code", "refresh_token", "client_credentials"],
        "code_challenge_methods_supported": ["S256"],
        "token_endpoint_auth_methods_supported": ["private_key_jwt", "client_secret_basic", "none"],
        "token_endpoint_auth_signing_alg_values_supported": list(ALLOWED_ALGS),
    }
