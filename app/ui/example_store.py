"""The examples a visitor collects to train a model: classes of one kind (sounds or pictures) and their files.

Every example is checked when it arrives, by the same decoding the model's preprocessing uses, so a training run
never meets a file it cannot read: a sound is decoded (any format the Audio tab accepts) and kept as a 16 kHz
mono WAV file, a picture is opened (any format the Images tab accepts) and kept as it came. Each gets a small
preview: the log-mel spectrogram of its loudest second, or a thumbnail. Files live in the visitor's workspace
(app.ui.workspace); the lists live in this object, one per kind and kernel.

Limits, with a message that says what to do: MIN_CLASSES to MAX_CLASSES classes with checked names,
MAX_EXAMPLES_PER_CLASS examples per class, MAX_VISITOR_BYTES of examples per visitor (both kinds together).

Example:
    >>> import io, tempfile
    >>> from pathlib import Path
    >>> from PIL import Image
    >>> store = ExampleStore(Path(tempfile.mkdtemp()), "image")
    >>> cats = store.add_class("cat")
    >>> picture = io.BytesIO()
    >>> Image.linear_gradient("L").save(picture, format="PNG")
    >>> example = store.add(cats.id, picture.getvalue(), "gradient.png")
    >>> store.counts(), example.file.suffix
    ({'cat': 1}, '.png')
    >>> store.rename_class(cats.id, "a/b")
    Traceback (most recent call last):
    ...
    app.errors.InputError: a class name cannot contain /; received 'a/b'
"""

from __future__ import annotations

import io
import secrets
import shutil
import threading
import unicodedata
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from app.class_folders import BACKGROUND_NOISE_FOLDER
from app.config import AudioConfig, ImageConfig
from app.errors import InputError

MIN_CLASSES, MAX_CLASSES = 2, 20
MAX_EXAMPLES_PER_CLASS = 500
MIN_EXAMPLES_TO_TRAIN = 2  # per class
MAX_VISITOR_BYTES = 200 * 2**20  # the files of one visitor's examples, sounds and pictures together
MAX_CLASS_NAME_LENGTH = 40
NAME_CHARACTERS_REFUSED = '/\\:*?"<>|'  # path separators, and what some file systems refuse
KINDS = {"audio": "sounds", "image": "pictures"}
SAMPLE_RATE = AudioConfig().sample_rate  # sounds are kept at the rate training uses by default
CHECK_IMAGE = ImageConfig(image_size=(64, 64), channels=3)  # a picture is opened at this size to check it
PICTURE_SUFFIXES = {"PNG": ".png", "JPEG": ".jpg", "GIF": ".gif", "BMP": ".bmp", "WEBP": ".webp", "TIFF": ".tif"}


@dataclass
class Example:
    """One collected example: its file, its preview (PNG), its size on disk and the name shown for it."""

    id: str
    file: Path
    preview: Path
    size: int  # bytes of `file`
    label: str  # "recording 3", "cat.jpg" …


@dataclass
class ExampleClass:
    """A class: a stable id (its folder's name), the name the visitor gave it, and its examples in order."""

    id: str
    name: str
    examples: list[Example] = field(default_factory=list)


class LimitError(InputError):
    """A limit would be passed (examples per class, bytes per visitor): adding more of the same fails too."""


class Usage:
    """Bytes of examples a visitor keeps, against MAX_VISITOR_BYTES (one Usage shared by the stores of a visitor)."""

    def __init__(self, limit: int = MAX_VISITOR_BYTES):
        self.limit = limit
        self.bytes = 0
        self.lock = threading.Lock()

    def reserve(self, size: int) -> None:
        """Count `size` more bytes; InputError (nothing counted) when they would pass the limit."""
        with self.lock:
            if self.bytes + size > self.limit:
                raise LimitError(
                    f"your examples take {self.bytes / 2**20:.1f} MB and this one {size / 2**20:.1f} MB more; the "
                    f"limit is {self.limit / 2**20:.0f} MB per visitor. Remove some examples (or a class) first"
                )
            self.bytes += size

    def release(self, size: int) -> None:
        with self.lock:
            self.bytes = max(0, self.bytes - size)


