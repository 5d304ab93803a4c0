"""A mailbox over SFTP (``x12-sftp``), with asyncssh.

One SSH connection per operation batch: :meth:`SftpDrop.session` opens it lazily and reuses it
until :meth:`close`; a broken connection is dropped and the next call reconnects. The server's
host key must be pinned (``known_hosts`` text/path or ``host_key`` public key line): a
clearinghouse mailbox without host-key checking would hand PHI to whoever answers.
"""
from __future__ import annotations

import posixpath
from typing import Any

import asyncssh

from payer_adapters.errors import TransientPayerError
from payer_adapters.transports.filedrop import check_name

_FAILURES = (asyncssh.Error, OSError, EOFError)


class SftpDrop:
    """Settings: ``host``, ``port`` (22), ``username``, ``password`` or ``private_key`` (PEM
    text) / ``private_key_path``, ``host_key`` (``ssh-ed25519 AAAA…``) or ``known_hosts``
    (path), ``root`` (remote folder, default ``.``), ``connect_timeout`` (seconds, 15)."""

    def __init__(self, settings: dict[str, Any]) -> None:
        for key in ("host", "username"):
            if not settings.get(key):
                raise ValueError(f"x12-sftp settings need {key!r}")
        if not (settings.get("host_key") or settings.get("known_hosts")):
            raise ValueError("x12-sftp settings need 'host_key' or 'known_hosts' (host keys are pinned)")
        self._s = settings
        self.root = settings.get("root") or "."
        self._conn: asyncssh.SSHClientConnection | None = None
        self._sftp: asyncssh.SFTPClient | None = None

    def _known_hosts(self) -> Any:
        if self._s.get("host_key"):
            host, port = self._s["host"], int(self._s.get("port", 22))
            pattern = host if port == 22 else f"[{host}]:{port}"
            return asyncssh.import_known_hosts(f"{pattern} {self._s['host_key'].strip()}\n")
        return self._s["known_hosts"]

    def _client_keys(self) -> list[Any] | None:
        if self._s.get("private_key"):
            return [asyncssh.import_private_key(self._s["private_key"], self._s.get("passphrase"))]
        if self._s.get("private_key_path"):
            return [asyncssh.read_private_key(self._s["private_key_path"], self._s.get("passphrase"))]
        return None

    async def _client(self) -> asyncssh.SFTPClient:
        if self._sftp is not None:
            return self._sftp
        try:
            self._conn = await asyncssh.connect(
                self._s["host"], port=int(self._s.get("port", 22)), username=self._s["username"],
                password=self._s.get("password"), client_keys=self._client_keys(),
                known_hosts=self._known_hosts(), connect_timeout=float(self._s.get("connect_timeout", 15)),
                agent_path=None)
            self._sftp = await self._conn.start_sftp_client()
        except _FAILURES as exc:
            await self.close()
            raise TransientPayerError(f"SFTP connect failed ({type(exc).__name__})") from None
        return self._sftp

    async def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            try:
                await self._conn.wait_closed()
            except _FAILURES:
                pass
        self._conn = self._sftp = None

    def _path(self, name: str) -> str:
        return posixpath.join(self.root, *check_name(name).parts)

    async def _do(self, what: str, op):  # type: ignore[no-untyped-def]
        sftp = await self._client()
        try:
            return await op(sftp)
        except asyncssh.SFTPNoSuchFile:
            raise
        except _FAILURES as exc:
            await self.close()
            raise TransientPayerError(f"SFTP {what} failed ({type(exc).__name__})") from None

    async def put(self, name: str, data: bytes) -> None:
        path = self._path(name)
        folder, base = posixpath.split(path)
        tmp = posixpath.join(folder, f".{base}.part")

        async def op(sftp: asyncssh.SFTPClient) -> None:
            if await sftp.exists(path):
                return
            await sftp.makedirs(folder, exist_ok=True)
            async with sftp.open(tmp, "wb") as f:
                await f.write(data)
            try:
                await sftp.posix_rename(tmp, path)
            except asyncssh.SFTPOpUnsupported:
                await sftp.rename(tmp, path)
        await self._do("put", op)

    async def exists(self, name: str) -> bool:
        path = self._path(name)
        return await self._do("exists", lambda sftp: sftp.isfile(path))

    async def list_new(self, folder: str) -> list[str]:
        path = self._path(folder)

        async def op(sftp: asyncssh.SFTPClient) -> list[str]:
            if not await sftp.isdir(path):
                return []
            names = []
            for entry in await sftp.readdir(path):
                fname = entry.filename
                if fname.startswith(".") or entry.attrs.type != asyncssh.FILEXFER_TYPE_REGULAR:
                    continue
                names.append(f"{folder}/{fname}")
            return sorted(names)
        return await self._do("list", op)

    async def get(self, name: str) -> bytes:
        path = self._path(name)

        async def op(sftp: asyncssh.SFTPClient) -> bytes:
            async with sftp.open(path, "rb") as f:
                return await f.read()
        try:
            return await self._do("get", op)
        except asyncssh.SFTPNoSuchFile:
            raise TransientPayerError("SFTP get failed (file vanished)") from None

    async def archive(self, name: str, folder: str = "archive") -> str:
        src = self._path(name)
        target = f"{folder}/{posixpath.basename(src)}"
        dst = self._path(target)

        async def op(sftp: asyncssh.SFTPClient) -> str:
            await sftp.makedirs(posixpath.dirname(dst), exist_ok=True)
            if not await sftp.exists(src) and await sftp.exists(dst):
                return target
            try:
                await sftp.posix_rename(src, dst)
            except asyncssh.SFTPOpUnsupported:
                await sftp.rename(src, dst)
            return target
        return await self._do("archive", op)
