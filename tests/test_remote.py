"""The SSH transport against a real OpenSSH server on 127.0.0.1 (tests/sshd.py).

Every test talks to a real sshd with a real ssh client and real ONNX Runtime sessions in the
worker on the "board" (this machine, reached over loopback). Skipped when sshd is not installed.
"""
from __future__ import annotations

import os
import random
import shlex
import signal
import threading
import time
from pathlib import Path

import numpy as np
import pytest

import sshd as sshd_mod
from prune_lut.devices import get_device
from prune_lut.errors import UserError
from prune_lut.latency import remote
from prune_lut.latency.measure import LocalMeter, get_meter

SKIP = sshd_mod.skip_reason()
needs_sshd = pytest.mark.skipif(SKIP is not None, reason=SKIP or "")


# ---- no server needed -------------------------------------------------------------------------
@pytest.mark.parametrize("bad", ["-oProxyCommand=touch /tmp/x", "-F/etc/passwd", "a b", "", "host\nx", "h\0"])
def test_destinations_that_look_like_options_are_refused(bad):
    with pytest.raises(UserError, match="bad ssh destination"):
        remote.SSHOptions().ssh_command(bad)


def test_remote_command_quotes_every_word_and_carries_code_as_data():
    sha = remote.worker_sha256()
    cmd = remote.SSHOptions(python="'/opt/my venv/bin/python3' -u").ssh_command("pi@board")
    assert cmd[-3:-1] == ["--", "pi@board"]
    # the board's shell splits the one remote string back into exactly these words
    assert shlex.split(cmd[-1]) == ["/opt/my venv/bin/python3", "-u", "-c", remote.BOOTSTRAP, sha]
    # host-key checking is ssh's default; only the explicit option turns it off
    assert "StrictHostKeyChecking=no" not in cmd
    off = remote.SSHOptions(host_key_check=False).ssh_command("board")
    assert "StrictHostKeyChecking=no" in off and "UserKnownHostsFile=/dev/null" in off


def test_boards_refuse_duplicates_and_empty():
    with pytest.raises(UserError, match="listed twice"):
        remote.Boards(("a", "b", "a"))
    with pytest.raises(UserError, match="no board"):
        remote.Boards(())
    assert remote.as_boards("pi@x").hosts == ("pi@x",)


# ---- against a real sshd ----------------------------------------------------------------------
@pytest.fixture(scope="module")
def server(tmp_path_factory):
    if SKIP:
        pytest.skip(SKIP)
    s = sshd_mod.SSHServer(tmp_path_factory.mktemp("sshd")).start()
    yield s
    s.stop()


@pytest.fixture(scope="module")
def ssh_opts(server):
    return remote.SSHOptions(config=str(server.ssh_config), connect_timeout=10, python=server.python)


@pytest.fixture(scope="module")
def models():
    """Four small real networks (the quickstart space), as ONNX bytes."""
    from prune_lut.pruning.export import onnx_model
    from prune_lut.pruning.net import build_net
    from prune_lut.pruning.space import get_space

    sp = get_space("mobilenet_v2", resolution=8, num_classes=10, in_channels=1, small_input=True, multiple=8)
    return [onnx_model(sp, build_net(sp, sp.random(random.Random(i))).eval()).SerializeToString() for i in range(4)]


FAST = {"warmup": 3, "chunk": 5, "min_reps": 10, "max_reps": 40, "rel_tol": 0.05}


@needs_sshd
def test_hello_runs_the_worker_on_the_board_and_reports_it(ssh_opts):
    with remote.RemoteWorker("board", ssh_opts) as w:
        info = w.info
        assert info["ssh_host"] == "board"
        assert info["onnxruntime"] and info["numpy"] == np.__version__ and info["cpu"]
        pid = info["worker_pid"]
        assert pid != os.getpid() and Path(f"/proc/{pid}").exists()
        # the worker runs from source sent over stdin: no file on the board holds it
        assert Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[1] == b"-c"
    time.sleep(0.3)
    assert not Path(f"/proc/{pid}").exists(), "the worker must exit after bye"


@needs_sshd
def test_remote_measurements_match_local_ones(ssh_opts, models):
    dev = get_device("cpu")
    with remote.RemoteMeter(dev, remote.Boards(("board",), ssh_opts)) as m:
        assert m.info()["ssh_host"] == "board"
        got = m.measure_many(models, protocol=FAST)
    assert [r["board"] for r in got] == ["board"] * len(models)
    here = LocalMeter(dev).measure_many(models, protocol=FAST)
    for r, h in zip(got, here):
        assert r["reps"] >= FAST["min_reps"]
        # same machine behind loopback: the same order of magnitude. The bounds catch a wrong model or
        # unit, not this 2-vCPU VM's drift (whole builds a minute apart differed by up to 2x)
        assert 0.25 < r["median_ms"] / h["median_ms"] < 4.0


@needs_sshd
def test_stream_spreads_batches_over_boards_and_survives_a_dead_one(ssh_opts, models, caplog):
    dev = get_device("cpu")
    slow = {**FAST, "min_reps": 1000, "max_reps": 1000}  # ~0.2 s a batch: both boards get work
    b = remote.Boards(("board", "board2", "board-down"), ssh_opts)
    hellos = {}
    with remote.RemoteMeter(dev, b) as m:
        info = m.info()  # connects every board at once (the dead one is reported, not fatal)
        assert set(info["boards"]) == {"board", "board2"} and "board-down" in info["failed_boards"]
        got = {i: (res, host) for i, res, host in
               m.stream([[x] for x in models * 2], protocol=slow, on_hello=lambda h, info: hellos.setdefault(h, info))}
    assert sorted(got) == list(range(8))
    assert {host for _, host in got.values()} == {"board", "board2"}
    assert all(res[0]["board"] == host for res, host in got.values())
    assert set(hellos) == {"board", "board2"}
    assert "board-down" in m.failed and "cannot reach board-down" in caplog.text


