"""OpenSSH's sshd with its own config, keys and SFTP root, on 127.0.0.1.

Everything lives in a fresh temp dir: an ed25519 host key, a throwaway ed25519 client key (the
only authorised key; no passwords), the config, a known_hosts file for the client, and the
``root`` directory that tests should work under. SFTP sessions start in that directory
(``internal-sftp -d``); it is not a chroot, so absolute paths elsewhere are reachable too.
sshd comes from Debian's openssh-server package: run ``.ci/install-servers``.
"""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from tests.servers._process import (
    LOOPBACK,
    ServerProcess,
    free_port,
    make_temp_dir,
    start_server,
)

SSHD = Path("/usr/sbin/sshd")
# sshd refuses to start without its privilege separation directory.
PRIVSEP_DIR = Path("/run/sshd")


@dataclass(frozen=True, slots=True)
class SSHDServer:
    """A running sshd serving SFTP; ``stop()`` stops it and deletes its temp dir."""

    host: str
    port: int
    username: str
    """The user running the tests (root on CI machines): it logs in with the client key."""
    client_key_path: Path
    """Private ed25519 key, no passphrase."""
    known_hosts_path: Path
    """known_hosts with the host key for ``[127.0.0.1]:PORT``."""
    host_key: str
    """The host public key line, ``ssh-ed25519 AAAA...``."""
    root_dir: Path
    """A fresh, empty directory to work under; SFTP sessions start here."""
    _process: ServerProcess = field(repr=False, compare=False)

    @property
    def pid(self) -> int:
        """The sshd listener's process id."""
        return self._process.pid

    @property
    def authorized_keys_path(self) -> Path:
        """The server's authorized_keys file (it holds the client key's public line)."""
        return self.client_key_path.parent / "authorized_keys"

    def authorize_key(self, public_key_line: str) -> None:
        """Let one more key log in (sshd reads authorized_keys at each login)."""
        with self.authorized_keys_path.open("a") as f:
            f.write(public_key_line.strip() + "\n")

    def stop(self) -> None:
        """Stop sshd by its PID and delete its temp dir (keys, config, root dir)."""
        self._process.stop()


def _run(argv: list[str], what: str) -> subprocess.CompletedProcess[str]:
    """Run a helper program, raising a RuntimeError with its output if it fails."""
    try:
        result = subprocess.run(argv, capture_output=True, text=True, timeout=60, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise RuntimeError(f"sshd: {what} failed: {exc}") from exc
    if result.returncode != 0:
        raise RuntimeError(
            f"sshd: {what} failed (exit {result.returncode}): {' '.join(argv)}\n"
            f"{(result.stdout + result.stderr).strip()}"
        )
    return result


def _keygen(path: Path, comment: str) -> None:
    """Write an ed25519 key pair without passphrase to ``path`` and ``path.pub``."""
    _run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", comment, "-f", str(path)],
        f"ssh-keygen for {path.name}",
    )


def start_sshd(*, timeout: float = 30.0) -> SSHDServer:
    """Start sshd on a free loopback port with fresh keys and wait until it answers.

    Raises:
        RuntimeError: sshd or ssh-keygen is missing, the config is rejected, or sshd did not
            start in time (the message holds the tail of its log).
    """
    if not SSHD.exists():
        raise RuntimeError(
            f"sshd: {SSHD} is missing; install OpenSSH's server with .ci/install-servers"
        )
    for tool in ("ssh-keygen", "ssh-keyscan"):
        if shutil.which(tool) is None:
            raise RuntimeError(f"sshd: {tool} is missing; run .ci/install-servers")
    try:
        PRIVSEP_DIR.mkdir(mode=0o755, parents=True, exist_ok=True)
    except OSError as exc:
        raise RuntimeError(f"sshd: cannot create {PRIVSEP_DIR} (needs root): {exc}") from exc

    port = free_port()
    temp_dir = make_temp_dir("sshd")
    host_key = temp_dir / "host_ed25519"
    client_key = temp_dir / "client_ed25519"
    _keygen(host_key, "storager-test-host")
    _keygen(client_key, "storager-test-client")
    authorized_keys = temp_dir / "authorized_keys"
    shutil.copyfile(client_key.with_suffix(".pub"), authorized_keys)
    host_key_line = " ".join(host_key.with_suffix(".pub").read_text().split()[:2])
    known_hosts = temp_dir / "known_hosts"
    known_hosts.write_text(f"[{LOOPBACK}]:{port} {host_key_line}\n")
    root_dir = temp_dir / "root"
    root_dir.mkdir()

    config = temp_dir / "sshd_config"
    config.write_text(
        "\n".join(
            [
                f"Port {port}",
                f"ListenAddress {LOOPBACK}",
                f"HostKey {host_key}",
                f"PidFile {temp_dir / 'sshd.pid'}",
                f"AuthorizedKeysFile {authorized_keys}",
                "PubkeyAuthentication yes",
                "PasswordAuthentication no",
                "KbdInteractiveAuthentication no",
                "PermitRootLogin prohibit-password",
                "UsePAM no",
                "StrictModes no",
                "X11Forwarding no",
                "AllowTcpForwarding no",
                "PrintMotd no",
                # Room for tests that open many connections at once.
                "MaxStartups 100",
                "MaxSessions 100",
                f"Subsystem sftp internal-sftp -d {root_dir}",
                "",
            ]
        )
    )
    _run([str(SSHD), "-t", "-f", str(config)], "sshd -t (config check)")

    def keyscan_succeeds() -> bool:
        result = subprocess.run(
            ["ssh-keyscan", "-T", "2", "-t", "ed25519", "-p", str(port), LOOPBACK],
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        )
        return result.returncode == 0 and "ssh-ed25519" in result.stdout

    process = start_server(
        "sshd",
        [str(SSHD), "-f", str(config), "-D", "-e"],
        keyscan_succeeds,
        temp_dir=temp_dir,
        timeout=timeout,
        cwd=temp_dir,
        env={k: v for k, v in os.environ.items() if not k.startswith("SSH_")},
    )
    return SSHDServer(
        host=LOOPBACK,
        port=port,
        username=pwd.getpwuid(os.getuid()).pw_name,
        client_key_path=client_key,
        known_hosts_path=known_hosts,
        host_key=host_key_line,
        root_dir=root_dir,
        _process=process,
    )
