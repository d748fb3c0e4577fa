"""What a bundle's metadata.json may hold: the type and bounds of every field that serving reads, checked before
anything is allocated from them. A bundle is untrusted input (bundles are downloaded and shared), so a value
that is out of range, of the wrong type or inconsistent is refused with a message naming the file, the field,
the value and what is allowed, never a traceback or a runaway allocation.

The schema is a table per object (TOP_LEVEL, AUDIO_PREPROCESSING, IMAGE_PREPROCESSING, SERVING, CALIBRATION,
FAMILIARITY) of field → rule. Unknown fields are ignored (a newer OnePipe may add some; it raises
format_version when an older one must not read its bundles); optional fields may be missing (bundles of earlier
versions lack some) and take the config's defaults. `validate_metadata` checks the fields, then how they fit
together (the preprocessing makes the recorded input_shape; serving views stay inside the input);
`check_model_fits` checks them against the LiteRT model once its header is read, before its tensors are
allocated.

Example:
    >>> metadata = {"format_version": 1, "kind": "image", "class_names": ["cat", "dog"], "files": {},
    ...             "preprocessing": {"image_size": [100000, 100000]}, "input_shape": [32, 32, 3]}
    >>> try:
    ...     validate_metadata(metadata, "metadata.json")
    ... except BundleError as error:
    ...     print(error)
    metadata.json: preprocessing.image_size is [100000, 100000]; expected two whole numbers from 10 to 1024
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from app.config import (
    MAX_CLIP_SECONDS,
    MAX_DECODED_SECONDS,
    MAX_FRAMES,
    MAX_HOP_LENGTH,
    MAX_IMAGE_SIDE,
    MAX_N_FFT,
    MAX_N_MELS,
    MAX_SAMPLE_RATE,
    MIN_IMAGE_SIDE,
    MIN_SAMPLE_RATE,
    AudioConfig,
    ImageConfig,
    preprocessing_from_metadata,
)
from app.errors import BundleError
from app.paths import METADATA_FILE, TFLITE_FILE

FORMAT_VERSION = 1  # the newest metadata.json format this OnePipe reads and writes
REQUIRED_KEYS = ("format_version", "kind", "class_names", "preprocessing", "input_shape", "files")
MAX_METADATA_BYTES = 16 * 1024 * 1024  # a larger metadata.json is refused before it is parsed
MAX_MODEL_BYTES = 256 * 1024 * 1024  # a larger model.tflite is refused before it is read
MAX_CLASSES = 1000
MAX_NAME_CHARACTERS = 255  # a class name is a folder name
MAX_FILES = 64  # entries of "files"
MAX_SHIFTS = 16  # entries of serving.time_shift_frames and of serving.pixel_shifts
MAX_PIXELS = 50_000_000  # largest decoded image a bundle may allow (ImageConfig.max_pixels)
MAX_TEMPERATURE = 100.0
MAX_VIEW_VALUES = 1 << 24  # views × input values that one prediction feeds the model (64 MB as float32)
SHOWN_CHARACTERS = 80  # a value is quoted up to this length in a message


def _is_whole(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _show(value: Any) -> str:
    """A value as metadata.json spells it, shortened for a one-line message."""
    if isinstance(value, list | dict) and len(value) > 8:
        return f"{'a list' if isinstance(value, list) else 'an object'} of {len(value)} entries"
    try:
        text = json.dumps(value, ensure_ascii=False)
    except (TypeError, ValueError, RecursionError):
        text = type(value).__name__
    return text if len(text) <= SHOWN_CHARACTERS else text[: SHOWN_CHARACTERS - 1] + "…"


def refuse(source: str | Path, field: str, value: Any, expected: str) -> BundleError:
    """The BundleError for one field: "<source>: <field> is <value>; expected <expected>"."""
    return BundleError(f"{source}: {field} is {_show(value)}; expected {expected}")


@dataclass(frozen=True)
class Rule:
    """A field's allowed values: `accepts(value)` says whether one is, `expected` says which are, in words."""

    expected: str
    accepts: Callable[[Any], bool]

    def check(self, value: Any, field: str, source: str | Path) -> None:
        """BundleError naming `field` unless `value` is accepted."""
        if not self.accepts(value):
            raise refuse(source, field, value, self.expected)


