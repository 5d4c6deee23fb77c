"""Files on disk, handled so that a folder's contents cannot be turned against the user.

Writes go to a temporary file in the same folder, which is then renamed into place: a run killed at
any moment leaves the old file or the new one, never half of one, and a name that is a symbolic
link is replaced by the new file instead of being written through (the link's target, which may lie
anywhere, is never touched). New files follow the user's umask, like any file a program creates.

Folders get the same rule inside a guarded folder (``guarded_folder``: a run or sweep folder while
its lock is held): every folder between it and the file is opened without following a link, a
link planted at one (``checkpoints/``, swapped in while training) is replaced by a real folder,
and the file is then created and renamed relative to the folder's open descriptor, so a link
swapped in after that cannot redirect it either.

Reads open only regular files: a FIFO would block forever and ``/dev/zero`` would fill the memory,
so a name that is anything else is refused in one line before a byte is read. Reading through a
link to a regular file is allowed (a user may link a run's files in from elsewhere); writing is not.

No torch here: plots and the command line use these without importing it.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import secrets
import stat
from collections.abc import Iterator
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


_GUARDED: dict[str, int] = {}  # absolute folder -> how many holders guard it (re-entrant)


@contextlib.contextmanager
def guarded_folder(folder: Path) -> Iterator[None]:
    """Within it, no write below ``folder`` goes through a link at one of its subfolders. Both
    the path as given and its resolved form are guarded (callers name it either way)."""
    keys = {os.path.abspath(folder), os.path.realpath(folder)}
    for key in keys:
        _GUARDED[key] = _GUARDED.get(key, 0) + 1
    try:
        yield
    finally:
        for key in keys:
            _GUARDED[key] -= 1
            if not _GUARDED[key]:
                del _GUARDED[key]


def _guarding_root(folder: str) -> str | None:
    """The outermost guarded folder that ``folder`` (absolute, not resolved) lies in, if any:
    the outermost, so that a sweep's ``runs/`` is checked too when the sweep trains in-process."""
    found = [r for r in _GUARDED if folder == r or folder.startswith(r.rstrip(os.sep) + os.sep)]
    return min(found, key=len) if found else None


_DIRECTORY = os.O_RDONLY | getattr(os, "O_DIRECTORY", 0) | getattr(os, "O_CLOEXEC", 0)


def open_folder(folder: Path) -> int:
    """A descriptor of ``folder``, created if missing. Inside a guarded folder every component
    below the guarded one is a real folder: a link there is replaced by a new, empty folder (its
    target is never written), as a link at a file's name is replaced by the file."""
    folder = os.path.abspath(folder)
    root = _guarding_root(folder)
    if root is None:
        os.makedirs(folder, exist_ok=True)
        return os.open(folder, _DIRECTORY)
    fd = os.open(root, _DIRECTORY)  # the guarded folder itself: the user's choice, links allowed
    try:
        for name in Path(os.path.relpath(folder, root)).parts if folder != root else ():
            child = _open_real_subfolder(fd, name)
            os.close(fd)
            fd = child
    except BaseException:
        os.close(fd)
        raise
    return fd


def _open_real_subfolder(parent: int, name: str) -> int:
    nofollow = _DIRECTORY | getattr(os, "O_NOFOLLOW", 0)
    for _ in range(3):  # a link replaced, then replaced again by someone: give up after that
        try:
            return os.open(name, nofollow, dir_fd=parent)
        except FileNotFoundError:
            with contextlib.suppress(FileExistsError):
                os.mkdir(name, 0o777, dir_fd=parent)
        except OSError as e:
            is_link = stat.S_ISLNK(os.stat(name, dir_fd=parent, follow_symlinks=False).st_mode)
            if not is_link:
                raise OSError(e.errno, f"{name} is not a folder") from None
            os.unlink(name, dir_fd=parent)  # the link itself, never what it points to
            os.mkdir(name, 0o777, dir_fd=parent)
    raise OSError(errno.ELOOP, f"{name} keeps being replaced by a link")


