"""Starting a run from another bundle's trained layers: `python -m app train DATA --init-from BUNDLE`.

A few dozen clips of one voice teach a new CNN that voice; a bundle trained on many speakers has feature layers
that already hear words. With --init-from, the new model (app.model, a new softmax for this data's classes) starts
with the donor bundle's TRANSFERRED_LAYERS: its two Conv2D blocks and its Dense 64 layer; the new model's input
normalisation comes from the new data, as without --init-from. The layers taken over stay fixed for the recipe's
`frozen_epochs` first epochs, while the new layer learns; then every layer trains (app.training.loop).

`check_source` runs before anything slow and imports no Keras: the donor must be a readable bundle of the same
kind, the same preprocessing (every field that changes the features: sample rate, window, FFT, hop, mel bands,
image size, channels …) and the same input shape as this run; its model.keras must match the sha256 its
metadata.json records. `transfer_layers` (Keras) loads that file (a copy of the verified bytes, with Keras'
safe_mode) and copies the layers, refusing a model whose layers do not fit. The source's name and model sha256
go into metadata.json's `training.init_from` and into the run key of --resume.

Example:
    >>> from pathlib import Path
    >>> from app.training.init_from import check_source
    >>> check_source(Path("no-such-bundle"), "audio", None)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    app.errors.InputError: --init-from no-such-bundle: no-such-bundle is not a model bundle: it has no metadata.json
"""

from __future__ import annotations

import logging
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from app.bundle import read_metadata, verify_file
from app.config import AudioConfig, ImageConfig, preprocessing_from_metadata, to_dict
from app.errors import BundleError, InputError
from app.hashing import file_digest
from app.paths import KERAS_FILE

if TYPE_CHECKING:
    import keras

logger = logging.getLogger(__name__)

# The layers taken over, by type and position among the layers of that type in the donor (the last Dense layer is
# the donor's own softmax, never taken): both Conv2D blocks and the Dense 64 layer. Measured from speech-commands on
# spoken digits, a model trained on one speaker's "0", "1", "2" (20 each) and scored on each of four others (20
# pairs, the Train tab's "Spoken words" recipe): with Dense 64 a mean of 88.6 % (18 pairs at 80 % or more), the
# Conv2D blocks alone 88.2 % (17).
TRANSFERRED_LAYERS = (("Conv2D", 0), ("Conv2D", 1), ("Dense", 0))
# Preprocessing fields that only bound what a user may send, not how features are made.
LIMIT_FIELDS = ("max_decoded_seconds", "max_pixels")


@dataclass(frozen=True)
class TransferSource:
    """A donor bundle that passed check_source: where it is, and what identifies its model."""

    bundle: Path
    name: str  # the bundle's name (its metadata's, else its folder's)
    model_sha256: str  # of its model.keras, as its metadata records and the file matched
    input_shape: tuple[int, ...]  # (height, width, channels)

    def summary(self) -> dict[str, Any]:
        """{"bundle": name, "model_sha256": …, "layers": [layer types taken over]}, for metadata.json and the run
        key."""
        return {
            "bundle": self.name,
            "model_sha256": self.model_sha256,
            "layers": [f"{kind}[{index}]" for kind, index in TRANSFERRED_LAYERS],
        }


def check_source(bundle_dir: str | Path, kind: str, preprocessing: AudioConfig | ImageConfig | None) -> TransferSource:
    """The donor bundle at `bundle_dir`, checked against a run of `kind` ("audio" or "image") fed `preprocessing`.

    Raises:
        InputError: the folder is not a readable bundle, its model.keras is missing or does not match its
            sha256, or its kind, preprocessing or input shape differ from the run's (the message names each
            difference and the option that sets it).
    """
    bundle_dir = Path(bundle_dir)
    metadata = read_model_bundle(bundle_dir, "--init-from", kind)
    donor = preprocessing_from_metadata(metadata)
    if preprocessing is not None:
        differences = preprocessing_differences(donor, preprocessing)
        if differences:
            raise InputError(
                f"--init-from {bundle_dir}: its preprocessing differs from this run's: {'; '.join(differences)}. "
                "Train with the bundle's preprocessing options, or start from another bundle"
            )
        if tuple(metadata["input_shape"]) != tuple(preprocessing.input_shape):
            raise InputError(
                f"--init-from {bundle_dir}: its input shape is {tuple(metadata['input_shape'])} and this run feeds "
                f"{tuple(preprocessing.input_shape)}"
            )
    return TransferSource(
        bundle=bundle_dir,
        name=str(metadata.get("name") or bundle_dir.name),
        model_sha256=str(metadata["files"][KERAS_FILE]),
        input_shape=tuple(int(side) for side in metadata["input_shape"]),
    )


