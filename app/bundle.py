"""Model bundles: a folder with model.keras, model.tflite, metadata.json and report.png.

A bundle is written to a temporary sibling folder and renamed into place, so a crash never leaves
half a bundle, and an existing bundle is replaced only when asked.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from app.errors import BundleError
from app.paths import KERAS_FILE, METADATA_FILE, SAMPLES_FOLDER, TFLITE_FILE

FORMAT_VERSION = 1
REQUIRED_KEYS = ("format_version", "kind", "class_names", "preprocessing", "input_shape", "files")


def sha256_of(path: Path) -> str:
    """Hex sha256 of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def read_metadata(bundle_dir: str | Path) -> dict[str, Any]:
    """metadata.json of a bundle; BundleError when missing, unreadable or incomplete."""
    bundle_dir = Path(bundle_dir)
    path = bundle_dir / METADATA_FILE
    if not path.is_file():
        raise BundleError(f"{bundle_dir} is not a model bundle: it has no {METADATA_FILE}")
    try:
        metadata = json.loads(path.read_text())
    except (OSError, ValueError) as error:
        raise BundleError(f"{path} is not valid JSON ({error})") from None
    if not isinstance(metadata, dict):
        raise BundleError(f"{path} holds a JSON {type(metadata).__name__}; expected an object of bundle metadata")
    missing = [key for key in REQUIRED_KEYS if key not in metadata]
    if missing:
        raise BundleError(f"{path} lacks {', '.join(missing)}; the bundle is incomplete")
    if not isinstance(metadata["format_version"], int):
        raise BundleError(f"{path} has format_version {metadata['format_version']!r}; expected a whole number")
    if metadata["format_version"] > FORMAT_VERSION:
        raise BundleError(
            f"{bundle_dir} has format {metadata['format_version']}; this OnePipe reads up to {FORMAT_VERSION}"
        )
    return metadata


def verify_file(bundle_dir: Path, metadata: dict[str, Any], name: str) -> Path:
    """The path of a bundle file whose sha256 matches the metadata; BundleError otherwise."""
    path = Path(bundle_dir) / name
    expected = metadata["files"].get(name)
    if not path.is_file():
        raise BundleError(f"{bundle_dir} has no {name}")
    if expected is None:
        raise BundleError(f"{bundle_dir}/{METADATA_FILE} records no sha256 for {name}")
    if sha256_of(path) != expected:
        raise BundleError(f"{path} does not match the sha256 in {METADATA_FILE}: the file was changed or damaged")
    return path


def check_bundle_target(out_dir: str | Path, force: bool) -> Path:
    """The resolved `out_dir` if a bundle may be written there (it does not exist, it is an empty folder, or
    it is a bundle and force is True); BundleError otherwise."""
    out_dir = Path(out_dir).resolve()
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
    """Write a bundle atomically.

    Args:
        out_dir: the bundle folder to create.
        metadata: everything but the "files" checksums, which are added here.
        write_files: writes model.keras, model.tflite, report.png … into the folder it is given.
        force: replace an existing bundle (the sample folders of classes the new one keeps are kept).

    Raises:
        BundleError: out_dir exists and force is False, or it exists and is not a bundle.
    """
    out_dir = check_bundle_target(out_dir, force)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", dir=out_dir.parent))
    staging.chmod(0o755)
    try:
        write_files(staging)
        files = sorted(p.name for p in staging.iterdir() if p.is_file() and p.name != METADATA_FILE)
        metadata = {**metadata, "files": {name: sha256_of(staging / name) for name in files}}
        (staging / METADATA_FILE).write_text(json.dumps(metadata, indent=2) + "\n")
        if out_dir.exists():
            _keep_samples(out_dir / SAMPLES_FOLDER, staging / SAMPLES_FOLDER, metadata.get("class_names", []))
            retired = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.old-", dir=out_dir.parent))
            try:
                out_dir.replace(retired)  # an empty folder is replaced by the rename
            except OSError:
                retired.rmdir()
                raise
            try:
                staging.rename(out_dir)
            except OSError:
                retired.rename(out_dir)  # put the old bundle back
                raise
            shutil.rmtree(retired, ignore_errors=True)
        else:
            staging.rename(out_dir)
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)
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
    "TFLITE_FILE",
    "read_metadata",
    "sha256_of",
    "verify_file",
    "write_bundle",
]