def whole_number(low: int, high: int) -> Rule:
    """An int (not a bool, not 16000.0, not "16000") from low to high."""
    expected = f"a whole number from {low} to {high}" if low < high else str(low)
    return Rule(expected, lambda value: _is_whole(value) and low <= value <= high)


def number(low: float, high: float, above: bool = False) -> Rule:
    """A finite int or float from low (or above low) to high."""
    words = f"above {low:g} and at most {high:g}" if above else f"from {low:g} to {high:g}"

    def accepts(value: Any) -> bool:
        return _is_number(value) and (low < value if above else low <= value) and value <= high

    return Rule(f"a number {words}", accepts)


def one_of(*choices: Any) -> Rule:
    """One of a few JSON values, compared with their type (1 is not true, "1" is not 1)."""
    spelled = [json.dumps(choice) for choice in choices]
    words = spelled[0] if len(spelled) == 1 else f"{', '.join(spelled[:-1])} or {spelled[-1]}"
    return Rule(words, lambda value: any(type(value) is type(c) and value == c for c in choices))


def whole_pair(low: int, high: int) -> Rule:
    """A list of two whole numbers from low to high, such as an image's [height, width]."""
    return Rule(
        f"two whole numbers from {low} to {high}",
        lambda value: (
            isinstance(value, list) and len(value) == 2 and all(whole_number(low, high).accepts(v) for v in value)
        ),
    )


TRUE_OR_FALSE = Rule("true or false", lambda value: isinstance(value, bool))
NAME = Rule(
    f"a name: text of 1 to {MAX_NAME_CHARACTERS} characters, not only spaces",
    lambda value: isinstance(value, str) and value.strip() != "" and len(value) <= MAX_NAME_CHARACTERS,
)
FILE_NAME = Rule(
    "a file name without a folder",
    lambda value: (
        isinstance(value, str) and 0 < len(value) <= 255 and not set("/\\\0") & set(value) and value not in (".", "..")
    ),
)
SHA256 = Rule(
    "64 hexadecimal digits (a sha256)",
    lambda value: isinstance(value, str) and len(value) == 64 and all(c in "0123456789abcdef" for c in value),
)
FINITE_NUMBER = Rule("a number", _is_number)


@dataclass(frozen=True)
class ListOf:
    """A list of `fewest` to `most` items, each checked by `item` (and all different when `unique`)."""

    item: Rule | ListOf
    fewest: int
    most: int
    what: str  # "names", "moves" …
    unique: bool = False

    @property
    def expected(self) -> str:
        count = str(self.most) if self.fewest == self.most else f"{self.fewest} to {self.most}"
        return f"a list of {count} {'different ' if self.unique else ''}{self.what}"

    def check(self, value: Any, field: str, source: str | Path) -> None:
        if not isinstance(value, list) or not self.fewest <= len(value) <= self.most:
            raise refuse(source, field, value, self.expected)
        for index, item in enumerate(value):
            self.item.check(item, f"{field}[{index}]", source)
        if self.unique and len(set(value)) < len(value):
            repeated = next(item for index, item in enumerate(value) if item in value[:index])
            raise refuse(source, field, value, f"{self.expected} ({_show(repeated)} is there twice)")


@dataclass(frozen=True)
class FileDigests:
    """The "files" object: {file name: sha256}, at most MAX_FILES entries."""

    expected: str = f"an object of at most {MAX_FILES} file names and their sha256"

    def check(self, value: Any, field: str, source: str | Path) -> None:
        if not isinstance(value, dict) or len(value) > MAX_FILES:
            raise refuse(source, field, value, self.expected)
        for name, digest in value.items():
            FILE_NAME.check(name, f"a name in {field}", source)
            SHA256.check(digest, f"{field}.{name}", source)


