"""How prune-lut reaches a board: the ssh command, its options, and the bootstrap that runs the worker.

One ``ssh`` process per board carries everything: its remote command is a fixed, quoted
``python3 -c BOOTSTRAP SHA256``; the bootstrap reads the worker's source (``latency/worker.py``,
sent over stdin), checks it against the SHA-256 given on the command line, and starts it as
``python3 -c SOURCE`` in a child process that inherits stdin/stdout. It reports the child's pid
when it starts and its exit status when it ends, so a crashed worker is told apart from a dropped
connection. No file is written on the board.

Security: the destination and every remote argument are ``shlex.quote``-d (a destination that
looks like an ssh option is refused); the worker runs only its own, hash-checked source; host-key
checking is left to ssh (on by default) unless the user passes the explicit ``host_key_check=False``;
ssh runs with ``BatchMode=yes`` so it never waits for a password; ``~/.ssh/config`` (or ``-F FILE``)
is honoured.
"""
from __future__ import annotations

import hashlib
import logging
import os
import shlex
from dataclasses import dataclass
from pathlib import Path

from ...errors import UserError

log = logging.getLogger(__name__)

WORKER_PATH = Path(__file__).parents[1] / "worker.py"

# Runs on the board under its own Python. Kept to the stdlib and to Python 3.6 syntax (boards
# run old distributions). Reads "<len>\n<source>" from fd 0 byte-exactly (no buffering, so the
# child sees the protocol lines that follow), checks the hash, runs the source as a child.
BOOTSTRAP = r"""
import hashlib, json, os, subprocess, sys
def say(**kw):
    sys.stdout.write(json.dumps(dict(bootstrap=True, **kw)) + "\n"); sys.stdout.flush()
def read(n):
    b = b""
    while len(b) < n:
        c = os.read(0, n - len(b))
        if not c:
            sys.exit(3)
        b += c
    return b
h = b""
while not h.endswith(b"\n"):
    h += read(1)
src = read(int(h))
if hashlib.sha256(src).hexdigest() != sys.argv[1]:
    say(event="error", error="worker source damaged in transit (SHA-256 mismatch)")
    sys.exit(4)
p = subprocess.Popen([sys.executable, "-c", src.decode("utf-8")])
say(event="started", pid=p.pid, python=sys.executable, version=sys.version.split()[0])
rc = p.wait()
say(event="exit", returncode=rc)
"""

MAX_SOURCE = 131071  # Linux's limit on one argv string (MAX_ARG_STRLEN - 1): the child runs `python -c SOURCE`


class RemoteError(UserError):
    """A board could not be used or went away. ``kind`` says why (for callers and tests):
    unreachable, auth, hostkey, python, runtime, crash, dropped, protocol."""

    def __init__(self, host: str, kind: str, message: str):
        super().__init__(message)
        self.host, self.kind = host, kind


@dataclass
class SSHOptions:
    """How to reach the boards; everything not set here comes from ssh's own config files."""

    config: str | None = None          # ssh -F FILE (default: ~/.ssh/config)
    python: str = "python3"            # the board's Python (a command, split shell-style)
    host_key_check: bool = True        # False = StrictHostKeyChecking=no + throwaway known_hosts
    connect_timeout: int = 15          # seconds for the TCP connection and handshake
    options: tuple[str, ...] = ()      # extra "-o Key=Value" options
    reply_timeout: float = 3600.0      # one group may take this long (TensorRT builds two engines per net)
    window: int = 2                    # requests in flight per board: the next model is on the
                                       # board before the current one finishes

    @classmethod
    def from_env(cls, **over) -> "SSHOptions":
        """Defaults from ``$PRUNE_LUT_SSH_CONFIG`` (an ssh -F file), ``$PRUNE_LUT_REMOTE_PYTHON`` and
        ``$PRUNE_LUT_SSH_NO_HOST_KEY_CHECK=1``; the CLI's ``--ssh-config``, ``--remote-python`` and
        ``--no-host-key-check`` set these (see :func:`use_ssh_options`)."""
        env = {"config": os.environ.get("PRUNE_LUT_SSH_CONFIG") or None,
               "python": os.environ.get("PRUNE_LUT_REMOTE_PYTHON") or "python3",
               "host_key_check": os.environ.get("PRUNE_LUT_SSH_NO_HOST_KEY_CHECK", "") not in ("1", "yes", "true")}
        return cls(**{**env, **{k: v for k, v in over.items() if v is not None}})

    def ssh_command(self, host: str) -> list[str]:
        """The local argv: ssh options, then ``--``, the destination and the quoted remote command."""
        check_host(host)
        cmd = ["ssh", "-T", "-x", "-a", "-o", "BatchMode=yes", "-o", f"ConnectTimeout={int(self.connect_timeout)}",
               "-o", "ServerAliveInterval=15", "-o", "ServerAliveCountMax=4"]
        if self.config:
            cmd += ["-F", str(self.config)]
        if not self.host_key_check:
            cmd += ["-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null"]
        for o in self.options:
            cmd += ["-o", o]
        return cmd + ["--", host, remote_command(self.python, worker_sha256())]


def use_ssh_options(ssh_config: str | None = None, remote_python: str | None = None,
                    no_host_key_check: bool = False) -> None:
    """Make these the defaults of every :class:`SSHOptions` built in this process (the CLI's
    flags; they reach meters however deep the command builds them)."""
    if ssh_config:
        if not Path(ssh_config).expanduser().is_file():
            raise UserError(f"--ssh-config {ssh_config}: no such file; give an ssh config file (see man ssh_config)")
        os.environ["PRUNE_LUT_SSH_CONFIG"] = str(Path(ssh_config).expanduser().resolve())
    if remote_python:
        remote_command(remote_python, "0")  # refuse an unparsable command now, in one line
        os.environ["PRUNE_LUT_REMOTE_PYTHON"] = remote_python
    if no_host_key_check:
        log.warning("ssh host-key checking is off (--no-host-key-check): the board's identity is not verified")
        os.environ["PRUNE_LUT_SSH_NO_HOST_KEY_CHECK"] = "1"


def check_host(host: str) -> str:
    """Refuse destinations ssh would read as options (``-oProxyCommand=...``) or that hold spaces."""
    if not host or host.startswith("-") or any(c.isspace() or c in "\0" for c in host):
        raise UserError(f"bad ssh destination {host!r}: give [user@]host or a Host alias from ~/.ssh/config")
    return host


def remote_command(python: str, sha: str) -> str:
    """The one string the board's login shell sees: every word quoted, the bootstrap as data."""
    try:
        words = shlex.split(python)
    except ValueError as e:
        raise UserError(f"bad remote python command {python!r} ({e}); give e.g. python3 or /opt/venv/bin/python") from None
    if not words:
        raise UserError("the remote python command is empty; give e.g. python3")
    return " ".join(shlex.quote(w) for w in [*words, "-c", BOOTSTRAP, sha])


def worker_source() -> bytes:
    return WORKER_PATH.read_bytes()


def worker_sha256() -> str:
    return hashlib.sha256(worker_source()).hexdigest()
