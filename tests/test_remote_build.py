"""Building lookup tables on a "board" behind a real OpenSSH server on 127.0.0.1 (tests/sshd.py).

The board is this machine reached over loopback ssh: the same CPU, so a remote table must equal
a local one (same keys, medians within noise), and everything received before a failure must
survive it and be kept by ``--resume``.
"""
from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

import sshd as sshd_mod
from prune_lut.devices import get_device
from prune_lut.latency import remote
from prune_lut.latency.lutfile import LUT

SKIP = sshd_mod.skip_reason()
pytestmark = pytest.mark.skipif(SKIP is not None, reason=SKIP or "")

GRID_2 = (0.5, 1.0)          # mobilenet_v2, small input: 112 keys, 4 covering networks
GRID_3 = (0.3, 0.6, 1.0)     # 215 keys, 9 covering networks


def small_space(grid):
    from prune_lut.pruning.space import get_space

    return get_space("mobilenet_v2", resolution=8, num_classes=10, in_channels=1, small_input=True, multiple=8,
                     grid=grid)


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    s = sshd_mod.SSHServer(tmp_path_factory.mktemp("sshd")).start()
    yield s
    s.stop()


@pytest.fixture(scope="module")
def boards(server):
    def make(*hosts):
        return remote.Boards(hosts, remote.SSHOptions(config=str(server.ssh_config), connect_timeout=10,
                                                         python=server.python))
    return make


def build(space, out, meter, **kw):
    from prune_lut.tables.build import build_space_table

    kw = {"heldout": 2, "group": 1, "progress": False, **kw}
    return build_space_table(space, get_device("cpu"), out, meter=meter, **kw)


def test_remote_build_equals_local_build(tmp_path, boards):
    from prune_lut.latency.measure import LocalMeter

    sp = small_space(GRID_2)
    with remote.RemoteMeter(get_device("cpu"), boards("board")) as m:
        rem = build(sp, tmp_path / "remote.json.gz", m)
    loc = build(sp, tmp_path / "local.json.gz", LocalMeter(get_device("cpu")))
    assert set(rem.entries) == set(loc.entries) and rem.measured_keys() == loc.measured_keys()
    assert rem.extra["build"]["complete"]
    # the board's own description is the provenance, and every network says which board ran it
    assert rem.provenance["ssh_host"] == "board" and rem.provenance["onnxruntime"]
    assert {n.get("board") for n in rem.extra["networks"]} == {"board"}
    # same CPU behind loopback: the same times up to the machine's drift between two builds a minute
    # apart. Bounds catch a wrong model or unit (x1000), not noise: a clean-clone CI run saw network
    # ratios with a median of 0.64 (0.48-0.96) on this 2-vCPU VM, where earlier runs passed within 0.7-1.4.
    e2e = {n["id"]: n["e2e_ms"] for n in loc.extra["networks"]}
    net_ratio = [n["e2e_ms"] / e2e[n["id"]] for n in rem.extra["networks"] if n["id"] in e2e]
    assert len(net_ratio) >= 4 and 0.4 < np.median(net_ratio) < 2.5, net_ratio
    keys = [k for k in loc.measured_keys() if loc.entries[k]["median_ms"] > 0.005]
    ratio = np.array([rem.entries[k]["median_ms"] / loc.entries[k]["median_ms"] for k in keys])
    assert 0.4 < np.median(ratio) < 2.5 and np.mean((ratio > 0.25) & (ratio < 4.0)) > 0.8, np.percentile(ratio, [10, 50, 90])
    # the stored file says the same
    assert LUT.load(tmp_path / "remote.json.gz").entries == rem.entries


