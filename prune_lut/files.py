"""Writing and reading the files prune-lut makes and shares.

Every output is written through a temporary file in the same folder and renamed over the target,
so a reader (or a crash) never sees half a file, and the temporary file is removed on every exit
path. JSON that other teams send is read with limits on its size and nesting, so a damaged or
hostile file is refused in one line instead of exhausting memory or the stack.
"""
from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Callable

from .errors import UserError

MAX_JSON_BYTES = 256 << 20  # a full table is ~4 MB of JSON; search records and archs far less
MAX_DEPTH = 64              # every prune-lut file nests below 10 levels


def write_atomic(path: str | os.PathLike, write: Callable[[Path], None]) -> Path:
    """Call ``write(tmp)`` on a temporary file beside ``path``, then rename it over ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp = Path(name)
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def write_json(path: str | os.PathLike, obj, indent: int | None = 2) -> Path:
    """``obj`` as JSON at ``path``, atomically."""
    text = json.dumps(obj, indent=indent) + "\n"
    return write_atomic(path, lambda tmp: tmp.write_text(text))


def write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    return write_atomic(path, lambda tmp: tmp.write_bytes(data))


def check_depth(obj, source: str, limit: int = MAX_DEPTH) -> None:
    """Refuse JSON nested deeper than ``limit`` (iteratively: a deep file cannot exhaust the stack)."""
    stack = [(obj, 1)]
    while stack:
        o, d = stack.pop()
        if isinstance(o, (dict, list)):
            if d > limit:
                raise UserError(f"{source}: nested deeper than {limit} levels; not a file prune-lut writes")
            stack.extend((v, d + 1) for v in (o.values() if isinstance(o, dict) else o))


def parse_json(text: str | bytes, source: str) -> object:
    """Parse JSON text with the nesting limit; a damaged text is one UserError."""
    try:
        obj = json.loads(text)
    except RecursionError:
        raise UserError(f"{source}: nested deeper than Python can parse; not a file prune-lut writes") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise UserError(f"{source}: not valid JSON ({e}); is it the right file?") from None
    check_depth(obj, source)
    return obj


def read_json(path: str | os.PathLike, max_bytes: int = MAX_JSON_BYTES) -> object:
    """Parse a JSON file, turning a missing, oversized, deep or damaged file into one UserError."""
    p = Path(path)
    if p.is_dir():
        raise UserError(f"{p} is a directory; give the file")
    if not p.is_file():
        raise UserError(f"{p}: no such file")
    if p.stat().st_size > max_bytes:
        raise UserError(f"{p}: {p.stat().st_size >> 20} MB is more than a prune-lut file can be "
                        f"({max_bytes >> 20} MB); is it the right file?")
    return parse_json(p.read_bytes(), str(p))
