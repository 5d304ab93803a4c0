"""Start-up: the one place where what plugs into the store, the claim workflow, the payer
directory and the job queue is installed (``build_store``), and the chores shared by ``serve``,
``worker`` and ``load`` (migrate, the default tenant, demo data).

Lower layers never import higher ones; where a lower one must reach up (the store's write
observers and client-write guards, the workflow's claim preparers and queue check, the
directory's hook when a connection is added, the queue's job handlers) it exposes a hook, and
this module is the only one that fills it.
"""
from __future__ import annotations

import sys
from pathlib import Path

import orjson
from sqlalchemy.engine import Engine

from app import directory, jobs
from app.auth import practice_app
from app.billing import payments
from app.claims import (
    appointments, authorizations, automation, client_writes, eligibility_use, fee_schedule, rule_packs,
    therapy_deadlines, timely_filing, workflow,
)
from app.db import make_engine
from app.fhir.registry import registry
from app.fhir.store import Store
from app.fhir.transactions import BundleProcessor
from app.measures import facts as measure_facts
from app.measures import weekly as measure_weekly
from app.migrations import upgrade
from app.payers import (aging, appeal_sending, eligibility, eligibility_sweep, inbound, inquiry, runtime,
                        status_follow_up, submission, worklists)
from app.settings import Settings

DEMO_BUNDLE = Path(__file__).resolve().parent / "demo_data" / "practice.json"


def build_store(settings: Settings, engine: Engine) -> Store:
    """The store with everything plugged in — every entry point builds it here."""
    store = Store(engine, registry(), base_url=settings.fhir_base)
    install(store, settings)
    return store


def _add(hooks: list, hook: object) -> None:  # type: ignore[type-arg]
    if hook not in hooks:  # several stores in one process (tests) install the same hooks once
        hooks.append(hook)


def install(store: Store, settings: Settings) -> None:
    """Plug the claim workflow and the payer side into ``store`` and the process's hooks."""
    runtime.refuse_without_key(store, settings)
    current = runtime.current()
    if current is None or current.settings is not settings:
        runtime.configure(settings, current.http_factory if current else None)
    # what clients may write, and the jobs writes queue
    store.guards["Claim"] = measure_facts.noting_client_writes(client_writes.guard)  # a client's claim is a manual change
    store.guards["PaymentReconciliation"] = payments.guard  # patient payments are checked
    store.guards["ChargeItemDefinition"] = fee_schedule.guard  # only fees that can price a line
    store.guards["Appointment"] = appointments.guard  # only appointments whose references resolve
    store.guards["Library"] = rule_packs.guard  # only payer rule packs that scrub
    store.indexers["ExplanationOfBenefit"] = aging.settled_index  # what an answer settles (Claim?outstanding=)
    eligibility_use.POLICY = eligibility_use.Policy(settings.eligibility_max_age_days, settings.eligibility_visits_low)
    _add(store.observers, automation.on_write)  # a finished visit → generate its claim
    _add(store.observers, submission.on_write)  # a claim written clean → auto-submit it
    _add(store.observers, eligibility_sweep.on_write)  # an eligibility answer → its work items
    store.guards["ClaimResponse"] = authorizations.guard  # clients write authorizations only
    _add(store.observers, authorizations.on_write)  # a claim under an authorization → renewal check
    _add(store.observers, timely_filing.on_write)  # a new claim → today's timely-filing sweep
    _add(store.observers, status_follow_up.on_write)  # a claim adjudicated → its follow-up items close
    _add(store.observers, appeal_sending.on_write)  # an appeal-send Task completed → the appeal was sent
    _add(store.observers, measure_facts.on_write)  # the KPIs' claim facts, in the writing transaction
    _add(store.observers, measure_weekly.on_write)  # a new claim → the practice's weekly KPI reports
    store.guards["MeasureReport"] = measure_weekly.guard  # stored by the server only
    _add(store.observers, worklists.on_write)  # a scored work item → today's worklist sweep
    # the claim workflow asks the payer side
    _add(workflow.CLAIM_PREPARERS, submission.prepare_auto_submit)
    _add(workflow.UNSENT_CHECKS, submission.unsent)
    # a new payer connection starts the collection of its answers
    _add(directory.ON_ADD, inbound.start_schedule)
    _add(directory.ON_ADD, eligibility_sweep.start_schedule)  # and the daily eligibility sweep
    _add(directory.ON_ADD, status_follow_up.start_schedule)  # and the daily claim status follow-up
    # the job handlers
    jobs.register_handler(automation.KIND, automation.run_generate)
    jobs.register_batch_handler(automation.KIND, automation.run_generate_many)
    jobs.register_batch_handler(submission.KIND, submission.form_batches)
    jobs.expedite(submission.KIND)  # a built claim goes to the payer before more visits are billed
    jobs.expedite(submission.SEND)
    jobs.register_handler(submission.AUTO_SUBMIT, submission.run_auto_submit)
    jobs.register_handler(submission.SEND, submission.run_send, transaction=False)
    jobs.register_handler(inquiry.KIND, inquiry.run_inquire, transaction=False)
    jobs.register_handler(appeal_sending.SEND, appeal_sending.run_send, transaction=False)
    jobs.register_handler(appeal_sending.FOLLOW_UP, appeal_sending.run_follow_up, transaction=False)
    jobs.register_handler(appeal_sending.MAILED, appeal_sending.run_mailed)
    jobs.register_handler(inbound.COLLECT, inbound.run_collect, transaction=False)
    jobs.register_handler(inbound.ACK, inbound.run_acknowledge, transaction=False)
    jobs.register_handler(inbound.POST, inbound.run_post)
    jobs.give_way(inbound.POST)  # answers are posted when no claim is waiting (or within a minute)
    jobs.register_handler(inbound.SCHEDULE, inbound.run_schedule)
    jobs.register_handler(eligibility.KIND, eligibility.run_check, transaction=False)
    jobs.register_handler(eligibility_sweep.SWEEP, eligibility_sweep.run_sweep)
    jobs.register_handler(eligibility_sweep.APPOINTMENT, eligibility_sweep.run_appointment)
    jobs.register_batch_handler(eligibility_sweep.APPOINTMENT, eligibility_sweep.run_appointments)
    jobs.register_handler(eligibility_sweep.ANSWER, eligibility_sweep.run_answer)
    jobs.register_handler(eligibility_use.REFRESH, eligibility_sweep.run_refresh)
    jobs.register_handler(authorizations.KIND, authorizations.run_check)
    jobs.register_handler(authorizations.SWEEP, authorizations.run_sweep)
    jobs.register_handler(therapy_deadlines.SWEEP, therapy_deadlines.run_sweep)
    jobs.register_handler(timely_filing.SWEEP, timely_filing.run_sweep)
    jobs.register_handler(status_follow_up.SWEEP, status_follow_up.run_sweep)
    jobs.register_handler(status_follow_up.KIND, status_follow_up.run_inquiry, transaction=False)
    jobs.register_handler(status_follow_up.CLOSE, status_follow_up.run_close)
    jobs.register_handler(measure_weekly.JOB, measure_weekly.run_job)
    jobs.register_handler(worklists.SWEEP, worklists.run_sweep)


