"""One aggregate query per KPI over the claim facts tables.

Each KPI is a ``base`` select — one row per claim in its populations, with flags and amounts:
``ip`` (initial population), ``den``/``num`` (denominator/numerator, or for days-to-payment the
measure population), ``den_amt``/``num_amt`` (cents), ``obs`` (days, the measure observation) —
and one statement aggregates that base for the whole population and for every stratifier
(UNION ALL of GROUP BYs over the base as a CTE, which both PostgreSQL and SQLite compute once).
Periods are whole days, both ends included. Scores: proportions and the net collection rate as fractions (UCUM "1"), days as "d".
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, timedelta
from statistics import median
from typing import Any, Callable

import sqlalchemy as sa
from sqlalchemy.engine import Connection

STRATIFIERS = ("payer", "cpt", "discipline", "clinician")


@dataclass
class Tally:
    ip: int = 0
    den: int = 0
    num: int = 0
    den_amt: int = 0
    num_amt: int = 0
    obs: list[int] = field(default_factory=list)
    median: float | None = None


def _days(conn: Connection, later: str, earlier: str) -> str:
    if conn.dialect.name == "postgresql":
        return f"({later} - {earlier})"
    return f"CAST(julianday({later}) - julianday({earlier}) AS INTEGER)"


def outstanding(conn: Connection, *, stored: bool = False) -> str:
    """The ``ar`` CTE: claims outstanding on :e (sent by then, not voided, replaced by a sent
    correction or written off by then; not cancelled, unless a void that cancelled it is what
    dates its leaving) with what is still owed on them. The A/R aging and the
    A/R KPIs share it. ``stored``: what was settled is each claim's ``settled_cents``, kept at
    write time, which is right only when no remittance is dated after :e (the caller checks);
    otherwise the remittances up to :e are summed."""
    if stored:
        owed, settled = "f.charge_cents - f.settled_cents", ""
    else:
        owed = "f.charge_cents - COALESCE(s.settled, 0)"
        settled = """
      LEFT JOIN (SELECT claim_id, SUM(paid_cents + closing_cents) AS settled FROM remit_fact
                 WHERE tenant_id = :t AND active AND posted_on <= :e GROUP BY claim_id) s ON s.claim_id = f.claim_id"""
    return f"""
    ar AS (
      SELECT f.claim_id, f.payer, f.clinician, f.service_date, f.submitted_on,
             {owed} AS owed
      FROM claim_fact f{settled}
      LEFT JOIN (SELECT prior_claim_id, MIN(replaces_on) AS gone FROM claim_fact
                 WHERE tenant_id = :t AND prior_claim_id IS NOT NULL AND replaces_on IS NOT NULL
                 GROUP BY prior_claim_id) r ON r.prior_claim_id = f.claim_id
      LEFT JOIN (SELECT claim_id, MIN(written_off_on) AS gone FROM writeoff_fact
                 WHERE tenant_id = :t GROUP BY claim_id) w ON w.claim_id = f.claim_id
      WHERE f.tenant_id = :t AND f.submitted_on <= :e AND NOT f.is_void AND NOT f.excluded
        AND (r.gone IS NULL OR r.gone > :e) AND (w.gone IS NULL OR w.gone > :e)
        AND (NOT f.cancelled OR r.gone IS NOT NULL)
    )"""


def _cols(ip: str = "1", den: str = "0", num: str = "0", den_amt: str = "0", num_amt: str = "0",
          obs: str = "NULL") -> str:
    return (f"CAST({ip} AS INTEGER) AS ip, CAST({den} AS INTEGER) AS den, CAST({num} AS INTEGER) AS num, "
            f"CAST({den_amt} AS BIGINT) AS den_amt, CAST({num_amt} AS BIGINT) AS num_amt, CAST({obs} AS INTEGER) AS obs")


def _b(expr: str) -> str:
    return f"CASE WHEN {expr} THEN 1 ELSE 0 END"


def clean_claim_rate(conn: Connection) -> str:
    return f"""base AS (SELECT claim_id, payer, clinician, {_cols(den='1', num=_b(
        'NOT manual AND front_accepted_on IS NOT NULL AND rejected_on IS NULL'))}
      FROM claim_fact WHERE tenant_id = :t AND submitted_on BETWEEN :s AND :e AND NOT excluded)"""


def first_pass_yield(conn: Connection) -> str:
    return f"""base AS (SELECT claim_id, payer, clinician, {_cols(den=_b('NOT is_void'), num=_b(
        "NOT is_void AND prior_claim_id IS NULL AND rejected_on IS NULL AND first_outcome = 'paid'"))}
      FROM claim_fact WHERE tenant_id = :t AND adjudicated_on BETWEEN :s AND :e AND NOT excluded)"""


def denial_rate(conn: Connection) -> str:
    first_denied = ("(SELECT r.denied_cents FROM remit_fact r WHERE r.tenant_id = :t AND r.claim_id = f.claim_id "
                    "AND r.active AND NOT r.reversal ORDER BY r.posted_on, r.eob_id LIMIT 1)")
    return f"""base AS (SELECT f.claim_id, f.payer, f.clinician, {_cols(
          den=_b('NOT f.is_void'), num=_b("NOT f.is_void AND f.first_outcome IN ('denied', 'partially-paid')"),
          den_amt="CASE WHEN f.is_void THEN 0 ELSE f.charge_cents END",
          num_amt=f"CASE WHEN f.is_void THEN 0 ELSE COALESCE({first_denied}, 0) END")}
        FROM claim_fact f
        WHERE f.tenant_id = :t AND f.adjudicated_on BETWEEN :s AND :e AND NOT f.excluded)"""


def days_in_ar(conn: Connection) -> str:
    return f"""{outstanding(conn)},
      charged AS (SELECT claim_id, payer, clinician, charge_cents FROM claim_fact
                  WHERE tenant_id = :t AND service_date BETWEEN :s AND :e AND submitted_on IS NOT NULL
                    AND NOT is_void AND NOT excluded),
      base AS (
        SELECT COALESCE(a.claim_id, c.claim_id) AS claim_id, COALESCE(a.payer, c.payer) AS payer,
               COALESCE(a.clinician, c.clinician) AS clinician,
               {_cols(den=_b('c.claim_id IS NOT NULL'), num=_b('a.claim_id IS NOT NULL'),
                      den_amt='COALESCE(c.charge_cents, 0)', num_amt='COALESCE(a.owed, 0)')}
        FROM (SELECT * FROM ar WHERE owed > 0) a FULL OUTER JOIN charged c ON c.claim_id = a.claim_id)"""


def aged_ar_over_90(conn: Connection) -> str:
    return f"""{outstanding(conn)},
      base AS (SELECT claim_id, payer, clinician, {_cols(den='1', num=_b('service_date < :cutoff'),
               den_amt='owed', num_amt=f"CASE WHEN service_date < :cutoff THEN owed ELSE 0 END")}
               FROM ar WHERE owed > 0)"""


#: A claim whose charges count in the period: billed (sent), served in the period, not a void.
CHARGED = "f.service_date BETWEEN :s AND :e AND f.submitted_on IS NOT NULL AND NOT f.is_void"


def net_collection_rate(conn: Connection) -> str:
    return f"""moved AS (SELECT claim_id, SUM(paid_cents) AS paid, SUM(contractual_cents) AS co FROM remit_fact
                 WHERE tenant_id = :t AND active AND posted_on BETWEEN :s AND :e GROUP BY claim_id),
      touched AS (SELECT claim_id FROM claim_fact WHERE tenant_id = :t AND service_date BETWEEN :s AND :e
                    AND submitted_on IS NOT NULL
                  UNION SELECT claim_id FROM moved),
      base AS (
        SELECT f.claim_id, f.payer, f.clinician,
               {_cols(den=_b(CHARGED),
                      num=_b('COALESCE(m.paid, 0) <> 0'),
                      den_amt=f"CASE WHEN {CHARGED} THEN f.charge_cents ELSE 0 END - COALESCE(m.co, 0)",
                      num_amt='COALESCE(m.paid, 0)')}
        FROM touched x JOIN claim_fact f ON f.tenant_id = :t AND f.claim_id = x.claim_id
        LEFT JOIN moved m ON m.claim_id = f.claim_id
        WHERE NOT f.excluded AND (({CHARGED}) OR m.claim_id IS NOT NULL))"""


def days_to_payment(conn: Connection) -> str:
    """A claim's first payment is in the period when one posted in it and none posted before."""
    return f"""first_paid AS (
        SELECT r.claim_id, MIN(r.posted_on) AS paid_on FROM remit_fact r
        WHERE r.tenant_id = :t AND r.active AND NOT r.reversal AND r.paid_cents > 0 AND r.posted_on BETWEEN :s AND :e
          AND NOT EXISTS (SELECT 1 FROM remit_fact o WHERE o.tenant_id = :t AND o.claim_id = r.claim_id AND o.active
                          AND NOT o.reversal AND o.paid_cents > 0 AND o.posted_on < :s)
        GROUP BY r.claim_id),
      base AS (SELECT f.claim_id, f.payer, f.clinician,
               {_cols(den='1', num='1', obs=_days(conn, 'p.paid_on', 'f.service_date'))}
               FROM first_paid p JOIN claim_fact f ON f.tenant_id = :t AND f.claim_id = p.claim_id
               WHERE f.service_date IS NOT NULL AND NOT f.excluded)"""


