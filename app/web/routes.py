"""Serves the practice web app: ``/app/`` (the page, also the SMART redirect URI) and its static
files under ``/app/``.

The app is files only — ES modules, CSS and vendored libraries — so there is nothing to build at
install. The page carries a strict Content-Security-Policy: scripts from this origin only, plus
the page's one inline import map, allowed by its hash (computed here from the file, so editing
the map needs no second edit). ``Referrer-Policy: no-referrer`` keeps the authorization code of
the redirect out of any Referer header.
"""
from __future__ import annotations

import base64
import hashlib
import re
from functools import lru_cache
from pathlib import Path

from fastapi import APIRouter
from fastapi.responses import FileResponse, RedirectResponse, Response

from app.fhir.errors import FhirError

STATIC = (Path(__file__).parent / "static").resolve()
_IMPORT_MAP = re.compile(r'<script type="importmap">(.*?)</script>', re.S)
_TYPES = {".js": "text/javascript", ".css": "text/css", ".png": "image/png", ".svg": "image/svg+xml",
          ".md": "text/plain", "": "text/plain"}

router = APIRouter(include_in_schema=False)


@lru_cache(maxsize=1)
def _page() -> tuple[bytes, str]:
    html = (STATIC / "index.html").read_text()
    hashes = " ".join(f"'sha256-{base64.b64encode(hashlib.sha256(m.encode()).digest()).decode()}'"
                      for m in _IMPORT_MAP.findall(html))
    csp = ("default-src 'self'; " f"script-src 'self' {hashes}; "
           "style-src 'self'; img-src 'self' data:; connect-src 'self'; "
           "object-src 'none'; base-uri 'self'; form-action 'self'; frame-ancestors 'none'")
    return html.encode(), csp


def _headers(csp: str | None = None) -> dict[str, str]:
    headers = {"Referrer-Policy": "no-referrer", "X-Content-Type-Options": "nosniff", "Cache-Control": "no-cache"}
    if csp:
        headers["Content-Security-Policy"] = csp
    return headers


@router.get("/app")
async def app_root() -> Response:
    return RedirectResponse("/app/", status_code=308)


@router.get("/app/")
async def app_page() -> Response:
    body, csp = _page()
    return Response(body, media_type="text/html; charset=utf-8", headers=_headers(csp))


@router.get("/app/{path:path}")
async def app_file(path: str) -> Response:
    """A static file of the app; never anything outside its folder."""
    target = (STATIC / path).resolve()
    if not target.is_relative_to(STATIC) or not target.is_file() or target.name == "index.html":
        raise FhirError(404, "not-found", f"No file /app/{path}")
    return FileResponse(target, media_type=_TYPES.get(target.suffix, "application/octet-stream"),
                        headers=_headers())
