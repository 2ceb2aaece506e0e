"""A real OpenSSH server on 127.0.0.1, started by the tests: the remote GPU host of the SSH target.

It runs as this user on a free port with a host key and a client key made for the test, and an
ssh_config file names it ``gpu-test`` (the product reads it through LEGALFT_SSH_CONFIG, as a user's
own ssh_config). ``stop()`` takes the whole server down, open sessions included (a host that
vanished), and ``start()`` brings it back on the same port.
"""

from __future__ import annotations

import getpass
import os
import shutil
import socket
import subprocess
import time
from pathlib import Path

import psutil

ALIAS = "gpu-test"


def sshd_path() -> str | None:
    return shutil.which("sshd") or next((p for p in ("/usr/sbin/sshd",) if Path(p).exists()), None)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Sshd:
    def __init__(self, folder: Path):
        self.folder = folder
        folder.mkdir(parents=True, exist_ok=True)
        self.port = _free_port()
        self.host_key = folder / "host_ed25519"
        self.client_key = folder / "client_ed25519"
        for key in (self.host_key, self.client_key):
            subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True)
        (folder / "authorized_keys").write_text((folder / "client_ed25519.pub").read_text())
        os.chmod(folder / "authorized_keys", 0o600)
        self.config = folder / "sshd_config"
        self.config.write_text("\n".join([
            f"Port {self.port}", "ListenAddress 127.0.0.1", f"HostKey {self.host_key}",
            f"AuthorizedKeysFile {folder / 'authorized_keys'}", f"PidFile {folder / 'sshd.pid'}",
            "PasswordAuthentication no", "KbdInteractiveAuthentication no", "UsePAM no", "StrictModes no",
            "PermitRootLogin prohibit-password", "MaxSessions 50", "MaxStartups 50:30:100",
            "Subsystem sftp internal-sftp", "",
        ]))
        self.client_config = folder / "ssh_config"
        self.client_config.write_text("\n".join([
            f"Host {ALIAS}", "  HostName 127.0.0.1", f"  Port {self.port}", f"  User {getpass.getuser()}",
            f"  IdentityFile {self.client_key}", "  IdentitiesOnly yes", "  StrictHostKeyChecking no",
            "  UserKnownHostsFile /dev/null", "  LogLevel ERROR", "",
        ]))
        self.process: subprocess.Popen | None = None
        self.log = folder / "sshd.log"

    def start(self, timeout: float = 15) -> None:
        Path("/run/sshd").mkdir(exist_ok=True)  # privilege separation directory
        self.process = subprocess.Popen([sshd_path(), "-D", "-e", "-f", str(self.config)],
                                        stdout=open(self.log, "ab"), stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"sshd exited: {self.log.read_text()[-2000:]}")
            with socket.socket() as sock:
                if sock.connect_ex(("127.0.0.1", self.port)) == 0:
                    return
            time.sleep(0.1)
        raise TimeoutError(f"sshd did not listen within {timeout} s")

    def stop(self) -> None:
        """The listener and every session it forked: as if the host went away."""
        if not self.process or self.process.poll() is not None:
            return
        listener = psutil.Process(self.process.pid)
        members = [listener, *listener.children(recursive=True)]
        sessions = [p for p in members if p.pid != listener.pid and "sshd" in " ".join(p.cmdline()[:1])]
        for member in [listener, *sessions]:
            try:
                member.kill()
            except psutil.NoSuchProcess:
                pass
        psutil.wait_procs([listener, *sessions], timeout=10)
        self.process.wait(10)

    def env(self) -> dict[str, str]:
        return {"LEGALFT_SSH_CONFIG": str(self.client_config)}