def read_model_bundle(bundle_dir: Path, option: str, kind: str) -> dict[str, Any]:
    """The metadata of the bundle an option names (--init-from, --distill-from), once its model.keras matches the
    sha256 the metadata records and its kind is the run's.

    Raises:
        InputError: "OPTION BUNDLE: …" saying what is wrong.
    """
    try:
        metadata = read_metadata(bundle_dir)
        verify_file(bundle_dir, metadata, KERAS_FILE)
    except BundleError as error:
        raise InputError(f"{option} {bundle_dir}: {error}") from None
    if metadata["kind"] != kind:
        raise InputError(
            f"{option} {bundle_dir}: it is a model of {metadata['kind']} data and this run trains on {kind}; "
            f"name a bundle of {kind}"
        )
    return metadata


def preprocessing_differences(donor: AudioConfig | ImageConfig, run: AudioConfig | ImageConfig) -> list[str]:
    """Each feature-changing field that differs, as "field: bundle X, this run Y" (LIMIT_FIELDS aside).

    Example:
        >>> preprocessing_differences(AudioConfig(sample_rate=8000, n_fft=256, hop_length=80, f_max=3800),
        ...                           AudioConfig())[:2]
        ['sample_rate: bundle 8000, this run 16000', 'n_fft: bundle 256, this run 512']
    """
    if type(donor) is not type(run):
        return [f"the bundle's preprocessing is for {type(donor).__name__}, this run's for {type(run).__name__}"]
    donor_fields, run_fields = to_dict(donor), to_dict(run)
    return [
        f"{name}: bundle {value}, this run {run_fields[name]}"
        for name, value in donor_fields.items()
        if name not in LIMIT_FIELDS and value != run_fields[name]
    ]


def transfer_layers(model: keras.Model, source: TransferSource) -> list[keras.layers.Layer]:
    """Copy the donor's TRANSFERRED_LAYERS into `model` (built by app.model.build_model); returns the layers of
    `model` that received weights.

    The donor's model.keras is read once, its bytes checked against the sha256 check_source found, and loaded
    from a private copy with Keras' safe_mode (no code from the file runs).

    Raises:
        InputError: the file changed since check_source, Keras cannot load it, or its layers do not fit the
            model's (another architecture, another input shape).
    """
    donor = load_donor(source)
    if tuple(donor.input_shape[1:]) != tuple(model.input_shape[1:]):
        raise InputError(
            f"--init-from {source.bundle}: its model takes {tuple(donor.input_shape[1:])} and this run feeds "
            f"{tuple(model.input_shape[1:])}"
        )
    received = []
    for kind, index in TRANSFERRED_LAYERS:
        target, giver = _nth_layer(model, kind, index), _nth_layer(donor, kind, index)
        if target is None or giver is None:
            raise InputError(f"--init-from {source.bundle}: its model has no {kind} layer number {index + 1} to take")
        shapes, donor_shapes = [w.shape for w in target.get_weights()], [w.shape for w in giver.get_weights()]
        if shapes != donor_shapes:
            raise InputError(
                f"--init-from {source.bundle}: its {kind} layer number {index + 1} has weights of shapes "
                f"{donor_shapes}; this model's has {shapes}"
            )
        target.set_weights(giver.get_weights())
        received.append(target)
    logger.info("started from %s: %s", source.name, ", ".join(layer.name for layer in received))
    return received


def load_donor(source: TransferSource) -> keras.Model:
    """The donor's Keras model, from a private copy of its model.keras whose bytes match source.model_sha256."""
    return load_checked_model(source.bundle, source.model_sha256, "--init-from")


def load_checked_model(bundle: Path, model_sha256: str, option: str) -> keras.Model:
    """The Keras model of the bundle an option names (--init-from, --distill-from), from a private copy of its
    model.keras whose bytes match `model_sha256`, loaded with Keras' safe_mode.

    Raises:
        InputError: "OPTION BUNDLE: …": the file cannot be read, changed since it was checked, or is no model.
    """
    import keras

    path = bundle / KERAS_FILE
    with tempfile.TemporaryDirectory(prefix="onepipe-bundle-model-") as scratch:
        copy = Path(scratch) / KERAS_FILE
        try:
            copy.write_bytes(path.read_bytes())  # read_model_bundle's verify_file bounded its size
        except OSError as error:
            raise InputError(f"{option} {bundle}: {path} cannot be read ({error})") from None
        if file_digest(copy) != model_sha256:
            raise InputError(f"{option} {bundle}: {path} changed after it was checked; try again")
        try:
            return keras.saving.load_model(copy, compile=False, safe_mode=True)
        except Exception as error:  # Keras raises many kinds for a damaged or foreign file
            raise InputError(f"{option} {bundle}: {path} is not a model Keras can load ({error})") from None


def _nth_layer(model: keras.Model, kind: str, index: int) -> Any:
    """The index-th layer of class `kind` of `model` (its last Dense, the softmax, left out); None if none."""
    layers = [layer for layer in model.layers if type(layer).__name__ == kind]
    if kind == "Dense":
        layers = layers[:-1]  # the softmax: this data's classes, never taken over
    return layers[index] if index < len(layers) else None
