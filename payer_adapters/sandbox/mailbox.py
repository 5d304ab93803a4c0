"""The sandbox's mailbox side: read ``inbox/*.x12``, answer in ``outbox/``.

For ``inbox/837P_<key>.x12``: ``outbox/999_<key>.x12`` (syntax, via
``payer_adapters.x12.validate``, plus the data file's ``syntax_edits``); when accepted,
``outbox/277CA_<key>.x12`` (front-end edits) and, when any claim passed them, ``outbox/835_<key>.x12`` (adjudication). For
``inbox/270_<trace>.x12``: 999 and ``outbox/271_<trace>.x12``. Answers come in the order a
clearinghouse sends them: the 999 first, then the 277CA, then the 835.
A processed file moves to ``processed/`` (that is where ``find_submission`` finds it later);
an unreadable one moves to ``quarantine/`` with no answer (a real mailbox would send a TA1).

The processor works on a local directory; the SFTP server in the CLI serves the same tree.
"""
from __future__ import annotations

import hashlib
import logging
import os
from datetime import datetime
from pathlib import Path

from payer_adapters.sandbox import appeals
from payer_adapters.sandbox.engine import Engine
from payer_adapters.sandbox.model import claims_from_837
from payer_adapters.sandbox.x12_out import (
    Counter, InboundEnvelope, ReplyWriter, read_270, read_envelope, write_271, write_277ca, write_835, write_999,
)
from payer_adapters.x12 import X12Error, validate

log = logging.getLogger("therabridge.sandbox")


def _write(path: Path, text: str) -> None:
    """Atomic write, so a client listing ``outbox/`` never reads half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.part")
    tmp.write_text(text)
    os.replace(tmp, path)


class Mailbox:
    """Processes one mailbox root with one engine. ``process(now)`` handles every new file."""

    def __init__(self, root: str | Path, engine: Engine, *, use_pyx12: bool = True) -> None:
        self.root = Path(root)
        self.engine = engine
        self.use_pyx12 = use_pyx12
        for folder in ("inbox", "outbox", "processed", "archive", "quarantine"):
            (self.root / folder).mkdir(parents=True, exist_ok=True)
        self.counter = Counter(self._counter_start())
        self.envelopes: dict[str, InboundEnvelope] = {}  # pcn -> the 837 it came in: answers mirror it

    def _counter_start(self) -> int:
        """Reply ISA13s continue across sandbox restarts (kept in ``.control``)."""
        path = self.root / ".control"
        start = int(path.read_text()) if path.exists() else 900001
        path.write_text(str(start + 10000))
        return start

    def redeliver(self, name: str) -> str:
        """Put an answer we already sent (now in ``archive/`` or ``outbox/``) into ``outbox/``
        again under a new name, byte for byte — the "same 835 delivered twice" fault."""
        base = Path(name).name
        source = next((p for p in (self.root / "archive" / base, self.root / "outbox" / base) if p.is_file()), None)
        if source is None:
            raise FileNotFoundError(base)
        n = 2
        while (target := self.root / "outbox" / f"{Path(base).stem}.again{n}.x12").exists():
            n += 1
        _write(target, source.read_text())
        return target.name

    def pending(self) -> list[Path]:
        return sorted(p for p in (self.root / "inbox").iterdir() if p.is_file() and not p.name.startswith("."))

    def process(self, now: datetime) -> list[str]:
        """Answer every file in ``inbox/``; returns the names written to ``outbox/``."""
        written: list[str] = []
        for path in self.pending():
            written += self.process_file(path, now)
        return written

    def process_file(self, path: Path, now: datetime) -> list[str]:
        data = path.read_bytes()
        stem = path.stem.split("_", 1)[1] if "_" in path.stem else path.stem
        try:
            env = read_envelope(data)
            errors = validate(data, use_pyx12=self.use_pyx12) + self.engine.syntax_edits(data)
        except X12Error:
            env, errors = None, None
        if env is None or not env.isa_control or not env.sets:
            os.replace(path, self.root / "quarantine" / path.name)
            log.warning("sandbox mailbox: unreadable file quarantined")
            return []
        reply = ReplyWriter(env, now, self.counter)
        out: list[str] = []
        _write(self.root / "outbox" / f"999_{stem}.x12", write_999(reply, errors or []))
        out.append(f"999_{stem}.x12")
        if not errors:
            st01 = env.sets[0][0]
            if st01 == "837":
                out += self._claims(data, stem, reply, now)
            elif st01 == "270":
                out += self._eligibility(data, stem, reply)
        os.replace(path, self.root / "processed" / path.name)
        return out

    def _claims(self, data: bytes, stem: str, reply: ReplyWriter, now: datetime) -> list[str]:
        salt = hashlib.sha256(data).hexdigest()[:16]
        results = []
        for claim in claims_from_837(data):
            self.envelopes[claim.pcn] = reply.env
            r = self.engine.process(claim, received=now.date(), salt=salt)
            self.engine.ledger.record("mailbox", claim, "rejected" if r.rejected else "adjudicated", stem)
            results.append(r)
        cfg = self.engine.data
        out = []
        _write(self.root / "outbox" / f"277CA_{stem}.x12",
               write_277ca(reply, results, batch_id=reply.env.isa_control, received=now, config=cfg))
        out.append(f"277CA_{stem}.x12")
        adjudicated = [r for r in results if not r.rejected]
        if adjudicated:
            _write(self.root / "outbox" / f"835_{stem}.x12",
                   write_835(reply, adjudicated, trace_seed=salt[:10].upper(), config=cfg))
            out.append(f"835_{stem}.x12")
        return out

    def appeal(self, package: dict, now: datetime) -> list[str]:
        """A mailed (or portal-uploaded) appeal package arrives: decide it
        (``appeals.decide``) and answer with an 835 that reverses the claim's standing decision
        and adjudicates it again, paid when overturned, denied again when upheld. The same package
        again writes nothing. Raises LookupError when it names no claim of this payer."""
        key = appeals.package_key(package)
        if key and key in self.engine.ledger.appeals:
            return []
        decided = appeals.decide(self.engine, package)
        env = self.envelopes.get(decided.result.claim.pcn) or InboundEnvelope(
            sender_id="THERABRIDGE", receiver_id="TBSANDBOX", gs_sender="THERABRIDGE", gs_receiver="TBSANDBOX")
        reply = ReplyWriter(env, now, self.counter)
        seed = hashlib.sha256(f"appeal|{decided.key}|{decided.result.icn}".encode()).hexdigest()[:10].upper()
        name = f"835_appeal_{seed}.x12"
        _write(self.root / "outbox" / name, write_835(reply, [decided.result], trace_seed=seed, config=self.engine.data))
        return [name]

    def _eligibility(self, data: bytes, stem: str, reply: ReplyWriter) -> list[str]:
        queries = read_270(data)
        pairs = [(q, self.engine.benefits(q.member_id, q.service_types)) for q in queries]
        _write(self.root / "outbox" / f"271_{stem}.x12",
               write_271(reply, pairs, config=self.engine.data, ledger=self.engine.ledger))
        return [f"271_{stem}.x12"]
