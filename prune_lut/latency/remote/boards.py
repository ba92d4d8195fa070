"""Several identical boards: ``--host`` as :class:`Boards`, and :class:`RemoteMeter`, the meter of
``latency.measure`` served by one worker per board.

:meth:`RemoteMeter.stream` hands batches of models to the boards from a shared queue and yields
each batch's results as they arrive, tagged with the board that measured them; a board that fails
hands its unanswered batches back to the others.
"""
from __future__ import annotations

import base64
import logging
import queue
import threading
import weakref
from collections import deque
from dataclasses import dataclass, field
from typing import Iterable, Iterator

from ...errors import UserError
from .board import RemoteWorker
from .ssh import RemoteError, SSHOptions, check_host

log = logging.getLogger(__name__)


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