def check_class_name(name: str, others: Iterable[str] = ()) -> str:
    """The name with surrounding spaces removed, if it can name a class (and its folder); InputError otherwise.

    Refused: an empty name, one longer than MAX_CLASS_NAME_LENGTH, path characters (NAME_CHARACTERS_REFUSED),
    control characters, a leading "." (hidden, or "..") or the special `_background_noise_`, and a name equal to
    one of `others` but for letter case (on many disks those would be one folder).
    """
    cleaned = name.strip()
    if not cleaned:
        raise InputError("a class needs a name; type one, such as 'clap' or 'cat'")
    if len(cleaned) > MAX_CLASS_NAME_LENGTH:
        raise InputError(f"'{cleaned[:20]}…' is {len(cleaned)} characters; at most {MAX_CLASS_NAME_LENGTH} please")
    refused = sorted({c for c in cleaned if c in NAME_CHARACTERS_REFUSED})
    if refused:
        raise InputError(f"a class name cannot contain {' '.join(refused)}; received '{cleaned}'")
    if any(unicodedata.category(c).startswith("C") for c in cleaned):
        raise InputError(f"a class name cannot contain control characters; received {cleaned!r}")
    if cleaned.startswith(".") or cleaned == BACKGROUND_NOISE_FOLDER:
        raise InputError(f"'{cleaned}' cannot name a class (names starting with '.' and '{BACKGROUND_NOISE_FOLDER}' "
                         "mean something else in a dataset folder); choose another")  # fmt: skip
    if cleaned.casefold() in {other.casefold() for other in others}:
        raise InputError(f"there is already a class named '{cleaned}'; each class needs a name of its own")
    return cleaned