def eligibility_verification_rate(conn: Connection) -> str:
    checked = ("EXISTS (SELECT 1 FROM eligibility_fact e WHERE e.tenant_id = :t AND e.patient_id = f.patient_id "
               "AND e.ok AND e.answered_on <= f.service_date)")
    return f"""base AS (SELECT f.claim_id, f.payer, f.clinician,
               {_cols(den=_b('f.prior_claim_id IS NULL'), num=_b(f'f.prior_claim_id IS NULL AND {checked}'))}
               FROM claim_fact f WHERE f.tenant_id = :t AND f.service_date BETWEEN :s AND :e
                 AND f.submitted_on IS NOT NULL AND NOT f.is_void AND NOT f.excluded)"""


def authorization_rate(conn: Connection) -> str:
    denied = ("EXISTS (SELECT 1 FROM remit_fact r WHERE r.tenant_id = :t AND r.claim_id = f.claim_id "
              "AND r.active AND r.auth_denial)")
    return f"""base AS (SELECT f.claim_id, f.payer, f.clinician,
               {_cols(den=_b(f'f.pre_auth OR {denied}'), num=_b('f.pre_auth'))}
               FROM claim_fact f WHERE f.tenant_id = :t AND f.service_date BETWEEN :s AND :e
                 AND f.submitted_on IS NOT NULL AND NOT f.is_void AND NOT f.excluded)"""


