"""Batch and transaction Bundles (R4 http.html §3.1.0.11).

A transaction runs in one :class:`~app.fhir.store.Unit`: identities are assigned first
(conditional creates and updates resolved against the store), every ``urn:uuid:`` fullUrl and
conditional reference (``Patient?identifier=sys|val``) is rewritten everywhere in the bundle,
then entries run in the order the spec prescribes (DELETE, POST, PUT, GET) and the response
lists them in request order. Any failure rolls everything back and returns one
OperationOutcome. A batch runs each entry on its own and always answers 200.
"""
from __future__ import annotations

import copy
import re
from http import HTTPStatus
import uuid
from dataclasses import dataclass, field
from typing import Any, Callable
from urllib.parse import parse_qsl

import orjson

from app.fhir import exact_json
from app.fhir.dates import instant
from app.fhir.errors import FhirError, outcome
from app.fhir.http import parse_if_match
from app.fhir.interactions import check_offered
from app.fhir.registry import Registry
from app.fhir.store import TenantStore, Unit, Version
from app.fhir.validation import check_resource

# (FHIR interaction such as "create" or "search-type", resource type) -> raises FhirError (403)
Authorize = Callable[[str, str], None]
METHOD_ORDER = {"DELETE": 0, "POST": 1, "PUT": 2, "GET": 3, "HEAD": 3}
FHIR_ID = re.compile(r"^[A-Za-z0-9\-.]{1,64}$")  # R4 datatypes: id
MAX_VERSION_DIGITS = 9  # version ids are counted from 1 in an INTEGER column
STATUS_TEXT = {200: "200 OK", 201: "201 Created", 204: "204 No Content"}


@dataclass
class EntryRequest:
    index: int
    method: str
    url: str
    rtype: str
    rid: str | None = None
    vid: int | None = None
    criteria: list[tuple[str, str]] | None = None
    resource: dict[str, Any] | None = None
    full_url: str | None = None
    if_none_exist: list[tuple[str, str]] | None = None
    if_match: int | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def where(self) -> str:
        return f"Bundle.entry[{self.index}]"


def rewrite_references(node: Any, mapping: dict[str, str],
                       resolve: Callable[[str], str] | None = None) -> Any:
    """Return ``node`` with every reference to a bundle fullUrl replaced by ``Type/id``.

    Exact string matches anywhere (``Reference.reference`` and uri elements) are replaced;
    inside narrative ``div`` text every occurrence is. ``resolve`` turns a conditional
    reference (``Type?params``) into ``Type/id``.
    """
    if isinstance(node, dict):
        out = {}
        for key, value in node.items():
            if key == "div" and isinstance(value, str):
                for old, new in mapping.items():
                    if old in value:
                        value = value.replace(old, new)
                out[key] = value
            elif key == "reference" and isinstance(value, str) and resolve and "?" in value and value not in mapping:
                out[key] = resolve(value)
            else:
                out[key] = rewrite_references(value, mapping, resolve)
        return out
    if isinstance(node, list):
        return [rewrite_references(v, mapping, resolve) for v in node]
    if isinstance(node, str) and node in mapping:
        return mapping[node]
    return node


def _parse_url(url: str, base: str, registry: Registry, where: str) -> tuple[str, str | None, int | None,
                                                                           list[tuple[str, str]] | None]:
    if url.startswith(base + "/"):
        url = url[len(base) + 1:]
    path, _, qs = url.partition("?")
    parts = [p for p in path.split("/") if p]
    if not parts or parts[0] not in registry:
        raise FhirError(400, "not-supported", f"Entry URL '{url}' does not name a supported resource type",
                        expression=[f"{where}.request.url"])
    rtype = parts[0]
    criteria = parse_qsl(qs, keep_blank_values=True) if qs else None
    if len(parts) == 1:
        return rtype, None, None, criteria
    if not FHIR_ID.match(parts[1]):
        raise FhirError(400, "invalid", f"'{parts[1][:80]}' in the entry URL is not a FHIR id (1 to 64 letters, "
                        "digits, '-' and '.')", expression=[f"{where}.request.url"])
    if len(parts) == 2:
        return rtype, parts[1], None, criteria
    if len(parts) == 4 and parts[2] == "_history" and parts[3].isdigit() and len(parts[3]) <= MAX_VERSION_DIGITS:
        return rtype, parts[1], int(parts[3]), None
    raise FhirError(400, "not-supported", f"Entry URL '{url}' is not an interaction this server supports",
                    expression=[f"{where}.request.url"])