@needs_sshd
@pytest.mark.parametrize("alias,kind,words", [
    ("board-down", "unreachable", "Connection refused"),
    ("board-wrongkey", "auth", "Permission denied"),
])
def test_connection_failures_are_one_clear_line(ssh_opts, alias, kind, words):
    with pytest.raises(remote.RemoteError) as e:
        remote.RemoteWorker(alias, ssh_opts).start()
    assert e.value.kind == kind and words in str(e.value) and "\n" not in str(e.value)


@needs_sshd
@pytest.mark.parametrize("known", ["unknown", "changed"])
def test_host_key_check_stays_on_unless_turned_off(server, tmp_path, known):
    kh = tmp_path / "known_hosts"
    if known == "changed":  # the board presents another key than the one on record: a possible MITM
        other = (server.root / "wrong_ed25519.pub").read_text().split()
        kh.write_text(f"[127.0.0.1]:{server.port} {other[0]} {other[1]}\n")
    cfg = tmp_path / "cfg"
    cfg.write_text(server.ssh_config.read_text().replace(str(server.known_hosts), str(kh)))
    opts = remote.SSHOptions(config=str(cfg), connect_timeout=10, python=server.python)
    with pytest.raises(remote.RemoteError) as e:
        remote.RemoteWorker("board", opts).start()
    assert e.value.kind == "hostkey" and "--no-host-key-check" in str(e.value) and "\n" not in str(e.value)
    assert ("CHANGED" in str(e.value)) == (known == "changed")
    with remote.RemoteWorker("board", remote.SSHOptions(config=str(cfg), host_key_check=False, python=server.python)) as w:
        assert w.info["onnxruntime"]


@needs_sshd
def test_board_python_without_onnxruntime_is_reported_before_measuring(ssh_opts, tmp_path, models):
    py = sshd_mod.board_python(tmp_path / "venv", with_numpy=True)
    opts = remote.SSHOptions(config=ssh_opts.config, python=py)
    m = remote.RemoteMeter(get_device("cpu"), remote.Boards(("board",), opts))
    with pytest.raises(remote.RemoteError) as e:
        m.measure_many(models[:1])
    assert e.value.kind == "runtime" and "has no onnxruntime" in str(e.value) and py in str(e.value)
    m.close()


@needs_sshd
def test_board_python_without_numpy_is_reported(ssh_opts, tmp_path):
    opts = remote.SSHOptions(config=ssh_opts.config, python=sshd_mod.board_python(tmp_path / "bare", with_numpy=False))
    with pytest.raises(remote.RemoteError) as e:
        remote.RemoteWorker("board", opts).start()
    assert e.value.kind == "runtime" and "'numpy'" in str(e.value)


@needs_sshd
def test_missing_board_python_and_shell_metacharacters_stay_inert(ssh_opts, tmp_path):
    marker = tmp_path / "pwned"
    opts = remote.SSHOptions(config=ssh_opts.config, python=f"python3-nonexistent; touch {marker}")
    with pytest.raises(remote.RemoteError) as e:
        remote.RemoteWorker("board", opts).start()
    assert e.value.kind == "python"
    opts = remote.SSHOptions(config=ssh_opts.config, python=f"python3 $(touch {marker})")
    with pytest.raises(remote.RemoteError):
        remote.RemoteWorker("board", opts).start()
    assert not marker.exists(), "the remote shell must not run text from our arguments"


@needs_sshd
def test_worker_crash_is_told_apart_from_a_dropped_connection(server, ssh_opts, models):
    dev = get_device("cpu")
    m = remote.RemoteMeter(dev, remote.Boards(("board",), ssh_opts))
    m.measure_many(models[:1], protocol=FAST)
    os.kill(m.infos["board"]["worker_pid"], signal.SIGKILL)
    with pytest.raises(remote.RemoteError) as e:
        m.measure_many(models[:1], protocol=FAST)
    assert e.value.kind == "crash" and "SIGKILL" in str(e.value)
    # the meter reconnects for the next call (a new worker); then the board's sshd dies mid-request
    m.measure_many(models[:1], protocol=FAST)
    long = {**FAST, "min_reps": 30000, "max_reps": 30000, "max_seconds": 60}
    killer = threading.Timer(1.0, server.drop_connections)
    killer.start()
    t = time.monotonic()
    with pytest.raises(remote.RemoteError) as e:
        m.measure_many(models[:1], protocol=long)
    killer.join()
    assert e.value.kind == "dropped" and "connection to board dropped" in str(e.value)
    assert time.monotonic() - t < 15, "a dropped connection must be noticed at once, not after a timeout"
    m.close()


@needs_sshd
def test_damaged_worker_source_is_refused_by_the_bootstrap(ssh_opts, monkeypatch):
    real = remote.worker_source()
    calls = iter([real, real + b"\n# tampered"])  # hash from the first read, bytes from the second
    monkeypatch.setattr(remote.ssh, "worker_source", lambda: next(calls))
    with pytest.raises(remote.RemoteError, match="damaged in transit"):
        remote.RemoteWorker("board", ssh_opts).start()


@needs_sshd
def test_get_meter_passes_boards_through(ssh_opts, models):
    m = get_meter(get_device("cpu"), remote.Boards(("board",), ssh_opts))
    assert isinstance(m, remote.RemoteMeter)
    assert m.measure_many(models[:1], protocol=FAST)[0]["median_ms"] > 0
    m.close()
