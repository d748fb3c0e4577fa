"""Folders replaced whole: built beside their target and swapped in only once complete, so that a failed or
interrupted run never leaves a half-written folder, never destroys the previous one, and never leaves nothing.

Used for model bundles (app.bundle), dataset folders (app.datasets) and the dashboard's sample folders.

How `replace_when_complete` replaces `<name>`:
- The new folder is built in a hidden sibling `.<name>.staging-<pid>-<random>` (same disk, same folder).
- On Linux the two folders are swapped in one step (`renameat2` with `RENAME_EXCHANGE`): at every moment
  `<name>` is the old folder or the new one. The old one, now under the staging name, is then deleted.
- Where the swap is unavailable (another OS, or a filesystem that refuses it), two renames: the old folder aside
  to `.<name>.old-<pid>-<random>`, then the new one in. A process killed between the two leaves no `<name>`; the
  next run that looks for it (a write of it, `Predictor.load`, a listing: `restore_interrupted`) renames the old
  folder back.
- Folders left by killed runs (their name carries the id of a process that is gone, or they are over a day old)
  are deleted when the same target is next written (`remove_stale`). Nothing else is ever deleted.

Example:
    >>> import pathlib, tempfile
    >>> with tempfile.TemporaryDirectory() as parent:
    ...     target = pathlib.Path(parent) / "dataset"
    ...     for text in ("old", "new"):
    ...         with replace_when_complete(target, marker=(".made-by", "example")) as staging:
    ...             _ = (staging / "a.txt").write_text(text)
    ...     sorted(path.name for path in pathlib.Path(parent).iterdir()), (target / "a.txt").read_text()
    (['dataset'], 'new')
"""

from __future__ import annotations

import ctypes
import errno
import functools
import logging
import os
import re
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

log = logging.getLogger(__name__)

STALE_AFTER_SECONDS = 24 * 3600  # a leftover this old is stale even if a process of its id is running
# Ours: .<name>.staging-<pid>-<8 random> (a folder being built) and .<name>.old-<pid>-<8 random> (set aside).
_LEFTOVER = re.compile(r"^\.(?P<name>.+)\.(?P<role>staging|old)-(?P<pid>\d+)-[a-z0-9_]{8}$")
# Set aside by OnePipe versions that put no process id in the name: put back, never deleted.
_EARLIER_RETIRED = re.compile(r"^\.(?P<name>.+)\.old-[a-z0-9_]{8}$")
_AT_FDCWD = -100  # renameat2: paths relative to the working directory
_RENAME_EXCHANGE = 2  # renameat2: swap the two paths
_UNSUPPORTED = {errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP, errno.ENOTSUP}


@contextmanager
def replace_when_complete(target: Path, marker: tuple[str, str] | None = None) -> Iterator[Path]:
    """Yield an empty staging folder beside `target`; when the block ends without error it takes `target`'s place.

    Before: an interrupted earlier replacement of `target` is repaired (`restore_interrupted`) and its stale
    leftovers deleted (`remove_stale`). On success the marker file (name, text) is written into the new folder,
    if given, and the new folder replaces `target` (see the module docstring); the old one is deleted. On
    failure `target` is untouched: an error in the block leaves it as it was, and if the new folder cannot be
    moved in, the old one stays or is put back. At cleanup the staging folder is removed either way.

    Args:
        target: the folder to create or replace (its parent is created if missing).
        marker: (file name, text) written into the new folder when it is complete, or None.
    """
    target.parent.mkdir(parents=True, exist_ok=True)
    restore_interrupted(target)
    remove_stale(target)
    staging = _new_sibling(target, "staging")
    staging.chmod(0o755)  # mkdtemp makes it private; the folder it becomes is an ordinary one
    try:
        yield staging
        if marker is not None:
            (staging / marker[0]).write_text(f"{marker[1]}\n")
        _move_into_place(staging, target)
    finally:
        _remove(staging)  # after a swap it holds the old folder


def restore_interrupted(target: Path) -> Path | None:
    """Put back the folder an interrupted replacement set aside, when `target` is missing.

    Returns:
        `target` if a folder was put back there; None if `target` exists, nothing was set aside, the process
        that set it aside is still running, or the rename failed (logged: a listing must not fail on it).
    """
    if target.exists() or target.is_symlink():
        return None
    retired = [
        path for path, role, pid in _leftovers(target) if role == "old" and (pid is None or _abandoned(path, pid))
    ]
    if not retired:
        return None
    newest = max(retired, key=_modified)
    try:
        newest.rename(target)
    except OSError as error:
        log.warning("could not put back %s, set aside by an interrupted replacement, as %s: %s", newest, target, error)
        return None
    log.warning("%s was missing after an interrupted replacement; put back the previous one from %s", target, newest)
    return target