class ExampleStore:
    """The classes and examples of one kind, in `folder/<class id>/` with previews in `previews`.

    Args:
        folder: where the example files go (made if missing).
        kind: "audio" (sounds) or "image" (pictures).
        usage: the visitor's byte count, shared with the store of the other kind; None makes one.
        previews: where the preview PNGs go; default `folder/previews`.
    """

    def __init__(self, folder: Path, kind: str, usage: Usage | None = None, previews: Path | None = None):
        if kind not in KINDS:
            raise ValueError(f"kind must be one of {', '.join(KINDS)}; received {kind!r}")
        self.folder, self.kind = Path(folder), kind
        self.previews = Path(previews) if previews is not None else self.folder / "previews"
        self.folder.mkdir(parents=True, exist_ok=True)
        self.previews.mkdir(parents=True, exist_ok=True)
        self.usage = usage or Usage()
        self.classes: list[ExampleClass] = []
        self._lock = threading.RLock()
        self._added = 0  # examples ever added: numbers the names of recordings and snapshots

    # --- classes -------------------------------------------------------------------------------------------

    def find(self, class_id: str) -> ExampleClass:
        """The class with this id; InputError when it was removed meanwhile."""
        for example_class in self.classes:
            if example_class.id == class_id:
                return example_class
        raise InputError("that class was removed; choose another")

    def find_by_name(self, name: str) -> ExampleClass | None:
        """The class of this name (letter case ignored), or None."""
        return next((c for c in self.classes if c.name.casefold() == name.strip().casefold()), None)

    def add_class(self, name: str | None = None) -> ExampleClass:
        """A new empty class, named `name` (checked) or "Class N"; InputError beyond MAX_CLASSES."""
        with self._lock:
            if len(self.classes) >= MAX_CLASSES:
                raise LimitError(f"{MAX_CLASSES} classes is the most a model here can learn; remove one to add another")
            names = [c.name for c in self.classes]
            if name is None:
                number = len(self.classes) + 1
                while f"Class {number}".casefold() in {n.casefold() for n in names}:
                    number += 1
                name = f"Class {number}"
            example_class = ExampleClass(secrets.token_hex(4), check_class_name(name, names))
            (self.folder / example_class.id).mkdir()
            self.classes.append(example_class)
            return example_class

    def rename_class(self, class_id: str, name: str) -> ExampleClass:
        """Give a class a new (checked) name; InputError, and no change, when it cannot be used."""
        with self._lock:
            example_class = self.find(class_id)
            example_class.name = check_class_name(name, [c.name for c in self.classes if c.id != class_id])
            return example_class

    def remove_class(self, class_id: str) -> None:
        """Delete a class and its examples' files."""
        with self._lock:
            example_class = self.find(class_id)
            for example in example_class.examples:
                self._delete_files(example)
            shutil.rmtree(self.folder / example_class.id, ignore_errors=True)
            self.classes.remove(example_class)

    # --- examples ------------------------------------------------------------------------------------------

    def add(self, class_id: str, data: bytes, label: str, file_name: str | None = None) -> Example:
        """Check one example and keep it in the class.

        Args:
            class_id: the class it belongs to.
            data: the file's bytes, as uploaded, recorded or snapped.
            label: the name shown for it ("recording 3", "cat.jpg").
            file_name: the name it came with, for messages (default: `label`).

        Raises:
            InputError: it cannot be read as a sound (picture), holds nothing (silence, one flat colour), or a
                limit would be passed; the message names it and says what to do.
        """
        shown = f"'{file_name or label}'"
        with self._lock:
            self._check_room(self.find(class_id))
        stored, suffix, preview = self._checked(data, shown)  # decoding takes a moment: outside the lock
        self.usage.reserve(len(stored))
        try:
            with self._lock:
                example_class = self.find(class_id)
                self._check_room(example_class)
                self._added += 1
                example_id = f"{self._added:05d}-{secrets.token_hex(3)}"
                example = Example(
                    example_id,
                    self.folder / example_class.id / f"{example_id}{suffix}",
                    self.previews / f"{example_id}.png",
                    len(stored),
                    label,
                )
                example.file.write_bytes(stored)
                example.preview.write_bytes(preview)
                example_class.examples.append(example)
                return example
        except BaseException:
            self.usage.release(len(stored))
            raise

    def remove(self, class_id: str, example_id: str) -> None:
        """Delete one example (nothing happens if it is already gone)."""
        with self._lock:
            example_class = self.find(class_id)
            for example in list(example_class.examples):
                if example.id == example_id:
                    example_class.examples.remove(example)
                    self._delete_files(example)

    def counts(self) -> dict[str, int]:
        """{class name: examples}, in class order."""
        return {c.name: len(c.examples) for c in self.classes}

    def next_number(self) -> int:
        """The number the next recording or snapshot is shown with."""
        return self._added + 1

    def check_ready(self) -> None:
        """InputError saying what is missing before a model can train: at least MIN_CLASSES classes, each with at
        least MIN_EXAMPLES_TO_TRAIN examples."""
        if len(self.classes) < MIN_CLASSES:
            raise InputError(
                f"a model needs at least {MIN_CLASSES} classes to tell apart; add "
                f"{MIN_CLASSES - len(self.classes)} more"
            )
        short = [c for c in self.classes if len(c.examples) < MIN_EXAMPLES_TO_TRAIN]
        if short:
            names = ", ".join(f"'{c.name}' ({len(c.examples)})" for c in short)
            raise InputError(
                f"every class needs at least {MIN_EXAMPLES_TO_TRAIN} examples, and some have fewer: {names}. Add "
                "examples, or remove the class"
            )

    def write_dataset(
        self, target: Path, held_out: Mapping[str, Iterable[str]] | None = None, listing: str = "validation_list.txt"
    ) -> dict[str, int]:
        """Write the examples as a class-folder dataset `target/<class name>/<file>` (hard links where the disk
        allows, else copies), for `python -m app train`.

        Args:
            target: a new folder.
            held_out: {class id: example ids} to hold out, listed in target/`listing`: validation_list.txt (they
                choose the epoch) or testing_list.txt (they only score the model).

        Returns:
            {class name: examples written}.
        """
        with self._lock:
            classes = [(c.name, list(c.examples), set((held_out or {}).get(c.id, ()))) for c in self.classes]
        target.mkdir(parents=True)
        listed = []
        for name, examples, held in classes:
            (target / name).mkdir()
            for example in examples:
                _link_or_copy(example.file, target / name / example.file.name)
                if example.id in held:
                    listed.append(f"{name}/{example.file.name}")
        if listed:
            (target / listing).write_text("\n".join(listed) + "\n")
        return {name: len(examples) for name, examples, _ in classes}

    # --- inside --------------------------------------------------------------------------------------------

    def _checked(self, data: bytes, shown: str) -> tuple[bytes, str, bytes]:
        """(bytes to keep, file suffix, preview PNG) of an example; InputError when it cannot be used."""
        if not data:
            raise InputError(f"{shown} is empty (0 bytes); nothing was added")
        if self.kind == "audio":
            return _checked_sound(data, shown)
        return _checked_picture(data, shown)

    def _check_room(self, example_class: ExampleClass) -> None:
        if len(example_class.examples) >= MAX_EXAMPLES_PER_CLASS:
            raise LimitError(
                f"class '{example_class.name}' has {MAX_EXAMPLES_PER_CLASS} examples, the most one class can have; "
                "remove some to add others"
            )

    def _delete_files(self, example: Example) -> None:
        example.file.unlink(missing_ok=True)
        example.preview.unlink(missing_ok=True)
        self.usage.release(example.size)


