"""The one overwrite rule of every command that writes an output folder or file.

An output that does not exist yet (or an empty folder) is written. One that exists is replaced
only with ``--overwrite``; an unfinished run continues with ``--resume`` where the command has one
(``finetune``, ``compress``). A non-empty folder that edgeprune did not write (no run, no bundle)
is never replaced, ``--overwrite`` or not, so a mistyped ``--out`` cannot delete anything else.
Every check runs before any work starts; the commands replace the old output only once the new
one is complete (bundles, reports) or once its inputs have been checked (training runs).
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Callable, Literal

from .errors import ConfigError
from .io import check_writable_dir

State = Literal["new", "finished", "partial"]
Kind = Callable[[Path], Literal["finished", "partial"] | None]  # what a non-empty folder holds; None: not ours


def output_dir(path: str | os.PathLike[str], what: str, kind: Kind, *, overwrite: bool, resume: bool | None = None,
               flag: str = "--out") -> State:
    """Check ``path`` as an output folder holding ``what`` (e.g. "export bundle"); its state, or a ConfigError.

    ``resume`` is None for a command without ``--resume``.
    """
    path = check_writable_dir(path)
    if not path.is_dir() or not any(path.iterdir()):
        return "new"
    state = kind(path)
    if state is None:
        raise ConfigError(f"{flag} {path} is not empty and holds no {what}; choose a new or empty folder "
                          f"(--overwrite replaces only what edgeprune wrote)")
    if overwrite or resume:
        return state
    if state == "partial":
        again = "pass --resume to continue it or --overwrite to start again" if resume is not None else \
            "pass --overwrite to start again"
        raise ConfigError(f"{flag} {path} holds an unfinished {what}; {again}")
    raise ConfigError(f"{flag} {path} already holds a finished {what}; pass --overwrite to replace it, or choose "
                      f"another {flag}")


def output_file(path: str | os.PathLike[str] | None, *, overwrite: bool, flag: str, example: str) -> None:
    """Check ``path`` (None: not asked for) as an output file; missing parent folders are created later."""
    if path is None:
        return
    p = Path(path)
    if p.is_dir():
        raise ConfigError(f"{flag} {p} is a directory; give a file name such as {flag} {example}")
    parent = p.parent if str(p.parent) else Path(".")
    while not parent.exists():
        parent = parent.parent
    if not parent.is_dir():
        raise ConfigError(f"{flag} {p}: {parent} is a file, not a folder")
    if not os.access(parent, os.W_OK):
        raise ConfigError(f"{flag} {p}: folder {parent} is not writable")
    if p.exists() and not overwrite:
        raise ConfigError(f"{p} already exists; pass --overwrite to replace it, or choose another {flag}")
