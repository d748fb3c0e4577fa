"""Training-time augmentation in NumPy: waveform variants for audio, batch-level masks and shifts.

Waveform variants (made once per run) imitate what a microphone adds: the word anywhere in the
window, faster or slower speech, background noise at random loudness, and a browser's Opus codec.
Batch augmentation (every epoch) adds SpecAugment masks and small time shifts for spectrograms (and,
when asked for, frequency warping and time stretching), and small affine jitter (optionally flips and
random erasing) for images; mixup, when asked for, blends examples of both kinds.
"""

from __future__ import annotations

import io

import numpy as np
import scipy.ndimage
import scipy.signal

from app.audio import fit_window, hertz_to_mel, mel_to_hertz
from app.config import AudioConfig
from app.noise import BROADBAND_KINDS, add_at_snr, make_noise, reverberate, room_impulse_response
from app.views import shift_frames, shift_with_fill

OPUS_FRACTION = 0.3  # share of waveform variants passed through a WebM/Opus round trip


def add_recorded_or_generated_noise(
    rng: np.random.Generator, waveform: np.ndarray, noise_bank: list[np.ndarray], snr_db: float, sample_rate: int
) -> np.ndarray:
    """The (samples,) waveform at sample_rate Hz plus, at snr_db dB, a random excerpt of the noise bank
    (70 % of the time, if any) or generated white, pink or brown noise."""
    if noise_bank and rng.random() < 0.7:
        source = noise_bank[rng.integers(len(noise_bank))]
        start = rng.integers(0, max(1, source.size - waveform.size))
        noise = np.resize(source[start : start + waveform.size], waveform.size)
    else:
        # rising to the lowest frequency: the noise the recipes in models/README.md were measured with
        noise = make_noise(str(rng.choice(BROADBAND_KINDS)), waveform.size, rng, sample_rate, flat_below_hz=0.0)
    return add_at_snr(waveform, noise, snr_db)


def encode_webm_opus(waveform: np.ndarray, sample_rate: int) -> bytes:
    """A (samples,) waveform as a WebM/Opus file at 48 kHz, as a browser's MediaRecorder makes it."""
    import av

    from app.audio import resample

    buffer = io.BytesIO()
    with av.open(buffer, mode="w", format="webm") as container:
        stream = container.add_stream("libopus", rate=48000)
        stream.layout = "mono"
        pcm = resample(waveform, sample_rate, 48000)
        frame = av.AudioFrame.from_ndarray(pcm[None, :].astype(np.float32), format="flt", layout="mono")
        frame.sample_rate = 48000
        for packet in stream.encode(frame):
            container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)
    return buffer.getvalue()


def opus_round_trip(waveform: np.ndarray, sample_rate: int) -> np.ndarray:
    """Encode to WebM/Opus and decode back, as a browser recording arrives (same length)."""
    from app.audio import decode_audio

    decoded = decode_audio(encode_webm_opus(waveform, sample_rate), sample_rate)
    return np.resize(decoded, waveform.size).astype(np.float32) if decoded.size != waveform.size else decoded


