"""A peer on a loopback port that answers every connection one byte at a time: per-read timeouts
(httpx's, asyncssh's) never fire, only a deadline on the whole call ends a conversation with it.
HTTP payers get the same behaviour from the sandbox's ``trickle`` fault; this one is for the
protocols the sandbox does not serve over a socket (SSH)."""
from __future__ import annotations

import socket
import threading
import time


class TricklingPeer:
    """Sends ``pattern`` over and over, one byte every ``gap`` seconds, to each client. An SSH
    client reads it as a server line that has not ended yet (lines before the version line are
    allowed, up to 8 KiB each: over an hour at two bytes a second)."""

    def __init__(self, pattern: bytes = b"please wait ", gap: float = 0.5) -> None:
        self.pattern = pattern
        self.gap = gap
        self.connections = 0
        self._stop = threading.Event()
        self._server = socket.create_server(("127.0.0.1", 0))
        self.port = self._server.getsockname()[1]
        threading.Thread(target=self._accept, name="trickling-peer", daemon=True).start()

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._server.accept()
            except OSError:
                return  # closed
            self.connections += 1
            threading.Thread(target=self._trickle, args=(conn,), daemon=True).start()

    def _trickle(self, conn: socket.socket) -> None:
        with conn:
            i = 0
            while not self._stop.is_set():
                try:
                    conn.sendall(self.pattern[i % len(self.pattern):][:1])
                except OSError:
                    return  # the client hung up
                i += 1
                time.sleep(self.gap)

    def close(self) -> None:
        self._stop.set()
        self._server.close()
