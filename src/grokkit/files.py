"""Files on disk, handled so that a folder's contents cannot be turned against the user.

Writes go to a temporary file in the same folder, which is then renamed into place: a run killed at
any moment leaves the old file or the new one, never half of one, and a name that is a symbolic
link is replaced by the new file instead of being written through (the link's target, which may lie
anywhere, is never touched). New files follow the user's umask, like any file a program creates.

Reads open only regular files: a FIFO would block forever and ``/dev/zero`` would fill the memory,
so a name that is anything else is refused in one line before a byte is read. Reading through a
link to a regular file is allowed (a user may link a run's files in from elsewhere); writing is not.

No torch here: plots and the command line use these without importing it.
"""

from __future__ import annotations

import errno
import json
import os
import stat
import tempfile
from pathlib import Path
from typing import BinaryIO

from grokkit.errors import InputError, StorageError

TEMPORARY_SUFFIX = ".tmp"  # .<name>.<random>.tmp: a write in progress, or one a kill interrupted


class NotAFileError(InputError):
    """A path grokkit would read is not a regular file (a FIFO, a device, a folder)."""


def _read_umask() -> int:
    """This process's umask, read once: setting it to read it (the portable way) would, for that
    instant, let another thread's new file get mode 0666, so Linux's own record is read instead."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0)  # at import, before any other thread of ours exists
    os.umask(mask)
    return mask


_FILE_MODE = 0o666 & ~_read_umask()


def temporary_name_of(path: Path) -> tuple[str, str]:
    """The prefix and suffix of ``path``'s temporary files (what ``remove_stale_temporaries``
    removes)."""
    return f".{Path(path).name}.", TEMPORARY_SUFFIX


def atomic_write_bytes(path: Path, data: bytes, previous: Path | None = None) -> None:
    """Write ``data`` to ``path`` through a temporary file and a rename, first moving the current
    ``path`` to ``previous`` if given. A link at ``path`` is replaced, never followed. A refused
    write raises StorageError naming ``path`` and leaves the old file in place."""
    path = Path(path)
    tmp = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        prefix, suffix = temporary_name_of(path)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=prefix, suffix=suffix)
        os.fchmod(fd, _FILE_MODE)  # mkstemp makes 0600; a program's files follow the umask
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        if previous is not None and os.path.lexists(path):
            _keep_as_previous(path, previous)
        os.replace(tmp, path)  # replaces a link at path itself, not the file it points to
        tmp = None
    except OSError as e:
        kept_any = os.path.lexists(path) or (previous is not None and os.path.lexists(previous))
        kept = "the previous version is kept" if kept_any else "nothing was written"
        reason = (
            "no space left on the device" if e.errno == errno.ENOSPC else (e.strerror or str(e))
        )
        raise StorageError(e.errno, f"cannot write {path}: {reason}; {kept}") from None
    finally:
        if tmp is not None:
            Path(tmp).unlink(missing_ok=True)


def _keep_as_previous(path: Path, previous: Path) -> None:
    """``previous`` becomes the file now at ``path``, which stays in place until the new one is
    renamed over it: a reader (``grokkit show``, ``load_run``) never finds ``path`` missing. A
    hard link, renamed into place; where the filesystem has none, the file is moved (a crash
    before the next rename still leaves ``previous``, loadable)."""
    if os.path.islink(path):  # a planted link is moved aside, never linked to its target
        os.replace(path, previous)
        return
    prefix, suffix = temporary_name_of(previous)
    link = path.parent / f"{prefix}link{suffix}"
    link.unlink(missing_ok=True)  # a killed write's (the caller holds the folder's lock)
    try:
        os.link(path, link, follow_symlinks=False)
    except OSError:
        os.replace(path, previous)
        return
    os.replace(link, previous)


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write_bytes(path, text.encode())


def write_json(path: Path, obj) -> None:
    atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=False) + "\n")


def remove_stale_temporaries(folder: Path) -> list[Path]:
    """Delete the temporary files a killed write left in ``folder`` (call it only while holding
    the folder's lock: then no write of ours is in progress there). Returns what was removed."""
    removed = []
    folder = Path(folder)
    if not folder.is_dir() or folder.is_symlink():
        return removed
    for p in folder.iterdir():
        if (
            p.name.startswith(".")
            and p.name.endswith(TEMPORARY_SUFFIX)
            and p.is_file()
            and not p.is_symlink()
        ):
            try:
                p.unlink()
                removed.append(p)
            except OSError:
                pass  # only tidying: a file we cannot remove is left for the next time
    return removed


def open_regular(path: Path) -> BinaryIO:
    """``path`` opened for reading in binary, if it is a regular file (following links); a FIFO,
    device or folder raises NotAFileError without blocking, a missing file FileNotFoundError."""
    path = Path(path)
    # O_NONBLOCK: opening a FIFO for reading would otherwise wait for a writer, forever.
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    try:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            raise NotAFileError(
                f"{path} is {_kind(mode)}, not a regular file; grokkit reads only files"
            )
        os.set_blocking(fd, True)
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def read_regular_bytes(path: Path) -> bytes:
    """The bytes of a regular file (see ``open_regular``)."""
    with open_regular(path) as f:
        return f.read()


def _kind(mode: int) -> str:
    if stat.S_ISDIR(mode):
        return "a folder"
    if stat.S_ISFIFO(mode):
        return "a FIFO"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    if stat.S_ISSOCK(mode):
        return "a socket"
    return "something other than a file"