COMPUTATIONS: dict[str, Callable[[Connection], str]] = {f.__name__: f for f in (
    clean_claim_rate, first_pass_yield, denial_rate, days_in_ar, aged_ar_over_90, net_collection_rate,
    days_to_payment, eligibility_verification_rate, authorization_rate)}

_AGG = "SUM(ip), SUM(den), SUM(num), SUM(den_amt), SUM(num_amt)"


def _codes(conn: Connection) -> str:
    """The claims' codes (kind cpt or discipline), joined to the base. On PostgreSQL one LATERAL
    index probe per claim (``OFFSET 0`` keeps it one): the base is a period's claims, and a probe
    each beats hashing every code of the tenant."""
    if conn.dialect.name == "postgresql":
        return ("CROSS JOIN LATERAL (SELECT kind, value FROM claim_code_fact WHERE tenant_id = :t "
                "AND claim_id = base.claim_id OFFSET 0) c")
    return "JOIN claim_code_fact c ON c.tenant_id = :t AND c.claim_id = base.claim_id"


def _aggregate(conn: Connection, with_median: bool) -> str:
    med = (", percentile_cont(0.5) WITHIN GROUP (ORDER BY obs)" if with_median and conn.dialect.name == "postgresql"
           else ", NULL")
    parts = [f"SELECT 'all' AS k, '' AS v, {_AGG}{med} FROM base"]
    for key in ("payer", "clinician"):
        parts.append(f"SELECT '{key}', COALESCE(base.{key}, 'unknown'), {_AGG}{med} FROM base "
                     f"GROUP BY COALESCE(base.{key}, 'unknown')")
    parts.append(f"SELECT c.kind, c.value, {_AGG}{med} FROM base {_codes(conn)} GROUP BY c.kind, c.value")
    return " UNION ALL ".join(parts)


