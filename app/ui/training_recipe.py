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


@dataclass(frozen=True)
class Recipe:
    """The Advanced fold's settings; the defaults suit 10–100 sounds per class (DEFAULTS has those for pictures)."""

    epochs: int = 40  # the most that run; with held-out examples training stops once they no longer improve
    batch_size: int = 16
    learning_rate: float = 0.002  # peak of the cosine schedule
    patience: int = 10  # epochs without a better held-out accuracy before stopping
    speech: bool = False  # sounds are spoken words: the SPEECH_AUGMENTATION recipe
    early_stopping: bool = True  # held-out examples choose the epoch (else they only score the last one)

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
        return [
            "--epochs", str(self.epochs), "--batch-size", str(self.batch_size),
            "--learning-rate", f"{self.learning_rate:g}", *split, *augmentation,
        ]  # fmt: skip


DEFAULTS = {
    "audio": Recipe(),
    "image": Recipe(epochs=60, batch_size=8, learning_rate=0.005, early_stopping=False),
}


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
