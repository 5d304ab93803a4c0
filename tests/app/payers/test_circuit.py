"""The circuit breaker per payer connection: an outage stops calls to the payer after
``circuit_failures`` transport failures without dead-lettering the jobs, one probe goes out when
the pause runs out, a failed probe doubles the pause, an answer closes the circuit, and
real-time eligibility does not wait on a payer known to be down."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
import sqlalchemy as sa

from app.payers import calls
from app.payers.models import CIRCUITS

from tests.flows import SANDBOX, adrain, admin_headers, claim_for, connect, jobs, lifecycle, load_practice, make_due

CHC_SUBMIT = "/medicalnetwork/professionalclaims/v3/submission"
CHC_ELIGIBILITY = "/medicalnetwork/eligibility/v3"


def _key(claim):
    return next(i["value"] for i in claim["identifier"] if i["system"].endswith("/submission-key"))


def _fired(sandbox, path):
    return sum(1 for p, _mode in sandbox.state.sandbox.faults.fired if p == path)


def _where(link, operation):
    return sa.and_(CIRCUITS.c.connection_pk == link.pk, CIRCUITS.c.operation == operation)


def _circuit(store, link, operation="claims"):
    with store.engine.connect() as conn:
        return conn.execute(sa.select(CIRCUITS).where(_where(link, operation))).first()


def _pause_ran_out(store, link, operation="claims"):
    with store.engine.begin() as conn:
        conn.execute(CIRCUITS.update().where(_where(link, operation))
                     .values(opened_until=datetime.now(timezone.utc) - timedelta(seconds=1)))


async def _rounds(store, tenant, n):
    for _ in range(n):
        make_due(store, tenant)
        await adrain(store)


async def _acme(api, store, tenant, payer_settings, demo_bundle):
    await load_practice(api, demo_bundle)
    link = connect(store, payer_settings, tenant, "payer-acme", "clearinghouse-json", {"base_url": SANDBOX},
                   {"api_key": "test_sandbox_key"}, profile="commercial")
    await adrain(store)
    return link


async def test_outage_opens_the_circuit_and_a_probe_closes_it(api, store, tenant, payer_settings, demo_bundle,
                                                               sandbox, route_to_sandbox):
    threshold = payer_settings.circuit_failures
    sandbox.state.sandbox.faults.set(CHC_SUBMIT, "500", count=1000)
    link = await _acme(api, store, tenant, payer_settings, demo_bundle)
    claim = await claim_for(api, "enc-brooks-1")
    assert (await api.post(f"/fhir/Claim/{claim['id']}/$submit")).status_code == 202

    await _rounds(store, tenant, threshold + 4)
    assert _fired(sandbox, CHC_SUBMIT) == threshold  # then nobody calls the payer
    [job] = jobs(store, tenant, "send-claim-batch")
    assert job.status == "queued" and "circuit open" in job.last_error
    assert job.attempts == threshold  # waiting on the circuit spends no attempts: no dead letter
    row = _circuit(store, link)
    assert row.failures == threshold and "HTTP 500" in row.last_error
    pause = (row.opened_until - datetime.now(timezone.utc)).total_seconds()
    assert payer_settings.circuit_cooldown - 5 < pause <= payer_settings.circuit_cooldown

    headers = await admin_headers(api, store.engine, tenant)
    [listed] = (await api.get("/admin/payers", headers=headers)).json()["payers"]
    assert listed["circuits"]["claims"]["state"] == "open" and listed["circuits"]["claims"]["failures"] == threshold

    sandbox.state.sandbox.faults.faults.clear()  # the payer is back
    _pause_ran_out(store, link)
    [listed] = (await api.get("/admin/payers", headers=headers)).json()["payers"]
    assert listed["circuits"]["claims"]["state"] == "half-open"
    await _rounds(store, tenant, 1)
    [job] = jobs(store, tenant, "send-claim-batch")
    assert job.status == "done"
    claim = (await api.get(f"/fhir/Claim/{claim['id']}")).json()
    assert lifecycle(claim) in {"submitted", "acknowledged", "accepted", "paid"}  # reports may follow at once
    assert sum(1 for c in sandbox.state.sandbox.engine.ledger.summary()["claims"]
               if c.get("idempotency_key") == _key(claim)) == 1
    row = _circuit(store, link)
    assert row.failures == 0 and row.opened_until is None
    [listed] = (await api.get("/admin/payers", headers=headers)).json()["payers"]
    assert listed["circuits"] == {}


async def test_failed_probe_doubles_the_pause(api, store, tenant, payer_settings, demo_bundle, sandbox,
                                              route_to_sandbox):
    threshold, cooldown = payer_settings.circuit_failures, payer_settings.circuit_cooldown
    sandbox.state.sandbox.faults.set(CHC_SUBMIT, "500", count=1000)
    link = await _acme(api, store, tenant, payer_settings, demo_bundle)
    claim = await claim_for(api, "enc-brooks-1")
    await api.post(f"/fhir/Claim/{claim['id']}/$submit")
    await _rounds(store, tenant, threshold + 1)
    _pause_ran_out(store, link)
    await _rounds(store, tenant, 3)
    assert _fired(sandbox, CHC_SUBMIT) == threshold + 1  # exactly one probe
    row = _circuit(store, link)
    pause = (row.opened_until - datetime.now(timezone.utc)).total_seconds()
    assert row.failures == threshold + 1 and 2 * cooldown - 5 < pause <= 2 * cooldown
    assert [j.status for j in jobs(store, tenant, "send-claim-batch")] == ["queued"]


async def test_only_one_caller_probes(api, store, tenant, payer_settings, demo_bundle, sandbox, route_to_sandbox):
    link = await _acme(api, store, tenant, payer_settings, demo_bundle)
    with store.engine.begin() as conn:
        conn.execute(CIRCUITS.insert().values(connection_pk=link.pk, operation="claims", tenant_id=tenant, failures=7,
                                              opened_until=datetime.now(timezone.utc) - timedelta(seconds=1),
                                              updated_at=datetime.now(timezone.utc)))
    ts = store.for_tenant(tenant)
    assert calls._admit(ts, link, "claims") == 7  # the probe
    with pytest.raises(calls.CircuitOpen) as second:
        calls._admit(ts, link, "claims")
    assert second.value.until > datetime.now(timezone.utc)


async def test_realtime_eligibility_does_not_wait_on_an_open_circuit(api, store, tenant, payer_settings,
                                                                     demo_bundle, sandbox, route_to_sandbox):
    threshold = payer_settings.circuit_failures
    sandbox.state.sandbox.faults.set(CHC_ELIGIBILITY, "500", count=1000)
    link = await _acme(api, store, tenant, payer_settings, demo_bundle)
    r = await api.post("/fhir/Coverage/cov-brooks/$eligibility-request",
                       params={"servicedDate": "2026-11-23", "discipline": "OT"})
    rid = r.json()["id"]
    for _ in range(threshold + 2):
        r = await api.post(f"/fhir/CoverageEligibilityRequest/{rid}/$submit")
        assert r.status_code == 202  # queued: the answer will come through the outbox
    assert _fired(sandbox, CHC_ELIGIBILITY) == threshold
    assert _circuit(store, link, "eligibility").opened_until is not None
    sandbox.state.sandbox.faults.faults.clear()
    _pause_ran_out(store, link, "eligibility")
    await _rounds(store, tenant, 2)  # the queued checks go out once the payer answers again
    found = (await api.get(f"/fhir/CoverageEligibilityResponse?request=CoverageEligibilityRequest/{rid}")).json()
    assert found["total"] == 1 and found["entry"][0]["resource"]["insurance"][0]["inforce"] is True
    assert all(j.status == "done" for j in jobs(store, tenant, "check-eligibility"))
