"""One board: an ssh process running the worker, spoken to in JSON lines (see ``latency/worker.py``)."""
from __future__ import annotations

import itertools
import json
import logging
import queue
import signal
import subprocess
import threading
from collections import deque
from typing import Iterable, Iterator

from ...errors import UserError
from . import ssh
from .ssh import MAX_SOURCE, WORKER_PATH, RemoteError, SSHOptions, check_host

log = logging.getLogger(__name__)
RUNTIME_FIELD = {"onnxruntime": "onnxruntime", "torch": "torch", "tensorrt": "tensorrt"}


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
        src = ssh.worker_source()
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