def parse_entries(bundle: dict[str, Any], base: str, registry: Registry) -> list[EntryRequest]:
    entries = bundle.get("entry") or []
    if not isinstance(entries, list):
        raise FhirError(400, "structure", "Bundle.entry must be an array", expression=["Bundle.entry"])
    out: list[EntryRequest] = []
    seen_full_urls: set[str] = set()
    for i, entry in enumerate(entries):
        where = f"Bundle.entry[{i}]"
        request = entry.get("request") if isinstance(entry, dict) else None
        if not isinstance(request, dict) or not request.get("method") or not request.get("url"):
            raise FhirError(400, "required", "Every entry needs request.method and request.url (bdl-3)",
                            expression=[f"{where}.request"])
        method = str(request["method"]).upper()
        if method not in METHOD_ORDER:
            raise FhirError(405 if method == "PATCH" else 400, "not-supported",
                            f"Entry method {method} is not supported", expression=[f"{where}.request.method"])
        rtype, rid, vid, criteria = _parse_url(str(request["url"]), base, registry, where)
        resource = entry.get("resource")
        if method in ("POST", "PUT"):
            if not isinstance(resource, dict):
                raise FhirError(400, "required", f"A {method} entry needs a resource", expression=[f"{where}.resource"])
            check_resource(resource, expected_type=rtype, where=f"{where}.resource")
            if method == "POST" and (rid or criteria):
                raise FhirError(400, "invalid", "A POST entry URL is the resource type alone",
                                expression=[f"{where}.request.url"])
            if method == "PUT" and not rid and not criteria:
                raise FhirError(400, "invalid", "A PUT entry URL needs an id or search criteria",
                                expression=[f"{where}.request.url"])
            if method == "PUT" and rid and resource.get("id") not in (None, rid):
                raise FhirError(400, "invalid", f"Resource id {resource.get('id')!r} does not match the entry URL id",
                                expression=[f"{where}.resource.id"])
        full_url = entry.get("fullUrl")
        if full_url is not None and not isinstance(full_url, str):
            raise FhirError(400, "structure", "fullUrl must be a string (a uri)", expression=[f"{where}.fullUrl"])
        if full_url:
            if full_url in seen_full_urls:
                raise FhirError(400, "invalid", f"fullUrl {full_url} appears twice (bdl-7)", expression=[f"{where}.fullUrl"])
            seen_full_urls.add(full_url)
        if_none_exist = None
        if request.get("ifNoneExist"):
            if_none_exist = parse_qsl(str(request["ifNoneExist"]).lstrip("?").split("?")[-1], keep_blank_values=True)
        if_match = None
        if request.get("ifMatch"):
            if_match = parse_if_match(str(request["ifMatch"]))
        out.append(EntryRequest(i, method, str(request["url"]), rtype, rid, vid, criteria,
                                copy.deepcopy(resource) if isinstance(resource, dict) else None,
                                full_url, if_none_exist, if_match))
    return out


