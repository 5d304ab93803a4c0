"""Searchset and history Bundles assembled from stored JSON text (no re-parsing of entries)."""
from __future__ import annotations

import uuid
from datetime import datetime
from urllib.parse import urlencode

import orjson

from app.fhir.dates import http_date, instant
from app.fhir.elements import subset
from app.fhir.search_params import SearchQuery
from app.fhir.store import SearchResult, Version


def search_links(base: str, query: SearchQuery, result: SearchResult) -> list[dict[str, str]]:
    """Absolute self/next/previous links carrying only the parameters actually applied."""
    params = [*query.applied, ("_count", str(query.count))]
    url = f"{base}/{query.resource_type}"

    def link(relation: str, page: str | None) -> dict[str, str]:
        items = params + ([("_page", page)] if page else [])
        return {"relation": relation, "url": f"{url}?{urlencode(items)}"}

    links = [link("self", query.page)]
    if result.next_cursor:
        links.append(link("next", result.next_cursor))
    if result.prev_cursor:
        links.append(link("previous", result.prev_cursor))
    return links


def _entry(base: str, v: Version, mode: str, elements: tuple[str, ...] = ()) -> str:
    content = subset(v.content, elements) if elements and v.content else v.content
    return (f'{{"fullUrl":"{base}/{v.type}/{v.id}","resource":{content},'
            f'"search":{{"mode":"{mode}"}}}}')


def searchset(base: str, query: SearchQuery, result: SearchResult, now: datetime,
              outcome: dict | None = None) -> bytes:
    head: dict = {"resourceType": "Bundle", "id": str(uuid.uuid4()), "meta": {"lastUpdated": instant(now)},
                  "type": "searchset"}
    if result.total is not None:
        head["total"] = result.total
    head["link"] = search_links(base, query, result)
    entries = [_entry(base, v, "match", query.elements) for v in result.matches]
    entries += [_entry(base, v, "include") for v in result.included]  # _elements spares includes
    if outcome:
        entries.append('{"resource":' + orjson.dumps(outcome).decode() + ',"search":{"mode":"outcome"}}')
    body = orjson.dumps(head)[:-1].decode()
    if entries:
        body += ',"entry":[' + ",".join(entries) + "]"
    return (body + "}").encode()


def history_bundle(base: str, self_url: str, versions: list[Version], next_url: str | None, now: datetime) -> bytes:
    head = {"resourceType": "Bundle", "id": str(uuid.uuid4()), "meta": {"lastUpdated": instant(now)},
            "type": "history", "link": [{"relation": "self", "url": self_url}]}
    if next_url:
        head["link"].append({"relation": "next", "url": next_url})
    entries = []
    for v in versions:
        full = f"{base}/{v.type}/{v.id}"
        if v.deleted:
            request = {"method": "DELETE", "url": f"{v.type}/{v.id}"}
            response = {"status": "204 No Content", "etag": v.etag, "lastModified": http_date(v.last_updated)}
            entries.append(orjson.dumps({"fullUrl": full, "request": request, "response": response}).decode())
            continue
        method, url, status = (("POST", v.type, "201 Created") if v.version_id == 1
                               else ("PUT", f"{v.type}/{v.id}", "200 OK"))
        tail = orjson.dumps({"request": {"method": method, "url": url},
                             "response": {"status": status, "etag": v.etag,
                                          "lastModified": instant(v.last_updated)}}).decode()
        entries.append(f'{{"fullUrl":"{full}","resource":{v.content},' + tail[1:])
    body = orjson.dumps(head)[:-1].decode()
    if entries:
        body += ',"entry":[' + ",".join(entries) + "]"
    return (body + "}").encode()
