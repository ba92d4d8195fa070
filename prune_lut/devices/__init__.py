"""Device profiles: one TOML file per device, built in here or supplied by the user.

A profile says how to measure on a device: ``backend`` (onnxruntime | torch | tensorrt), the
runtime options (``provider``, ``threads``, ``precision``, ``batch``, ``device`` for torch,
``cuda_graphs``, ``workspace_mb``), the channel ``multiple`` the hardware prefers (spaces built for
the device round widths to it), the measurement ``[protocol]`` (see ``latency/worker.py``), and an
optional ``host`` (an ssh destination: measure there instead of here); ``remote_only`` marks a
profile that describes another board (a Jetson, a Raspberry Pi), so this host never measures it
under that board's name.

Where profiles come from, in order: the built-ins next to this file; every ``*.toml`` in the user
directory (``$PRUNE_LUT_DEVICES``, several joined with ``os.pathsep``, else
``~/.config/prune-lut/devices/``); a file given with ``--device-file PATH`` (or a device argument
that names a ``.toml`` file). A user profile may not reuse a built-in name: tables are named after
their device, and two different ``cpu`` profiles would make them ambiguous.
"""
from __future__ import annotations

import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

try:
    import tomllib
except ImportError:  # Python 3.10
    import tomli as tomllib

from ..errors import UserError

BUILTIN_DIR = Path(__file__).parent
BACKENDS = ("onnxruntime", "torch", "tensorrt")
PRECISIONS = ("fp32", "fp16", "int8")
PROTOCOL_FIELDS = ("warmup", "chunk", "min_reps", "max_reps", "rel_tol", "max_seconds", "node_reps")


@dataclass(frozen=True)
class Device:
    """A device profile (see the module docstring for the fields)."""

    name: str
    backend: str
    description: str = ""
    provider: str | None = None
    threads: int = 0
    precision: str = "fp32"
    batch: int = 1
    multiple: int = 1
    device: str | None = None
    cuda_graphs: bool = False
    workspace_mb: int | None = None
    host: str | None = None
    remote_only: bool = False
    protocol: dict = field(default_factory=dict)
    source: str = "builtin"

    def options(self) -> dict:
        """Runtime options as the worker reads them."""
        return {k: v for k, v in (("provider", self.provider), ("threads", self.threads),
                                   ("precision", self.precision), ("batch", self.batch), ("device", self.device),
                                   ("cuda_graphs", self.cuda_graphs), ("workspace_mb", self.workspace_mb))
                if v is not None}

    def to_dict(self) -> dict:
        """The profile as stored in a LUT file (``source`` left out: it is where this host keeps it)."""
        d = asdict(self)
        d.pop("source")
        return d

    @classmethod
    def from_dict(cls, d: dict, source: str = "lut") -> "Device":
        return _make(dict(d), d.get("name", "?"), source)


def _make(d: dict, name: str, source: str) -> Device:
    where = f"device profile {source}"
    d.setdefault("name", name)
    known = {f for f in Device.__dataclass_fields__ if f != "source"}
    extra = sorted(set(d) - known)
    if extra:
        raise UserError(f"{where}: unknown field {extra[0]!r}; known fields: {', '.join(sorted(known))}")
    if d.get("backend") not in BACKENDS:
        raise UserError(f"{where}: backend must be one of {', '.join(BACKENDS)}, got {d.get('backend')!r}")
    if str(d.get("precision", "fp32")).lower() not in PRECISIONS:
        raise UserError(f"{where}: precision must be one of {', '.join(PRECISIONS)}, got {d.get('precision')!r}")
    proto = d.get("protocol") or {}
    if not isinstance(proto, dict) or set(proto) - set(PROTOCOL_FIELDS):
        bad = sorted(set(proto) - set(PROTOCOL_FIELDS)) if isinstance(proto, dict) else ["(not a table)"]
        raise UserError(f"{where}: unknown [protocol] field {bad[0]!r}; known: {', '.join(PROTOCOL_FIELDS)}")
    for k in ("threads", "batch", "multiple"):
        if not isinstance(d.get(k, 1), int) or d.get(k, 1) < 0 or (k != "threads" and d.get(k, 1) < 1):
            raise UserError(f"{where}: {k} must be a positive integer, got {d.get(k)!r}")
    return Device(**{**d, "precision": str(d.get("precision", "fp32")).lower()}, source=source)


def load_device_file(path: str | os.PathLike) -> Device:
    """Read one TOML profile; its name is the file's stem unless it sets ``name``."""
    p = Path(path)
    if not p.is_file():
        raise UserError(f"{p}: no such device file; write a TOML profile (see `prune-lut devices`) or fix the path")
    try:
        d = tomllib.loads(p.read_text())
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
        raise UserError(f"{p}: not valid TOML ({e}); fix the file".splitlines()[0]) from None
    return _make(d, p.stem, str(p))


def user_dirs() -> list[Path]:
    env = os.environ.get("PRUNE_LUT_DEVICES")
    if env:
        return [Path(x).expanduser() for x in env.split(os.pathsep) if x]
    return [Path("~/.config/prune-lut/devices").expanduser()]


def list_devices() -> dict[str, Device]:
    """Every known profile by name: built-ins first, then the user directory's."""
    out = {p.stem: load_device_file(p) for p in sorted(BUILTIN_DIR.glob("*.toml"))}
    out = {n: Device(**{**asdict(d), "source": "builtin"}) for n, d in out.items()}
    for d in user_dirs():
        for p in sorted(d.glob("*.toml")) if d.is_dir() else ():
            dev = load_device_file(p)
            if dev.name in out:
                raise UserError(f"{p}: device name {dev.name!r} is already taken by {out[dev.name].source}; "
                                "rename the file or set another `name`")
            out[dev.name] = dev
    return out


def get_device(name: str | None = None, device_file: str | os.PathLike | None = None) -> Device:
    """A profile by name (or from ``device_file``, or a name that is a path to a ``.toml``)."""
    if device_file is not None:
        dev = load_device_file(device_file)
        if name is not None and name != dev.name:
            raise UserError(f"--device {name} and --device-file {device_file} (name {dev.name!r}) disagree; give one")
        return dev
    if name is None:
        raise UserError("no device given; pass --device NAME (see `prune-lut devices`) or --device-file PATH")
    if name.endswith(".toml"):
        return load_device_file(name)
    devs = list_devices()
    if name not in devs:
        raise UserError(f"unknown device {name!r}; choose one of: {', '.join(devs)} (or --device-file PATH)")
    return devs[name]


__all__ = ["Device", "get_device", "list_devices", "load_device_file", "user_dirs", "BACKENDS"]
