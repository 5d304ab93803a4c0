"""837P 005010X222A1 → typed claim submissions (for validation, receipts, the sandbox payer and tests).

Reads only what a payer needs to adjudicate and answer: BHT03 (the batch a 277CA names), 2010AA
billing NPI and name, 2000B SBR09, 2010BA/BB ids, the subscriber (person, or a workers' comp
employer: NM102 = 2) and the patient (2000C PAT01, 2010CA NM1*QC, else the subscriber), 2300 CLM
(CLM01, CLM02, CLM05), REF*G1 and REF*F8, 2310B rendering NPI, and per 2400 line SV1, DTP*472
and REF*6R. For a secondary or tertiary claim also the 2000B SBR01 (payer order) and, per prior
payer, 2320 SBR01/CAS/AMT*D/AMT*EAF, 2330B NM109 and REF*F8, and its 2430 SVD02 and CAS per line.
Order is checked loosely: CLM needs an open 2000B, SV1 needs an LX, LX needs a CLM.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal

from payer_adapters.x12.control import BatchNumbers
from payer_adapters.x12.envelope import SetHeader
from payer_adapters.x12.errors import StructureError
from payer_adapters.x12.values import amount, d8, el


@dataclass(slots=True)
class LineSubmission:
    code: str
    modifiers: list[str]
    charge: Decimal
    units: Decimal
    service_date: str | None = None
    line_control_number: str | None = None
    #: 2430 per prior payer: (SVD01 payer id, SVD02 paid, [(CAS group, CARC, amount)])
    prior_payments: list[tuple[str, Decimal, list[tuple[str, str, Decimal]]]] = field(default_factory=list)


@dataclass(slots=True)
class OtherPayer:
    """Loop 2320 with its 2330B: a payer that adjudicated the claim before this one."""

    sequence: str  # SBR01
    payer_id: str = ""  # 2330B NM109
    paid: Decimal = Decimal(0)  # AMT*D
    patient_liability: Decimal | None = None  # AMT*EAF
    claim_number: str = ""  # 2330B REF*F8
    adjustments: list[tuple[str, str, Decimal]] = field(default_factory=list)  # claim-level CAS


@dataclass(slots=True)
class ClaimSubmission:
    patient_control_number: str
    total: Decimal
    place_of_service: str
    frequency: str
    member_id: str = ""
    payer_id: str = ""
    billing_npi: str = ""
    original_reference: str | None = None  # REF*F8
    lines: list[LineSubmission] = field(default_factory=list)
    filing_indicator: str = ""  # SBR09 (WC workers' comp)
    subscriber_entity: str = "1"  # 2010BA NM102: 1 person, 2 non-person (a workers' comp employer)
    subscriber_name: str = ""  # 2010BA NM103: last name or organization name
    patient_relationship: str = ""  # 2000C PAT01 (20 employee); empty when the patient is the subscriber
    patient_last: str = ""  # 2010CA NM1*QC, else the subscriber person
    patient_first: str = ""
    billing_name: str = ""  # 2010AA NM103
    rendering_npi: str = ""  # 2310B NM109
    prior_authorization: str = ""  # REF*G1
    payer_sequence: str = "P"  # 2000B SBR01
    other_payers: list[OtherPayer] = field(default_factory=list)  # 2320 loops


@dataclass
class Submission837:
    header: SetHeader
    reference: str = ""  # BHT03: the batch, which a 277CA echoes in 2200B TRN02
    claims: list[ClaimSubmission] = field(default_factory=list)


def batch_numbers(submissions: list[Submission837]) -> BatchNumbers:
    """The control numbers of a claim file read back: ISA13 and GS06 (of its last set, as there is
    one of each in the files we write) and every set's ST02 with its CLM01s."""
    last = submissions[-1].header
    return BatchNumbers(last.interchange.control_number, last.group.control_number,
                        tuple((s.header.control_number, tuple(c.patient_control_number for c in s.claims))
                              for s in submissions))


