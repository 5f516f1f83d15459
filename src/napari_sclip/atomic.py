"""Files appear whole or not at all: write to a temporary name in the same folder, then rename.

A run killed while writing (SIGKILL, power loss, Ctrl+C) leaves at most a ``.partial`` file
behind, never a truncated file under the final name; readers of the folder never see half a file.
"""

from __future__ import annotations

import contextlib
import os
import re
import secrets
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

PARTIAL = ".partial"


def temporary_name(path: Path) -> Path:
    """A unique hidden sibling of ``path`` to write before renaming (same folder, so the rename is
    atomic); it keeps the suffix, for writers that pick the format from it."""
    return path.with_name(f".{path.stem}.{os.getpid()}-{secrets.token_hex(4)}{PARTIAL}{path.suffix}")


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path to write; on success it replaces ``path`` in one step, on error it is
    removed. For writers that want a file name (tifffile, PNG encoders)."""
    path = Path(path)
    tmp = temporary_name(path)
    try:
        yield tmp
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise


def write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically (flushed to disk before the rename)."""
    path = Path(path)
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
    return path


def write_text(path: str | os.PathLike, text: str) -> Path:
    """Write UTF-8 ``text`` to ``path`` atomically (newlines as given)."""
    return write_bytes(path, text.encode("utf-8"))


_PARTIAL_NAME = re.compile(r"^\..+\.(\d+)-[0-9a-f]{8}\.partial(\.[^.]*)?$")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def sweep(folder: str | os.PathLike) -> list[Path]:
    """Remove temporary files that a killed writer left in ``folder`` (their process is gone)."""
    removed = []
    folder = Path(folder)
    if not folder.is_dir():
        return removed
    for path in folder.iterdir():
        match = _PARTIAL_NAME.match(path.name)
        if match and int(match.group(1)) != os.getpid() and not _alive(int(match.group(1))):
            with contextlib.suppress(OSError):
                path.unlink()
                removed.append(path)
    return removed


def sweep_folders(prefix: str, folder: str | os.PathLike | None = None) -> None:
    """Remove the temporary folders ``<prefix><pid>-*`` (in ``folder``, default the system's
    temporary directory) of processes that are gone (killed before they could clean up)."""
    root = Path(folder or tempfile.gettempdir())
    for path in root.glob(f"{prefix}*-*"):
        pid = path.name[len(prefix) :].split("-", 1)[0]
        if pid.isdigit() and int(pid) != os.getpid() and not _alive(int(pid)):
            shutil.rmtree(path, ignore_errors=True)