def ensure_real_folder(folder: Path) -> None:
    """``folder`` made to exist as ``open_folder`` would (a link in a guarded folder replaced),
    for writers that take a path (TensorBoard's, W&B's): the folder they then open is real."""
    try:
        os.close(open_folder(folder))
    except OSError as e:
        raise StorageError(e.errno, f"cannot create {folder}: {e.strerror or e}") from None


def _create_temporary(dir_fd: int, path: Path) -> tuple[int, str]:
    prefix, suffix = temporary_name_of(path)
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0)
    for _ in range(100):
        name = f"{prefix}{secrets.token_hex(4)}{suffix}"
        try:
            fd = os.open(name, flags | getattr(os, "O_CLOEXEC", 0), 0o600, dir_fd=dir_fd)
        except FileExistsError:
            continue
        return fd, name
    raise OSError(errno.EEXIST, "no free temporary name")


def atomic_write_bytes(path: Path, data: bytes, previous: Path | None = None) -> None:
    """Write ``data`` to ``path`` through a temporary file and a rename, first moving the current
    ``path`` to ``previous`` (a name in the same folder) if given. A link at ``path``, or at a
    folder below a guarded one, is replaced, never followed. A refused write raises StorageError
    naming ``path``, saying what stays on disk, and leaves the old file in place."""
    path = Path(path)
    folder = tmp = None
    try:
        folder = open_folder(path.parent)
        fd, tmp = _create_temporary(folder, path)
        os.fchmod(fd, _FILE_MODE)  # created 0600; a program's files follow the umask
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        at = {"src_dir_fd": folder, "dst_dir_fd": folder}
        if previous is not None and _exists(path.name, folder):
            _keep_as_previous(path.name, Path(previous).name, folder)
        os.replace(tmp, path.name, **at)  # replaces a link at path itself, not its target
        tmp = None
    except OSError as e:
        raise _refused(e, path, previous, folder) from None
    finally:
        if tmp is not None:
            with contextlib.suppress(OSError):
                os.unlink(tmp, dir_fd=folder)
        if folder is not None:
            os.close(folder)


def _exists(name: str, folder: int | None) -> bool:
    if folder is None:
        return False
    try:
        os.stat(name, dir_fd=folder, follow_symlinks=False)
    except OSError:
        return False
    return True


def _refused(e: OSError, path: Path, previous: Path | None, folder: int | None) -> StorageError:
    """The one line of a refused write: the file, the reason, and what is on disk now (the
    partial file is removed; an earlier version, if any, stays)."""
    kept_any = _exists(path.name, folder) or (
        previous is not None and _exists(Path(previous).name, folder)
    )
    kept = (
        "its previous version is kept"
        if kept_any
        else f"{path.name} was not written (there was no earlier version)"
    )
    reason = "no space left on the device" if e.errno == errno.ENOSPC else (e.strerror or str(e))
    return StorageError(e.errno, f"cannot write {path}: {reason}; {kept}")


def _keep_as_previous(name: str, previous: str, folder: int) -> None:
    """``previous`` becomes the file now at ``name`` (both in ``folder``, an open descriptor),
    which stays in place until the new one is renamed over it: a reader (``grokkit show``,
    ``load_run``) never finds it missing. A hard link, renamed into place; where the filesystem
    has none, the file is moved (a crash before the next rename still leaves ``previous``,
    loadable)."""
    at = {"src_dir_fd": folder, "dst_dir_fd": folder}
    if stat.S_ISLNK(os.stat(name, dir_fd=folder, follow_symlinks=False).st_mode):
        os.replace(name, previous, **at)  # a planted link is moved aside, never linked to
        return
    prefix, suffix = temporary_name_of(Path(previous))
    link = f"{prefix}link{suffix}"
    with contextlib.suppress(FileNotFoundError):  # a killed write's (the caller holds the lock)
        os.unlink(link, dir_fd=folder)
    try:
        os.link(name, link, follow_symlinks=False, **at)
    except OSError:
        os.replace(name, previous, **at)
        return
    os.replace(link, previous, **at)


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
