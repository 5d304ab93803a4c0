"""Run Debian's OpenSSH ``sshd`` on loopback as an SFTP-only mailbox server (tests, CLI).

The server runs as the current user with a throwaway host key and one authorized user key in
a state folder; ``ForceCommand internal-sftp -d <mailbox>`` allows SFTP only and starts in the
mailbox (not a chroot: that needs root-owned parents). Listens on 127.0.0.1 only.
"""
from __future__ import annotations

import getpass
import os
import shutil
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

SSHD = "/usr/sbin/sshd"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class SshdServer:
    process: subprocess.Popen[bytes]
    port: int
    username: str
    host_public_key: str  # "ssh-ed25519 AAAA…" for pinning
    client_private_key: str  # PEM/OpenSSH text for the adapter settings
    mailbox: Path

    def adapter_settings(self, **extra: Any) -> dict[str, Any]:
        """``x12-sftp`` settings that reach this server: its host key pinned, the user key as text
        (a credential: the payer directory stores it encrypted), the mailbox as root; ``extra``
        overrides or adds keys (tests point them at the wrong host key or port)."""
        return {"host": "127.0.0.1", "port": self.port, "username": self.username, "host_key": self.host_public_key,
                "private_key": self.client_private_key, "root": str(self.mailbox), **extra}

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def _keygen(path: Path) -> None:
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(path)], check=True,
                   stdout=subprocess.DEVNULL)


def start_sshd(state: Path, mailbox: Path, *, port: int | None = None, timeout: float = 10.0) -> SshdServer:
    """Start sshd for ``mailbox``; keys and config live in ``state``. Raises RuntimeError when
    sshd is missing or does not come up."""
    if not os.path.exists(SSHD) or shutil.which("ssh-keygen") is None:
        raise RuntimeError("OpenSSH server not installed (Debian package openssh-server)")
    state.mkdir(parents=True, exist_ok=True)
    mailbox.mkdir(parents=True, exist_ok=True)
    host_key, user_key = state / "host_ed25519", state / "user_ed25519"
    for k in (host_key, user_key):
        if not k.exists():
            _keygen(k)
    auth = state / "authorized_keys"
    auth.write_text(Path(f"{user_key}.pub").read_text())
    os.chmod(auth, 0o600)
    if os.geteuid() == 0:
        Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)
    port = port or free_port()
    user = getpass.getuser()
    config = state / "sshd_config"
    config.write_text("\n".join([
        f"Port {port}", "ListenAddress 127.0.0.1", f"HostKey {host_key}", f"PidFile {state / 'sshd.pid'}",
        f"AuthorizedKeysFile {auth}", "PasswordAuthentication no", "KbdInteractiveAuthentication no",
        "PubkeyAuthentication yes", "PermitRootLogin prohibit-password", "UsePAM no", "StrictModes no",
        f"AllowUsers {user}", "Subsystem sftp internal-sftp", f"ForceCommand internal-sftp -d {mailbox}",
        "AllowTcpForwarding no", "X11Forwarding no", "PermitTTY no", "LogLevel ERROR", "",
    ]))
    proc = subprocess.Popen([SSHD, "-D", "-e", "-f", str(config)], stdout=subprocess.DEVNULL,
                            stderr=open(state / "sshd.log", "wb"))
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"sshd exited: {(state / 'sshd.log').read_text()[-500:]}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                break
        except OSError:
            time.sleep(0.05)
    else:
        proc.terminate()
        raise RuntimeError("sshd did not start listening")
    host_public = " ".join(Path(f"{host_key}.pub").read_text().split()[:2])
    return SshdServer(proc, port, user, host_public, user_key.read_text(), mailbox)
