"""Fault injection for tests: per request path, make the next N calls fail in a chosen way.

``POST /sandbox/faults`` with ``{"path": "/fhir/Claim/$submit", "mode": "500", "count": 2}``.
Modes: ``500`` (answer HTTP 500 before doing anything), ``sleep`` (wait ``seconds`` first, then
answer normally — past the client's timeout), ``drop`` (close the connection without an answer),
``drop-after`` (process the request, then cut the answer short: the payer has the claim but the
client never hears so — the crash-between-send-and-record case), ``trickle`` (process the request,
then send the answer one byte every ``seconds``: a per-read timeout never fires, only a deadline on
the whole call ends it), ``lose`` (answer as if the request was taken in, but keep no record of
it: no claim on file, no 277CA, no 835 — the lost claim a status inquiry finds missing).
``DELETE /sandbox/faults`` clears.
"""
from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send


MODES = ("500", "sleep", "drop", "drop-after", "trickle", "lose")
#: Scope key the middleware sets for a ``lose`` fault; the endpoints read it with :func:`lost`.
LOSE = "sandbox.lose"


def lost(scope: Scope) -> bool:
    """Whether this request is to be answered but forgotten (a ``lose`` fault fired for it)."""
    return bool(scope.get(LOSE))


@dataclass
class Fault:
    mode: str
    count: int
    seconds: float = 0.0


class FaultTable:
    def __init__(self) -> None:
        self.faults: dict[str, Fault] = {}
        self.fired: list[tuple[str, str]] = []

    def set(self, path: str, mode: str, count: int = 1, seconds: float = 0.0) -> None:
        if mode not in MODES:
            raise ValueError(f"unknown fault mode {mode!r}")
        self.faults[path] = Fault(mode, count, seconds)

    def take(self, path: str) -> Fault | None:
        f = self.faults.get(path)
        if f is None or f.count <= 0:
            return None
        f.count -= 1
        self.fired.append((path, f.mode))
        return f


class DroppedConnection(Exception):
    """Raised inside the ASGI app so the server closes the connection without an answer."""


class FaultMiddleware:
    def __init__(self, app: ASGIApp, table: FaultTable) -> None:
        self.app = app
        self.table = table

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        fault = self.table.take(scope["path"])
        if fault is None:
            await self.app(scope, receive, send)
            return
        if fault.mode == "500":
            await send({"type": "http.response.start", "status": 500,
                        "headers": [(b"content-type", b"text/plain")]})
            await send({"type": "http.response.body", "body": b"injected failure"})
            return
        if fault.mode == "lose":
            await self.app({**scope, LOSE: True}, receive, send)
            return
        if fault.mode == "sleep":
            await asyncio.sleep(fault.seconds)
            await self.app(scope, receive, send)
            return
        if fault.mode == "drop":
            # Announce a body and never send it: the server must close the connection, and the
            # client sees a protocol error rather than an HTTP status.
            await send({"type": "http.response.start", "status": 200,
                        "headers": [(b"content-length", b"100000"), (b"content-type", b"application/json")]})
            raise DroppedConnection("injected connection drop")

        if fault.mode == "trickle":
            await self.app(scope, receive, _trickling(send, receive, fault.seconds))
            return

        # drop-after: run the app, announce the body, send only part of it, then fail.
        started: dict[str, Any] = {}

        async def cut(message: Message) -> None:
            if message["type"] == "http.response.start":
                started.update(message)
                headers = [(k, v) for k, v in message.get("headers", []) if k.lower() != b"content-length"]
                headers.append((b"content-length", b"100000"))
                await send({**message, "headers": headers})
            elif message["type"] == "http.response.body":
                await send({"type": "http.response.body", "body": message.get("body", b"")[:5], "more_body": True})
                raise DroppedConnection("injected drop after processing")
        await self.app(scope, receive, cut)


def _trickling(send: Send, receive: Receive, gap: float) -> Send:
    """A ``send`` that passes the answer on one byte at a time, ``gap`` seconds apart, until
    the client hangs up."""

    async def hung_up() -> None:
        while (await receive())["type"] != "http.disconnect":
            pass  # the rest of a request body the app did not read

    async def trickle(message: Message) -> None:
        if message["type"] != "http.response.body":
            await send(message)
            return
        body, more = message.get("body", b""), message.get("more_body", False)
        gone = asyncio.ensure_future(hung_up())
        try:
            for i in range(len(body)):
                if gone.done():
                    return
                await send({"type": "http.response.body", "body": body[i:i + 1], "more_body": True})
                await asyncio.sleep(gap)
        finally:
            gone.cancel()
        if not more:
            await send({"type": "http.response.body", "body": b"", "more_body": False})
    return trickle
