"""Request and response plumbing shared by the FHIR routes (R4 http.html §3.1.0).

Bodies are read with a size cap, content types checked (JSON only; XML is refused with a
415 that says so), and responses are ``application/fhir+json`` built from stored JSON text
without a model round trip. Resources to store are parsed with ``exact_json``, so their
decimals keep the precision they were sent with.
"""
from __future__ import annotations

import re
from typing import Any

import orjson
from fastapi import Request
from fastapi.responses import Response

from app.fhir import exact_json
from app.fhir.dates import http_date
from app.fhir.errors import FhirError
from app.fhir.store import Version

FHIR_JSON = "application/fhir+json; charset=utf-8"
JSON_TYPES = ("application/fhir+json", "application/json", "application/json-patch+json")
FORM = "application/x-www-form-urlencoded"
_ETAG_RE = re.compile(r'^\s*(?:W/)?"?(\d+)"?\s*$')


def fhir_response(body: bytes | str | dict[str, Any] | None, status: int = 200,
                  headers: dict[str, str] | None = None) -> Response:
    if isinstance(body, dict):
        body = orjson.dumps(body)
    return Response(content=body if body is not None else b"", status_code=status, headers=headers,
                    media_type=FHIR_JSON if body is not None else None)


def version_headers(v: Version, base: str) -> dict[str, str]:
    return {
        "ETag": v.etag,
        "Last-Modified": http_date(v.last_updated),
        "Location": f"{base}/{v.type}/{v.id}/_history/{v.version_id}",
    }


def check_accept(request: Request) -> None:
    """406 when the client accepts only formats we do not produce (we speak JSON only)."""
    fmt = request.query_params.get("_format")
    if fmt and "xml" in fmt:
        raise FhirError(406, "not-supported", "Only JSON is supported; use _format=json")
    accept = request.headers.get("accept")
    if accept and "xml" in accept and "json" not in accept and "*/*" not in accept:
        raise FhirError(406, "not-supported", "Only application/fhir+json is produced by this server")


async def read_body(request: Request, max_bytes: int) -> bytes:
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > max_bytes:
        raise FhirError(413, "too-long", f"The request body is larger than the {max_bytes}-byte limit")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > max_bytes:
            raise FhirError(413, "too-long", f"The request body is larger than the {max_bytes}-byte limit")
        chunks.append(chunk)
    return b"".join(chunks)


async def read_json(request: Request, max_bytes: int, *, exact: bool = False) -> Any:
    """The JSON body. ``exact``: numbers a float would rewrite (``75.00``, ``1e2``) keep their
    text (``exact_json.ExactNumber``, a float that serializes as sent), for bodies stored as sent."""
    ctype = (request.headers.get("content-type") or "").split(";")[0].strip().lower()
    if "xml" in ctype:
        raise FhirError(415, "not-supported",
                        f"Content-Type {ctype} is not supported: this server accepts FHIR JSON only "
                        "(application/fhir+json or application/json)")
    if ctype and ctype not in JSON_TYPES:
        raise FhirError(415, "not-supported",
                        f"Content-Type {ctype} is not supported; send application/fhir+json")
    raw = await read_body(request, max_bytes)
    if not raw.strip():
        raise FhirError(400, "structure", "The request body is empty; a FHIR resource is required")
    if b"\\u0000" in raw or b"\x00" in raw:
        raise FhirError(400, "value", "FHIR strings may not contain the NUL character")
    try:
        return exact_json.loads(raw) if exact else orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise FhirError(400, "structure", f"The body is not valid JSON: {exc}") from None


def parse_if_match(value: str | None) -> int | None:
    if value is None:
        return None
    m = _ETAG_RE.match(value)
    if not m:
        raise FhirError(400, "invalid", f"If-Match must be a version ETag such as W/\"3\", not {value!r}")
    return int(m.group(1))


def prefer(request: Request, key: str) -> str | None:
    """Value of one ``Prefer`` token, e.g. ``return`` or ``handling`` (RFC 7240)."""
    header = request.headers.get("prefer")
    if not header:
        return None
    for part in header.split(","):
        for token in part.split(";"):
            name, _, value = token.strip().partition("=")
            if name.strip().lower() == key:
                return value.strip().strip('"').lower()
    return None