def test_connection_dropped_mid_build_then_resumed_loses_nothing(tmp_path, server, boards):
    sp = small_space(GRID_3)
    out = tmp_path / "t.json.gz"
    seen = {}

    class DropAfterFirst(remote.RemoteMeter):
        """The real meter; once the first group's results are in, the board's sshd is killed."""

        def stream(self, *a, **kw):
            for item in super().stream(*a, **kw):
                seen["received"] = seen.get("received", 0) + 1
                yield item
                if "killed" not in seen:
                    seen["killed"] = server.drop_connections()

    with pytest.raises(remote.RemoteError) as e:
        build(sp, out, DropAfterFirst(get_device("cpu"), boards("board")))
    assert seen["killed"] >= 1
    assert e.value.kind == "dropped" and "\n" not in str(e.value)
    before = LUT.load(out)
    assert 0 < len(before.entries) < 215 and not before.extra["build"].get("complete")
    # every group received before the drop was stored (group=1: one network record per group)
    assert len(before.extra["networks"]) == seen["received"] >= 1
    stored = [(n["id"], n["e2e_ms"], n["t"]) for n in before.extra["networks"]]

    with remote.RemoteMeter(get_device("cpu"), boards("board")) as m:
        after = build(sp, out, m, resume=True)
    from prune_lut.tables.coverage import all_specs

    assert set(after.entries) == set(all_specs(sp)) and after.extra["build"]["complete"]
    # nothing received before the drop was lost: every key and every profiled network record stays
    assert set(before.entries) <= set(after.entries)
    assert stored == [(n["id"], n["e2e_ms"], n["t"]) for n in after.extra["networks"][:len(stored)]]
    ids = [n["id"] for n in after.extra["networks"]]
    assert len(ids) == len(set(ids)), "a network stored before the drop was profiled again"


def test_cli_failures_are_one_line_and_exit_2(tmp_path, server):
    """`prune-lut build --host` through the real CLI: unreachable board, refused key, no runtime."""
    env = server.client_env()
    base = [sys.executable, "-m", "prune_lut.cli", "build", "--device", "cpu", "--family", "mobilenet_v2",
            "--small-input", "--num-classes", "10", "--in-channels", "1", "--ssh-config", str(server.ssh_config)]
    no_ort = sshd_mod.board_python(tmp_path / "venv", with_numpy=True)
    for host, more, words in (("board-down", [], "cannot reach board-down"),
                              ("board-wrongkey", [], "refused authentication"),
                              ("board", ["--remote-python", no_ort], "has no onnxruntime")):
        r = subprocess.run(base + more + ["--host", host, "--out", str(tmp_path / f"{host}.json.gz")], env=env,
                           capture_output=True, text=True, timeout=120)
        assert r.returncode == 2, r.stderr
        lines = r.stderr.strip().splitlines()
        assert lines[-1].startswith("error: ") and words in lines[-1], r.stderr
        assert not any("Traceback" in l for l in lines)
        assert not (tmp_path / f"{host}.json.gz").exists()


def test_cli_build_spreads_over_two_boards_and_records_who_measured_what(tmp_path, server):
    """`prune-lut build --host board --host board2` (two aliases of the loopback sshd): the
    networks are shared between the boards, each network record names its board, and the
    provenance holds every board's hello info. A shard rather than a time budget bounds the work:
    7 groups, more than two boards' windows hold, however slow the machine (a 6 s budget measured
    one group on a loaded CI machine, all on one board)."""
    env = server.client_env()
    out = tmp_path / "two.json.gz"
    r = subprocess.run([sys.executable, "-m", "prune_lut.cli", "build", "--device", "cpu", "--family", "mobilenet_v2",
                        "--small-input", "--num-classes", "10", "--in-channels", "1", "--ssh-config",
                        str(server.ssh_config), "--host", "board", "--host", "board2", "--shard", "1/150",
                        "--heldout", "2", "--out", str(out), "--json"], env=env, capture_output=True, text=True,
                       timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    lut = LUT.load(out)
    assert set(lut.provenance["boards"]) == {"board", "board2"} and lut.provenance["ssh_host"] in ("board", "board2")
    boards = [n.get("board") for n in lut.extra["networks"]]
    assert set(boards) == {"board", "board2"}, boards
    assert len(lut.measured_keys()) > 100 and lut.extra["build"]["complete"]