def _checked_sound(data: bytes, shown: str) -> tuple[bytes, str, bytes]:
    """A sound decoded as training will read it: (16 kHz mono PCM16 WAV, ".wav", spectrogram preview PNG)."""
    import scipy.io.wavfile

    from app.audio import decode_audio, fit_window, log_mel_spectrogram
    from app.ui.render import spectrogram_png

    try:
        waveform = decode_audio(data, SAMPLE_RATE)
    except InputError as error:
        raise InputError(_named(str(error), data, shown)) from None
    _check_content_of(waveform, "audio", shown)
    config = AudioConfig(sample_rate=SAMPLE_RATE)
    preview = spectrogram_png(log_mel_spectrogram(fit_window(waveform, config), config))
    buffer = io.BytesIO()
    scipy.io.wavfile.write(buffer, SAMPLE_RATE, np.round(waveform * 32767).astype(np.int16))
    return buffer.getvalue(), ".wav", preview


def _checked_picture(data: bytes, shown: str) -> tuple[bytes, str, bytes]:
    """A picture opened as training will open it: (the bytes, or a PNG for a format training would not
    recognise by its name, the suffix, thumbnail PNG)."""
    from PIL import Image

    from app.images import load_image
    from app.ui.render import png_bytes, thumbnail_png

    try:
        pixels = load_image(data, CHECK_IMAGE)
    except InputError as error:
        raise InputError(_named(str(error), data, shown)) from None
    _check_content_of(pixels, "image", shown)
    with Image.open(io.BytesIO(data)) as image:
        suffix = PICTURE_SUFFIXES.get(image.format or "")
        if suffix is None:  # e.g. PPM or ICO: kept as PNG, which training reads by its name
            image.seek(0)
            data, suffix = png_bytes(image.convert("RGBA" if "A" in image.getbands() else "RGB")), ".png"
    return data, suffix, thumbnail_png(data)


def _check_content_of(example: np.ndarray, kind: str, shown: str) -> None:
    """app.content.check_content, its message naming the example ("clip.wav is silent …") instead of "the audio"."""
    from app.content import check_content

    try:
        check_content(example, kind)
    except InputError as error:
        raise InputError(str(error).replace(f"the {kind} ", f"{shown} ", 1)) from None


def _named(message: str, data: bytes, shown: str) -> str:
    """A decoder's message about "N bytes" that names the file instead."""
    from app.sources import describe_source

    return message.replace(describe_source(data), shown, 1)


def _link_or_copy(source: Path, target: Path) -> None:
    try:
        target.hardlink_to(source)
    except OSError:
        shutil.copyfile(source, target)
