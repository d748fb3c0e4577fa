"""HTTP downloads that resume and verify: `fetch(url, destination, md5=…)`.

A download goes to `<destination>.part`; after a dropped connection the next call asks for the rest (an
HTTP Range request, with If-Range so that a file changed on the server since is sent whole again), and the
finished file is checked against the publisher's digest, if one is given.
"""

from __future__ import annotations

import http.client
import logging
import sys
from pathlib import Path
from urllib.error import HTTPError, URLError
from urllib.request import Request, urlopen

from tqdm import tqdm

from app.errors import DatasetError
from app.hashing import file_digest

logger = logging.getLogger(__name__)

BASE_URL_VARIABLE = "ONEPIPE_DOWNLOAD_BASE_URL"  # a mirror's URL prefix, used instead of the publishers'
_CHUNK_BYTES = 1 << 20
_TIMEOUT_SECONDS = 60


class _Interrupted(Exception):
    """The server closed the connection before the whole file arrived."""


def fetch(
    url: str,
    destination: str | Path,
    *,
    md5: str | None = None,
    sha256: str | None = None,
    retries: int = 3,
    progress: bool = True,
) -> Path:
    """Download `url` to `destination`, resuming a previous `.part` file, then verify its checksum.

    Args:
        url: http(s) URL.
        destination: final file path; while downloading, data goes to `<destination>.part`.
        md5: expected hex digest, or None.
        sha256: expected hex digest, or None.
        retries: automatic resumptions after a dropped connection.
        progress: show a tqdm progress bar (bytes).

    Returns:
        `destination`.

    Raises:
        DatasetError: the server refuses the file, the connection keeps failing (run again to
            resume), or the checksum differs (the file is deleted).
    """
    destination = Path(destination)
    destination.parent.mkdir(parents=True, exist_ok=True)
    if destination.exists():
        if _checksum_problem(destination, md5, sha256) is None:
            return destination
        destination.unlink()  # stale or corrupt: fetch again
    partial = destination.with_name(destination.name + ".part")
    validator = _validator_path(partial)
    for attempt in range(retries + 1):
        try:
            _download_to(url, partial, progress)
            break
        except HTTPError as error:
            raise DatasetError(f"{url} answered HTTP {error.code} {error.reason}; expected the file") from error
        except (URLError, OSError, http.client.HTTPException, _Interrupted) as error:
            if attempt == retries:
                received = partial.stat().st_size if partial.exists() else 0
                if received or not isinstance(error, (URLError, ConnectionError, TimeoutError)):
                    raise DatasetError(
                        f"download of {url} failed after {retries + 1} attempts ({error}); {received} bytes are "
                        f"kept in {partial}: run the same command again to resume"
                    ) from error
                partial.unlink(missing_ok=True)
                validator.unlink(missing_ok=True)
                raise DatasetError(
                    f"could not download {url} ({getattr(error, 'reason', error)}): is this machine offline? Run "
                    f"again when online, or fetch that file elsewhere and put it at {destination} (it is then used "
                    f"as is), or point --base-url or ${BASE_URL_VARIABLE} at a mirror"
                ) from error
    validator.unlink(missing_ok=True)
    problem = _checksum_problem(partial, md5, sha256)
    if problem:
        partial.unlink()
        raise DatasetError(f"checksum mismatch for {url}: {problem}; the file was deleted, run again to retry")
    partial.replace(destination)
    return destination


def _validator_path(partial: Path) -> Path:
    """Where the server's ETag or Last-Modified of a `.part` file's download is kept, for If-Range."""
    return partial.with_name(partial.name + ".validator")


def _strong_validator(headers) -> str | None:
    """The response's strong ETag, else its Last-Modified date: what If-Range accepts (RFC 9110 13.1.5)."""
    etag = headers.get("ETag")
    if etag and not etag.startswith("W/"):
        return etag
    return headers.get("Last-Modified")


def _download_to(url: str, partial: Path, progress: bool) -> None:
    offset = partial.stat().st_size if partial.exists() else 0
    validator = _validator_path(partial)
    headers = {"User-Agent": "onepipe-data-download"}
    if offset:
        headers["Range"] = f"bytes={offset}-"
        if validator.exists():  # the server sends the whole file if it changed since the .part began
            headers["If-Range"] = validator.read_text().strip()
    try:
        response = urlopen(Request(url, headers=headers), timeout=_TIMEOUT_SECONDS)
    except HTTPError as error:
        if error.code == 416 and offset:  # nothing left to send: complete, or a different file
            full_size = error.headers.get("Content-Range", "").rpartition("/")[2]
            if full_size.isdigit() and int(full_size) == offset:
                return
            partial.unlink()
            validator.unlink(missing_ok=True)
            raise _Interrupted(f"server refused to resume at byte {offset}; starting again") from error
        raise
    with response:
        if offset and response.status == 206:
            mode = "ab"
        else:
            offset, mode = 0, "wb"  # the server ignored the Range header, or the file changed: start again
            validator.unlink(missing_ok=True)
            if known := _strong_validator(response.headers):
                validator.write_text(known)
        content_length = response.headers.get("Content-Length")
        total = offset + int(content_length) if content_length and content_length.isdigit() else None
        with open(partial, mode) as output:
            _copy(response, output, offset, total, partial.name.removesuffix(".part"), progress)
    received = partial.stat().st_size
    if total is not None and received < total:
        raise _Interrupted(f"connection closed after {received} of {total} bytes")


def _copy(response, output, offset: int, total: int | None, name: str, progress: bool) -> None:
    """Copy the response body into the open file: a byte bar on a terminal, a line before and after otherwise
    (a log file gets no carriage returns)."""
    on_terminal = sys.stderr is not None and sys.stderr.isatty()
    if progress and not on_terminal:
        logger.info("downloading %s (%s bytes)", name, total or "unknown")
    bar_options = {"unit": "B", "unit_scale": True, "unit_divisor": 1024, "desc": name}
    with tqdm(total=total, initial=offset, disable=not (progress and on_terminal), **bar_options) as bar:
        while chunk := response.read(_CHUNK_BYTES):
            output.write(chunk)
            bar.update(len(chunk))
    if progress and not on_terminal:
        logger.info("downloaded %s (%d bytes)", name, output.tell())


def _checksum_problem(path: Path, md5: str | None, sha256: str | None) -> str | None:
    """None if the file matches the given digests, else what was expected and received."""
    for algorithm, expected in (("md5", md5), ("sha256", sha256)):
        if expected is None:
            continue
        received = file_digest(path, algorithm)
        if received != expected.lower():
            return f"expected {algorithm} {expected}, received {received}"
    return None
