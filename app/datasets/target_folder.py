"""The folder a `data` command writes a dataset into: a new or empty one, or, with --replace, one that an earlier
run of the same command made and to which nothing was added. Nothing else is ever deleted.

A command marks every folder it makes with a marker file naming what made it (app.staging writes it once the
folder is complete). Two marker names are in use, and both stay readable, so that folders made by earlier
versions can still be replaced:

- `.onepipe-data`: `data synth-speech` and `data digits`; it holds the subcommand's name.
- `.onepipe-download`: `data download`; it holds the dataset's name (e.g. `fsdd`).

Example:
    >>> import pathlib, tempfile
    >>> from app.staging import replace_when_complete
    >>> with tempfile.TemporaryDirectory() as parent:
    ...     target = pathlib.Path(parent) / "digits"
    ...     for run in range(2):  # the second run replaces what the first made
    ...         folder = check_target_folder(target, (DATA_MARKER, "digits"), "digits", ".png", replace=True)
    ...         with replace_when_complete(folder, (DATA_MARKER, "digits")) as staging:
    ...             (staging / "0").mkdir()
    ...             _ = (staging / "0" / f"run-{run}.png").write_bytes(b"png")
    ...     sorted(path.relative_to(target).as_posix() for path in target.rglob("*"))
    ['.onepipe-data', '0', '0/run-1.png']
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from app.errors import DatasetError
from app.staging import restore_interrupted

DATA_MARKER = ".onepipe-data"  # in every folder `data synth-speech` or `data digits` made: the subcommand
DOWNLOAD_MARKER = ".onepipe-download"  # in every folder `data download` made: the dataset's name


def _no_other_files(name: str) -> bool:
    return False


def check_target_folder(
    target: str | Path,
    marker: tuple[str, str],
    command: str,
    class_file_extension: str,
    replace: bool,
    top_level_file: Callable[[str], bool] = _no_other_files,
    rewrite_any: bool = False,
) -> Path:
    """The resolved `target` (a link is followed: the data goes where it points) if a dataset may be written
    there; DatasetError, deleting nothing, otherwise.

    Args:
        target: the dataset folder.
        marker: (file name, text) that an earlier run of the same command left in the folder.
        command: the command, for messages (`data <command>`).
        class_file_extension: the extension of the files the command writes into class folders (".wav").
        replace: a non-empty folder may be replaced (it must carry the marker and hold nothing else than
            class folders of `class_file_extension` files and top-level files `top_level_file` accepts).
        top_level_file: which file names beside the class folders the command writes (lists, a licence).
        rewrite_any: with replace, replace any folder, marked or not (the dashboard's own samples folders).
    """
    target = Path(target).resolve()
    restore_interrupted(target)  # a replacement killed between its two moves left the old folder aside
    if target.exists() and not target.is_dir():
        raise DatasetError(f"{target} is a file; expected a new or empty folder")
    if not target.exists() or not any(target.iterdir()):
        return target
    if not replace:
        raise DatasetError(
            f"{target} already exists and is not empty; expected a new folder (or --replace to rewrite an earlier "
            "run's)"
        )
    if rewrite_any:
        return target
    marker_name, made_by = marker
    marker_path = target / marker_name
    if not marker_path.is_file() or marker_path.read_text().strip() != made_by:
        raise DatasetError(
            f"{target} was not made by `data {command}` (it has no {marker_name} file naming it); --replace "
            "rewrites only such a folder, so nothing was deleted: delete it yourself if it is yours to delete"
        )
    added = [
        path
        for path in target.rglob("*")
        if (
            path.is_file()
            and path != marker_path
            and (
                (path.parent == target and not top_level_file(path.name))
                or (path.parent != target and path.suffix.lower() != class_file_extension)
            )
        )
        or (path.is_dir() and path.parent != target)
    ]
    if added:
        raise DatasetError(
            f"{target} holds more than class folders of {class_file_extension} files (e.g. {added[0]}); --replace "
            "rewrites only what this command made, so nothing was deleted"
        )
    return target
