"""Frozen configurations that a bundle carries in its metadata.json.

Training and serving build features from the same config, so a model never sees input prepared
differently from what it was trained on.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

MIN_SAMPLE_RATE, MAX_SAMPLE_RATE = 1_000, 384_000  # Hz; outside this a header is damaged or hostile
# Upper bounds of the sizes a config sets, so that no config (a training option, or a bundle's metadata.json,
# which may come from anyone) asks for more memory than a laptop or a Binder session has.
MAX_CLIP_SECONDS = 30.0  # longest window
MAX_DECODED_SECONDS = 60.0  # longest input decoded
MAX_N_FFT = 16_384  # samples per STFT frame
MAX_HOP_LENGTH = 16_384  # samples between frames
MAX_N_MELS = 256  # mel bands
MAX_FRAMES = 4_096  # spectrogram frames per window
MAX_STFT_VALUES = 1 << 24  # frames × n_fft of one window (64 MB as float32)
MIN_IMAGE_SIDE, MAX_IMAGE_SIDE = 10, 1024  # pixels; 10 is the smallest input the CNN has a position left for
AUDIO_EXTENSIONS = (".wav", ".flac", ".ogg", ".opus", ".mp3", ".m4a", ".aac", ".webm", ".aiff", ".aif")
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff", ".ppm", ".pgm")


@dataclass(frozen=True)
class AudioConfig:
    """How a clip becomes a log-mel spectrogram of shape (time, n_mels)."""

    sample_rate: int = 16000  # Hz; every clip is resampled to this
    clip_seconds: float = 1.0  # window length; short clips are padded, long ones cut at the loudest part
    n_fft: int = 512  # samples per STFT frame (32 ms at 16 kHz), Hann window
    hop_length: int = 160  # samples between frames (10 ms at 16 kHz)
    n_mels: int = 40  # mel bands
    f_min: float = 20.0  # Hz, lowest mel band edge
    f_max: float = 7600.0  # Hz, highest mel band edge (must be ≤ sample_rate / 2)
    top_db: float = 80.0  # dynamic range kept below the clip's loudest bin, in dB
    # Subtract each mel band's mean over time (cepstral mean normalisation): removes the colouring of
    # a microphone or room and some of a speaker's timbre.
    subtract_band_mean: bool = False
    # Long recordings: the window may reach past either end (into silence) so that a word near the start or end
    # is centred, as a short clip is in its padding. False, as in bundles made before it: it stays inside.
    window_past_edges: bool = False
    max_decoded_seconds: float = 60.0  # longer input is rejected before it can fill memory

    @property
    def clip_samples(self) -> int:
        """Samples in one window."""
        return int(round(self.sample_rate * self.clip_seconds))

    @property
    def n_frames(self) -> int:
        """Spectrogram frames per window (no centre padding)."""
        return 1 + (self.clip_samples - self.n_fft) // self.hop_length

    @property
    def floor_db(self) -> float:
        """The level of silence in a spectrogram: -top_db dB (before any band mean is removed)."""
        return -self.top_db

    @property
    def input_shape(self) -> tuple[int, int, int]:
        """Model input shape (time, n_mels, 1)."""
        return (self.n_frames, self.n_mels, 1)

    def __post_init__(self) -> None:
        if not MIN_SAMPLE_RATE <= self.sample_rate <= MAX_SAMPLE_RATE:
            raise ValueError(f"sample_rate {self.sample_rate} Hz is outside {MIN_SAMPLE_RATE}–{MAX_SAMPLE_RATE} Hz")
        if self.n_fft < 2 or self.hop_length < 1 or self.n_mels < 1:
            raise ValueError(
                f"n_fft {self.n_fft}, hop_length {self.hop_length} and n_mels {self.n_mels} must be at least 2, 1 and 1"
            )
        if not 0 <= self.f_min < self.f_max:
            raise ValueError(f"f_min {self.f_min} Hz must be at least 0 and below f_max {self.f_max} Hz")
        if self.f_max > self.sample_rate / 2:
            raise ValueError(f"f_max {self.f_max} Hz is above the Nyquist frequency {self.sample_rate / 2} Hz")
        if self.clip_samples < self.n_fft:
            raise ValueError(f"clip_seconds {self.clip_seconds} is shorter than one frame of {self.n_fft} samples")
        for name, largest in (
            ("clip_seconds", MAX_CLIP_SECONDS),
            ("max_decoded_seconds", MAX_DECODED_SECONDS),
            ("n_fft", MAX_N_FFT),
            ("hop_length", MAX_HOP_LENGTH),
            ("n_mels", MAX_N_MELS),
        ):
            if not 0 < getattr(self, name) <= largest:
                raise ValueError(f"{name} {getattr(self, name)} is outside 0–{largest:g}")
        if self.n_frames > MAX_FRAMES or self.n_frames * self.n_fft > MAX_STFT_VALUES:
            raise ValueError(
                f"clip_seconds {self.clip_seconds}, n_fft {self.n_fft} and hop_length {self.hop_length} make "
                f"{self.n_frames} frames of {self.n_fft} samples; at most {MAX_FRAMES} frames and "
                f"{MAX_STFT_VALUES} samples in all"
            )


@dataclass(frozen=True)
class ImageConfig:
    """How an image becomes a model input of shape (height, width, channels), values 0–255."""

    image_size: tuple[int, int] = (32, 32)  # (height, width) in pixels
    channels: int = 3  # 1 for grey, 3 for RGB
    # "dark" when the training images show light strokes on a dark background (MNIST); input with a
    # light background is then inverted so a photo of ink on paper matches. None: leave as is.
    background: str | None = None
    # Crop to the content's bounding box and centre it with a margin, as MNIST digits are.
    center_content: bool = False
    max_pixels: int = 50_000_000  # larger images are rejected as decompression bombs

    @property
    def input_shape(self) -> tuple[int, int, int]:
        """Model input shape (height, width, channels)."""
        return (self.image_size[0], self.image_size[1], self.channels)

    def __post_init__(self) -> None:
        if self.channels not in (1, 3):
            raise ValueError(f"channels must be 1 or 3, got {self.channels}")
        if self.background not in (None, "dark", "light"):
            raise ValueError(f"background must be 'dark', 'light' or None, got {self.background!r}")
        object.__setattr__(self, "image_size", tuple(int(s) for s in self.image_size))
        if len(self.image_size) != 2 or not all(MIN_IMAGE_SIDE <= side <= MAX_IMAGE_SIDE for side in self.image_size):
            raise ValueError(
                f"image_size {self.image_size} is not (height, width) from {MIN_IMAGE_SIDE} to {MAX_IMAGE_SIDE} pixels"
            )


@dataclass(frozen=True)
class TrainConfig:
    """How the CNN is fitted. One default recipe for every dataset."""

    epochs: int = 40  # upper bound; early stopping usually ends sooner
    batch_size: int = 64
    seed: int = 0
    learning_rate: float = 2e-3  # peak of the cosine schedule (Adam)
    weight_decay: float = 1e-4  # AdamW decoupled weight decay
    patience: int = 15  # epochs without validation-accuracy gain before stopping
    validation_percent: float = 10.0  # of files, by hashed name, when no validation_list.txt
    test_percent: float = 10.0  # of files, by hashed name, when no testing_list.txt; 0 and 0: every file trains
    # Prefixed to each name before hashing. "" reproduces TensorFlow's Speech Commands split; a data
    # set that is itself one of those splits (e.g. the official test set) needs another salt.
    split_salt: str = ""
    # Speaker (or source) names, as `group_pattern` extracts them, kept whole for validation or test.
    # Either one replaces the hashed split: the named speakers are held out, every other one trains.
    validation_groups: tuple[str, ...] = ()
    test_groups: tuple[str, ...] = ()
    augment: bool = True  # time shift, noise and SpecAugment for audio; shifts (and flips) for images
    augment_copies: int = 2  # extra waveform variants per audio training clip (noise, gain, rate)
    reverberation: float = 0.0  # audio: share of those variants played in a random synthetic room
    horizontal_flip: bool = False  # images only: for natural photos, not for digits or text
    rotation_degrees: float = 10.0  # images: largest random rotation of the training jitter
    zoom: float = 0.1  # images: largest relative random scaling of the training jitter
    translation: float = 0.125  # images: largest random move of the training jitter, as a share of the size
    random_erasing: float = 0.0  # images: share of training images with one random patch filled with noise
    label_smoothing: float = 0.05
    # Real background noise for audio variants: also mix in training clips of a `_silence_` class
    # (Speech Commands' crops of its noise recordings), not only `_background_noise_` files.
    noise_from_silence: bool = False
    # Audio: largest relative frequency-axis warp per spectrogram and epoch (vocal-tract length
    # perturbation, for speakers unlike the training ones); 0 turns it off.
    frequency_warp: float = 0.0
    # Audio: largest relative time stretch per spectrogram and epoch (faster or slower speech at the same
    # pitch); 0 turns it off.
    time_stretch: float = 0.0
    # Validate, keep and ship an exponential moving average of the weights (Polyak averaging).
    weight_averaging: bool = False
    # Mixup: each training example is blended with another of its batch, inputs and one-hot targets alike,
    # by a weight drawn from Beta(mixup, mixup) every epoch; 0 turns it off.
    mixup: float = 0.0
    # With --init-from: epochs at the start in which the layers taken from the other bundle stay fixed (only the
    # new ones learn); every layer trains after. Without --init-from it changes nothing. (Train tab, one speaker's
    # digits → other speakers: 5 gave a mean of 87.9 %, 0 gave 86.1 %, fixed throughout 83.5 %.)
    frozen_epochs: int = 5
    # The network trained (app.model.NETWORKS): "article", the source article's CNN that every shipped bundle is, or
    # "teacher", a larger one that only teaches it (--distill-from).
    network: str = "article"
    # With --distill-from: each training target is (1 − distill_weight) · label + distill_weight · the teacher's
    # probabilities softened at distill_temperature (app.training.distill). Without it they change nothing.
    distill_weight: float = 0.7
    distill_temperature: float = 2.0

    def __post_init__(self) -> None:
        for name in ("validation_groups", "test_groups"):
            object.__setattr__(self, name, tuple(str(group) for group in getattr(self, name)))


def to_dict(config: Any) -> dict[str, Any]:
    """A JSON-ready dict of a config dataclass (tuples become lists)."""
    return dataclasses.asdict(config)


def audio_config_from_dict(values: dict[str, Any]) -> AudioConfig:
    """An AudioConfig from metadata, ignoring keys this version does not know."""
    return _from_dict(AudioConfig, values)


def image_config_from_dict(values: dict[str, Any]) -> ImageConfig:
    """An ImageConfig from metadata, ignoring keys this version does not know."""
    return _from_dict(ImageConfig, values)


def train_config_from_dict(values: dict[str, Any]) -> TrainConfig:
    """A TrainConfig from metadata, ignoring keys this version does not know."""
    return _from_dict(TrainConfig, values)


def preprocessing_from_metadata(metadata: dict[str, Any]) -> AudioConfig | ImageConfig:
    """The preprocessing config stored in a bundle's metadata."""
    if metadata["kind"] == "audio":
        return audio_config_from_dict(metadata["preprocessing"])
    return image_config_from_dict(metadata["preprocessing"])


def _from_dict(cls, values: dict[str, Any]):
    known = {f.name for f in dataclasses.fields(cls)}
    return cls(**{key: value for key, value in values.items() if key in known})
