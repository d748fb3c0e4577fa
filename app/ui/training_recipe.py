"""How the Train tab trains: defaults for a few dozen examples per class, and the options of its Advanced fold.

The command line's defaults suit thousands of files; a visitor brings tens. So the Train tab asks for stronger
augmentation (sounds: more waveform variants, time stretching and frequency warping; pictures: larger rotations
and zooms, random erasing) and holds examples out only when there are enough: with at least HOLD_OUT_MIN in every
class, HOLD_OUT_SHARE of each class (spread over the order they came in) chooses the best epoch, stops training
once it stops improving, and gives the per-class accuracy and confusion matrix; with fewer, every example trains
for all the epochs. For spoken words (`speech`), each mel band's mean is removed (the colour of a voice and of a
microphone) and the augmentation is stronger still, which helps with voices the model never heard; it would erase a
sound that stays the same for the whole second (a whistle, a hum), hence not the default.

Pictures bring no waveform variants, so an epoch of theirs is a few optimizer steps: their defaults take smaller
batches, a higher learning rate and more epochs (DEFAULTS), and no early stopping: training keeps the earliest epoch
with the best held-out accuracy, and a few held-out pictures reach 100 % long before the model is trained (a model
kept that way answered 50 % on its own training pictures moved by a few pixels; trained to the end, 100 %). Their
held-out examples only score the model. Sounds bring four variants of each clip, so their early epochs are trained
already, and stopping early helped with voices the model never heard (trained on one speaker's digits, 74 % and
75 % right on other speakers, against 64 % and 60 % trained to the end).

Sounds start, by default, from the shipped speech model (DONOR_BUNDLES: its two Conv2D blocks and its Dense layer,
learned from many speakers; `train --init-from`, app.training.init_from): `find_donor` reads its metadata.json (no
TensorFlow) and gives the options that make the run's preprocessing the donor's (`--subtract-band-mean` for
speech-commands), and the run refuses the bundle if they still differ. Trained on one speaker's "0", "1" and "2"
(20 each) and scored on each of four other speakers' (20 pairs), such models were right 88 % of the time on
average (16 pairs of 20 at 80 % or more), against 65 % from scratch; 20 epochs (DONOR_EPOCHS) did as well as 40
in half the time. Pictures have no donor: webcam frames become 48 × 64 inputs and no shipped image bundle takes
those.

Example:
    >>> recipe = Recipe(epochs=20)
    >>> held_out_positions(12)  # of 12 examples, these two are held out
    [3, 9]
    >>> arguments = recipe.arguments("image", holding_out=True)
    >>> arguments[:4], "--random-erasing" in arguments
    (['--epochs', '20', '--batch-size', '16'], True)
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

HOLD_OUT_MIN = 10  # examples every class needs before some are held out
HOLD_OUT_SHARE = 0.2
EPOCH_CHOICES = (1, 200)  # the Advanced fold's bounds
BATCH_SIZES = (8, 16, 32, 64)
LEARNING_RATES = (0.0005, 0.001, 0.002, 0.005)
# Augmentation for few examples, as `python -m app train` options.
AUDIO_AUGMENTATION = ("--augment-copies", "4", "--time-stretch", "0.15", "--frequency-warp", "0.1")
SPEECH_AUGMENTATION = (
    "--augment-copies",
    "8",
    "--time-stretch",
    "0.15",
    "--frequency-warp",
    "0.2",
    "--subtract-band-mean",
)
IMAGE_AUGMENTATION = ("--rotation", "15", "--zoom", "0.15", "--random-erasing", "0.25")
DONOR_BUNDLES = {"audio": "speech-commands"}  # the shipped bundle a kind starts from (none for pictures)
DONOR_EPOCHS = 20  # the epochs of a run that starts from a donor (the Advanced fold's default then)
# AudioConfig fields without a `train` option, and the values a run gets (f_max: min(7600, 0.475 × sample rate)).
AUDIO_FIXED = {"f_min": 20.0, "top_db": 80.0}


@dataclass(frozen=True)
class Donor:
    """A shipped bundle whose trained layers a run starts from, and the `train` options that give the run its
    preprocessing."""

    bundle: Path
    options: tuple[str, ...]  # e.g. ("--sample-rate", "16000", …, "--subtract-band-mean")

    def arguments(self) -> list[str]:
        """The options, then `--init-from BUNDLE`."""
        return [*self.options, "--init-from", str(self.bundle)]


@dataclass(frozen=True)
class Recipe:
    """The Advanced fold's settings; the defaults suit 10–100 sounds per class (DEFAULTS has those for pictures)."""

    epochs: int = 40  # the most that run; with held-out examples training stops once they no longer improve
    batch_size: int = 16
    learning_rate: float = 0.002  # peak of the cosine schedule
    patience: int = 10  # epochs without a better held-out accuracy before stopping
    speech: bool = False  # sounds are spoken words: the SPEECH_AUGMENTATION recipe
    early_stopping: bool = True  # held-out examples choose the epoch (else they only score the last one)
    donor: Donor | None = None  # start from this bundle's layers (find_donor); None: from scratch

    def __post_init__(self) -> None:
        if not EPOCH_CHOICES[0] <= self.epochs <= EPOCH_CHOICES[1]:
            raise ValueError(f"epochs must be from {EPOCH_CHOICES[0]} to {EPOCH_CHOICES[1]}; received {self.epochs}")
        if self.batch_size < 1 or not 0 < self.learning_rate < 1:
            raise ValueError(f"batch size {self.batch_size} and learning rate {self.learning_rate} are out of range")

    def arguments(self, kind: str, holding_out: bool) -> list[str]:
        """The `python -m app train` options of this recipe for "audio" or "image" data; `holding_out` when the
        dataset lists held-out examples in its validation_list.txt."""
        if holding_out and self.early_stopping:
            split = ["--validation-percent", "20", "--test-percent", "0", "--patience", str(self.patience)]
        elif holding_out:
            split = ["--validation-percent", "0", "--test-percent", "20"]
        else:
            split = ["--validation-percent", "0", "--test-percent", "0"]
        if kind == "audio":
            augmentation = SPEECH_AUGMENTATION if self.speech else AUDIO_AUGMENTATION
        else:
            augmentation = IMAGE_AUGMENTATION
        donor = self.donor.arguments() if self.donor is not None else []
        return [
            "--epochs", str(self.epochs), "--batch-size", str(self.batch_size),
            "--learning-rate", f"{self.learning_rate:g}", *split, *augmentation, *donor,
        ]  # fmt: skip


