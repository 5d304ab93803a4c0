"""The mailbox contract and its local-directory implementation.

A mailbox is a root with folders (by default ``inbox/`` we upload to, ``outbox/`` the payer
writes answers to, ``archive/`` where we move collected answers, ``processed/`` where the
payer moves files it picked up). Names are paths relative to the root, ``folder/file``.

Rules every FileDrop keeps:

* ``put`` is atomic: the data goes to a hidden temporary name (``.<name>.part``) and is renamed
  into place, so the payer never reads half a file and a file that exists is complete.
* Hidden names (starting with ``.``) are never listed.
* Blocking file-system work runs in threads the event loop never waits for, so a call cut off
  at its deadline (a hung network mount) returns at once; see :func:`in_own_thread`.
* Every OS/SFTP failure becomes :class:`~payer_adapters.errors.TransientPayerError` (mapped here,
  once), with the operation and folder in the message, never file contents.
"""
from __future__ import annotations

import asyncio
import os
import threading
from pathlib import Path, PurePosixPath
from typing import Any, Callable, Protocol, TypeVar, runtime_checkable

from payer_adapters.errors import TransientPayerError

T = TypeVar("T")


@runtime_checkable
class FileDrop(Protocol):
    async def put(self, name: str, data: bytes) -> None:
        """Write ``name`` atomically (temporary name, then rename). Overwrites nothing: an
        existing ``name`` is left alone (the caller checks :meth:`exists` first)."""

    async def exists(self, name: str) -> bool: ...

    async def list_new(self, folder: str) -> list[str]:
        """Complete files in ``folder`` (not hidden), sorted by name, as ``folder/file``."""

    async def get(self, name: str) -> bytes: ...

    async def archive(self, name: str, folder: str = "archive") -> str:
        """Move ``name`` into ``folder`` (same file name) and return the new name. Idempotent:
        archiving a file that is already gone but present in ``folder`` succeeds."""


def check_name(name: str) -> PurePosixPath:
    """Refuse absolute names and ``..`` so a name can never leave the mailbox root."""
    p = PurePosixPath(name)
    if p.is_absolute() or ".." in p.parts or not p.parts:
        raise ValueError("mailbox names are relative paths inside the mailbox")
    return p


async def in_own_thread(fn: Callable[..., T], *args: Any) -> T:
    """``fn(*args)`` in a daemon thread of its own. Unlike ``asyncio.to_thread`` (the loop's
    default executor, which ``asyncio.run`` joins before it returns), nothing waits for the
    thread once the caller stops awaiting: a payer call cut off at its deadline returns even
    when the file system does not, and a hung thread never keeps the process from exiting. What
    the thread still does later is harmless: ``put`` is atomic and idempotent by name."""
    loop = asyncio.get_running_loop()
    future: asyncio.Future[T] = loop.create_future()

    def settle(ok: bool, value: Any) -> None:
        if future.done():  # cancelled: the caller gave up
            return
        if ok:
            future.set_result(value)
        else:
            future.set_exception(value)

    def target() -> None:
        try:
            outcome: tuple[bool, Any] = (True, fn(*args))
        except BaseException as exc:  # handed to the awaiting task
            outcome = (False, exc)
        try:
            loop.call_soon_threadsafe(settle, *outcome)
        except RuntimeError:
            pass  # the loop has closed: nobody is waiting any more

    threading.Thread(target=target, name="therabridge-mailbox", daemon=True).start()
    return await future


class DirectoryDrop:
    """A mailbox on the local file system (``x12-directory``; the sandbox reads the same tree)."""

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root)

    def _path(self, name: str) -> Path:
        return self.root.joinpath(*check_name(name).parts)

    async def _run(self, what: str, fn, *args):  # type: ignore[no-untyped-def]
        try:
            return await in_own_thread(fn, *args)
        except FileNotFoundError:
            raise
        except OSError as exc:
            raise TransientPayerError(f"mailbox {what} failed ({type(exc).__name__})") from None

    async def put(self, name: str, data: bytes) -> None:
        await self._run("put", self._put_sync, name, data)

    def _put_sync(self, name: str, data: bytes) -> None:
        path = self._path(name)
        path.parent.mkdir(parents=True, exist_ok=True)
        if path.exists():
            return
        tmp = path.with_name(f".{path.name}.part")
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)

    async def exists(self, name: str) -> bool:
        return await self._run("exists", self._path(name).is_file)

    async def list_new(self, folder: str) -> list[str]:
        return await self._run("list", self._list_sync, folder)

    def _list_sync(self, folder: str) -> list[str]:
        path = self._path(folder)
        if not path.is_dir():
            return []
        return sorted(f"{folder}/{p.name}" for p in path.iterdir() if p.is_file() and not p.name.startswith("."))

    async def get(self, name: str) -> bytes:
        try:
            return await self._run("get", self._path(name).read_bytes)
        except FileNotFoundError:
            raise TransientPayerError("mailbox get failed (file vanished)") from None

    async def archive(self, name: str, folder: str = "archive") -> str:
        return await self._run("archive", self._archive_sync, name, folder)

    def _archive_sync(self, name: str, folder: str) -> str:
        src = self._path(name)
        target = f"{folder}/{src.name}"
        dst = self._path(target)
        dst.parent.mkdir(parents=True, exist_ok=True)
        if not src.exists() and dst.exists():
            return target
        os.replace(src, dst)
        return target