def no_jit(conn: Connection) -> None:
    """PostgreSQL compiles a statement whose estimated cost passes ``jit_above_cost``; for these
    (many index probes, few rows out) compiling took 60-70 ms of a 250 ms query. Off for the
    rest of this transaction only."""
    if conn.dialect.name == "postgresql":
        conn.execute(sa.text("SET LOCAL jit = off"))


def params(start: date, end: date, tenant_id: str) -> dict[str, Any]:
    return {"t": tenant_id, "s": start, "e": end, "cutoff": end - timedelta(days=90)}


def tallies(conn: Connection, tenant_id: str, computation: str, start: date, end: date,
            continuous: bool) -> dict[tuple[str, str], Tally]:
    """(stratifier or 'all', stratum value) -> its tally, in one statement (plus, on SQLite, the
    observations for the medians)."""
    base = COMPUTATIONS[computation](conn)
    sql = f"WITH {base} {_aggregate(conn, continuous)}"
    out: dict[tuple[str, str], Tally] = {}
    p = params(start, end, tenant_id)
    no_jit(conn)
    for k, v, ip, den, num, den_amt, num_amt, med in conn.execute(sa.text(sql), p):
        out[(k, v)] = Tally(int(ip or 0), int(den or 0), int(num or 0), int(den_amt or 0), int(num_amt or 0),
                            median=float(med) if med is not None else None)
    if continuous and conn.dialect.name != "postgresql":
        obs_sql = (f"WITH {base} SELECT 'all', '', obs FROM base UNION ALL "
                   f"SELECT 'payer', COALESCE(payer, 'unknown'), obs FROM base UNION ALL "
                   f"SELECT 'clinician', COALESCE(clinician, 'unknown'), obs FROM base UNION ALL "
                   f"SELECT c.kind, c.value, obs FROM base JOIN claim_code_fact c ON c.tenant_id = :t "
                   f"AND c.claim_id = base.claim_id")
        values: dict[tuple[str, str], list[int]] = {}
        for k, v, obs in conn.execute(sa.text(obs_sql), p):
            if obs is not None:
                values.setdefault((k, v), []).append(int(obs))
        for key, obs_list in values.items():
            if key in out:
                out[key].median = float(median(obs_list))
    return out


def subjects(conn: Connection, tenant_id: str, computation: str, start: date, end: date) -> list[tuple[str, int, int]]:
    """(claim id, in denominator, in numerator) of every claim in the populations, by id."""
    sql = f"WITH {COMPUTATIONS[computation](conn)} SELECT claim_id, den, num FROM base ORDER BY claim_id"
    no_jit(conn)
    return [(r[0], int(r[1]), int(r[2])) for r in conn.execute(sa.text(sql), params(start, end, tenant_id))]