def waveform_variant(
    rng: np.random.Generator,
    waveform: np.ndarray,
    config: AudioConfig,
    noise_bank: list[np.ndarray],
    reverberation: float = 0.0,
) -> np.ndarray:
    """One augmented (clip_samples,) window: speed change, shift, a room for a `reverberation` share of them,
    noise, sometimes Opus. Without reverberation the draws are those of the recipes made before it."""
    rate = rng.uniform(0.85, 1.15)
    up, down = 100, int(round(100 * rate))
    changed = scipy.signal.resample_poly(waveform, up, down).astype(np.float32)
    shift = int(rng.integers(-config.clip_samples // 8, config.clip_samples // 8 + 1))
    changed = shift_with_fill(fit_window(changed, config), shift, 0.0)  # silence where the clip moved away
    if reverberation and rng.random() < reverberation:
        changed = in_a_room(rng, changed, config.sample_rate)
    if rng.random() < 0.8:
        snr_db = float(rng.uniform(0.0, 30.0))
        changed = add_recorded_or_generated_noise(rng, changed, noise_bank, snr_db, config.sample_rate)
    changed *= rng.uniform(0.05, 1.0) / (np.max(np.abs(changed)) + 1e-9)
    if rng.random() < OPUS_FRACTION:
        changed = opus_round_trip(changed, config.sample_rate)
    return np.clip(changed, -1.0, 1.0)


def in_a_room(rng: np.random.Generator, waveform: np.ndarray, sample_rate: int) -> np.ndarray:
    """The (samples,) waveform in a random synthetic room: RT60 0.1–1.0 s, direct-to-reverberant ratio −5 to
    +10 dB (app.noise.room_impulse_response); same length and peak."""
    impulse = room_impulse_response(rng, float(rng.uniform(0.1, 1.0)), sample_rate, float(rng.uniform(-5.0, 10.0)))
    return reverberate(waveform, impulse)


def spec_augment(rng: np.random.Generator, batch: np.ndarray, floor_db: float) -> np.ndarray:
    """Time shift, two time masks and two frequency masks per spectrogram of (batch, time, n_mels[, 1]).

    The shift is drawn from -(time // 10) - 1 to time // 10 frames when time is not a multiple of 10 (-10 to 9
    at 97 frames: floor division of a negative number). Kept so that the shipped bundles rebuild as they were.
    """
    output = batch.copy()
    n_frames, n_mels = batch.shape[1], batch.shape[2]
    for example in output:
        shift = int(rng.integers(-n_frames // 10, n_frames // 10 + 1))
        example[:] = shift_frames(example[None], shift, floor_db)[0]
        fill = float(example.mean())
        for _ in range(2):
            width = int(rng.integers(0, n_frames // 10 + 1))
            start = int(rng.integers(0, n_frames - width + 1))
            example[start : start + width] = fill
            height = int(rng.integers(0, n_mels // 8 + 1))
            start = int(rng.integers(0, n_mels - height + 1))
            example[:, start : start + height] = fill
    return output


def stretch_time(rng: np.random.Generator, batch: np.ndarray, floor_db: float, max_stretch: float) -> np.ndarray:
    """Tempo perturbation of (batch, time, n_mels[, 1]) log-mel spectrograms: each one's time axis is
    stretched about the window's centre by its own random factor in [1 / (1 + max_stretch), 1 + max_stretch]
    (slower or faster speech at the same pitch and formants), by linear interpolation between frames;
    frames whose source lies outside the window are silence (floor_db)."""
    n_frames = batch.shape[1]
    centre = (n_frames - 1) / 2
    factors = np.exp(rng.uniform(-np.log1p(max_stretch), np.log1p(max_stretch), size=(batch.shape[0], 1)))
    source = centre + (np.arange(n_frames)[None, :] - centre) / factors  # (batch, time) fractional frame
    outside = (source < 0) | (source > n_frames - 1)
    stretched = _interpolate_along(batch, source, axis=1)
    shape = (batch.shape[0], n_frames) + (1,) * (batch.ndim - 2)
    return np.where(outside.reshape(shape), np.asarray(floor_db, batch.dtype), stretched)


def warp_frequencies(rng: np.random.Generator, batch: np.ndarray, config: AudioConfig, max_warp: float) -> np.ndarray:
    """Vocal-tract length perturbation of (batch, time, n_mels[, 1]) log-mel spectrograms.

    Each spectrogram's frequency axis is scaled by its own random factor in [1 - max_warp, 1 + max_warp]
    (a longer or shorter vocal tract moves every formant by the same ratio), by linear interpolation
    between mel bands; bands whose source lies outside the range repeat the edge band.
    """
    n_mels = batch.shape[2]
    edges = np.linspace(hertz_to_mel(config.f_min), hertz_to_mel(config.f_max), n_mels + 2)
    centres = edges[1:-1]
    centre_hz = mel_to_hertz(centres)
    factors = rng.uniform(1.0 - max_warp, 1.0 + max_warp, size=(batch.shape[0], 1))
    source = (hertz_to_mel(centre_hz[None, :] / factors) - centres[0]) / (centres[1] - centres[0])
    return _interpolate_along(batch, source, axis=2)  # source: (batch, n_mels) fractional band index


def _interpolate_along(batch: np.ndarray, source: np.ndarray, axis: int) -> np.ndarray:
    """Linear interpolation of (batch, …) arrays along axis 1 or 2 at fractional indices source, of shape
    (batch, batch.shape[axis]); indices outside the axis take the edge value."""
    length = batch.shape[axis]
    source = np.clip(source, 0.0, length - 1.0)
    lower = np.floor(source).astype(np.int64)
    upper = np.minimum(lower + 1, length - 1)
    weight = (source - lower).astype(batch.dtype)
    shape = [batch.shape[0]] + [1] * (batch.ndim - 1)
    shape[axis] = length
    before = np.take_along_axis(batch, lower.reshape(shape), axis=axis)
    after = np.take_along_axis(batch, upper.reshape(shape), axis=axis)
    return before + weight.reshape(shape) * (after - before)


def jitter_images(
    rng: np.random.Generator,
    batch: np.ndarray,
    horizontal_flip: bool,
    rotation_degrees: float = 10.0,
    zoom: float = 0.1,
    translation: float = 0.125,
) -> np.ndarray:
    """Random small affine changes of (batch, height, width, channels) images: rotation up to
    rotation_degrees, scale 1 ± zoom, a move of up to `translation` × the size in each direction (edge pixels
    repeat), and optional left-right flips.
    """
    output = np.empty_like(batch)
    height, width = batch.shape[1], batch.shape[2]
    centre = np.array([(height - 1) / 2, (width - 1) / 2])
    for index in range(batch.shape[0]):
        angle = np.deg2rad(rng.uniform(-rotation_degrees, rotation_degrees))
        scale = rng.uniform(1.0 - zoom, 1.0 + zoom)
        shift = rng.uniform(-1, 1, size=2) * np.array([height, width]) * translation
        # affine_transform maps output coordinates to input ones: inverse rotation and scale.
        matrix = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]]) / scale
        offset = centre - matrix @ (centre + shift)
        image = batch[index]
        if horizontal_flip and rng.random() < 0.5:
            image = image[:, ::-1]
        for channel in range(batch.shape[3]):
            output[index, :, :, channel] = scipy.ndimage.affine_transform(
                image[:, :, channel].astype(np.float32), matrix, offset, order=1, mode="nearest"
            )
    return output


def erase_patches(rng: np.random.Generator, batch: np.ndarray, probability: float) -> np.ndarray:
    """Random erasing (Zhong et al. 2020) of (batch, height, width, channels) images: with the given
    probability, one rectangle of 2–25 % of the image (aspect ratio 0.3–3.3) is filled with uniform noise
    spanning the batch's value range."""
    output = batch.copy()
    height, width = batch.shape[1], batch.shape[2]
    low, high = float(batch.min()), float(batch.max())
    for example in output:
        if rng.random() >= probability:
            continue
        area = rng.uniform(0.02, 0.25) * height * width
        aspect = np.exp(rng.uniform(np.log(0.3), np.log(1 / 0.3)))
        patch_height = int(min(height, max(1, round(np.sqrt(area * aspect)))))
        patch_width = int(min(width, max(1, round(np.sqrt(area / aspect)))))
        top = int(rng.integers(0, height - patch_height + 1))
        left = int(rng.integers(0, width - patch_width + 1))
        noise = rng.uniform(low, high, size=(patch_height, patch_width, batch.shape[3]))
        example[top : top + patch_height, left : left + patch_width] = noise
    return output


def mix_up(
    rng: np.random.Generator, batch: np.ndarray, targets: np.ndarray, alpha: float
) -> tuple[np.ndarray, np.ndarray]:
    """Mixup (Zhang et al. 2018): each example of a (batch, …) array and its (batch, n_classes) targets
    blended with another example of the batch by a weight drawn from Beta(alpha, alpha)."""
    weights = rng.beta(alpha, alpha, size=len(batch)).astype(np.float32)
    partners = rng.permutation(len(batch))
    input_weights = weights.reshape((-1,) + (1,) * (batch.ndim - 1))
    mixed = input_weights * batch + (1 - input_weights) * batch[partners]
    return mixed, weights[:, None] * targets + (1 - weights[:, None]) * targets[partners]
