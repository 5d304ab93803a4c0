"""The claim facts tables the KPIs are computed from: one row (or a few) per stored resource,
written in the transaction that writes the resource (``app.measures.facts``).

Each table's rows derive from one resource only (a Claim, an ExplanationOfBenefit, a
CoverageEligibilityResponse, a denial Task), so keeping them in step is an upsert of that
resource's rows, and a rebuild from the stored resources gives the same rows. Amounts are whole
cents, so sums are exact on every database.
"""
from __future__ import annotations

import sqlalchemy as sa
from sqlmodel import SQLModel

M = SQLModel.metadata
_ID = sa.String(64)

CLAIM = sa.Table(
    "claim_fact", M,
    sa.Column("tenant_id", _ID, primary_key=True),
    sa.Column("claim_id", _ID, primary_key=True),
    sa.Column("patient_id", _ID),
    sa.Column("payer", sa.String(200)),  # Claim.insurer (reference, else display)
    sa.Column("clinician", sa.String(200)),  # the rendering clinician's reference
    sa.Column("service_date", sa.Date),  # first day of service
    sa.Column("charge_cents", sa.BigInteger, nullable=False),  # Claim.total
    sa.Column("is_void", sa.Boolean, nullable=False),  # frequency 8
    sa.Column("excluded", sa.Boolean, nullable=False),  # entered-in-error: in no KPI
    sa.Column("prior_claim_id", _ID),  # the claim this one replaces or voids
    sa.Column("replaces_on", sa.Date),  # the day it took the prior claim out of A/R
    sa.Column("submitted_on", sa.Date),  # first day it left for the payer
    sa.Column("front_accepted_on", sa.Date),  # first 999/277CA acceptance (or adjudication)
    sa.Column("rejected_on", sa.Date),  # first rejection (999, 277CA, payer API)
    sa.Column("adjudicated_on", sa.Date),  # first adjudication
    sa.Column("first_outcome", sa.String(16)),  # paid | partially-paid | denied, at first adjudication
    sa.Column("manual", sa.Boolean, nullable=False),  # ever held by the scrubber or written by a client
    sa.Column("pre_auth", sa.Boolean, nullable=False),  # quotes an authorization (preAuthRef)
    sa.Column("cancelled", sa.Boolean, nullable=False, server_default=sa.false()),  # status cancelled
    # paid + closing adjustments of its active remittances: kept by the remittances' writes
    sa.Column("settled_cents", sa.BigInteger, nullable=False, server_default="0"),
    sa.Index("ix_claim_fact_submitted", "tenant_id", "submitted_on"),
    sa.Index("ix_claim_fact_adjudicated", "tenant_id", "adjudicated_on"),
    sa.Index("ix_claim_fact_service", "tenant_id", "service_date"),
    sa.Index("ix_claim_fact_prior", "tenant_id", "prior_claim_id"),
)

#: The claim's distinct CPT/HCPCS codes (kind ``cpt``) and discipline modifiers (``discipline``).
CODE = sa.Table(
    "claim_code_fact", M,
    sa.Column("tenant_id", _ID, primary_key=True),
    sa.Column("claim_id", _ID, primary_key=True),
    sa.Column("kind", sa.String(16), primary_key=True),
    sa.Column("value", sa.String(32), primary_key=True),
)

#: One row per ExplanationOfBenefit posted on a claim of ours.
REMIT = sa.Table(
    "remit_fact", M,
    sa.Column("tenant_id", _ID, primary_key=True),
    sa.Column("eob_id", _ID, primary_key=True),
    sa.Column("claim_id", _ID, nullable=False),
    sa.Column("posted_on", sa.Date, nullable=False),  # ExplanationOfBenefit.created
    sa.Column("active", sa.Boolean, nullable=False),  # status active and applied to the claim
    sa.Column("reversal", sa.Boolean, nullable=False),  # CLP02 22
    sa.Column("paid_cents", sa.BigInteger, nullable=False),  # payment (negative for a reversal)
    sa.Column("contractual_cents", sa.BigInteger, nullable=False),  # CO adjustments
    sa.Column("closing_cents", sa.BigInteger, nullable=False),  # adjustments closing A/R (CO, PR)
    sa.Column("denied_cents", sa.BigInteger, nullable=False),  # charges of the lines paid nothing
    sa.Column("auth_denial", sa.Boolean, nullable=False),  # an adjustment of the authorization category
    sa.Index("ix_remit_fact_claim", "tenant_id", "claim_id"),
    sa.Index("ix_remit_fact_posted", "tenant_id", "posted_on"),
)

#: One row per CoverageEligibilityResponse.
ELIGIBILITY = sa.Table(
    "eligibility_fact", M,
    sa.Column("tenant_id", _ID, primary_key=True),
    sa.Column("response_id", _ID, primary_key=True),
    sa.Column("patient_id", _ID),
    sa.Column("answered_on", sa.Date),
    sa.Column("ok", sa.Boolean, nullable=False),  # outcome complete or partial
    sa.Index("ix_eligibility_fact_patient", "tenant_id", "patient_id", "answered_on"),
)

#: One row per denial Task the biller completed as written off.
WRITEOFF = sa.Table(
    "writeoff_fact", M,
    sa.Column("tenant_id", _ID, primary_key=True),
    sa.Column("task_id", _ID, primary_key=True),
    sa.Column("claim_id", _ID, nullable=False),
    sa.Column("written_off_on", sa.Date, nullable=False),
    sa.Index("ix_writeoff_fact_claim", "tenant_id", "claim_id"),
)

TABLES = (CLAIM, CODE, REMIT, ELIGIBILITY, WRITEOFF)
