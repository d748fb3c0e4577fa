"""Digests of files, read a block at a time so that a large archive or model never sits in memory whole.

Example:
    >>> import hashlib, pathlib, tempfile
    >>> with tempfile.TemporaryDirectory() as folder:
    ...     path = pathlib.Path(folder) / "clip.bin"
    ...     _ = path.write_bytes(b"abc" * 1000)
    ...     file_digest(path) == hashlib.sha256(b"abc" * 1000).hexdigest()
    True
"""

from __future__ import annotations

import hashlib
from pathlib import Path

BLOCK_BYTES = 1 << 20  # read 1 MiB at a time


def file_digest(path: str | Path, algorithm: str = "sha256") -> str:
    """The hex digest of a file's bytes.

    Args:
        path: the file.
        algorithm: a name hashlib knows ("sha256", "md5", …).

    Returns:
        Lower-case hex digits (64 for sha256, 32 for md5).
    """
    digest = hashlib.new(algorithm)
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(BLOCK_BYTES), b""):
            digest.update(block)
    return digest.hexdigest()
