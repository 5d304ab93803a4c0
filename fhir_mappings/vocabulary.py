"""The product's own vocabulary: every identifier system, extension, code system and id
namespace TheraBridge mints, named once.

Everything that writes or reads one of these names it from here (the server, the payer adapters,
the sandbox payer, the mappings), so a URL is never spelled twice and never means two things.
Standard systems (HL7, X12, CMS, NUCC) stay with the code that maps them; only ``therabridge.dev``
names live here. Data files that must name a system spell the same URL.
"""
from __future__ import annotations

import uuid

BASE = "https://therabridge.dev/fhir"
SID = f"{BASE}/sid/"  # every identifier system of ours starts with this

# -- identifier systems (Identifier.system) ----------------------------------------------
PATIENT_CONTROL_NUMBER = f"{SID}patient-control-number"  # CLM01 / CLP01 / 277CA TRN02
PAYER_ID = f"{SID}payer-id"  # the payer's id at the clearinghouse (NM109 of 2010BB)
MEMBER_ID = f"{SID}member-id"  # a subscriber id read from an answer (NM109 of 2100C/2010CA)
PAYER_CLAIM_NUMBER = f"{SID}payer-claim-control-number"  # 835 CLP07, 277CA REF*1K
PC_CLAIM_NUMBER = f"{SID}property-casualty-claim-number"  # workers' comp claim number (REF*Y4)
ELIGIBILITY_TRACE = f"{SID}eligibility-trace-number"  # 270/271 TRN02 of an eligibility request
PAYMENT_TRACE = f"{SID}payment-trace-number"  # 835 TRN02: the check or EFT number
SUBMISSION_KEY = f"{SID}submission-key"  # a claim's idempotency key at the payer
CLAIM_BATCH = f"{SID}x12-claim-batch"  # 277CA 2200B TRN02: the BHT03 of our 837
X12_277CA_TRACE = f"{SID}x12-277ca-trace"  # 277CA 2200A/2200C TRN02
X12_ETIN = f"{SID}x12-etin"  # an Electronic Transmitter Identification Number (NM108 46)
CMS_PLAN_ID = f"{SID}cms-plan-id"  # NM108 XV
X12_SERVICE_PROVIDER_NUMBER = f"{SID}x12-service-provider-number"  # NM108 SV
CLAIM_STATUS_TRACE = f"{SID}claim-status-trace-number"  # 276 TRN02, echoed in the 277
PATIENT_ACCOUNT = f"{SID}patient-account"  # the account number of a patient's Account (on statements)

# -- extensions (Extension.url) -----------------------------------------------------------
CLAIM_LIFECYCLE = f"{BASE}/StructureDefinition/claim-lifecycle"
CLAIM_LIFECYCLE_HISTORY = f"{BASE}/StructureDefinition/claim-lifecycle-history"
CLAIM_SUBMISSION = f"{BASE}/StructureDefinition/claim-submission"
CLAIM_FREQUENCY = f"{BASE}/StructureDefinition/claim-frequency"  # CLM05-3 8 of a void claim
PAYMENT_APPLICATION = f"{BASE}/StructureDefinition/payment-application"
LINE_CONTROL_NUMBER = f"{BASE}/StructureDefinition/line-control-number"
PROCEDURE_MINUTES = f"{BASE}/StructureDefinition/procedure-minutes"
ACCIDENT_DATE = f"{BASE}/StructureDefinition/accident-date"
X12_ACKNOWLEDGED_SET = f"{BASE}/StructureDefinition/x12-acknowledged-set"
X12_PATIENT_CONTROL_NUMBER = f"{BASE}/StructureDefinition/x12-patient-control-number"
X12_CLAIM_STATUS = f"{BASE}/StructureDefinition/x12-claim-status"
X12_277CA_LEVEL = f"{BASE}/StructureDefinition/x12-277ca-level"
X12_STC_STATUS = f"{BASE}/StructureDefinition/x12-stc-status"  # 277: one STC status, its date and money
CLAIM_STATUS_LIFECYCLE = f"{BASE}/StructureDefinition/claim-status-lifecycle"  # 277: where the claim stands
PATIENT_PAYMENT = f"{BASE}/StructureDefinition/patient-payment"  # a PaymentReconciliation from a patient: the method
PAYMENT_CREDIT = f"{BASE}/StructureDefinition/payment-credit"  # a patient payment above the balance, kept as credit
STATEMENT_DOCUMENT = f"{BASE}/StructureDefinition/statement-document"  # an Invoice's printable DocumentReference
# COB: the X12 CAS group code (CO, PR, OA, PI, CR) of a ClaimResponse/EOB adjudication, which R4
# has no element for (valueCode), and why a claim's next payer is not billed by us (crossover).
X12_ADJUSTMENT_GROUP = f"{BASE}/StructureDefinition/x12-adjustment-group"
CLAIM_CROSSOVER = f"{BASE}/StructureDefinition/claim-crossover"
#: On a Medicare Coverage billed after another payer: the Medicare Secondary Payer type (the X12
#: insurance type code of 837P 2000B SBR05: 12, 13, 14, 15, 16, 41, 42, 43 or 47).
MSP_TYPE = f"{BASE}/StructureDefinition/msp-type"
CLAIM_MANUAL_CHANGE = f"{BASE}/StructureDefinition/claim-manual-change"  # a person or client app wrote the claim
FEE_MODIFIER = f"{BASE}/StructureDefinition/fee-modifier"  # a CPT modifier a fee is for (on code.coding)
FEE_PAYER = f"{BASE}/StructureDefinition/fee-payer"  # the payer Organization of a contracted amount
PAYER_RULE_PACK = f"{BASE}/StructureDefinition/payer-rule-pack"  # a Library holding a practice's payer rules

