"""The output policy every command follows, checked before any measuring, training or search starts.

- An existing output is never replaced unless the user asks: ``--force`` (start over), or
  ``--resume`` where the command continues what the file holds (``build``, ``train``, ``search``).
  Records that ``validate`` and ``calibrate`` write by default get a new timestamped name, so no
  run replaces another's.
- An output that is one of the command's inputs (the same file after resolving paths, links and
  hard links) is refused: ``search --out`` onto its ``--checkpoint``, ``export --out`` onto its
  ``--result``. ``calibrate`` writing the calibration into its ``--lut`` is the one in-place write,
  by design (atomic).
- Two outputs of one command may not be the same file (``--plot`` onto ``--out``).
- The output's folder must be a writable folder: created when missing, refused (a file in the
  path, ``/proc``, a read-only folder) before the work, not after it.

Writes themselves go through ``files.write_atomic`` (temporary file beside the target, renamed over
it, removed on every exit path).
"""
from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Sequence

from .errors import UserError

PathLike = str | os.PathLike


@dataclass(frozen=True)
class Output:
    """A file a command writes: the option that names it (or what it is, for derived files),
    whether the user asked for an existing one to be replaced or continued, and what to tell
    them when it exists and they did not."""

    option: str
    path: PathLike | None
    replace: bool = False
    hint: str = "pass --force to replace it, or choose another {option}"
    name: str | None = None  # a derived file's description ("the search state beside --out")

    @property
    def shown(self) -> str:
        return f"{self.name or self.option} {self.path}"


def same_file(a: PathLike, b: PathLike) -> bool:
    """Whether two paths name one file (links and hard links resolved; works for files not there yet)."""
    a, b = Path(a), Path(b)
    try:
        if a.exists() and b.exists():
            return os.path.samefile(a, b)
    except OSError:
        pass
    return a.resolve() == b.resolve()


def writable_folder(folder: PathLike, option: str) -> Path:
    """``folder``, created when missing; refused when it is not a folder or cannot be written in."""
    folder = Path(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except FileExistsError:
        raise UserError(f"{option}: {folder} is a file, not a folder; choose another path") from None
    except OSError as e:
        raise UserError(f"{option}: cannot create the folder {folder} ({e.strerror or e}); "
                        "choose a writable folder") from None
    try:  # the only reliable test (root ignores modes; /proc and read-only mounts refuse anyway)
        fd, probe = tempfile.mkstemp(prefix=".prune-lut-probe.", suffix=".tmp", dir=folder)
        os.close(fd)
        os.unlink(probe)
    except OSError as e:
        raise UserError(f"{option}: cannot write in {folder} ({e.strerror or e}); choose a writable folder") from None
    return folder


def check_outputs(outputs: Sequence[Output], inputs: Iterable[tuple[str, PathLike | None]] = ()) -> None:
    """Refuse, before any work, every output of a command that the policy (module docstring) forbids.

    ``inputs``: (option, path) of every file the command reads (None: not given).
    """
    ins = [(opt, Path(p)) for opt, p in inputs if p is not None]
    seen: list[tuple[str, Path]] = []
    for o in outputs:
        if o.path is None:
            continue
        p = Path(o.path)
        if p.is_dir():
            raise UserError(f"{o.shown} is a folder; give a file name (e.g. {p / 'NAME'})")
        for opt, q in ins:
            if same_file(p, q):
                raise UserError(f"{o.shown} is the file this command reads as {opt}; writing it would "
                                f"destroy it: choose another {o.option}")
        for other, q in seen:
            if same_file(p, q):
                raise UserError(f"{o.name or o.option} and {other} are the same file ({p}); give each its own")
        if (p.exists() or p.is_symlink()) and not o.replace:
            raise UserError(f"{p} exists; " + o.hint.format(option=o.option))
        writable_folder(p.parent, o.option)
        seen.append((o.name or o.option, p))


def check_inputs_distinct(inputs: Sequence[tuple[str, PathLike]]) -> None:
    """Refuse one file given twice where each input must count once (``lut merge`` of one shard twice)."""
    for i, (a, pa) in enumerate(inputs):
        for b, pb in inputs[:i]:
            if same_file(pa, pb):
                raise UserError(f"{pa} is given twice ({b} and {a}); give each file once")
