"""Reading tar and zip archives member by member, refusing any member whose path or link would leave the
folder it is extracted to."""

from __future__ import annotations

import gzip
import posixpath
import stat
import tarfile
import zipfile
import zlib
from collections.abc import Iterator
from pathlib import Path, PurePosixPath
from typing import IO

from app.errors import DatasetError


def _checked_member_path(name: str, archive: Path) -> PurePosixPath:
    """A member's path without a leading "./"; DatasetError if it is absolute or climbs with "..".."""
    normalised = name.replace("\\", "/")
    path = PurePosixPath(normalised)
    if path.is_absolute() or (len(normalised) > 1 and normalised[1] == ":") or ".." in path.parts:
        raise DatasetError(
            f"{archive.name} holds the member {name!r}, which points outside the target folder; "
            "expected relative paths only, so nothing was extracted"
        )
    return PurePosixPath(*[part for part in path.parts if part != "."])


def _check_link(member_path: PurePosixPath, target: str, archive: Path) -> None:
    resolved = posixpath.normpath(posixpath.join(str(member_path.parent), target.replace("\\", "/")))
    if target.startswith("/") or resolved == ".." or resolved.startswith("../"):
        raise DatasetError(
            f"{archive.name} holds a link {str(member_path)!r} -> {target!r} that leaves the target folder; "
            "expected links inside it only, so nothing was extracted"
        )


class DamagedArchiveError(DatasetError):
    """An archive that cannot be read to its end (truncated or corrupt download)."""


ARCHIVE_READ_ERRORS = (tarfile.TarError, zipfile.BadZipFile, EOFError, gzip.BadGzipFile, zlib.error)


def iter_archive(archive: str | Path) -> Iterator[tuple[PurePosixPath, IO[bytes]]]:
    """Yield (member path, readable file) for each regular file of a .tar(.gz|.bz2|.xz) or .zip.

    Links are checked and skipped, directories and devices skipped; nothing is written to disk.

    Raises:
        DatasetError: a member path is absolute or contains "..", a link points outside the
            archive's root, or the file is not a readable archive.
    """
    archive = Path(archive)
    try:
        if zipfile.is_zipfile(archive):
            yield from _iter_zip(archive)
        else:
            yield from _iter_tar(archive)
    except ARCHIVE_READ_ERRORS as error:
        raise DamagedArchiveError(f"{archive.name} is not a readable tar or zip archive ({error})") from error


def _iter_tar(archive: Path) -> Iterator[tuple[PurePosixPath, IO[bytes]]]:
    with tarfile.open(archive, "r:*") as tar:
        for member in tar:
            path = _checked_member_path(member.name, archive)
            if member.issym() or member.islnk():
                _check_link(path if member.issym() else PurePosixPath("x"), member.linkname, archive)
                continue
            if not member.isfile() or not path.parts:
                continue
            file = tar.extractfile(member)
            if file is not None:
                yield path, file


def _iter_zip(archive: Path) -> Iterator[tuple[PurePosixPath, IO[bytes]]]:
    with zipfile.ZipFile(archive) as zip_file:
        for info in zip_file.infolist():
            path = _checked_member_path(info.filename, archive)
            mode = info.external_attr >> 16
            if stat.S_ISLNK(mode):
                _check_link(path, zip_file.read(info).decode("utf-8", "replace"), archive)
                continue
            if info.is_dir() or not path.parts:
                continue
            with zip_file.open(info) as file:
                yield path, file
