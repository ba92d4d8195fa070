"""Writing and reading the files prune-lut makes and shares.

Every output is written through a temporary file in the same folder and renamed over the target,
so a reader (or a crash) never sees half a file, and the temporary file is removed on every exit
path; the file gets the permissions a plain ``open`` would give it (the umask's), not the
temporary file's private 0600, so a table can be shared. Files other teams send are read with
limits on their size (compressed and decompressed: a gzip bomb stops decompressing at the limit)
and nesting, so a damaged or hostile file is refused in one line instead of exhausting memory or
the stack. What may be written where is ``outputs.py``'s policy; what a file must hold is
``schemas.py``'s.
"""
from __future__ import annotations

import gzip
import io
import json
import os
import tempfile
import zlib
from pathlib import Path
from typing import Callable

from .errors import UserError

MAX_JSON_BYTES = 64 << 20  # decompressed; the shipped 5,640-entry table is 4.1 MB, a ResNet-101 one ~15 MB
MAX_DEPTH = 64             # every prune-lut file nests below 10 levels
GZIP_MAGIC = b"\x1f\x8b"


def _new_file_mode(path: Path) -> int:
    """The mode ``path`` keeps (when replaced) or gets (when new: 0666 less the umask)."""
    try:
        return path.stat().st_mode & 0o777
    except OSError:
        umask = os.umask(0)
        os.umask(umask)
        return 0o666 & ~umask


def write_atomic(path: str | os.PathLike, write: Callable[[Path], None]) -> Path:
    """Call ``write(tmp)`` on a temporary file beside ``path``, then rename it over ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp = Path(name)
    try:
        write(tmp)
        os.chmod(tmp, _new_file_mode(path))
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


def _containers(values) -> list:
    return [v for v in values if type(v) is dict or type(v) is list]


def check_depth(obj, source: str, limit: int = MAX_DEPTH) -> None:
    """Refuse JSON nested deeper than ``limit``, level by level without recursion, so neither this
    check nor code that walks a file recursively later (``copy.deepcopy``) can exhaust the stack."""
    level, depth = _containers([obj]), 0
    while level:
        depth += 1
        if depth > limit:
            raise UserError(f"{source}: nested deeper than {limit} levels; not a file prune-lut writes")
        level = [v for o in level for v in _containers(o.values() if type(o) is dict else o)]


def parse_json(text: str | bytes, source: str) -> object:
    """Parse JSON text with the nesting limit; a damaged text is one UserError."""
    try:
        obj = json.loads(text)
    except RecursionError:
        raise UserError(f"{source}: nested deeper than Python can parse; not a file prune-lut writes") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        first = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise UserError(f"{source}: not valid JSON ({first}); is it the right file?") from None
    check_depth(obj, source)
    return obj


def read_bytes(path: str | os.PathLike, max_bytes: int = MAX_JSON_BYTES, what: str = "file") -> bytes:
    """A file's bytes; a missing, unreadable, oversized file or a directory is one UserError."""
    p = Path(path)
    if p.is_dir():
        raise UserError(f"{p} is a directory, not a {what}; give the file")
    if not p.is_file():
        raise UserError(f"{p}: no such {what}")
    size = p.stat().st_size
    if size > max_bytes:
        raise UserError(f"{p}: {size >> 20} MB is more than a prune-lut {what} can be "
                        f"({max_bytes >> 20} MB); is it the right file?")
    try:
        return p.read_bytes()
    except OSError as e:
        raise UserError(f"{p}: cannot read it ({e.strerror or e}); check its permissions") from None


def gunzip(raw: bytes, source: str, max_bytes: int = MAX_JSON_BYTES) -> bytes:
    """Decompress gzip bytes, stopping past ``max_bytes`` (a gzip bomb never grows the process further)."""
    try:
        with gzip.GzipFile(fileobj=io.BytesIO(raw)) as f:
            data = f.read(max_bytes + 1)
    except (OSError, EOFError, zlib.error) as e:
        raise UserError(f"{source}: damaged or truncated gzip data ({type(e).__name__}); fetch the file again") from None
    if len(data) > max_bytes:
        raise UserError(f"{source}: decompresses to more than {max_bytes >> 20} MB, more than any prune-lut "
                        "file; not a file prune-lut wrote")
    return data


def read_json(path: str | os.PathLike, max_bytes: int = MAX_JSON_BYTES, what: str = "file") -> object:
    """Parse a JSON file (gzip-compressed or not), turning a missing, oversized, deep or damaged
    file into one UserError."""
    raw = read_bytes(path, max_bytes, what)
    if raw[:2] == GZIP_MAGIC:
        raw = gunzip(raw, str(path), max_bytes)
    return parse_json(raw, str(path))
