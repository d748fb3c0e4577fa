"""Folders replaced whole: built beside their target and moved in only once complete, so a failed or
interrupted run never leaves a half-written folder or destroys the previous one.

Used for model bundles (app.bundle), dataset folders (app.datasets) and the dashboard's sample folders.

Example:
    >>> import pathlib, tempfile
    >>> with tempfile.TemporaryDirectory() as parent:
    ...     target = pathlib.Path(parent) / "dataset"
    ...     with replace_when_complete(target, marker=(".made-by", "example")) as staging:
    ...         _ = (staging / "a.txt").write_text("new")
    ...     sorted(path.name for path in pathlib.Path(parent).iterdir()), sorted(p.name for p in target.iterdir())
    (['dataset'], ['.made-by', 'a.txt'])
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def replace_when_complete(target: Path, marker: tuple[str, str] | None = None) -> Iterator[Path]:
    """Yield an empty staging folder beside `target` (same disk, so the final rename is one step).

    On success (the block ends without error) the marker file (name, text) is written into it, if given, and it
    takes the place of `target`: the old folder, if any, is first renamed aside (a hidden `.<name>.old-…`
    sibling), then deleted once the new one is in place. On failure `target` is untouched: an error in the
    block leaves it as it was, and if the new folder cannot be moved in, the old one is renamed back. At
    cleanup the staging folder (and any retired folder) is removed either way.

    Args:
        target: the folder to create or replace (its parent is created if missing).
        marker: (file name, text) written into the new folder when it is complete, or None.
    """
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    staging.chmod(0o755)  # mkdtemp makes it private; the folder it becomes is an ordinary one
    try:
        yield staging
        if marker is not None:
            (staging / marker[0]).write_text(f"{marker[1]}\n")
        _move_into_place(staging, target)
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)


def _move_into_place(staging: Path, target: Path) -> None:
    """Rename `staging` to `target`; an existing `target` is retired first and put back if the rename fails."""
    if not target.exists():
        staging.rename(target)
        return
    retired = Path(tempfile.mkdtemp(prefix=f".{target.name}.old-", dir=target.parent))
    try:
        target.replace(retired)  # an empty folder is replaced by the rename
    except OSError:
        retired.rmdir()
        raise
    try:
        staging.rename(target)
    except OSError:
        retired.rename(target)  # put the old folder back
        raise
    shutil.rmtree(retired, ignore_errors=True)
