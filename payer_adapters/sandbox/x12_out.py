"""X12 writers for what the sandbox sends back: 999, 277CA, 835 and 271.

Each uses the codec's :class:`~payer_adapters.x12.envelope.EnvelopeWriter` (ISA/GS/ST…SE/GE/IEA
counts) with a trading partner that mirrors the inbound interchange (our receiver becomes the
sender). Loops and segments are those of the 5010 implementation guides (999 005010X231A1,
277CA 005010X214, 835 005010X221A1, 271 005010X279A1), in the shapes the codec's decoders read.
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import datetime
from decimal import Decimal
from typing import Any

from payer_adapters.sandbox.engine import Benefits, ClaimResult, Ledger, money
from payer_adapters.x12 import X12Error, headers, load_partner
from payer_adapters.x12.envelope import EnvelopeWriter
from payer_adapters.x12.resources import fmt_amount
from payer_adapters.x12.segments import iter_segments


@dataclass
class InboundEnvelope:
    """ISA/GS/ST identity of a file we received, for acknowledging and replying to it."""

    sender_qualifier: str = "ZZ"
    sender_id: str = ""
    receiver_qualifier: str = "ZZ"
    receiver_id: str = ""
    usage: str = "T"
    isa_control: str = ""
    gs_functional_id: str = ""
    gs_sender: str = ""
    gs_receiver: str = ""
    gs_control: str = ""
    gs_version: str = ""
    sets: list[tuple[str, str, str]] = field(default_factory=list)  # (ST01, ST02, version: ST03 else GS08)


def read_envelope(data: bytes) -> InboundEnvelope:
    """Who sent a file and which sets it holds, read with the codec's envelope reader, which
    checks nothing (so a file that fails the checks is still answered, by a 999): the sender
    from the last interchange, the group from the first."""
    found = list(headers(data))
    env = InboundEnvelope(sets=[(h.transaction, h.control_number, h.version) for h in found])
    if found:
        isa, gs = found[-1].interchange, found[0].group
        env.sender_qualifier, env.sender_id = isa.sender_qualifier, isa.sender_id
        env.receiver_qualifier, env.receiver_id = isa.receiver_qualifier, isa.receiver_id
        env.isa_control, env.usage = isa.control_number, isa.usage or "T"
        env.gs_functional_id, env.gs_sender, env.gs_receiver = gs.functional_id, gs.sender, gs.receiver
        env.gs_control, env.gs_version = gs.control_number, gs.version
    return env


class ReplyWriter:
    """Envelopes for replies to one inbound interchange; control numbers from a counter."""

    def __init__(self, env: InboundEnvelope, now: datetime, counter: "Counter") -> None:
        base = load_partner("sandbox")
        self.partner = replace(base, name="sandbox-reply", sender_qualifier=env.receiver_qualifier or "ZZ",
                               sender_id=env.receiver_id or "TBSANDBOX", receiver_qualifier=env.sender_qualifier or "ZZ",
                               receiver_id=env.sender_id or "THERABRIDGE", application_sender=env.gs_receiver or "TBSANDBOX",
                               application_receiver=env.gs_sender or "THERABRIDGE", ack_requested=False,
                               usage_indicator=env.usage if env.usage in ("T", "P") else "T",
                               newline_after_segment=True)
        self.env, self.now, self.counter = env, now, counter

    def envelope(self, functional_id: str, version: str) -> EnvelopeWriter:
        n = self.counter.next()
        return EnvelopeWriter(self.partner, n, n, functional_id, version, self.now.strftime("%Y%m%d"),
                              self.now.strftime("%H%M"), newline=True)


class Counter:
    """Interchange control numbers for replies (per sandbox run; deterministic order)."""

    def __init__(self, start: int = 900001) -> None:
        self._n = start - 1

    def next(self) -> int:
        self._n += 1
        return self._n


# -- 999 ------------------------------------------------------------------------------------------

def write_999(reply: ReplyWriter, errors: list[X12Error]) -> str:
    """One AK2 per inbound set; a set with errors is rejected (IK5*R) with IK3/IK4 locations."""
    env = reply.env
    w = reply.envelope("FA", "005010X231A1")
    s = w.begin_set("999", 1)
    s.seg("AK1", env.gs_functional_id, env.gs_control, env.gs_version)
    accepted = 0
    for st01, st02, st03 in env.sets or [("837", "0001", env.gs_version)]:
        errs = [e for e in errors if (e.control_number or st02) == st02]
        s.seg("AK2", st01, st02, st03 or env.gs_version)
        for e in errs[:20]:
            # IK303 is X12 element 447 (AN 1/4): an implementation loop name such as 2010BA is cut to 2010
            s.seg("IK3", e.segment_id or "ST", e.set_position or 1, (e.loop_id or "")[:4],
                  "8" if e.element_position else (e.code or "8"))
            if e.element_position:
                s.seg("IK4", e.element_position, "", _ik4_code(e.code))
        if errs:
            s.seg("IK5", "R", "5")
        else:
            s.seg("IK5", "A")
            accepted += 1
    n = len(env.sets) or 1
    s.seg("AK9", "A" if accepted == n else ("R" if accepted == 0 else "P"), n, n, accepted)
    w.end_set(s)
    return w.text()


def _ik4_code(code: str | None) -> str:
    return code if code and code in {str(i) for i in range(1, 14)} | {"I6", "I9", "I10", "I11", "I12", "I13"} else "7"


# -- 277CA ----------------------------------------------------------------------------------------

def write_277ca(reply: ReplyWriter, results: list[ClaimResult], *, batch_id: str, received: datetime,
                config: dict[str, Any]) -> str:
    """One 277CA for a submission; per 837 transaction set received (named by its BHT03, which
    2200B TRN02 echoes): 2000A clearinghouse, 2000B submitter, 2000C per billing NPI, 2000D per
    claim (TRN*2 = CLM01; STC A2:20 accepted, else the edit's category:status:entity), 2220D per
    rejected line (SVC, STC, REF*FJ)."""
    w = reply.envelope("HN", "005010X214")
    s = w.begin_set("277", 1)
    d = reply.now.strftime("%Y%m%d")
    ch = config["clearinghouse"]
    s.seg("BHT", "0085", "08", batch_id[:30], d, reply.now.strftime("%H%M"), "TH")
    rc = config["received_status"]
    acc = config["accepted_status"]
    hl = 0
    batches: dict[str, list[ClaimResult]] = {}
    for r in results:
        batches.setdefault(r.claim.batch or batch_id, []).append(r)
    for trace, in_batch in batches.items():
        hl += 1
        source = hl
        s.seg("HL", hl, "", "20", 1)
        s.seg("NM1", "AY", "2", ch["name"], "", "", "", "", "46", ch["id"])
        s.seg("TRN", "1", batch_id[:30])
        s.seg("DTP", "050", "D8", received.strftime("%Y%m%d"))
        s.seg("DTP", "009", "D8", d)
        hl += 1
        receiver = hl
        ok = [r for r in in_batch if not r.rejected]
        bad = [r for r in in_batch if r.rejected]
        total_ok = sum((r.claim.total for r in ok), Decimal(0))
        total_bad = sum((r.claim.total for r in bad), Decimal(0))
        s.seg("HL", hl, source, "21", 1)
        s.seg("NM1", "41", "2", "SUBMITTER", "", "", "", "", "46", reply.env.sender_id or "THERABRIDGE")
        s.seg("TRN", "2", trace[:30])
        s.seg("STC", (rc["category"], rc["status"]), d, "WQ", fmt_amount(total_ok + total_bad))
        _counts(s, ok, bad, total_ok, total_bad, ("90", "AA"), ("YU", "YY"))
        hl = _providers(s, in_batch, hl, receiver, d, rc, acc)
    w.end_set(s)
    return w.text()


def _providers(s: Any, results: list[ClaimResult], hl: int, receiver: int, d: str, rc: dict[str, Any],
               acc: dict[str, Any]) -> int:
    """2000C per billing NPI under the 2000B ``receiver``, with its claims; returns the last HL."""
    by_npi: dict[str, list[ClaimResult]] = {}
    for r in results:
        by_npi.setdefault(r.claim.billing_npi, []).append(r)
    for npi, group in by_npi.items():
        hl += 1
        parent = hl
        g_ok = [r for r in group if not r.rejected]
        g_bad = [r for r in group if r.rejected]
        s.seg("HL", hl, receiver, "19", 1)
        s.seg("NM1", "85", "2", group[0].claim.billing_name or "PROVIDER", "", "", "", "", "XX", npi)
        s.seg("TRN", "1", "0")
        s.seg("STC", (rc["category"], rc["status"]), "", "WQ", fmt_amount(sum((r.claim.total for r in group), Decimal(0))))
        _counts(s, g_ok, g_bad, sum((r.claim.total for r in g_ok), Decimal(0)),
                sum((r.claim.total for r in g_bad), Decimal(0)), ("QA", "QC"), ("YU", "YY"))
        for r in group:
            hl += 1
            c = r.claim
            s.seg("HL", hl, parent, "PT")
            s.seg("NM1", "QC", "1", c.patient_last or "UNKNOWN", c.patient_first, "", "", "", "MI", c.member_id or "UNKNOWN")
            s.seg("TRN", "2", c.pcn)
            claim_edits = [e for e in r.edits if e.line is None]
            if not r.rejected:
                s.seg("STC", (acc["category"], acc["status"]), d, "WQ", fmt_amount(c.total))
                s.seg("REF", "1K", r.icn)
            else:
                for e in claim_edits or [r.edits[0]]:
                    s.seg("STC", (e.category, e.status, e.entity), d, "U", fmt_amount(c.total))
            if c.first_date:
                if c.first_date == c.last_date:
                    s.seg("DTP", "472", "D8", c.first_date)
                else:
                    s.seg("DTP", "472", "RD8", f"{c.first_date}-{c.last_date}")
            for e in r.edits:
                if e.line is None:
                    continue
                ln = e.line
                s.seg("SVC", ("HC", ln.code, *ln.modifiers), fmt_amount(ln.charge), "", "", "", fmt_amount(ln.units))
                s.seg("STC", (e.category, e.status, e.entity), d, "U")
                if ln.control:
                    s.seg("REF", "FJ", ln.control)
                if ln.service_date:
                    s.seg("DTP", "472", "D8", ln.service_date)
    return hl


def _counts(s: Any, ok: list, bad: list, total_ok: Decimal, total_bad: Decimal, qty: tuple[str, str],
            amt: tuple[str, str]) -> None:
    if ok:
        s.seg("QTY", qty[0], len(ok))
    if bad:
        s.seg("QTY", qty[1], len(bad))
    if ok:
        s.seg("AMT", amt[0], fmt_amount(total_ok))
    if bad:
        s.seg("AMT", amt[1], fmt_amount(total_bad))


# -- 835 ------------------------------------------------------------------------------------------

def write_835(reply: ReplyWriter, results: list[ClaimResult], *, trace_seed: str, config: dict[str, Any]) -> str:
    """One ST per payer over the adjudicated claims: BPR/TRN, 1000A payer, 1000B payee,
    2100 CLP + NM1*QC per claim, 2110 SVC/DTM*472/CAS/REF*6R/AMT*B6/LQ*HE per line. A replacement
    or void first reverses the claim it stands for (CLP02 22 under the original's CLP01 and
    CLP07, every amount negated); a void adds nothing else. When the reversals take back more
    than the payments pay, the payment is zero and the rest is a PLB forwarding balance (FB,
    negative) naming the reversed claim's number."""
    by_payer: dict[str, list[ClaimResult]] = {}
    for r in results:
        by_payer.setdefault(r.claim.payer_id, []).append(r)
    w = reply.envelope("HP", "005010X221A1")
    d = reply.now.strftime("%Y%m%d")
    ch = config["clearinghouse"]
    for n, (payer_id, group) in enumerate(sorted(by_payer.items()), start=1):
        payer = config["payers"][payer_id]
        s = w.begin_set("835", n, st03=False)
        reversed_ = [r.reversal for r in group if r.reversal is not None]
        total = sum((r.paid for r in group), Decimal(0)) - sum((r.paid for r in reversed_), Decimal(0))
        if total > 0:
            s.seg("BPR", "I", fmt_amount(total), "C", "ACH", "CCP", "01", ch["bank_routing"], "DA", ch["bank_account"],
                  payer["tax_id"], "", "01", "999988880", "DA", "98765", d)
        else:
            s.seg("BPR", "H", "0", "C", "NON", "", "", "", "", "", "", "", "", "", "", "", d)
        trace = f"{payer_id[:3]}{trace_seed}{n:02d}"[:50]
        s.seg("TRN", "1", trace, payer["tax_id"])
        s.seg("DTM", "405", d)
        s.seg("N1", "PR", payer["name"], "XV", payer_id)
        s.seg("N3", "PO BOX 1000")
        s.seg("N4", "SPRINGFIELD", "IL", "627010000")
        s.seg("PER", "BL", "EDI SUPPORT", "TE", "8005550199")
        first = group[0].claim
        s.seg("N1", "PE", first.billing_name or "PROVIDER", "XX", first.billing_npi)
        s.seg("LX", "1")
        for r in group:
            if r.reversal is not None:
                _clp(s, r.reversal, payer, status="22", sign=Decimal(-1))
            if not r.void:
                _clp(s, r, payer, status=r.status, sign=Decimal(1))
        if total < 0:
            s.seg("PLB", first.billing_npi, f"{reply.now.year}1231", ("FB", reversed_[-1].icn), fmt_amount(total))
        w.end_set(s)
    return w.text()


def _clp(s: Any, r: ClaimResult, payer: dict[str, Any], *, status: str, sign: Decimal) -> None:
    """One 2100 claim payment (``sign`` -1: its reversal, every amount negated)."""
    c = r.claim
    s.seg("CLP", c.pcn, status, fmt_amount(sign * c.total), fmt_amount(sign * r.paid),
          fmt_amount(sign * r.patient_responsibility), payer["claim_filing_code"], r.icn, "11", "1")
    s.seg("NM1", "QC", "1", c.patient_last or "UNKNOWN", c.patient_first, "", "", "", "MI", c.member_id)
    if r.crossover is not None and sign > 0:
        s.seg("NM1", "TT", "2", r.crossover[0], "", "", "", "", "PI", r.crossover[1])
        s.seg("MOA", "", "", "MA18")
    for lr in r.lines:
        ln = lr.line
        s.seg("SVC", ("HC", ln.code, *ln.modifiers), fmt_amount(sign * ln.charge), fmt_amount(sign * lr.paid), "",
              fmt_amount(ln.units))
        if ln.service_date:
            s.seg("DTM", "472", ln.service_date)
        groups: dict[str, list[tuple[str, Decimal]]] = {}
        for g, carc, amount in lr.adjustments:
            groups.setdefault(g, []).append((carc, amount))
        for g, items in groups.items():
            elems: list[Any] = []
            for carc, amount in items[:6]:
                elems += [carc, fmt_amount(sign * amount), ""]
            s.seg("CAS", g, *elems)
        if ln.control:
            s.seg("REF", "6R", ln.control)
        if lr.allowed is not None:
            s.seg("AMT", "B6", fmt_amount(sign * lr.allowed))
        for rarc in lr.remarks:
            s.seg("LQ", "HE", rarc)


# -- 271 ------------------------------------------------------------------------------------------

@dataclass
class EligibilityQuery:
    """What a 270 asked (2100A payer, 2100B provider, 2000C TRN, 2100C member, EQ)."""

    payer_id: str
    provider_npi: str
    provider_name: str
    trace: str
    trace_originator: str
    member_id: str
    last: str
    first: str
    service_types: list[str]
    st02: str = "0001"


def read_270(data: bytes) -> list[EligibilityQuery]:
    out: list[EligibilityQuery] = []
    rep = "^"
    payer = npi = pname = ""
    cur: EligibilityQuery | None = None
    st = "0001"
    for seg in iter_segments(data):
        g = (lambda i, s=seg: s[i] if len(s) > i else "")
        tag = seg[0]
        if tag == "ISA":
            rep = g(11) or "^"
        elif tag == "ST":
            st = g(2)
        elif tag == "NM1" and g(1) == "PR":
            payer = g(9)
        elif tag == "NM1" and g(1) == "1P":
            npi, pname = g(9), g(3)
        elif tag == "TRN" and g(1) == "1":
            cur = EligibilityQuery(payer, npi, pname, g(2), g(3), "", "", "", [], st)
            out.append(cur)
        elif tag == "NM1" and g(1) == "IL" and cur is not None:
            cur.member_id, cur.last, cur.first = g(9), g(3), g(4)
        elif tag == "EQ" and cur is not None:
            cur.service_types += [x for x in g(1).split(rep) if x]
    return out


def eb_segments(ben: Benefits, ledger: Ledger) -> list[tuple[Any, ...]]:
    """The EB loop for one member (2110C): status, plan, then per service type copay (B),
    coinsurance (A), visit limit and remaining (F, VS), deductible (C, 23/29)."""
    if not ben.active:
        return [("EB", "6", "IND", "30")]
    m = ben.member
    out: list[tuple[Any, ...]] = [("EB", "1", "IND", "^".join(["30", *ben.service_types]), "", m.get("plan", ""))]
    d = m.get("deductible") or {}
    if d.get("total"):
        out.append(("EB", "C", "IND", "30", "", "", "23", fmt_amount(money(d["total"]))))
        out.append(("EB", "C", "IND", "30", "", "", "29", fmt_amount(ben.deductible_remaining(ledger))))
    for st in ben.service_types:
        auth = "Y" if ben.auth_required(st) else "N"
        if m.get("copay"):
            out.append(("EB", "B", "IND", st, "", "", "27", fmt_amount(money(m["copay"])), "", "", "", auth, "Y"))
        if m.get("coinsurance"):
            out.append(("EB", "A", "IND", st, "", "", "27", "", str(Decimal(str(m["coinsurance"]))), "", "", auth, "Y"))
        total, used = ben.visits(st, ledger)
        if total is not None:
            out.append(("EB", "F", "IND", st, "", "", "23", "", "", "VS", total, auth, "Y"))
            out.append(("EB", "F", "IND", st, "", "", "29", "", "", "VS", max(total - used, 0), auth, "Y"))
    return out


def write_271(reply: ReplyWriter, queries: list[tuple[EligibilityQuery, Benefits]], *, config: dict[str, Any],
              ledger: Ledger) -> str:
    w = reply.envelope("HB", "005010X279A1")
    d = reply.now.strftime("%Y%m%d")
    for n, (q, ben) in enumerate(queries, start=1):
        s = w.begin_set("271", n)
        s.seg("BHT", "0022", "11", q.trace[:30], d, reply.now.strftime("%H%M"))
        payer = config["payers"].get(q.payer_id, {"name": "UNKNOWN PAYER"})
        s.seg("HL", 1, "", "20", 1)
        s.seg("NM1", "PR", "2", payer["name"], "", "", "", "", "PI", q.payer_id)
        s.seg("HL", 2, 1, "21", 1)
        s.seg("NM1", "1P", "2", q.provider_name or "PROVIDER", "", "", "", "", "XX", q.provider_npi)
        s.seg("HL", 3, 2, "22", 0)
        s.seg("TRN", "2", q.trace, q.trace_originator)
        s.seg("NM1", "IL", "1", q.last or "UNKNOWN", q.first, "", "", "", "MI", q.member_id)
        if not ben.found:
            s.seg("AAA", "N", "", "75", "C")
        else:
            for eb in eb_segments(ben, ledger):
                tag, *rest = eb
                rest = [r.replace("^", reply.partner.separators.repetition) if isinstance(r, str) else r for r in rest]
                s.seg(tag, *rest)
            note = ben.member.get("visit_limit_note")
            if note:
                s.seg("MSG", note)
        w.end_set(s)
    return w.text()
