"""Model bundles: a folder with model.keras, model.tflite, metadata.json and report.png.

Everything that reads a bundle's metadata.json goes through `read_metadata` (parse, then check against the
schema of app.bundle_schema: a bundle is untrusted input); `list_bundles` and `find_bundles` find the bundles
of a models folder. A bundle is written to a hidden sibling folder and swapped into place in one step
(app.staging), so a crash never leaves half a bundle or none, and an existing bundle is replaced only when
asked. A bundle left aside by a replacement that was killed half-way is put back by the next read, listing
or write of it.

Example:
    >>> import pathlib, tempfile
    >>> metadata = {"format_version": 1, "kind": "image", "class_names": ["cat", "dog"],
    ...             "preprocessing": {"image_size": [32, 32], "channels": 3}, "input_shape": [32, 32, 3]}
    >>> with tempfile.TemporaryDirectory() as models:
    ...     bundle = write_bundle(pathlib.Path(models) / "pets", metadata,
    ...                           lambda folder: (folder / TFLITE_FILE).write_bytes(b"model"))
    ...     [path.name for path in list_bundles("image", models)], read_metadata(bundle)["files"].keys()
    (['pets'], dict_keys(['model.tflite']))
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from app import paths
from app.bundle_schema import FORMAT_VERSION, MAX_METADATA_BYTES, MAX_MODEL_BYTES, REQUIRED_KEYS, validate_metadata
from app.errors import BundleError
from app.hashing import file_digest
from app.paths import KERAS_FILE, METADATA_FILE, SAMPLES_FOLDER, TFLITE_FILE
from app.staging import replace_when_complete, restore_interrupted, restore_interrupted_in

LISTED_KEYS = ("kind",)  # what a folder needs to be listed as a bundle (loading it checks the rest)


def read_metadata(bundle_dir: str | Path, required: Iterable[str] = REQUIRED_KEYS) -> dict[str, Any]:
    """A bundle's metadata.json, parsed and checked against the schema (app.bundle_schema).

    A bundle folder that is missing because a replacement of it was killed half-way is put back first.

    Args:
        bundle_dir: the bundle folder.
        required: with all of REQUIRED_KEYS (the default: a bundle to load), every field is checked, and how they
            fit together; otherwise only these keys, which must be present (what a listing shows).

    Raises:
        BundleError: metadata.json is missing, too large, unreadable, not a JSON object, lacks a required key, or
            a field is of the wrong type, out of bounds or inconsistent (the message names the field, its value
            and what is allowed).
    """
    bundle_dir = Path(bundle_dir)
    restore_interrupted(bundle_dir)
    path = bundle_dir / METADATA_FILE
    if not path.is_file():
        raise BundleError(f"{bundle_dir} is not a model bundle: it has no {METADATA_FILE}")
    size = path.stat().st_size
    if size > MAX_METADATA_BYTES:
        raise BundleError(f"{path} is {size} bytes; expected at most {MAX_METADATA_BYTES}")
    try:
        metadata = json.loads(path.read_bytes())
    except (OSError, ValueError, RecursionError) as error:
        raise BundleError(f"{path} is not valid JSON ({error})") from None
    required = tuple(required)
    validate_metadata(metadata, path, None if set(REQUIRED_KEYS) <= set(required) else required)
    return metadata


def find_bundles(
    kind: str | None = None, models_dir: str | Path | None = None, required: Iterable[str] = ()
) -> dict[Path, dict[str, Any]]:
    """The bundles under `models_dir` with their metadata, optionally of one kind. Hidden folders are left out
    (a bundle being written, or one left behind by an interrupted write), and so are folders whose metadata.json
    is damaged or lacks a `required` key: a damaged bundle is not fatal to a listing.

    Args:
        kind: "audio" or "image" to keep only that kind; None keeps all.
        models_dir: where to look (default app.paths.MODELS_DIR).
        required: keys a bundle's metadata must have to be listed, besides LISTED_KEYS.

    Returns:
        {bundle folder: metadata}, sorted by folder name.
    """
    models_dir = Path(models_dir or paths.MODELS_DIR)
    restore_interrupted_in(models_dir)  # a bundle whose replacement was killed half-way
    found = {}
    for metadata_path in sorted(models_dir.glob(f"*/{METADATA_FILE}")):
        bundle_dir = metadata_path.parent
        if bundle_dir.name.startswith("."):
            continue
        try:
            metadata = read_metadata(bundle_dir, (*LISTED_KEYS, *required))
        except BundleError:
            continue
        if kind is None or metadata["kind"] == kind:
            found[bundle_dir] = metadata
    return found


def list_bundles(kind: str | None = None, models_dir: str | Path | None = None) -> list[Path]:
    """The bundle folders under `models_dir` (default app.paths.MODELS_DIR), optionally of one kind ("audio"
    or "image"), sorted by name; see find_bundles for which are left out."""
    return list(find_bundles(kind, models_dir))


def verify_file(bundle_dir: Path, metadata: dict[str, Any], name: str) -> Path:
    """The path of a bundle file whose sha256 matches the metadata (and of at most MAX_MODEL_BYTES, checked before
    it is read); BundleError otherwise."""
    path = Path(bundle_dir) / name
    expected = metadata["files"].get(name)
    if not path.is_file():
        raise BundleError(f"{bundle_dir} has no {name}")
    if expected is None:
        raise BundleError(f"{bundle_dir}/{METADATA_FILE} records no sha256 for {name}")
    if path.stat().st_size > MAX_MODEL_BYTES:
        raise BundleError(f"{path} is {path.stat().st_size} bytes; expected at most {MAX_MODEL_BYTES}")
    if file_digest(path) != expected:
        raise BundleError(f"{path} does not match the sha256 in {METADATA_FILE}: the file was changed or damaged")
    return path


def check_bundle_target(out_dir: str | Path, force: bool) -> Path:
    """The resolved `out_dir` if a bundle may be written there (it does not exist, it is an empty folder, or
    it is a bundle and force is True); BundleError otherwise. A bundle that a killed replacement left aside is
    put back first, so that it is not replaced without force."""
    out_dir = Path(out_dir).resolve()
    restore_interrupted(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise BundleError(f"{out_dir} is a file; expected a new or empty folder for the bundle")
    if not out_dir.exists() or not any(out_dir.iterdir()):
        return out_dir
    if not (out_dir / METADATA_FILE).is_file():
        raise BundleError(
            f"{out_dir} exists and is not a model bundle (no {METADATA_FILE}); expected a new or empty folder "
            "(--force replaces bundles only)"
        )
    if not force:
        raise BundleError(f"{out_dir} already exists; pass --force to replace it")
    return out_dir


def write_bundle(
    out_dir: str | Path, metadata: dict[str, Any], write_files: Callable[[Path], None], force: bool = False
) -> Path:
    """Write a bundle atomically: into a hidden folder beside `out_dir`, swapped into place in one step once
    complete (an old bundle stays whole if anything fails; see app.staging.replace_when_complete).

    Args:
        out_dir: the bundle folder to create.
        metadata: everything but the "files" checksums, which are added here.
        write_files: writes model.keras, model.tflite, report.png … into the folder it is given.
        force: replace an existing bundle (the sample folders of classes the new one keeps are kept).

    Returns:
        The resolved bundle folder.

    Raises:
        BundleError: out_dir exists and force is False, or it exists and is not a bundle.
    """
    out_dir = check_bundle_target(out_dir, force)
    with replace_when_complete(out_dir) as staging:
        write_files(staging)
        files = sorted(p.name for p in staging.iterdir() if p.is_file() and p.name != METADATA_FILE)
        metadata = {**metadata, "files": {name: file_digest(staging / name) for name in files}}
        (staging / METADATA_FILE).write_text(json.dumps(metadata, indent=2) + "\n")
        if out_dir.exists():
            _keep_samples(out_dir / SAMPLES_FOLDER, staging / SAMPLES_FOLDER, metadata.get("class_names", []))
    return out_dir


def _keep_samples(old_samples: Path, new_samples: Path, class_names: list[str]) -> None:
    """Copy the sample folders <class>/ of an old bundle whose class the new bundle still has."""
    if not old_samples.is_dir():
        return
    for class_dir in sorted(p for p in old_samples.iterdir() if p.is_dir() and p.name in class_names):
        shutil.copytree(class_dir, new_samples / class_dir.name)


__all__ = [
    "FORMAT_VERSION",
    "KERAS_FILE",
    "REQUIRED_KEYS",
    "TFLITE_FILE",
    "check_bundle_target",
    "find_bundles",
    "list_bundles",
    "read_metadata",
    "verify_file",
    "write_bundle",
]