def restore_interrupted_in(folder: Path) -> list[Path]:
    """`restore_interrupted` for every target in `folder` that has a set-aside folder: what was put back."""
    try:
        names = sorted({match["name"] for match in map(_match, Path(folder).iterdir()) if match})
    except OSError:
        return []
    return [restored for name in names if (restored := restore_interrupted(Path(folder) / name))]


def remove_stale(target: Path) -> list[Path]:
    """Delete the staging and set-aside folders of `target` that killed runs left: only folders named as this
    module names them, whose process is gone or that are over STALE_AFTER_SECONDS old; a set-aside folder is
    kept while `target` is missing (`restore_interrupted` puts it back).

    Returns:
        The folders deleted.
    """
    missing = not (target.exists() or target.is_symlink())
    removed = []
    for path, role, pid in _leftovers(target):
        if pid is None or not _abandoned(path, pid) or (role == "old" and missing):
            continue
        _remove(path)
        removed.append(path)
        log.info("deleted %s, left by an interrupted write of %s", path, target)
    return removed


def exchange_paths(first: Path, second: Path) -> bool:
    """Swap two existing paths in one step (Linux `renameat2(…, RENAME_EXCHANGE)`, glibc 2.28 and later).

    Returns:
        True once swapped; False, changing nothing, where the system or the filesystem cannot swap.

    Raises:
        OSError: any other failure (a path missing, no permission …).
    """
    renameat2 = _renameat2()
    if renameat2 is None:
        return False
    if renameat2(_AT_FDCWD, os.fsencode(first), _AT_FDCWD, os.fsencode(second), _RENAME_EXCHANGE) == 0:
        return True
    code = ctypes.get_errno()
    if code in _UNSUPPORTED:
        return False
    raise OSError(code, os.strerror(code), str(first), None, str(second))


@functools.cache
def _renameat2() -> Callable[..., int] | None:
    """libc's renameat2, or None where there is none (not Linux, an older or another C library)."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        function = ctypes.CDLL(None, use_errno=True).renameat2
    except (OSError, AttributeError):
        return None
    function.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    function.restype = ctypes.c_int
    return function


def _move_into_place(staging: Path, target: Path) -> None:
    """Make `staging` the folder at `target`: a rename if there is none; else a swap, in one step where the system
    can (the old folder is then at `staging`), or in two renames (the old folder is put back if the second
    fails, and deleted once the new one is in)."""
    if not (target.exists() or target.is_symlink()):
        staging.rename(target)
        return
    if exchange_paths(staging, target):
        return
    log.debug("swapping folders in one step is not available here; replacing %s in two renames", target)
    retired = _new_sibling(target, "old")
    try:
        target.replace(retired)  # an empty folder is replaced by the rename
    except BaseException:
        retired.rmdir()
        raise
    try:
        staging.rename(target)
    except BaseException:
        retired.rename(target)  # put the old folder back
        raise
    _remove(retired)


def _new_sibling(target: Path, role: str) -> Path:
    """A new empty hidden folder `.<name>.<role>-<pid>-<random>` beside `target`."""
    return Path(tempfile.mkdtemp(prefix=f".{target.name}.{role}-{os.getpid()}-", dir=target.parent))


def _match(path: Path) -> re.Match[str] | None:
    return _LEFTOVER.match(path.name) or _EARLIER_RETIRED.match(path.name)


def _leftovers(target: Path) -> list[tuple[Path, str, int | None]]:
    """(folder, "staging" or "old", process id or None) of each folder of ours beside `target` that belongs to
    it; no process id for one set aside by an earlier OnePipe."""
    prefix = f".{target.name}."
    try:
        siblings = [path for path in target.parent.iterdir() if path.name.startswith(prefix)]
    except OSError:
        return []
    found = []
    for path in siblings:
        match = _match(path)
        if not match or match["name"] != target.name or path.is_symlink() or not path.is_dir():
            continue
        pid = match.groupdict().get("pid")
        found.append((path, match.groupdict().get("role", "old"), None if pid is None else int(pid)))
    return found


def _abandoned(path: Path, pid: int) -> bool:
    """Whether the process that made `path` is gone (or `path` is older than STALE_AFTER_SECONDS)."""
    if pid != os.getpid() and not _process_running(pid):
        return True
    return time.time() - _modified(path) > STALE_AFTER_SECONDS


def _process_running(pid: int) -> bool:
    """Whether a process of this id runs on this machine (True when that cannot be told)."""
    if os.name == "nt":
        return True  # os.kill(pid, 0) would interrupt it
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (OverflowError, ValueError):
        return False  # no process has such an id
    except OSError:
        return True  # it exists but belongs to another user
    return True


def _modified(path: Path) -> float:
    try:
        return path.lstat().st_mtime
    except OSError:
        return 0.0


def _remove(path: Path) -> None:
    """Delete a folder (or a file or link), ignoring what cannot be deleted; a later run retries."""
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    elif path.is_symlink() or path.exists():
        with suppress(OSError):
            path.unlink()
