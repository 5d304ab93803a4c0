"""Whatever a client sends as a body or a ``_page`` token, the answer is never a 5xx.

Hypothesis throws arbitrary JSON (and JSON shaped like what each endpoint expects: Parameters,
Bundles, resources with odd references) at every interaction and operation that takes a body,
and arbitrary page tokens at every paged interaction. The examples are derived from a fixed
seed so a failure is reproducible; each is sent through the real app over ASGI.
"""
from __future__ import annotations

import asyncio
import base64
import json

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.app.fhir.helpers import encounter, patient

FUZZ = settings(max_examples=250, deadline=None, database=None, derandomize=True,
                suppress_health_check=list(HealthCheck))

BODY_TARGETS = [
    ("POST", "/fhir/CoverageEligibilityRequest/$submit"),
    ("POST", "/fhir/CoverageEligibilityRequest/cer-1/$submit"),
    ("POST", "/fhir/Claim/claim-1/$submit"),
    ("POST", "/fhir/Claim/$scrub"),
    ("POST", "/fhir/Claim/claim-1/$scrub"),
    ("POST", "/fhir/Encounter/enc-1/$generate-claim"),
    ("POST", "/fhir/Coverage/cov-1/$eligibility-request"),
    ("POST", "/fhir/Patient"),
    ("POST", "/fhir/Encounter"),
    ("PUT", "/fhir/Patient/pat-1"),
    ("PUT", "/fhir/Encounter?identifier=urn:x|1"),
    ("POST", "/fhir"),
    ("POST", "/fhir/Patient/_search"),
    ("POST", "/fhir/AuditEvent/_search"),
]
RESOURCE_TYPES = ["Patient", "Encounter", "Claim", "CoverageEligibilityRequest", "Coverage", "Procedure",
                  "Parameters", "Bundle", "AuditEvent", "Nonsense"]

scalars = (st.none() | st.booleans() | st.integers(min_value=-2**80, max_value=2**80)
           | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=30))
json_values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=4)
                           | st.dictionaries(st.text(max_size=12), inner, max_size=4), max_leaves=12)
ids = st.text(alphabet="abcXYZ019-.", min_size=1, max_size=90)
references = st.builds(lambda t, i: f"{t}/{i}", st.sampled_from(["Patient", "Encounter", "Organization", "X" * 70]), ids) \
    | st.text(max_size=100)


@st.composite
def resources(draw: st.DrawFn) -> dict:
    rtype = draw(st.sampled_from(RESOURCE_TYPES))
    doc: dict = {"resourceType": rtype}
    if draw(st.booleans()):
        doc.update(patient() if rtype == "Patient" else encounter(draw(references)) if rtype == "Encounter" else {})
        doc["resourceType"] = rtype
    for key in draw(st.lists(st.sampled_from(["id", "subject", "patient", "status", "identifier", "item",
                                              "insurance", "parameter", "entry", "type"]), max_size=3)):
        doc[key] = draw(st.one_of(json_values, ids, st.builds(lambda r: {"reference": r}, references),
                                  st.lists(st.builds(lambda r: {"reference": r}, references), max_size=2)))
    return doc


@st.composite
def parameters(draw: st.DrawFn) -> dict:
    items = draw(st.lists(st.one_of(
        json_values,
        st.fixed_dictionaries({"name": st.sampled_from(["resource", "servicedDate", "discipline", "profile", "x"])},
                              optional={"resource": st.one_of(resources(), json_values),
                                        "valueString": json_values, "valueDate": json_values,
                                        "valueCode": json_values})), max_size=3))
    return {"resourceType": "Parameters", "parameter": draw(st.one_of(st.just(items), json_values))}


@st.composite
def bundles(draw: st.DrawFn) -> dict:
    entry = st.fixed_dictionaries({}, optional={
        "fullUrl": st.one_of(json_values, st.just("urn:uuid:1")),
        "resource": st.one_of(resources(), json_values),
        "request": st.one_of(json_values, st.fixed_dictionaries({
            "method": st.sampled_from(["GET", "POST", "PUT", "DELETE", "PATCH", "HEAD", "BREW"]) | json_values,
            "url": st.one_of(references, st.sampled_from(["Patient", "Patient?name=x", "Patient/1/_history/2"]),
                             json_values)},
            optional={"ifNoneExist": json_values, "ifMatch": json_values}))})
    return {"resourceType": "Bundle", "type": draw(st.sampled_from(["transaction", "batch"]) | json_values),
            "entry": draw(st.one_of(st.lists(st.one_of(entry, json_values), max_size=4), json_values))}


bodies = st.one_of(json_values, resources(), parameters(), bundles())
raw_bodies = st.one_of(bodies.map(lambda b: json.dumps(b).encode()), st.binary(max_size=60))
positions = st.fixed_dictionaries({"s": json_values, "p": json_values, "d": json_values}) | json_values
page_tokens = st.one_of(
    st.text(max_size=80),
    positions.map(lambda p: base64.urlsafe_b64encode(json.dumps(p).encode()).decode().rstrip("=")),
    st.tuples(positions, st.binary(max_size=40)).map(
        lambda t: base64.urlsafe_b64encode(json.dumps(t[0]).encode()).decode().rstrip("=") + "."
        + base64.urlsafe_b64encode(t[1]).decode().rstrip("=")))
PAGED = ["/fhir/Patient", "/fhir/Encounter?_sort=date", "/fhir/Patient/_history", "/fhir/Patient/pat-1/_history",
         "/fhir/_history", "/fhir/AuditEvent"]
EVERYTHING = {"x-test-scope": "user/*.cruds user/AuditEvent.rs"}


def sender(api):  # type: ignore[no-untyped-def]
    """Requests from Hypothesis' thread, run on the test's event loop (where the app lives)."""
    loop = asyncio.get_running_loop()

    def send(method: str, url: str, headers: dict | None = None, **kwargs):  # type: ignore[no-untyped-def]
        request = api.request(method, url, headers={**EVERYTHING, **(headers or {})}, **kwargs)
        return asyncio.run_coroutine_threadsafe(request, loop).result(60)

    return send


async def test_no_body_makes_a_server_error(api):
    send = sender(api)

    @FUZZ
    @given(target=st.sampled_from(BODY_TARGETS), body=raw_bodies)
    def check(target: tuple[str, str], body: bytes) -> None:
        method, url = target
        r = send(method, url, content=body, headers={"content-type": "application/fhir+json"})
        assert r.status_code < 500, (method, url, body, r.text)

    await asyncio.to_thread(check)


async def test_no_page_token_makes_a_server_error(api):
    for name in ("One", "Two"):
        await api.post("/fhir/Patient", json=patient(name))
    await api.put("/fhir/Patient/pat-1", json={**patient(), "id": "pat-1"})
    send = sender(api)

    @FUZZ
    @given(url=st.sampled_from(PAGED), token=page_tokens)
    def check(url: str, token: str) -> None:
        r = send("GET", url, params={"_page": token})
        assert r.status_code < 500, (url, token, r.text)
        if token:
            assert r.status_code == 400, (url, token, r.text)

    await asyncio.to_thread(check)