@dataclass(frozen=True)
class ObjectOf:
    """A JSON object whose fields in `table` are checked when present; other fields are ignored."""

    table: dict[str, Rule | ListOf | FileDigests | ObjectOf]
    what: str  # "audio preprocessing settings" …

    @property
    def expected(self) -> str:
        return f"an object of {self.what}"

    def check(self, value: Any, field: str, source: str | Path) -> None:
        if not isinstance(value, dict):
            raise refuse(source, field, value, self.expected)
        for key, rule in self.table.items():
            if key in value:
                rule.check(value[key], f"{field}.{key}", source)


AUDIO_PREPROCESSING = ObjectOf(
    {
        "sample_rate": whole_number(MIN_SAMPLE_RATE, MAX_SAMPLE_RATE),
        "clip_seconds": number(0, MAX_CLIP_SECONDS, above=True),
        "n_fft": whole_number(2, MAX_N_FFT),
        "hop_length": whole_number(1, MAX_HOP_LENGTH),
        "n_mels": whole_number(1, MAX_N_MELS),
        "f_min": number(0, MAX_SAMPLE_RATE / 2),
        "f_max": number(0, MAX_SAMPLE_RATE / 2, above=True),
        "top_db": number(0, 200, above=True),
        "subtract_band_mean": TRUE_OR_FALSE,
        "window_past_edges": TRUE_OR_FALSE,
        "max_decoded_seconds": number(0, MAX_DECODED_SECONDS, above=True),
    },
    "audio preprocessing settings",
)
IMAGE_PREPROCESSING = ObjectOf(
    {
        "image_size": whole_pair(MIN_IMAGE_SIDE, MAX_IMAGE_SIDE),
        "channels": one_of(1, 3),
        "background": one_of(None, "dark", "light"),
        "center_content": TRUE_OR_FALSE,
        "max_pixels": whole_number(1, MAX_PIXELS),
    },
    "image preprocessing settings",
)
PREPROCESSING = {"audio": AUDIO_PREPROCESSING, "image": IMAGE_PREPROCESSING}
# The views a bundle averages (app.views). Their bounds against the input's size are checked with the rest of
# the metadata (`_check_serving_fits`).
SERVING = ObjectOf(
    {
        "average_mirrored": TRUE_OR_FALSE,
        "time_shift_frames": ListOf(whole_number(-MAX_FRAMES, MAX_FRAMES), 0, MAX_SHIFTS, "whole numbers of frames"),
        "pixel_shifts": ListOf(
            whole_pair(-MAX_IMAGE_SIDE, MAX_IMAGE_SIDE), 0, MAX_SHIFTS, "[down, right] moves in whole pixels"
        ),
    },
    "test-time views",
)
# What serving applies (app.predict): softmax(log p / temperature), and the familiarity statistic's threshold. The
# other fields of these sections (where they were fitted, the ECE …) are read by people and by `evaluate` only.
CALIBRATION = ObjectOf({"temperature": number(0, MAX_TEMPERATURE, above=True)}, "calibration settings")
MAX_FEATURES = 4096  # width of the inner features a familiarity statistic may describe
FAMILIARITY = ObjectOf(
    {
        "statistic": NAME,
        "threshold": FINITE_NUMBER,
        # the feature statistic's class centres (n_classes, d) and whitening (d, d); their sizes are checked
        # against the classes and the model's features output (check_model_fits)
        "class_means": ListOf(ListOf(FINITE_NUMBER, 1, MAX_FEATURES, "numbers"), 1, MAX_CLASSES, "lists of numbers"),
        "whitening": ListOf(ListOf(FINITE_NUMBER, 1, MAX_FEATURES, "numbers"), 1, MAX_FEATURES, "lists of numbers"),
    },
    "familiarity settings",
)
TOP_LEVEL: dict[str, Rule | ListOf | FileDigests | ObjectOf] = {
    "format_version": whole_number(1, FORMAT_VERSION),
    "kind": one_of("audio", "image"),
    "class_names": ListOf(NAME, 1, MAX_CLASSES, "names", unique=True),
    "input_shape": ListOf(whole_number(1, MAX_FRAMES), 3, 3, "whole numbers"),
    "files": FileDigests(),
    "serving": SERVING,
    "calibration": CALIBRATION,
    "familiarity": FAMILIARITY,
}
# The order in which a whole metadata.json is checked; "preprocessing" by PREPROCESSING[kind].
CHECK_ORDER = (
    "format_version",
    "kind",
    "class_names",
    "preprocessing",
    "input_shape",
    "serving",
    "files",
    "calibration",
    "familiarity",
)


