"""Folders replaced whole: built beside their target and moved in only once complete, so a failed or
interrupted run never leaves a half-written folder or destroys the previous one."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def replace_when_complete(target: Path, marker: tuple[str, str] | None = None) -> Iterator[Path]:
    """Yield an empty staging folder beside `target` (same disk, so the final rename is one step). When the
    block ends without error, the marker file (name, text) is written into it, if given, and it takes the
    place of `target` (whatever was there is deleted). On error `target` is untouched. The staging folder is
    removed either way."""
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    staging.chmod(0o755)  # mkdtemp makes it private; the folder it becomes is an ordinary one
    try:
        yield staging
        if marker is not None:
            (staging / marker[0]).write_text(f"{marker[1]}\n")
        if target.exists():
            shutil.rmtree(target)
        staging.replace(target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