DEFAULTS = {
    "audio": Recipe(),
    "image": Recipe(epochs=60, batch_size=8, learning_rate=0.005, early_stopping=False),
}


def find_donor(models_dir: Path, kind: str) -> Donor | None:
    """The shipped bundle of DONOR_BUNDLES[kind] under `models_dir` with the options that give a run its
    preprocessing; None when there is none, its metadata.json cannot be read, it is of another kind, or no
    `train` options reproduce its preprocessing. Reads only metadata.json (the run checks the model)."""
    from app.bundle import read_metadata
    from app.errors import OnePipeError

    name = DONOR_BUNDLES.get(kind)
    if name is None or not (Path(models_dir) / name).is_dir():
        return None
    try:
        metadata = read_metadata(Path(models_dir) / name)
    except OnePipeError:
        return None
    if metadata["kind"] != kind:
        return None
    options = audio_options(metadata["preprocessing"])
    return Donor(Path(models_dir) / name, tuple(options)) if options is not None else None


def audio_options(preprocessing: dict[str, Any]) -> list[str] | None:
    """The `train` options that give a run the audio `preprocessing` (a bundle's metadata.json field); None when
    a field without an option (AUDIO_FIXED, f_max) differs from what those options give.

    Example:
        >>> audio_options({"sample_rate": 16000, "clip_seconds": 1.0, "n_fft": 512, "hop_length": 160, "n_mels": 40,
        ...                "f_min": 20.0, "f_max": 7600.0, "top_db": 80.0, "subtract_band_mean": True})[-3:]
        ['--n-mels', '40', '--subtract-band-mean']
    """
    try:
        rate = int(preprocessing["sample_rate"])
        fixed = {**AUDIO_FIXED, "f_max": min(7600.0, rate * 0.475)}
        if any(float(preprocessing.get(field, value)) != value for field, value in fixed.items()):
            return None
        options = [
            "--sample-rate", str(rate), "--clip-seconds", f"{float(preprocessing['clip_seconds']):g}",
            "--n-fft", str(int(preprocessing["n_fft"])), "--hop-length", str(int(preprocessing["hop_length"])),
            "--n-mels", str(int(preprocessing["n_mels"])),
        ]  # fmt: skip
    except (KeyError, TypeError, ValueError):
        return None
    return options + (["--subtract-band-mean"] if preprocessing.get("subtract_band_mean") else [])


def held_out_listing(recipe: Recipe) -> str:
    """The dataset's list file of the held-out examples: validation_list.txt when they choose the epoch,
    testing_list.txt when they only score the model."""
    return "validation_list.txt" if recipe.early_stopping else "testing_list.txt"


def held_out_positions(count: int) -> list[int]:
    """Positions (0-based, in the order examples came) of the examples of a class of `count` held out: none below
    HOLD_OUT_MIN, else HOLD_OUT_SHARE of them spread evenly (recordings made in a row differ over time)."""
    if count < HOLD_OUT_MIN:
        return []
    held = max(1, round(count * HOLD_OUT_SHARE))
    return [int((k + 0.5) * count / held) for k in range(held)]
