"""A private OpenSSH server on 127.0.0.1 for tests: its own config, host key, port and client key.

The server runs in the foreground under `timeout -k`, so it dies by itself if a test run is abandoned; `stop()`
ends only the sshd this helper started (the pid from its own pid file). Nothing outside the given folder is
touched, except that a root sshd needs its privilege-separation folder (/run/sshd), created when missing.
"""

from __future__ import annotations

import getpass
import os
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

SSHD_CANDIDATES = ("/usr/sbin/sshd", "/usr/local/sbin/sshd")
PRIVSEP_DIR = Path("/run/sshd")


class SshdUnavailable(RuntimeError):
    """sshd or ssh-keygen is missing, or the server did not come up; tests skip on this."""


def find_sshd() -> str | None:
    return next((p for p in SSHD_CANDIDATES if os.access(p, os.X_OK)), shutil.which("sshd"))


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _keygen(path: Path) -> None:
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "cxrbench-test", "-f", str(path)],
                   check=True, capture_output=True, timeout=30)


def _answers_ssh(port: int) -> bool:
    """True once the port greets with an SSH banner (a bound port alone is not enough)."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1) as sock:
            return sock.recv(64).startswith(b"SSH-")
    except OSError:
        return False


@dataclass
class SshServer:
    root: Path
    port: int
    user: str
    client_key: Path
    process: subprocess.Popen

    @property
    def pid_file(self) -> Path:
        return self.root / "sshd.pid"

    @property
    def log_file(self) -> Path:
        return self.root / "sshd.log"

    def url(self, remote_dir: Path) -> str:
        return f"ssh://{self.user}@127.0.0.1:{self.port}{remote_dir.resolve().as_posix()}"

    def stop(self, grace_s: float = 10) -> None:
        """End the sshd this helper started, by the pid it wrote, then reap its `timeout` wrapper."""
        if self.pid_file.is_file():
            try:
                os.kill(int(self.pid_file.read_text().split()[0]), signal.SIGTERM)
            except (ProcessLookupError, ValueError):
                pass
        try:
            self.process.wait(timeout=grace_s)
        except subprocess.TimeoutExpired:
            self.process.kill()  # the `timeout` wrapper we spawned; -k then kills sshd too
            self.process.wait(timeout=grace_s)


def start_sshd(root: Path, lifetime_s: int = 900, startup_s: float = 20) -> SshServer:
    """Start sshd on a free 127.0.0.1 port, accepting only a key generated here for the current user.

    `lifetime_s` bounds the server's life (`timeout -k 5 lifetime_s sshd -D`). Raises SshdUnavailable when
    the binaries are missing or the server does not answer within `startup_s`.
    """
    sshd = find_sshd()
    if sshd is None or shutil.which("ssh-keygen") is None or shutil.which("timeout") is None:
        raise SshdUnavailable("sshd, ssh-keygen or timeout not installed (Debian: apt-get install openssh-server)")
    if os.geteuid() == 0 and not PRIVSEP_DIR.is_dir():
        PRIVSEP_DIR.mkdir(mode=0o755, parents=True)
    root.mkdir(parents=True, exist_ok=True)
    host_key, client_key = root / "host_ed25519", root / "client_ed25519"
    _keygen(host_key)
    _keygen(client_key)
    authorized = root / "authorized_keys"
    authorized.write_text(client_key.with_suffix(".pub").read_text())
    authorized.chmod(0o600)
    port = _free_port()
    config = root / "sshd_config"
    config.write_text("\n".join([
        f"Port {port}",
        "ListenAddress 127.0.0.1",
        f"HostKey {host_key}",
        f"PidFile {root / 'sshd.pid'}",
        f"AuthorizedKeysFile {authorized}",
        "AuthenticationMethods publickey",
        "PubkeyAuthentication yes",
        "PasswordAuthentication no",
        "KbdInteractiveAuthentication no",
        "PermitRootLogin prohibit-password",
        f"AllowUsers {getpass.getuser()}",
        "UsePAM no",
        # tmp folders are world-writable parents; the key files themselves are private
        "StrictModes no",
        "Subsystem sftp internal-sftp",
        "LogLevel VERBOSE",
        "",
    ]))
    config.chmod(0o600)
    test = subprocess.run([sshd, "-t", "-f", str(config)], capture_output=True, text=True, timeout=30)
    if test.returncode != 0:
        raise SshdUnavailable(f"sshd rejected its config: {test.stderr.strip()}")
    log = open(root / "sshd.log", "wb")
    process = subprocess.Popen(["timeout", "-k", "5", str(lifetime_s), sshd, "-D", "-e", "-f", str(config)],
                               stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT)
    log.close()
    server = SshServer(root, port, getpass.getuser(), client_key, process)
    deadline = time.monotonic() + startup_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SshdUnavailable(f"sshd exited with {process.returncode}: {server.log_file.read_text()[-2000:]}")
        if server.pid_file.is_file() and _answers_ssh(port):
            return server
        time.sleep(0.1)
    server.stop()
    raise SshdUnavailable(f"sshd did not answer on 127.0.0.1:{port} within {startup_s} s")