def open_store(settings: Settings) -> Store:
    engine = make_engine(settings.database_url)
    upgrade(engine)
    store = build_store(settings, engine)
    store.ensure_tenant(settings.default_tenant)
    practice_app.ensure_all(engine, settings.public_url)  # the web app's client in every practice
    eligibility_sweep.ensure_schedules(store)  # daily eligibility sweeps of tenants with payers
    status_follow_up.ensure_schedules(store)  # and their daily claim status follow-up
    measure_weekly.ensure_schedules(store)  # weekly KPI reports of practices with claims
    return store


def load_demo(store: Store, tenant: str) -> int:
    """Load the demo practice (idempotent: every entry is a PUT with a fixed id)."""
    bundle = orjson.loads(DEMO_BUNDLE.read_bytes())
    proc = BundleProcessor(store.for_tenant(tenant), store.registry, store.base_url, lambda i, t: None,
                           lambda unit, e: (405, None), "minimal")
    return len(proc.transaction(bundle)["entry"])


def prepare_database(settings: Settings, *, demo: bool) -> list[str]:
    """Migrate; with ``demo``, create the demo tenant, its credentials and practice. Returns what to print."""
    store = open_store(settings)
    lines = [f"database ready: {settings.database_url.split('@')[-1]}",
             f"FHIR API: {settings.fhir_base}  (CapabilityStatement: {settings.fhir_base}/metadata)"]
    if demo:
        from app.auth.demo import ensure_demo_credentials

        creds = ensure_demo_credentials(store.engine, settings, Path(settings.var_dir))
        store.ensure_tenant(creds["tenant"])
        n = load_demo(store, creds["tenant"])
        token = f"{sys.executable} -m app.auth.get_token {creds['key_file']}"
        lines += [
            f"demo practice loaded ({n} resources) into tenant '{creds['tenant']}'",
            f"backend client {creds['client_id']}: private key in {creds['key_file']}",
            f"demo user '{creds['user']}' (role biller): password in {creds['user_file']}",
            f"practice app: {settings.public_url.rstrip('/')}/app/ (practice code '{creds['tenant']}', user "
            f"'{creds['user']}')",
            "get a token and call the API:",
            f'  TOKEN=$({token})',
            f'  curl -H "Authorization: Bearer $TOKEN" "{settings.fhir_base}/Encounter?patient=pat-alvarez"',
            f"SMART configuration: {creds['smart_configuration']}",
        ]
    lines += store.analyze(never_analyzed_only=not demo)
    store.engine.dispose()
    return lines
