"""``therabridge load``: FHIR JSON files into the store directly or into a running server.

A file holds one resource or a Bundle. Transaction and batch Bundles are processed as such;
a collection (or searchset) Bundle's resources are loaded one by one; a resource with an id is
written with update semantics (so loading twice is harmless), one without is created.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Iterator

import httpx
import orjson

from app.fhir import exact_json
from app.fhir.errors import FhirError
from app.settings import Settings

Result = tuple[str, str | None]  # (label, error or None)


def _first_problem(outcome: dict[str, Any]) -> str:
    issues = outcome.get("issue") or [{}]
    i = issues[0]
    where = ", ".join(i.get("expression") or [])
    return f"{i.get('diagnostics', 'error')}" + (f" (at {where})" if where else "")


class Loader:
    def __init__(self, write: Any, bundle: Any, finish: Any = None) -> None:
        self._write = write
        self._bundle = bundle
        self.finish = finish or (lambda: None)

    @classmethod
    def direct(cls, settings: Settings, tenant: str | None) -> "Loader":
        from app.bootstrap import open_store
        from app.fhir.transactions import BundleProcessor
        from app.fhir.validation import check_bundle, check_resource

        store = open_store(settings)
        ts = store.for_tenant(tenant or settings.default_tenant)

        def write(resource: dict[str, Any]) -> None:
            rtype = check_resource(resource)
            if resource.get("id"):
                ts.update(rtype, resource["id"], resource, client=True)
            else:
                ts.create(resource, client=True)

        def bundle(body: dict[str, Any]) -> list[str | None]:
            check_bundle(body)
            proc = BundleProcessor(ts, store.registry, settings.fhir_base, lambda i, t: None,
                                   lambda unit, e: (405, None), "minimal")
            result = proc.transaction(body) if body["type"] == "transaction" else proc.batch(body)
            return [None if e["response"]["status"][:1] == "2" else
                    _first_problem(e["response"].get("outcome", {})) for e in result["entry"]]

        return cls(write, bundle, store.analyze)

    @classmethod
    def remote(cls, base: str, token: str | None) -> "Loader":
        headers = {"Content-Type": "application/fhir+json"}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        client = httpx.Client(base_url=base.rstrip("/"), headers=headers, timeout=60)

        def check(resp: httpx.Response) -> None:
            if resp.status_code >= 400:
                try:
                    raise FhirError(resp.status_code, "processing", _first_problem(resp.json()))
                except ValueError:
                    raise FhirError(resp.status_code, "processing", resp.text[:200]) from None

        def write(resource: dict[str, Any]) -> None:
            rtype = resource.get("resourceType")
            if resource.get("id"):
                check(client.put(f"/{rtype}/{resource['id']}", content=exact_json.dumps(resource)))
            else:
                check(client.post(f"/{rtype}", content=exact_json.dumps(resource)))

        def bundle(body: dict[str, Any]) -> list[str | None]:
            resp = client.post("", content=exact_json.dumps(body))
            check(resp)
            return [None if e["response"]["status"][:1] == "2" else
                    _first_problem(e["response"].get("outcome", {})) for e in resp.json()["entry"]]

        return cls(write, bundle)

    def load_file(self, path: Path) -> Iterator[Result]:
        try:
            doc = exact_json.loads(path.read_bytes())  # decimals are stored as written
        except (OSError, orjson.JSONDecodeError) as exc:
            yield str(path), f"not readable JSON: {exc}"
            return
        if isinstance(doc, dict) and doc.get("resourceType") == "Bundle" and doc.get("type") in ("transaction", "batch"):
            try:
                problems = self._bundle(doc)
            except FhirError as err:
                yield str(path), _first_problem(err.outcome)
                return
            for i, problem in enumerate(problems):
                yield f"{path} entry {i}", problem
            return
        if isinstance(doc, dict) and doc.get("resourceType") == "Bundle":
            resources = [e.get("resource") for e in doc.get("entry") or []]
        else:
            resources = [doc]
        for i, resource in enumerate(resources):
            label = f"{path}" + (f" entry {i}" if len(resources) > 1 else "")
            try:
                self._write(resource)
                yield label, None
            except FhirError as err:
                yield label, _first_problem(err.outcome)
