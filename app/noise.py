"""Generated background noise and mixing at a signal-to-noise ratio, for synthesis and augmentation.

Example:
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> hum = make_noise("hum", 16000, rng)
    >>> round(float(np.sqrt(np.mean(hum.astype(np.float64) ** 2))), 3)  # unit RMS
    1.0
    >>> tone = np.sin(np.arange(16000) / 5.0).astype(np.float32)
    >>> noisy = add_at_snr(tone, hum, snr_db=20.0)
    >>> round(float(10 * np.log10(np.mean(tone**2) / np.mean((noisy - tone) ** 2))), 1)
    20.0
"""

from __future__ import annotations

import numpy as np

from app.errors import InputError

NOISE_KINDS = ("white", "pink", "brown", "hum")
BROADBAND_KINDS = ("white", "pink", "brown")


def make_noise(
    kind: str,
    sample_count: int,
    rng: np.random.Generator,
    sample_rate: int = 16000,
    flat_below_hz: float = 20.0,
) -> np.ndarray:
    """Generated background noise with unit RMS.

    Args:
        kind: "white", "pink" (1/f power), "brown" (1/f² power) or "hum" (50 or 60 Hz mains with
            harmonics and a little hiss).
        sample_count: length in samples.
        rng: the random generator.
        sample_rate: Hz, for the colour's and the hum's frequencies.
        flat_below_hz: pink and brown noise stop rising below this frequency (no DC drift). With 0 they
            rise down to the lowest frequency of the clip, where most of brown noise's power then lies,
            below what a log-mel spectrogram hears: such noise is quieter than its RMS says.

    Returns:
        float32 (sample_count,) with RMS 1.
    """
    if kind == "white":
        noise = rng.standard_normal(sample_count)
    elif kind in ("pink", "brown"):
        spectrum = np.fft.rfft(rng.standard_normal(sample_count))
        frequencies = np.fft.rfftfreq(sample_count, d=1.0 / sample_rate)
        frequencies[0] = frequencies[1] if sample_count > 1 else 1.0
        exponent = 0.5 if kind == "pink" else 1.0  # amplitude ∝ f^-exponent
        spectrum /= np.maximum(frequencies, flat_below_hz) ** exponent
        noise = np.fft.irfft(spectrum, n=sample_count)
    elif kind == "hum":
        mains = rng.choice([50.0, 60.0])
        time = np.arange(sample_count) / sample_rate
        phases = rng.uniform(0, 2 * np.pi, size=5)
        noise = sum(
            (0.6**harmonic) * np.sin(2 * np.pi * mains * (harmonic + 1) * time + phases[harmonic])
            for harmonic in range(5)
        )
        noise = noise + 0.05 * rng.standard_normal(sample_count)
    else:
        raise InputError(f"unknown noise kind {kind!r}; expected one of {', '.join(NOISE_KINDS)}")
    noise = np.asarray(noise, dtype=np.float64)
    rms = np.sqrt(np.mean(noise**2)) if sample_count else 1.0
    return (noise / max(rms, 1e-12)).astype(np.float32)


def add_at_snr(signal: np.ndarray, noise: np.ndarray, snr_db: float) -> np.ndarray:
    """float32 signal (samples,) plus noise (samples,) scaled so that RMS(signal) / RMS(noise) is snr_db dB."""
    signal_power = float(np.mean(signal.astype(np.float64) ** 2)) + 1e-12
    noise_power = float(np.mean(noise.astype(np.float64) ** 2)) + 1e-12
    scale = np.sqrt(signal_power / (noise_power * 10 ** (snr_db / 10)))
    return (signal + scale * noise).astype(np.float32)


def room_impulse_response(
    rng: np.random.Generator, rt60_seconds: float, sample_rate: int = 16000, direct_to_reverberant_db: float = 0.0
) -> np.ndarray:
    """A synthetic room: a unit direct sound, then Gaussian noise decaying by 60 dB over rt60_seconds (the
    reverberation time), whose energy is direct_to_reverberant_db below the direct sound's.

    Returns:
        float32 (round(rt60_seconds · sample_rate),) impulse response, at least 1 sample; [0] is 1.
    """
    length = max(1, int(round(rt60_seconds * sample_rate)))
    time = np.arange(length) / sample_rate
    tail = rng.standard_normal(length) * np.exp(-np.log(1000.0) * time / max(rt60_seconds, 1e-9))
    tail[0] = 0.0
    tail *= 10 ** (-direct_to_reverberant_db / 20) / max(float(np.sqrt(np.sum(tail**2))), 1e-12)
    tail[0] = 1.0
    return tail.astype(np.float32)


def reverberate(waveform: np.ndarray, impulse_response: np.ndarray) -> np.ndarray:
    """A (samples,) waveform played in a room: convolved with the impulse response, its tail cut off (same
    length) and its peak kept."""
    import scipy.signal

    wet = scipy.signal.fftconvolve(waveform.astype(np.float64), impulse_response)[: waveform.size]
    peak, wet_peak = float(np.max(np.abs(waveform), initial=0.0)), float(np.max(np.abs(wet), initial=0.0))
    return (wet * (peak / wet_peak if wet_peak > 0 else 0.0)).astype(np.float32)
