"""A real, throwaway OpenSSH server on 127.0.0.1 for the remote-profiling tests.

Each server gets its own temp dir: an ed25519 host key, a client key pair, an authorized_keys
file holding only that client key, a known_hosts file holding only that host key, and an ssh
client config (``Host board``) that points at the free port with ``StrictHostKeyChecking yes``.
Nothing in ~/.ssh or /etc/ssh is read or changed. Tests that need it skip when sshd is missing.
"""
from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

SSHD_CANDIDATES = ("/usr/sbin/sshd", "/usr/local/sbin/sshd")


def find_sshd() -> str | None:
    """Absolute path of sshd (it refuses to start from a relative one), or None."""
    for p in SSHD_CANDIDATES:
        if os.access(p, os.X_OK):
            return p
    return shutil.which("sshd")


def skip_reason() -> str | None:
    """Why the sshd tests cannot run here, or None when they can."""
    if find_sshd() is None:
        return "OpenSSH server not installed (apt-get install openssh-server)"
    if shutil.which("ssh") is None or shutil.which("ssh-keygen") is None:
        return "OpenSSH client (ssh, ssh-keygen) not installed"
    return None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _keygen(path: Path) -> None:
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "prune-lut-test", "-f", str(path)],
                   check=True, stdin=subprocess.DEVNULL)


def _children(pid: int) -> list[int]:
    """Direct children of ``pid`` (from /proc), so tests only ever touch processes they started."""
    out = []
    for d in Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        try:
            stat = (d / "stat").read_text()
        except OSError:
            continue
        # the comm field may hold spaces; the ppid is the 2nd field after the closing ')'
        if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
            out.append(int(d.name))
    return out


def board_python(root: Path, with_numpy: bool) -> str:
    """A board Python without onnxruntime (and, unless ``with_numpy``, without numpy): a bare venv
    of this interpreter, numpy linked in through a .pth file when asked. Returns its python."""
    import sys

    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(root)], check=True)
    if with_numpy:
        import numpy as np

        site = next(root.glob("lib/python3*/site-packages"))
        only = root / "numpy-only"
        only.mkdir()
        src = Path(np.__file__).parent
        for p in [src, *src.parent.glob("numpy.libs"), *src.parent.glob("numpy-*.dist-info")]:
            (only / p.name).symlink_to(p)
        (site / "numpy_only.pth").write_text(str(only) + "\n")
    return str(root / "bin" / "python")


class SSHServer:
    """sshd -D -f <own config> on 127.0.0.1:<free port>, with its client side ready to use.

    ``python`` is the board's interpreter: this test's own (the project's venv). The ssh login's
    default ``python3`` is the system one, which has no onnxruntime on a fresh machine.
    """

    def __init__(self, root: Path):
        import sys

        self.root = Path(root)
        self.python = sys.executable
        self.root.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.user = os.environ.get("USER") or __import__("pwd").getpwuid(os.getuid()).pw_name
        self.host_key = self.root / "host_ed25519"
        self.client_key = self.root / "client_ed25519"
        self.wrong_key = self.root / "wrong_ed25519"
        self.known_hosts = self.root / "known_hosts"
        self.ssh_config = self.root / "ssh_config"
        self.log = self.root / "sshd.log"
        self.proc: subprocess.Popen | None = None
        for k in (self.host_key, self.client_key, self.wrong_key):
            _keygen(k)
        (self.root / "authorized_keys").write_text(Path(f"{self.client_key}.pub").read_text())
        host_pub = Path(f"{self.host_key}.pub").read_text().split()
        self.known_hosts.write_text(f"[127.0.0.1]:{self.port} {host_pub[0]} {host_pub[1]}\n")
        (self.root / "sshd_config").write_text(f"""\
Port {self.port}
ListenAddress 127.0.0.1
HostKey {self.host_key}
PidFile {self.root / 'sshd.pid'}
AuthorizedKeysFile {self.root / 'authorized_keys'}
StrictModes no
PermitRootLogin prohibit-password
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
X11Forwarding no
AllowTcpForwarding no
PrintMotd no
MaxSessions 20
MaxStartups 50
LogLevel INFO
""")
        self.write_client_config()

    def write_client_config(self, extra: str = "") -> None:
        """``Host board`` (the right key) and ``Host board-wrongkey`` (a key sshd does not know)."""
        common = f"""\
    HostName 127.0.0.1
    Port {self.port}
    User {self.user}
    IdentitiesOnly yes
    UserKnownHostsFile {self.known_hosts}
    GlobalKnownHostsFile /dev/null
    StrictHostKeyChecking yes
    BatchMode yes
    LogLevel ERROR
"""
        self.ssh_config.write_text(
            f"Host board board2\n{common}    IdentityFile {self.client_key}\n{extra}\n"
            f"Host board-wrongkey\n{common}    IdentityFile {self.wrong_key}\n"
            # an alias for a port nobody listens on: the 'unreachable board' case
            f"Host board-down\n{common.replace(f'Port {self.port}', f'Port {free_port()}')}"
            f"    IdentityFile {self.client_key}\n")

    def start(self) -> "SSHServer":
        sshd = find_sshd()
        # sshd insists on its privilege-separation directory even when it runs unprivileged
        if os.getuid() == 0:
            os.makedirs("/run/sshd", mode=0o755, exist_ok=True)
        cmd = [sshd, "-D", "-e", "-f", str(self.root / "sshd_config")]
        self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=open(self.log, "ab"),
                                     stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"sshd exited with {self.proc.returncode}: {self.log.read_text()[-2000:]}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as s:
                    if s.recv(4).startswith(b"SSH-"):
                        return self
            except OSError:
                time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"sshd did not come up on port {self.port}: {self.log.read_text()[-2000:]}")

    def client_env(self) -> dict[str, str]:
        """Environment for a prune-lut CLI subprocess that reaches this board with the test's Python."""
        repo = str(Path(__file__).parents[1])
        return {**os.environ, "PRUNE_LUT_REMOTE_PYTHON": self.python,
                "PYTHONPATH": os.pathsep.join([repo, os.environ.get("PYTHONPATH", "")])}

    def ssh_args(self) -> list[str]:
        """Client options every test uses: only our config file, never ~/.ssh/config."""
        return ["-F", str(self.ssh_config)]

    def sessions(self) -> list[int]:
        """PIDs of the per-connection sshd processes (children of our listener)."""
        return _children(self.proc.pid) if self.proc else []

    def drop_connections(self) -> int:
        """Kill every live connection's sshd (SIGKILL): the board vanishes mid-build."""
        pids = self.sessions()
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        return len(pids)

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            for pid in self.sessions():
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
