"""Remote build over loopback ssh vs local build: entries per minute for the same device profile.

Target (issue 7): the remote build reaches >= 80% of the local build's throughput.

The "board" is this machine behind a throwaway OpenSSH server on 127.0.0.1 (tests/sshd.py), so
the two builds measure on the same CPU and differ only by the transport: ssh connection and the
worker's start, shipping each network's ONNX (base64 over ssh), and the replies. Builds
alternate (local, remote, local, remote, ...) so slow minutes hit both alike. Each build is
timed wall-clock from creating its meter (the remote one connects and says hello then) to the
saved table; throughput = measured entries / minutes.

    flock /tmp/prune-lut-cpu.lock python benchmarks/remote_throughput.py --rounds 2 --json out.json
"""
from __future__ import annotations

import argparse
import json
import platform
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

import sshd  # noqa: E402  (tests/sshd.py: the throwaway server)

from prune_lut.devices import get_device  # noqa: E402
from prune_lut.latency import remote  # noqa: E402
from prune_lut.latency.measure import LocalMeter  # noqa: E402
from prune_lut.tables.build import build_space_table  # noqa: E402
from prune_lut.pruning.space import get_space  # noqa: E402


def one_build(space, device, out: Path, meter_factory, args) -> dict:
    t = time.perf_counter()
    meter = meter_factory()
    lut = build_space_table(space, device, out, meter=meter, heldout=args.heldout, group=args.group,
                            progress=False)
    if hasattr(meter, "close"):
        meter.close()
    wall = time.perf_counter() - t
    n = len(lut.measured_keys())
    return {"seconds": round(wall, 2), "measured": n, "networks": len(lut.extra.get("networks", [])),
            "entries_per_min": round(60 * n / wall, 1), "ref_ms": lut.reference and lut.reference["median_ms"]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--family", default="mobilenet_v2")
    ap.add_argument("--resolution", type=int, default=8)
    ap.add_argument("--grid", help="width ratios, e.g. 0.25,0.5,0.75,1.0 (default: the paper's 31: the quickstart "
                                   "space, 5595 keys)")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--group", type=int, default=4)
    ap.add_argument("--heldout", type=int, default=8)
    ap.add_argument("--hosts", type=int, default=1, help="boards (aliases of the one loopback sshd)")
    ap.add_argument("--json", dest="json_out")
    args = ap.parse_args()

    grid = {"grid": tuple(float(x) for x in args.grid.split(","))} if args.grid else {}
    space = get_space(args.family, resolution=args.resolution, num_classes=10, in_channels=1,
                      small_input=args.resolution < 32, multiple=8, **grid)
    device = get_device(args.device)
    tmp = Path(tempfile.mkdtemp(prefix="prune-lut-remote-bench"))
    server = sshd.SSHServer(tmp / "sshd").start()
    hosts = ("board", "board2")[: args.hosts]
    ssh = remote.SSHOptions(config=str(server.ssh_config))
    runs = {"local": [], "remote": []}
    try:
        for r in range(args.rounds):
            for kind in ("local", "remote"):
                factory = (lambda: LocalMeter(device)) if kind == "local" else \
                    (lambda: remote.RemoteMeter(device, remote.Boards(hosts, ssh)))
                res = one_build(space, device, tmp / f"{kind}{r}.json.gz", factory, args)
                runs[kind].append(res)
                print(f"round {r + 1} {kind:>6}: {res['measured']} entries, {res['networks']} networks, "
                      f"{res['seconds']:.1f} s, {res['entries_per_min']:.0f} entries/min", flush=True)
    finally:
        server.stop()
    tot = {k: (sum(x["measured"] for x in v), sum(x["seconds"] for x in v)) for k, v in runs.items()}
    thr = {k: 60 * n / s for k, (n, s) in tot.items()}
    ratio = thr["remote"] / thr["local"]
    print(f"local {thr['local']:.0f} entries/min, remote {thr['remote']:.0f} entries/min: "
          f"remote/local = {100 * ratio:.0f}% (target >= 80%)")
    if args.json_out:
        Path(args.json_out).write_text(json.dumps({
            "date": datetime.now(timezone.utc).isoformat(timespec="seconds"), "machine": platform.platform(),
            "command": " ".join(sys.argv), "space": {"family": args.family, "resolution": args.resolution,
                                                     "grid": list(space.grid), "keys": runs["local"][0]["measured"]},
            "hosts": hosts, "runs": runs, "entries_per_min": thr, "remote_over_local": ratio}, indent=2))


if __name__ == "__main__":
    main()
