"""Measure on a remote board over SSH, with nothing installed there.

One ``ssh`` process per board carries everything: its remote command is a fixed, quoted
``python3 -c BOOTSTRAP SHA256``; the bootstrap reads the worker's source (``worker.py``, sent
over stdin), checks it against the SHA-256 given on the command line, and starts it as
``python3 -c SOURCE`` in a child process that inherits stdin/stdout; from then on the same
stdin/stdout carry the worker's JSON-lines protocol (see ``worker.py``). The bootstrap reports
the child's pid when it starts and its exit status when it ends, so a crashed worker (signal,
import error) is told apart from a dropped connection. The board needs Python 3 with numpy and
the backend's runtime; no file is written there.

Security: the destination and every remote argument are ``shlex.quote``-d (and a destination
that looks like an ssh option is refused); the worker runs only its own, hash-checked source and
treats every request as data; host-key checking is left to ssh (on by default) unless the user
passes the explicit ``host_key_check=False``. ssh runs with ``BatchMode=yes`` so it never waits
for a password on a terminal nobody watches; ``~/.ssh/config`` (or ``-F FILE``) is honoured.

Several boards: :meth:`RemoteMeter.stream` hands batches of models to one worker per board from
a shared queue and yields each batch's results as they arrive, tagged with the board that
measured them; a board that fails hands its unanswered batches back to the others.
"""
from __future__ import annotations

import base64
import hashlib
import itertools
import json
import logging
import os
import queue
import shlex
import signal
import subprocess
import threading
import weakref
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Iterator

from ..errors import UserError

log = logging.getLogger(__name__)

WORKER_PATH = Path(__file__).with_name("worker.py")

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
RUNTIME_FIELD = {"onnxruntime": "onnxruntime", "torch": "torch", "tensorrt": "tensorrt"}


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


def _signal_name(rc: int) -> str:
    if rc < 0:
        try:
            return f"killed by {signal.Signals(-rc).name}"
        except ValueError:
            return f"killed by signal {-rc}"
    return f"exit status {rc}"