class Decoder837P:
    def __init__(self, header: SetHeader) -> None:
        self.sub = Submission837(header)
        self._comp = header.interchange.separators.component
        self._hl = ""
        self._npi = self._billing_name = self._member = self._payer = ""
        self._filing = self._sub_entity = self._sub_last = self._sub_first = ""
        self._sequence = "P"
        self._pat_rel = self._pat_last = self._pat_first = ""
        self._claim: ClaimSubmission | None = None
        self._line: LineSubmission | None = None
        self.loop = "HEADER"

    def feed(self, seg: list[str], position: int) -> None:
        tag = seg[0]
        if tag == "BHT":
            self.sub.reference = el(seg, 3)
        elif tag == "HL":
            self._hl = el(seg, 3)
            self.loop = {"20": "2000A", "22": "2000B", "23": "2000C"}.get(self._hl, "2000?")
            self._claim = self._line = None
            if self._hl == "22":
                self._filing = self._sub_entity = self._sub_last = self._sub_first = ""
            if self._hl in ("22", "23"):
                self._pat_rel = self._pat_last = self._pat_first = ""
        elif tag == "SBR" and self._claim is not None and self.loop in ("2300", "2320"):
            self._claim.other_payers.append(OtherPayer(el(seg, 1)))
            self.loop = "2320"
        elif tag == "SBR":
            self._filing = el(seg, 9)
            self._sequence = el(seg, 1) or "P"
        elif self.loop == "2320" and self._claim is not None and tag in ("CAS", "AMT"):
            other = self._claim.other_payers[-1]
            if tag == "CAS":
                other.adjustments += _cas(seg)
            elif el(seg, 1) == "D":
                other.paid = amount(seg, 2)  # type: ignore[assignment]
            elif el(seg, 1) == "EAF":
                other.patient_liability = amount(seg, 2)
        elif tag == "SVD" and self._line is not None:
            self._line.prior_payments.append((el(seg, 1), amount(seg, 2), []))  # type: ignore[arg-type]
            self.loop = "2430"
        elif tag == "CAS" and self.loop == "2430" and self._line is not None:
            self._line.prior_payments[-1][2].extend(_cas(seg))
        elif tag == "PAT":
            self._pat_rel = el(seg, 1)
        elif tag == "NM1":
            q = el(seg, 1)
            if q == "85":
                self._npi, self._billing_name = el(seg, 9), el(seg, 3)
            elif q == "IL" and self.loop == "2320":
                pass  # 2330A: the other payer's subscriber
            elif q == "IL":
                self._member = el(seg, 9)
                self._sub_entity, self._sub_last, self._sub_first = el(seg, 2), el(seg, 3), el(seg, 4)
            elif q == "QC":
                self._pat_last, self._pat_first = el(seg, 3), el(seg, 4)
            elif q == "PR" and self.loop == "2320" and self._claim is not None:
                self._claim.other_payers[-1].payer_id = el(seg, 9)
            elif q == "PR":
                self._payer = el(seg, 9)
            elif q == "82" and self.loop == "2300" and self._claim is not None:
                self._claim.rendering_npi = el(seg, 9)
        elif tag == "CLM":
            if self._hl not in ("22", "23"):
                raise StructureError("CLM outside a subscriber or patient loop", segment_id="CLM",
                                     loop_id="2300", code="7")
            c5 = el(seg, 5).split(self._comp) + ["", "", ""]
            self._claim = ClaimSubmission(el(seg, 1), amount(seg, 2), c5[0], c5[2], self._member,  # type: ignore[arg-type]
                                          self._payer, self._npi)
            self._claim.filing_indicator = self._filing
            self._claim.billing_name = self._billing_name
            self._claim.subscriber_entity, self._claim.subscriber_name = self._sub_entity or "1", self._sub_last
            in_patient_loop = self._hl == "23"
            self._claim.patient_relationship = self._pat_rel if in_patient_loop else ""
            self._claim.patient_last = self._pat_last if in_patient_loop else self._sub_last
            self._claim.patient_first = self._pat_first if in_patient_loop else self._sub_first
            self._claim.payer_sequence = self._sequence
            self.sub.claims.append(self._claim)
            self.loop = "2300"
        elif tag == "LX":
            if self._claim is None:
                raise StructureError("LX before CLM", segment_id="LX", loop_id="2400", code="7")
            self._line = None
            self.loop = "2400"
        elif tag == "SV1":
            if self.loop != "2400" or self._claim is None:
                raise StructureError("SV1 outside a 2400 line", segment_id="SV1", loop_id=self.loop, code="7")
            comp = el(seg, 1).split(self._comp)
            self._line = LineSubmission(comp[1] if len(comp) > 1 else "", comp[2:6], amount(seg, 2),  # type: ignore[arg-type]
                                        amount(seg, 4))  # type: ignore[arg-type]
            self._claim.lines.append(self._line)
        elif tag == "DTP" and self.loop == "2400" and self._line is not None and el(seg, 1) == "472":
            self._line.service_date = d8(el(seg, 3)[:8], "DTP", 3)
        elif tag == "REF":
            if self.loop == "2400" and self._line is not None and el(seg, 1) == "6R":
                self._line.line_control_number = el(seg, 2)
            elif self.loop == "2320" and self._claim is not None and el(seg, 1) == "F8":
                self._claim.other_payers[-1].claim_number = el(seg, 2)
            elif self.loop == "2300" and self._claim is not None and el(seg, 1) == "F8":
                self._claim.original_reference = el(seg, 2)
            elif self.loop == "2300" and self._claim is not None and el(seg, 1) == "G1":
                self._claim.prior_authorization = el(seg, 2)

    def finish(self) -> Submission837:
        for c in self.sub.claims:
            if not c.lines:
                raise StructureError("claim has no service lines", segment_id="LX", loop_id="2400", code="3")
        return self.sub


def _cas(seg: list[str]) -> list[tuple[str, str, Decimal]]:
    """A CAS segment's (group, CARC, amount) triplets."""
    out = []
    for i in range(2, len(seg), 3):
        if seg[i]:
            out.append((el(seg, 1), seg[i], amount(seg, i + 1)))
    return out  # type: ignore[return-value]