def validate_metadata(metadata: Any, source: str | Path, fields: Iterable[str] | None = None) -> None:
    """Check parsed metadata.json against the schema.

    Args:
        metadata: what json.loads returned.
        source: the file, for messages (its bundle folder's metadata.json).
        fields: check only these keys (each must be present), e.g. what a listing shows; None checks a loadable
            bundle: every key of REQUIRED_KEYS present, every known field, and how they fit together.

    Raises:
        BundleError: naming the field, its value and what is allowed.
    """
    if not isinstance(metadata, dict):
        raise BundleError(f"{source} holds a JSON {type(metadata).__name__}; expected an object of bundle metadata")
    names = list(REQUIRED_KEYS if fields is None else fields)
    missing = [key for key in names if key not in metadata]
    if missing:
        raise BundleError(f"{source} lacks {', '.join(missing)}; the bundle is incomplete")
    if "format_version" in names:
        _check_format_version(metadata["format_version"], source)
    if "preprocessing" in names and "kind" not in names:
        names.insert(0, "kind")  # which preprocessing table applies
    for key in CHECK_ORDER if fields is None else names:
        if key == "preprocessing":
            PREPROCESSING[metadata["kind"]].check(metadata[key], key, source)
        elif key in TOP_LEVEL and key in metadata:
            TOP_LEVEL[key].check(metadata[key], key, source)
    if fields is None:
        _check_fit(metadata, source)


def _check_format_version(version: Any, source: str | Path) -> None:
    if _is_whole(version) and version > FORMAT_VERSION:
        raise refuse(
            source,
            "format_version",
            version,
            f"at most {FORMAT_VERSION} (a newer OnePipe made this bundle; this OnePipe reads formats up to "
            f"{FORMAT_VERSION})",
        )
    TOP_LEVEL["format_version"].check(version, "format_version", source)


def _check_fit(metadata: dict[str, Any], source: str | Path) -> None:
    """The fields that bound each other: the preprocessing as a whole, the input shape it makes, the views."""
    try:
        config = preprocessing_from_metadata(metadata)
    except (ValueError, TypeError, OverflowError) as error:
        raise BundleError(f"{source}: preprocessing does not fit together ({error})") from None
    expected_shape = list(config.input_shape)
    if metadata["input_shape"] != expected_shape:
        raise refuse(
            source, "input_shape", metadata["input_shape"], f"{expected_shape}, the shape the preprocessing makes"
        )
    if "serving" in metadata:
        _check_serving_fits(metadata["serving"], config, source)


def _check_serving_fits(serving: dict[str, Any], config: AudioConfig | ImageConfig, source: str | Path) -> None:
    """No view moves the input further than its own size, and all of them together stay within MAX_VIEW_VALUES."""
    if isinstance(config, AudioConfig):
        frames = config.n_frames
        for index, shift in enumerate(serving.get("time_shift_frames", [])):
            if not abs(shift) <= frames:
                raise refuse(
                    source,
                    f"serving.time_shift_frames[{index}]",
                    shift,
                    f"a whole number from {-frames} to {frames}",
                )
        views = 1 + len(serving.get("time_shift_frames", []))
    else:
        height, width = config.image_size
        for index, (down, right) in enumerate(serving.get("pixel_shifts", [])):
            if not (abs(down) <= height and abs(right) <= width):
                raise refuse(
                    source,
                    f"serving.pixel_shifts[{index}]",
                    [down, right],
                    f"[down, right] within the {height} × {width} image: from {-height} to {height} and from "
                    f"{-width} to {width}",
                )
        views = (1 + len(serving.get("pixel_shifts", []))) * (2 if serving.get("average_mirrored") else 1)
    values = views * math.prod(config.input_shape)
    if values > MAX_VIEW_VALUES:
        raise BundleError(
            f"{source}: serving asks for {views} views of a {' × '.join(map(str, config.input_shape))} input, "
            f"{values} values in all; expected at most {MAX_VIEW_VALUES} (fewer shifts, or no mirrors)"
        )