# -- code systems (Coding.system) ---------------------------------------------------------
TASK_CODE = f"{BASE}/CodeSystem/task-code"
SCRUB_RULE = f"{BASE}/CodeSystem/scrub-rule"
PAYER_ERROR = f"{BASE}/CodeSystem/payer-error"
DENIAL_CATEGORY = f"{BASE}/CodeSystem/denial-category"  # payer_adapters/x12/data/denial_categories.json
DENIAL_ACTION = f"{BASE}/CodeSystem/denial-action"  # the next action on a denial Task
WORK_ROLE = f"{BASE}/CodeSystem/work-role"  # Task.performerType: who works a Task (app/auth roles)
CHC_ERROR = f"{BASE}/CodeSystem/chc-error"
ADJUDICATION = f"{BASE}/CodeSystem/adjudication"
BENEFIT_TYPE = f"{BASE}/CodeSystem/benefit-type"
THERAPY_DOCUMENT_TYPE = f"{BASE}/CodeSystem/therapy-document-type"
THERAPY_DISCIPLINE = f"{BASE}/CodeSystem/therapy-discipline"
CLAIM_FILING_INDICATOR = f"{BASE}/CodeSystem/claim-filing-indicator"
X12_CLAIM_FILING_INDICATOR = f"{BASE}/CodeSystem/x12-claim-filing-indicator"
X12_ATTACHMENT_REPORT_TYPE = f"{BASE}/CodeSystem/x12-attachment-report-type"
X12_835_CLAIM_STATUS = f"{BASE}/CodeSystem/x12-835-claim-status"
X12_PLB_REASON = f"{BASE}/CodeSystem/x12-plb-reason"
X12_277CA_LEVEL_CODES = f"{BASE}/CodeSystem/x12-277ca-level"
X12_ERROR = f"{BASE}/CodeSystem/x12-error"
CLAIM_STATUS_LIFECYCLE_CODES = f"{BASE}/CodeSystem/claim-status-lifecycle"  # data/claim_status_lifecycle.json
BILLING = f"{BASE}/CodeSystem/billing"  # statement price components, patient payment kinds, document type
PRICE_COMPONENT = f"{BASE}/CodeSystem/price-component"  # ChargeItemDefinition priceComponent.code
USAGE_CONTEXT = f"{BASE}/CodeSystem/usage-context"  # UsageContext.code "payer" of a rule pack Library
TENANT_RULE = f"{BASE}/CodeSystem/tenant-rule"  # the rule ids of a practice's payer rule packs

# -- other URIs ---------------------------------------------------------------------------
FEE_SCHEDULE = f"{BASE}/fee-schedule"  # base of a practice's ChargeItemDefinition urls
RULE_PACKS = f"{BASE}/payer-rules"  # base of a practice's rule pack Library urls
OPERATION_DEFINITION = f"{BASE}/OperationDefinition"  # base of our OperationDefinition urls
AUDIT_EVENT_TYPE = "https://therabridge.dev/audit"  # AuditEvent.type system of our own events
SERVICE_AGENT = "urn:therabridge:service"  # AuditEvent agent systems: the server's own work,
CLIENT_AGENT = "urn:therabridge:client"  # an API client,
USER_AGENT = "urn:therabridge:user"  # a person

# -- deterministic ids --------------------------------------------------------------------
#: Resources the payer side writes on its own (rejections, Tasks, payer answers stored by id).
SERVER_NAMESPACE = uuid.UUID("6d1f3c2e-8a41-4c6b-9f0e-3b2a1d4c5e6f")
#: Resources decoded from X12 answers (ClaimResponse, EOB, PaymentReconciliation ids).
X12_NAMESPACE = uuid.UUID("0f7c0a52-5d0e-4b7e-9d0b-7c1a2b3c4d5e")


def stable_id(namespace: uuid.UUID, *parts: object) -> str:
    """An id derived from what caused a resource (uuid5), so writing it again overwrites it
    instead of adding another: a job that runs twice, an answer delivered twice."""
    return str(uuid.uuid5(namespace, "|".join(str(p) for p in parts)))
