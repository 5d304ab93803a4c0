"""Per-client rate limit: a token bucket per (tenant, client); over it, 429 with Retry-After
and an OperationOutcome, before any work; other clients are unaffected."""
from __future__ import annotations

import httpx
from fastapi import Request

from app.main import create_app
from app.rate_limit import RateLimiter
from app.security import AccessContext
from tests.conftest import PUBLIC_URL, AllowAll


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_a_bucket_allows_its_burst_then_refills_at_the_rate():
    clock = Clock()
    limiter = RateLimiter(rate=2, burst=3, clock=clock)
    a, b = ("t1", "client-a"), ("t1", "client-b")
    assert [limiter.retry_after(a) for _ in range(3)] == [None, None, None]
    assert limiter.retry_after(a) == 1  # empty: one token comes back in half a second
    assert limiter.retry_after(b) is None  # another client has its own bucket
    clock.now += 0.5
    assert limiter.retry_after(a) is None and limiter.retry_after(a) == 1
    clock.now += 10  # idle long enough to be full again: the bucket is dropped, not kept forever
    assert limiter.retry_after(a) is None
    assert set(limiter.buckets) == {a}


def test_a_slow_rate_asks_for_a_longer_wait():
    clock = Clock()
    limiter = RateLimiter(rate=0.1, burst=1, clock=clock)
    assert limiter.retry_after(("t", "c")) is None
    assert limiter.retry_after(("t", "c")) == 10


async def test_over_the_limit_the_api_answers_429_with_retry_after(settings):
    async def by_header(request: Request) -> AccessContext:
        return AccessContext(tenant_id="default", scopes=AllowAll(), client_id=request.headers["x-client"])

    app = create_app(settings.model_copy(update={"rate_limit": 0.5, "rate_limit_burst": 2}), authenticate=by_header)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=PUBLIC_URL) as http:
        first = [(await http.get("/fhir/Patient/none", headers={"x-client": "ehr-a"})).status_code for _ in range(2)]
        over = await http.get("/fhir/Patient?name=x", headers={"x-client": "ehr-a"})
        other = await http.get("/fhir/Patient/none", headers={"x-client": "ehr-b"})
    assert first == [404, 404]  # within the burst: answered normally
    assert over.status_code == 429 and over.headers["retry-after"] == "2"
    body = over.json()
    assert body["resourceType"] == "OperationOutcome" and body["issue"][0]["code"] == "throttled"
    assert "retry after 2 s" in body["issue"][0]["diagnostics"]
    assert other.status_code == 404
