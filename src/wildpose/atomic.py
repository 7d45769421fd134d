"""Write outputs under a temporary sibling name and rename on success, so no half-written file is ever
seen under its final name (a crash, a kill or an exception leaves either the old file or nothing).

Temporary names are ``.<name>.partial.<host>.<pid>.<random>``: a process killed outright (SIGKILL, power loss)
cannot delete its own, so ``remove_stale_partials`` deletes those whose process on this host is gone, and
never one that a live process (another run writing to the same folder) is still assembling.
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import shutil
import socket
import tempfile
from pathlib import Path
from typing import Iterator

_STALE = re.compile(r"^\.(?P<name>.+)\.(?:partial|old)\.(?P<host>[^.]+)\.(?P<pid>\d+)\.")


def _tag() -> str:
    # a host name with dots would break the pattern above: only its first label is used
    host = re.sub(r"[^A-Za-z0-9_-]", "_", socket.gethostname().split(".")[0]) or "host"
    return f"{host}.{os.getpid()}"


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, suffix: str | None = None) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; on success rename it over ``path``, on error delete it.

    ``suffix`` defaults to the final name's suffix, so that libraries which pick a format from the
    extension (PyAV, numpy) still see it.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}.partial.{_tag()}.", suffix=path.suffix if suffix is None else suffix,
                               dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    mode = 0o666 & ~_umask()  # mkstemp makes 0600 files; outputs get the user's usual mode
    os.chmod(tmp_path, mode)
    try:
        yield tmp_path
        # again: some writers replace the file they are given by one of their own (safetensors does, 0600)
        os.chmod(tmp_path, mode)
        os.replace(tmp_path, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp_path.unlink()
        raise


def _umask() -> int:
    """The process's umask (reading it means setting it, so set it straight back)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


@contextlib.contextmanager
def atomic_dir(final: str | os.PathLike) -> Iterator[Path]:
    """Assemble a folder under a temporary name; on success it replaces ``final`` whole, on error it vanishes.

    The folder gets the mode any folder the user makes gets (``mkdtemp`` alone would leave it 0700, unreadable
    by the group or a web server).
    """
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.partial.{_tag()}.", dir=final.parent))
    try:
        os.chmod(tmp, 0o777 & ~_umask())
        yield tmp
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    try:
        _swap_in(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def _swap_in(tmp: Path, final: Path, attempts: int = 5) -> None:
    """Rename the finished folder ``tmp`` to ``final``, replacing a folder already there.

    A folder cannot be renamed over a non-empty one, so the old one is moved aside first and deleted after. Two
    runs finishing the same output at once race between those steps; the one that finds ``final`` taken again
    moves that aside too and retries, so the last to finish wins and ``final`` is always one complete folder.
    If the rename fails for another reason, the previous output is put back: nothing is lost.
    """
    for _ in range(attempts):
        old = None
        if final.exists():
            old = final.parent / f".{final.name}.old.{_tag()}.{os.urandom(4).hex()}"
            try:
                os.replace(final, old)
            except FileNotFoundError:  # the other run moved it aside first
                old = None
        try:
            os.replace(tmp, final)
        except OSError as exc:
            if old is not None:
                with contextlib.suppress(OSError):
                    os.replace(old, final)  # put the previous output back
                if old.exists():  # another run's output is at ``final`` now: the superseded one can go
                    shutil.rmtree(old, ignore_errors=True)
            if exc.errno in (errno.ENOTEMPTY, errno.EEXIST):
                continue  # another run put its folder there in between: go again
            raise
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
        return
    raise OSError(errno.EBUSY, f"{final}: other processes keep replacing this folder")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process: alive
        return True
    return True


def remove_stale_partials(folder: str | os.PathLike, name: str | None = None) -> list[Path]:
    """Delete the temporary files and folders in ``folder`` left by killed processes of this host (only those
    of output ``name``, if given); returns what was removed. Those of live processes stay. A previous output that
    was moved aside when the process died is put back under its name if nothing replaced it."""
    folder = Path(folder)
    removed = []
    try:
        entries = list(folder.iterdir())
    except OSError:
        return removed
    host = _tag().split(".")[0]
    for entry in entries:
        m = _STALE.match(entry.name)
        if m is None or m["host"] != host or (name is not None and m["name"] not in (name, Path(name).stem)):
            continue
        pid = int(m["pid"])
        if pid == os.getpid() or _alive(pid):
            continue
        final = folder / m["name"]
        if ".old." in entry.name and not final.exists():
            # killed between moving the previous output aside and renaming the new one in: put it back
            with contextlib.suppress(OSError):
                os.replace(entry, final)
                removed.append(entry)
                continue
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry, ignore_errors=True)
        else:
            with contextlib.suppress(FileNotFoundError):
                entry.unlink()
        removed.append(entry)
    return removed
