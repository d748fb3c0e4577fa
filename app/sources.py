"""Reading what a user gives us (a path or the file's bytes) the same way for audio and images."""

from __future__ import annotations

from pathlib import Path

from app.errors import InputError

Source = str | Path | bytes | bytearray | memoryview
# A file larger than this is refused before it is read: far beyond a 60 s recording or any photo.
MAX_FILE_BYTES = 256 * 2**20


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
        InputError: the file is missing, a folder, empty or over MAX_FILE_BYTES.
    """
    if isinstance(source, (bytes, bytearray, memoryview)):
        data = bytes(source)
    else:
        path = Path(source)
        if path.is_dir():
            raise InputError(f"{path} is a folder; {expected}")
        if not path.is_file():
            raise InputError(f"no such file: {path}")
        size = path.stat().st_size
        if size > MAX_FILE_BYTES:
            raise InputError(
                f"{path.name!r} is {size / 2**20:,.0f} MB; files over {MAX_FILE_BYTES // 2**20} MB are refused "
                f"({expected})"
            )
        data = path.read_bytes()
    if not data:
        raise InputError(f"received a 0-byte file; {expected}")
    return data