class RemoteWorker:
    """One board: an ssh process running the worker, spoken to in JSON lines.

    Use as a context manager; :meth:`start` returns the worker's hello info (hardware and runtime
    versions, plus ``ssh_host`` and the board's ``python``).
    """

    def __init__(self, host: str, ssh: SSHOptions | None = None):
        self.host = check_host(host)
        self.ssh = ssh or SSHOptions.from_env()
        self.proc: subprocess.Popen | None = None
        self.info: dict | None = None
        self.received = 0
        self._lines: queue.Queue = queue.Queue()
        self._stderr: deque[str] = deque(maxlen=60)
        self._exit: dict | None = None
        self._threads: list[threading.Thread] = []
        self._ids = itertools.count()

    # ---- life cycle -----------------------------------------------------------------------------
    def start(self) -> dict:
        src = worker_source()
        if len(src) > MAX_SOURCE:
            raise RuntimeError(f"{WORKER_PATH} has {len(src)} bytes; the bootstrap passes it as one argument "
                               f"(Linux allows {MAX_SOURCE + 1}): keep the worker smaller")
        cmd = self.ssh.ssh_command(self.host)
        log.info("starting worker on %s", self.host)
        log.debug("ssh argv: %s", cmd[:-1] + ["<remote command>"])
        try:
            self.proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                         stderr=subprocess.PIPE, start_new_session=True)
        except FileNotFoundError:
            raise UserError("ssh not found: install the OpenSSH client (e.g. apt-get install openssh-client)") from None
        for target, stream in ((self._read_stdout, self.proc.stdout), (self._read_stderr, self.proc.stderr)):
            t = threading.Thread(target=target, args=(stream,), daemon=True, name=f"ssh-{self.host}")
            t.start()
            self._threads.append(t)
        try:
            self._write(b"%d\n" % len(src) + src)
            started = self._next(self.ssh.connect_timeout + 60, phase="connect")
            if started.get("event") != "started":
                raise RemoteError(self.host, "protocol", f"{self.host}: bootstrap said {started!r}")
            self.info = self._call({"op": "hello"}, phase="hello")["info"]
        except BaseException:
            self.close(kill=True)
            raise
        self.info.update(ssh_host=self.host, board_python=started.get("python"), worker_pid=started.get("pid"))
        return self.info

    def close(self, kill: bool = False) -> None:
        """Say bye and wait briefly; ``kill`` ends the ssh process at once."""
        p = self.proc
        if p is None:
            return
        if not kill and p.poll() is None:
            try:
                self._write(json.dumps({"op": "bye", "id": "bye"}).encode() + b"\n")
                p.stdin.close()
                p.wait(10)
            except (OSError, subprocess.TimeoutExpired, RemoteError):
                pass
        if p.poll() is None:
            p.kill()
            p.wait()
        for s in (p.stdin, p.stdout, p.stderr):
            try:
                s.close()
            except OSError:
                pass
        self.proc = None

    def __enter__(self) -> "RemoteWorker":
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.close(kill=exc[0] is not None)

    # ---- requests -------------------------------------------------------------------------------
    def check_backend(self, backend: str) -> None:
        """Refuse, in one line, a board whose Python lacks the backend's runtime (before measuring)."""
        fld = RUNTIME_FIELD.get(backend)
        if fld and self.info is not None and not self.info.get(fld):
            raise RemoteError(self.host, "runtime",
                              f"{self.host}: the board's Python ({self.info.get('board_python')}) has no {fld}; "
                              f"install it there (e.g. pip install {fld}) or point --remote-python at a Python "
                              f"that has it")

    def request(self, req: dict) -> dict:
        """Send one request and wait for its reply."""
        return self._call(req)

    def stream(self, requests: Iterable[dict]) -> Iterator[tuple[dict, dict]]:
        """Yield (request, reply) in order, keeping up to ``window`` requests on the board at once.

        Each request gets an ``id`` if it has none. Replies are yielded the moment they arrive.
        """
        pending: deque[dict] = deque()
        it = iter(requests)
        exhausted = False
        while True:
            while not exhausted and len(pending) < max(1, self.ssh.window):
                try:
                    req = next(it)
                except StopIteration:
                    exhausted = True
                    break
                req = dict(req)
                req.setdefault("id", f"r{next(self._ids)}")
                self._send(req)
                pending.append(req)
            if not pending:
                return
            req = pending[0]
            reply = self._reply_for(req["id"])
            pending.popleft()
            yield req, reply

    # ---- internals ------------------------------------------------------------------------------
    def _call(self, req: dict, phase: str = "running") -> dict:
        req = dict(req)
        req.setdefault("id", f"r{next(self._ids)}")
        self._send(req, phase)
        return self._reply_for(req["id"], phase)

    def _send(self, req: dict, phase: str = "running") -> None:
        self._write(json.dumps(req, separators=(",", ":")).encode() + b"\n", phase)

    def _write(self, data: bytes, phase: str = "running") -> None:
        try:
            self.proc.stdin.write(data)
            self.proc.stdin.flush()
        except (BrokenPipeError, OSError, ValueError):
            raise self._failure(phase) from None

    def _reply_for(self, rid, phase: str = "running") -> dict:
        while True:
            msg = self._next(self.ssh.reply_timeout, phase)
            if msg.get("bootstrap"):
                continue
            if msg.get("id") == rid:
                self.received += 1
                return msg
            log.warning("%s: reply for unexpected id %r ignored", self.host, msg.get("id"))

    def _next(self, timeout: float, phase: str) -> dict:
        try:
            line = self._lines.get(timeout=timeout)
        except queue.Empty:
            raise RemoteError(self.host, "dropped", f"{self.host}: no reply from the worker for {timeout:.0f} s; "
                              "the board or the connection hangs") from None
        if line is None:
            raise self._failure(phase)
        try:
            msg = json.loads(line)
            if not isinstance(msg, dict):
                raise ValueError
        except ValueError:
            # something on the board wrote to stdout (a login banner, a shell rc file): not ours
            log.warning("%s: ignoring non-protocol output: %s", self.host, line[:200].decode("utf-8", "replace"))
            return self._next(timeout, phase)
        if msg.get("bootstrap") and msg.get("event") in ("exit", "error"):
            self._exit = msg
            if msg.get("event") == "error":
                raise RemoteError(self.host, "protocol", f"{self.host}: {msg.get('error')}")
            raise self._failure(phase)
        return msg

    def _read_stdout(self, stream) -> None:
        for line in iter(stream.readline, b""):
            if line.strip():
                self._lines.put(line)
        self._lines.put(None)

    def _read_stderr(self, stream) -> None:
        for raw in iter(stream.readline, b""):
            line = raw.decode("utf-8", "replace").rstrip()
            if line:
                self._stderr.append(line)
                log.debug("%s stderr: %s", self.host, line)

    def _failure(self, phase: str) -> RemoteError:
        """Turn how the ssh process ended into one line naming the cause and the fix."""
        p = self.proc
        rc = None
        if p is not None:
            try:
                rc = p.wait(5)
            except subprocess.TimeoutExpired:
                p.kill()
                rc = p.wait()
        for t in self._threads:
            t.join(2)
        # the bootstrap's exit report may still be queued behind the end-of-stream marker
        while self._exit is None:
            try:
                line = self._lines.get_nowait()
            except queue.Empty:
                break
            if line is None:
                continue
            try:
                msg = json.loads(line)
            except ValueError:
                continue
            if isinstance(msg, dict) and msg.get("bootstrap") and msg.get("event") == "exit":
                self._exit = msg
        err = list(self._stderr)
        text = "\n".join(err)
        last = next((l for l in reversed(err) if l.strip()), "")
        h = self.host
        kept = f" after {self.received} replies" if phase == "running" else ""
        if self._exit is not None:
            how = _signal_name(int(self._exit.get("returncode", 0)))
            if "No module named" in text and phase != "running":
                mod = text.split("No module named", 1)[1].split()[0].strip("'\"")
                return RemoteError(h, "runtime", f"{h}: the board's Python lacks the module {mod!r} that the worker "
                                   f"needs (stdlib, numpy and the backend's runtime); install it there or point "
                                   f"--remote-python at a Python that has it")
            tail = f": {last}" if last else ""
            return RemoteError(h, "crash", f"{h}: the worker crashed ({how}){kept}{tail}")
        if "Permission denied" in text or "Too many authentication failures" in text:
            return RemoteError(h, "auth", f"{h} refused authentication ({last}); put your public key on the board "
                               f"(ssh-copy-id {h}) or set User/IdentityFile for it in ~/.ssh/config")
        if "IDENTIFICATION HAS CHANGED" in text:
            return RemoteError(h, "hostkey", f"{h}: the board's ssh host key CHANGED since it was recorded (a "
                               f"reinstalled board, or someone in between); check it, then `ssh-keygen -R HOST` "
                               f"and connect once with `ssh {h}` (--no-host-key-check skips the check: insecure)")
        if "Host key verification failed" in text or ("host key for" in text.lower() and "not known" in text.lower()):
            return RemoteError(h, "hostkey", f"{h}: host key not known ({last}); run `ssh {h}` once to check and "
                               f"accept it, or pass --no-host-key-check (insecure)")
        if any(s in text for s in ("Could not resolve hostname", "Connection refused", "Connection timed out",
                                   "No route to host", "Network is unreachable", "Operation timed out",
                                   "kex_exchange_identification", "Name or service not known")):
            return RemoteError(h, "unreachable", f"cannot reach {h} ({last}); check that the board is on, sshd runs "
                               f"there and the address/port (--host, the device profile's host, ~/.ssh/config)")
        if rc == 127 or "command not found" in text or ("No such file or directory" in text and phase == "connect"):
            return RemoteError(h, "python", f"{h}: no Python at {self.ssh.python!r} on the board ({last}); install "
                               f"python3 with numpy there or pass --remote-python PATH")
        if phase == "connect" and rc not in (None, 255):
            return RemoteError(h, "python", f"{h}: the board's Python could not start the worker "
                               f"({_signal_name(rc)}{': ' + last if last else ''}); it needs Python >= 3.6")
        return RemoteError(h, "dropped", f"connection to {h} dropped{kept} "
                           f"(ssh {_signal_name(rc) if rc is not None else 'ended'}{': ' + last if last else ''})")