def check_model_fits(
    metadata: dict[str, Any],
    input_details: Sequence[dict[str, Any]],
    output_details: Sequence[dict[str, Any]],
    bundle_dir: str | Path,
    features_details: dict[str, Any] | None = None,
) -> None:
    """Check validated metadata against the LiteRT model's tensors, as the interpreter reads them from the model's
    header before allocating them: one float32 input of shape (batch, *input_shape), a float32 probabilities
    output of shape (batch, number of class names), and the inner features that a familiarity statistic of them
    reads.

    Args:
        metadata: as validate_metadata accepted it.
        input_details: Interpreter.get_input_details().
        output_details: the details of the probabilities output, in a list (app.litert_outputs.served_outputs).
        bundle_dir: the bundle folder, for messages.
        features_details: those of the inner features output, None when the model has none; a familiarity
            statistic of inner features needs it, (batch, d) float32, with class centres and whitening of width d.

    Raises:
        BundleError: the model does not take the input the metadata describes or does not score its classes.
    """
    bundle_dir = Path(bundle_dir)
    source, model = bundle_dir / METADATA_FILE, bundle_dir / TFLITE_FILE
    if len(input_details) != 1 or len(output_details) != 1:
        raise BundleError(
            f"{model} has {len(input_details)} inputs and {len(output_details)} outputs; expected one of each"
        )
    model_input, model_output = input_details[0], output_details[0]
    for role, details in (("input", model_input), ("output", model_output)):
        if np.dtype(details["dtype"]) != np.float32:
            raise BundleError(f"{model} has a {np.dtype(details['dtype'])} {role}; expected float32")
    input_shape = [int(size) for size in model_input["shape"][1:]]
    if list(metadata["input_shape"]) != input_shape:
        raise refuse(source, "input_shape", metadata["input_shape"], f"{input_shape}, the input of {TFLITE_FILE}")
    output_shape = [int(size) for size in model_output["shape"]]
    if len(output_shape) != 2:
        raise BundleError(f"{model} has an output of shape {output_shape}; expected (batch, classes)")
    if len(metadata["class_names"]) != output_shape[1]:
        raise BundleError(
            f"{source}: class_names has {len(metadata['class_names'])} names; expected {output_shape[1]}, one per "
            f"output of {TFLITE_FILE}"
        )
    _check_feature_statistic(metadata, features_details, source, model)


def _check_feature_statistic(
    metadata: dict[str, Any], features_details: dict[str, Any] | None, source: Path, model: Path
) -> None:
    """A familiarity statistic of inner features needs the model's features output, and centres and a whitening
    of its width, one centre per class."""
    familiarity = metadata.get("familiarity") or {}
    if "class_means" not in familiarity and "whitening" not in familiarity:
        return
    if features_details is None:
        raise BundleError(
            f"{source}: familiarity describes the model's inner features, but {model} outputs probabilities only"
        )
    shape = [int(size) for size in features_details["shape"]]
    if np.dtype(features_details["dtype"]) != np.float32 or len(shape) != 2:
        raise BundleError(f"{model} has a features output of shape {shape}; expected float32 (batch, width)")
    width, n_classes = shape[1], len(metadata["class_names"])
    means, whitening = familiarity.get("class_means"), familiarity.get("whitening")
    if means is None or len(means) != n_classes or any(len(row) != width for row in means):
        raise refuse(source, "familiarity.class_means", means, f"{n_classes} lists of {width} numbers (one per class)")
    if whitening is None or len(whitening) != width or any(len(row) != width for row in whitening):
        raise refuse(source, "familiarity.whitening", whitening, f"{width} lists of {width} numbers")
