"""The patient's share: what each patient owes after insurance, their payments, statements and
visit estimates.

R4 ``Account`` carries no balance, so the balance is never stored: it is derived, every time,
from the ledger the store already holds (the patient-responsibility adjustments of the posted
``ExplanationOfBenefit``s, less the patient's payments and adjustments recorded as
``PaymentReconciliation``s). Computing it twice gives the same figure.
"""
