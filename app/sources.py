"""Reading what a user gives us (a path or the file's bytes) the same way for audio and images, in `predict`,
`evaluate`, `train` and the dashboard.

Only regular files are read. A FIFO, a socket or a device is refused from its status before it is opened (opening
a FIFO to read waits for a writer; a device never ends), as are links that lead nowhere or in a circle; each gets
its own message. Sizes are limited by app.limits.MAX_FILE_BYTES.

Example:
    >>> import os
    >>> import tempfile
    >>> from pathlib import Path
    >>> scratch = tempfile.TemporaryDirectory()
    >>> folder = Path(scratch.name)
    >>> os.mkfifo(folder / "pipe.wav")
    >>> read_source_bytes(folder / "pipe.wav", "expected audio")
    Traceback (most recent call last):
    ...
    app.errors.InputError: 'pipe.wav' is a FIFO, not a regular file; expected audio
    >>> (folder / "loop.wav").symlink_to(folder / "loop.wav")
    >>> read_source_bytes(folder / "loop.wav", "expected audio")
    Traceback (most recent call last):
    ...
    app.errors.InputError: 'loop.wav' is a symbolic link loop, not a regular file; expected audio
    >>> scratch.cleanup()
"""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path

from app.errors import InputError
from app.limits import MAX_FILE_BYTES

Source = str | Path | bytes | bytearray | memoryview
# What a file that is not a regular file is, by the file-type bits of its status.
SPECIAL_FILE_KINDS = {
    stat.S_IFIFO: "a FIFO",
    stat.S_IFSOCK: "a socket",
    stat.S_IFCHR: "a character device",
    stat.S_IFBLK: "a block device",
}
__all__ = ["MAX_FILE_BYTES", "Source", "describe_source", "read_source_bytes"]


def describe_source(source: Source) -> str:
    """A short description of an input for error messages ("1,234 bytes", "'clip.pdf'")."""
    if isinstance(source, (bytes, bytearray, memoryview)):
        return f"{len(source):,} bytes"
    return f"'{Path(source).name}'"


def read_source_bytes(source: Source, expected: str) -> bytes:
    """The bytes of a path or byte string.

    Args:
        source: a path or the file's bytes.
        expected: what the caller accepts, for the message ("expected audio: wav, flac, …").

    Raises:
        InputError: the file is missing, a folder, not a regular file (a FIFO, socket or device), a broken or
            looping link, unreadable, empty or over MAX_FILE_BYTES.
    """
    if isinstance(source, (bytes, bytearray, memoryview)):
        if len(source) > MAX_FILE_BYTES:
            raise InputError(_too_large(describe_source(source), len(source), expected))
        data = bytes(source)
    else:
        data = _read_regular_file(Path(source), expected)
    if not data:
        raise InputError(f"received a 0-byte file; {expected}")
    return data


def _read_regular_file(path: Path, expected: str) -> bytes:
    """The bytes of `path` once its status shows a regular file of at most MAX_FILE_BYTES; opened without waiting
    (a file replaced by a FIFO after the check is refused by the status of what was opened)."""
    _check_regular(_status(path, expected), path, expected)
    try:
        descriptor = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0))
    except OSError as error:
        raise InputError(_unreadable(path, error, expected)) from None
    with open(descriptor, "rb", closefd=True) as handle:
        status = os.fstat(descriptor)
        _check_regular(status, path, expected)
        data = handle.read(status.st_size + 1)
        if len(data) > status.st_size:  # it grew since: read on, up to the limit
            data += handle.read(MAX_FILE_BYTES + 1 - len(data))
    if len(data) > MAX_FILE_BYTES:
        raise InputError(_too_large(describe_source(path), len(data), expected))
    return data


def _status(path: Path, expected: str) -> os.stat_result:
    """os.stat of `path` (links followed); InputError naming what is wrong when there is nothing to read."""
    try:
        return os.stat(path)
    except FileNotFoundError:
        if os.path.islink(path):
            raise InputError(
                f"{describe_source(path)} is a broken symbolic link (its target does not exist); {expected}"
            ) from None
        raise InputError(f"no such file: {path}") from None
    except OSError as error:
        raise InputError(_unreadable(path, error, expected)) from None


def _check_regular(status: os.stat_result, path: Path, expected: str) -> None:
    """InputError unless `status` is that of a regular file of at most MAX_FILE_BYTES."""
    if stat.S_ISDIR(status.st_mode):
        raise InputError(f"{path} is a folder; {expected}")
    if not stat.S_ISREG(status.st_mode):
        kind = SPECIAL_FILE_KINDS.get(stat.S_IFMT(status.st_mode), "not a file")
        raise InputError(f"{describe_source(path)} is {kind}, not a regular file; {expected}")
    if status.st_size > MAX_FILE_BYTES:
        raise InputError(_too_large(describe_source(path), status.st_size, expected))


def _unreadable(path: Path, error: OSError, expected: str) -> str:
    """The message for an OSError met while looking at or opening `path`."""
    if error.errno == errno.ELOOP:
        return f"{describe_source(path)} is a symbolic link loop, not a regular file; {expected}"
    if error.errno == errno.ENXIO:  # opening a socket
        return f"{describe_source(path)} is a socket, not a regular file; {expected}"
    return f"{describe_source(path)} could not be read ({error.strerror or error})"


def _too_large(name: str, size: int, expected: str) -> str:
    return f"{name} is {size / 2**20:,.0f} MB; files over {MAX_FILE_BYTES // 2**20} MB are refused ({expected})"