@dataclass
class Boards:
    """One or more identical boards and how to reach them: what ``--host`` hands to ``get_meter``.

    The latency API passes its ``host`` argument through untouched, so a plain string (one
    board, ssh options from the environment) works wherever a :class:`Boards` does.
    """

    hosts: tuple[str, ...]
    ssh: SSHOptions = field(default_factory=lambda: SSHOptions.from_env())

    def __post_init__(self) -> None:
        self.hosts = tuple(check_host(h) for h in self.hosts)
        if not self.hosts:
            raise UserError("no board given; pass --host [USER@]HOST (once per board)")
        if len(set(self.hosts)) != len(self.hosts):
            raise UserError(f"a board is listed twice in --host {' '.join(self.hosts)}; give each board once")

    def __str__(self) -> str:
        return ",".join(self.hosts)


def as_boards(host) -> Boards:
    """``host`` as :class:`Boards`: a Boards, one destination, or a list of destinations."""
    if isinstance(host, Boards):
        return host
    if isinstance(host, str):
        return Boards((host,))
    return Boards(tuple(host))


class RemoteMeter:
    """The meter of ``latency.measure`` (``info()``, ``measure_many()``) served by workers on boards.

    One ssh connection per board, opened on first use and kept for the meter's life (``close()``
    ends them). :meth:`stream` spreads many batches over all boards and yields each batch's
    results the moment they arrive; every result carries ``board`` (the ssh destination).
    """

    def __init__(self, device, host):
        self.device = device
        self.boards = as_boards(host)
        self.ssh = self.boards.ssh
        self.infos: dict[str, dict] = {}
        self.failed: dict[str, str] = {}
        self._workers: dict[str, RemoteWorker] = {}
        self._finalizer = weakref.finalize(self, _close_all, self._workers)

    # ---- boards ---------------------------------------------------------------------------------
    def _worker(self, host: str) -> RemoteWorker:
        w = self._workers.get(host)
        if w is None or w.proc is None or w.proc.poll() is not None:
            if w is not None:
                log.info("%s: the last connection ended; connecting again", host)
            w = RemoteWorker(host, self.ssh)
            w.start()
            try:
                w.check_backend(self.device.backend)
            except RemoteError:
                w.close()
                raise
            self._workers[host] = w
            self.infos[host] = w.info
        return w

    def _drop(self, host: str, error: Exception | None = None) -> None:
        w = self._workers.pop(host, None)
        if w is not None:
            w.close(kill=True)
        if error is not None:
            self.failed[host] = str(error)

    def close(self) -> None:
        """Say bye to every board and end the connections."""
        _close_all(self._workers)

    def __enter__(self) -> "RemoteMeter":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def info(self) -> dict:
        """The first board's hello info (hardware, runtime versions, ``ssh_host``); with several
        boards also ``boards`` {host: info}. Every board is connected; one that cannot be reached
        is left out with a warning unless it is the only one."""
        errors = []

        def connect(h: str) -> None:
            try:
                self._worker(h)
            except RemoteError as e:
                errors.append(e)
                self._drop(h, e)
                if len(self.boards.hosts) > 1:
                    log.warning("%s", e)

        threads = [threading.Thread(target=connect, args=(h,), daemon=True) for h in self.boards.hosts]
        for t in threads:  # boards connect in parallel: each hello costs seconds on a small board
            t.start()
        for t in threads:
            t.join()
        if not self.infos:
            raise errors[0]
        first = dict(self.infos[next(h for h in self.boards.hosts if h in self.infos)])
        if len(self.boards.hosts) > 1:
            first["boards"] = {h: self.infos[h] for h in self.boards.hosts if h in self.infos}
        if self.failed:
            first["failed_boards"] = dict(self.failed)
        return first

    # ---- measuring ------------------------------------------------------------------------------
    def request(self, models: list[bytes], nodes: bool | list[bool] = False, protocol: dict | None = None) -> dict:
        """The worker request that measures ``models`` (interleaved) with the device's profile;
        ``nodes``: profile per node, a flag for all or one flag per model."""
        flags = [bool(x) for x in nodes] if isinstance(nodes, (list, tuple)) else bool(nodes)
        if isinstance(flags, list) and len(flags) != len(models):
            raise ValueError(f"nodes has {len(flags)} flags for {len(models)} models")
        return {"op": "measure_many", "models_b64": [encode_model(m) for m in models],
                "backend": self.device.backend, "options": self.device.options(),
                "protocol": {**(self.device.protocol or {}), **(protocol or {})}, "nodes": flags}

    def _results(self, host: str, reply: dict, n: int) -> list[dict]:
        if "error" in reply:
            raise UserError(f"{host}: the worker could not measure: {reply['error']}")
        res = reply.get("results")
        if not isinstance(res, list) or len(res) != n:
            raise RemoteError(host, "protocol", f"{host}: the worker answered {n} models with {reply!r:.200}")
        for r in res:
            r["board"] = host
        return res

    def measure_many(self, models: list[bytes], nodes: bool | list[bool] = False,
                     protocol: dict | None = None) -> list[dict]:
        """Measure ``models`` interleaved on one board (the first that answers)."""
        req = self.request(models, nodes, protocol)
        last = None
        for h in self.boards.hosts:
            if h in self.failed and len(self.boards.hosts) > 1:
                continue
            try:
                return self._results(h, self._worker(h).request(req), len(models))
            except RemoteError as e:
                self._drop(h, e)
                last = e
                if len(self.boards.hosts) > 1:
                    log.warning("%s", e)
        raise last or RemoteError(str(self.boards), "dropped", f"every board failed: {self.failed}")

    def stream(self, batches: Iterable, nodes: bool | list[bool] = False, protocol: dict | None = None,
               on_hello=None) -> Iterator[tuple[int, list[dict], str]]:
        """Measure each batch of models (interleaved within the batch) on whichever board is free;
        yield ``(batch index, results, host)`` as each batch comes back (not necessarily in order).

        A batch is a list of ONNX models, or ``(models, nodes)`` to give that batch its own
        per-model profiling flags (else ``nodes`` applies).

        Batches are pulled lazily (exporting the next models overlaps measuring) and up to
        ``ssh.window`` of them wait on each board. A board that fails hands its unanswered batches
        to the others (with a warning); when no board is left, the first failure is raised. What
        was yielded before stays yielded: the caller stores each batch as it arrives.
        """
        hosts = [h for h in self.boards.hosts if h not in self.failed] or list(self.boards.hosts)
        src_lock = threading.Lock()
        source = enumerate(batches)
        retry: deque = deque()
        out: queue.Queue = queue.Queue()
        stop = threading.Event()

        def take():
            with src_lock:
                if retry:
                    return retry.popleft()
                try:
                    i, batch = next(source)
                except StopIteration:
                    return None
                models, flags = batch if isinstance(batch, tuple) else (batch, nodes)
                return i, len(models), self.request(models, flags, protocol)

        def board(host: str) -> None:
            inflight: deque = deque()

            def feed():
                while not stop.is_set():
                    item = take()
                    if item is None:
                        return
                    inflight.append(item)
                    yield item[2]

            try:
                w = self._worker(host)
                out.put(("hello", host, w.info))
                for _req, reply in w.stream(feed()):
                    i, n, _ = inflight.popleft()
                    out.put(("reply", host, (i, n, reply)))
                    if stop.is_set():
                        break
                out.put(("done", host, None))
            except RemoteError as e:
                self._drop(host, e)
                with src_lock:
                    retry.extendleft(reversed(inflight))
                out.put(("failed", host, e))
            except BaseException as e:  # e.g. an export error raised while pulling the next batch
                self._drop(host)
                out.put(("error", host, e))

        threads = [threading.Thread(target=board, args=(h,), daemon=True, name=f"board-{h}") for h in hosts]
        for t in threads:
            t.start()
        live = set(hosts)
        failures: list[RemoteError] = []
        finished = False
        try:
            while live:
                kind, host, payload = out.get()
                if kind == "hello":
                    if on_hello:
                        on_hello(host, payload)
                elif kind == "reply":
                    i, n, reply = payload
                    yield i, self._results(host, reply, n), host
                elif kind == "done":
                    live.discard(host)
                elif kind == "error":
                    raise payload
                else:
                    live.discard(host)
                    failures.append(payload)
                    if live:  # live boards take from ``retry`` before the source
                        log.warning("%s; its unfinished work goes to %s", payload, ", ".join(sorted(live)))
            if failures and _left(take, retry):
                raise failures[0]
            finished = True
        finally:
            stop.set()
            if not finished:  # the caller stopped early or a board failed: stale requests may be queued
                for h in hosts:
                    self._drop(h)
            for t in threads:
                t.join(5)


def _close_all(workers: dict) -> None:
    for h in list(workers):
        workers.pop(h).close()


def _left(take, retry: deque) -> bool:
    """Whether any request is still unserved (puts a taken one back)."""
    r = take()
    if r is None:
        return False
    retry.appendleft(r)
    return True


def encode_model(model: bytes) -> str:
    """ONNX bytes as the protocol's ``model_b64``."""
    return base64.b64encode(model).decode("ascii")
