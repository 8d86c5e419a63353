"""Atomic file writes: a reader sees the old file or the whole new one, never a part.

Everything sciml writes that a crash could tear (staged samples, dataset files,
checkpoints, configs, metrics) goes through here.

Examples
--------
>>> from sciml.atomic import atomic_write_json
>>> atomic_write_json("metrics.json", {"rel_l2": 0.01})     # doctest: +SKIP
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from pathlib import Path


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


@contextlib.contextmanager
def temporary_beside(path: str | os.PathLike):
    """Yield a temporary path in ``path``'s folder; on success fsync it and rename it over
    ``path`` (with the permissions a plain ``open`` would give), else remove it."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        yield tmp
        with open(tmp, "rb+") as handle:
            os.fsync(handle.fileno())
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    if hasattr(os, "O_DIRECTORY"):  # make the rename itself durable (POSIX)
        dir_fd = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)


def atomic_write_bytes(path: str | os.PathLike, write) -> None:
    """Call ``write(fileobj)`` on a temporary binary file, then rename it over ``path``."""
    with temporary_beside(path) as tmp, open(tmp, "wb") as handle:
        write(handle)


def atomic_write_json(path: str | os.PathLike, obj) -> None:
    """Write ``obj`` as indented JSON atomically."""
    atomic_write_bytes(path, lambda h: h.write(json.dumps(obj, indent=2, sort_keys=True).encode()))