class BundleProcessor:
    """Runs batch and transaction Bundles; every write in them is a client's write (guards apply)."""

    def __init__(self, ts: TenantStore, registry: Registry, base: str, authorize: Authorize,
                 get_handler: Callable[[Unit, EntryRequest], tuple[int, str | None]],
                 return_pref: str | None = None) -> None:
        self.ts = ts
        self.registry = registry
        self.base = base
        self.authorize = authorize
        self.get_handler = get_handler
        self.return_pref = return_pref

    # -- transaction -------------------------------------------------------------------
    def transaction(self, bundle: dict[str, Any]) -> dict[str, Any]:
        entries = parse_entries(bundle, self.base, self.registry)
        for e in entries:
            self._permit(e)
        results: dict[int, dict[str, Any]] = {}
        with self.ts.unit() as unit:
            mapping, matched = self._assign_identities(unit, entries)
            targets = [(e.rtype, e.rid) for e in entries if e.method in ("POST", "PUT", "DELETE") and e.rid]
            if len(targets) != len(set(targets)):
                raise FhirError(400, "invalid", "A transaction may not change the same resource twice")

            def resolve(ref: str) -> str:
                rtype, _, qs = ref.partition("?")
                if rtype not in self.registry:
                    raise FhirError(400, "invalid", f"Conditional reference {ref} names an unsupported type")
                found = unit.find_ids(rtype, parse_qsl(qs, keep_blank_values=True))
                if len(found) != 1:
                    raise FhirError(412 if found else 404, "multiple-matches" if found else "not-found",
                                    f"Conditional reference {ref} matched {len(found)} resources; exactly one is needed")
                return f"{rtype}/{found[0]}"

            for e in entries:
                if e.resource is not None:
                    e.resource = rewrite_references(e.resource, mapping, resolve)
                    _reject_dangling(e)
            for e in sorted(entries, key=lambda x: (METHOD_ORDER[x.method], x.index)):
                try:
                    results[e.index] = self._run(unit, e, matched)
                except FhirError as err:
                    for iss in err.issues:
                        iss.setdefault("expression", [e.where])
                    raise
        return {"resourceType": "Bundle", "id": str(uuid.uuid4()), "type": "transaction-response",
                "meta": {"lastUpdated": instant(self.ts.store.clock())},
                "entry": [results[e.index] for e in entries]}

    def _assign_identities(self, unit: Unit, entries: list[EntryRequest]) -> tuple[dict[str, str], dict[int, Version]]:
        mapping: dict[str, str] = {}
        matched: dict[int, Version] = {}
        for e in entries:
            if e.method == "POST":
                if e.if_none_exist is not None:
                    unit.lock(e.rtype, orjson.dumps(sorted(e.if_none_exist)).decode())
                    found = unit.find_ids(e.rtype, e.if_none_exist)
                    if len(found) > 1:
                        raise FhirError(412, "multiple-matches",
                                        f"ifNoneExist matched {len(found)} {e.rtype} resources",
                                        expression=[f"{e.where}.request.ifNoneExist"])
                    if found:
                        e.rid = found[0]
                        matched[e.index] = unit.read(e.rtype, found[0])
                if e.rid is None:
                    e.rid = str(uuid.uuid4())
            elif e.method == "PUT" and e.criteria is not None and e.rid is None:
                unit.lock(e.rtype, orjson.dumps(sorted(e.criteria)).decode())
                found = unit.find_ids(e.rtype, e.criteria)
                if len(found) > 1:
                    raise FhirError(412, "multiple-matches", f"Conditional update matched {len(found)} resources",
                                    expression=[f"{e.where}.request.url"])
                e.rid = found[0] if found else (e.resource or {}).get("id") or str(uuid.uuid4())
            elif e.method == "DELETE" and e.criteria is not None and e.rid is None:
                found = unit.find_ids(e.rtype, e.criteria)
                if len(found) > 1:
                    raise FhirError(412, "multiple-matches", f"Conditional delete matched {len(found)} resources",
                                    expression=[f"{e.where}.request.url"])
                e.rid = found[0] if found else None
                e.extra["absent"] = not found
            if e.full_url and e.rid and e.method in ("POST", "PUT"):
                mapping[e.full_url] = f"{e.rtype}/{e.rid}"
        return mapping, matched

    def _run(self, unit: Unit, e: EntryRequest, matched: dict[int, Version]) -> dict[str, Any]:
        if e.method == "DELETE":
            v = unit.delete(e.rtype, e.rid, client=True) if e.rid else None
            resp: dict[str, Any] = {"status": "204 No Content"}
            if v is not None:
                resp["etag"] = v.etag
            return {"response": resp}
        if e.method == "POST":
            if e.index in matched:
                return self._write_entry(matched[e.index], 200)
            assert e.resource is not None and e.rid is not None
            e.resource.pop("id", None)
            result = unit.create(e.resource, rid=e.rid, client=True)
            return self._write_entry(result.version, result.status)
        if e.method == "PUT":
            assert e.resource is not None and e.rid is not None
            e.resource["id"] = e.rid
            result = unit.update(e.rtype, e.rid, e.resource, if_match=e.if_match, client=True)
            return self._write_entry(result.version, result.status)
        status, body = self.get_handler(unit, e)
        entry: dict[str, Any] = {"response": {"status": STATUS_TEXT.get(status, str(status))}}
        if body is not None:
            entry["resource"] = orjson.Fragment(body)  # stored text as is: decimals keep their precision
        return entry

    def _write_entry(self, v: Version, status: int) -> dict[str, Any]:
        entry: dict[str, Any] = {"fullUrl": f"{self.base}/{v.type}/{v.id}"}
        if self.return_pref != "minimal" and v.content:
            entry["resource"] = orjson.Fragment(v.content)  # stored text as is: decimals keep their precision
        entry["response"] = {"status": STATUS_TEXT[status], "location": f"{v.type}/{v.id}/_history/{v.version_id}",
                             "etag": v.etag, "lastModified": instant(v.last_updated)}
        return entry

    def _permit(self, e: EntryRequest) -> None:
        """An entry passes the same gate as the direct interaction: 405 for an interaction its
        type does not offer (whoever asks, the command-line loader included), then the caller's
        scopes."""
        interaction = _interaction(e)
        try:
            check_offered(self.registry, interaction, e.rtype)
            self.authorize(interaction, e.rtype)
        except FhirError as err:
            for iss in err.issues:
                iss.setdefault("expression", [f"{e.where}.request"])
            raise

    # -- batch -------------------------------------------------------------------------
    def batch(self, bundle: dict[str, Any]) -> dict[str, Any]:
        raw_entries = bundle.get("entry") or []
        if not isinstance(raw_entries, list):
            raise FhirError(400, "structure", "Bundle.entry must be an array", expression=["Bundle.entry"])
        out = []
        for i, raw in enumerate(raw_entries):
            try:
                [e] = parse_entries({"entry": [raw]}, self.base, self.registry)
                e.index = i
                self._permit(e)
                with self.ts.unit() as unit:
                    _, matched = self._assign_identities(unit, [e])
                    out.append(self._run(unit, e, matched))
            except FhirError as err:
                out.append({"response": {"status": f"{err.status} {HTTPStatus(err.status).phrase}", "outcome": outcome(
                    [dict(iss, expression=[x.replace("Bundle.entry[0]", f"Bundle.entry[{i}]")
                                           for x in iss.get("expression", [])]) if iss.get("expression") else iss
                     for iss in err.issues])}})
        return {"resourceType": "Bundle", "id": str(uuid.uuid4()), "type": "batch-response",
                "meta": {"lastUpdated": instant(self.ts.store.clock())}, "entry": out}


def _interaction(e: EntryRequest) -> str:
    """The FHIR interaction an entry asks for (R4 restful-interaction codes)."""
    if e.method == "DELETE":
        return "delete"
    if e.method == "POST":
        return "create"
    if e.method == "PUT":
        return "update"
    return ("vread" if e.vid else "read") if e.rid else "search-type"


def _reject_dangling(e: EntryRequest) -> None:
    """A urn:uuid reference left after rewriting points at nothing in this bundle."""
    text = exact_json.dumps(e.resource).decode()
    marker = '"reference":"urn:uuid:'
    if marker in text:
        start = text.index(marker) + len('"reference":"')
        ref = text[start:text.index('"', start)]
        raise FhirError(400, "invalid", f"Reference {ref} does not match any fullUrl in this transaction",
                        expression=[f"{e.where}.resource"])
