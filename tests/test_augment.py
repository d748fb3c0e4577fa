"""Training-time augmentation: what each transform does to its input."""

from __future__ import annotations

import numpy as np
from fixtures_data import tone

from app.audio import audio_features, hertz_to_mel
from app.augment import spec_augment, warp_frequencies, waveform_variant
from app.config import AudioConfig

CONFIG = AudioConfig()


def _loudest_band(spectrogram: np.ndarray) -> int:
    return int(np.argmax(spectrogram.mean(axis=0)))


def test_frequency_warp_moves_a_tone_by_the_drawn_factor():
    clip = audio_features(tone(1000.0, seconds=1.0), CONFIG)
    batch = np.repeat(clip[None], 6, axis=0)
    warped = warp_frequencies(np.random.default_rng(3), batch, CONFIG, max_warp=0.2)
    factors = np.random.default_rng(3).uniform(0.8, 1.2, size=6)  # the function's first draw
    edges = np.linspace(hertz_to_mel(CONFIG.f_min), hertz_to_mel(CONFIG.f_max), CONFIG.n_mels + 2)
    for spectrogram, factor in zip(warped, factors, strict=True):
        expected = int(np.argmin(np.abs(edges[1:-1] - hertz_to_mel(1000.0 * factor))))
        assert abs(_loudest_band(spectrogram) - expected) <= 1, factor
    assert warped.shape == batch.shape and warped.dtype == batch.dtype
    unchanged = warp_frequencies(np.random.default_rng(0), batch[..., None], CONFIG, max_warp=0.0)
    np.testing.assert_allclose(unchanged[..., 0], batch, atol=1e-4)  # with a channel axis too


def test_spec_augment_keeps_shape_and_masks_with_the_clip_mean():
    clip = audio_features(tone(700.0, seconds=1.0), CONFIG)
    batch = np.repeat(clip[None], 8, axis=0)
    masked = spec_augment(np.random.default_rng(0), batch, -CONFIG.top_db)
    assert masked.shape == batch.shape
    assert np.array_equal(batch[0], clip)  # the input is left alone
    assert any(not np.array_equal(m, clip) for m in masked)


def test_waveform_variants_are_windows_in_range_and_differ():
    rng = np.random.default_rng(1)
    source = tone(500.0, seconds=0.6)
    variants = [waveform_variant(rng, source, CONFIG, noise_bank=[]) for _ in range(4)]
    for variant in variants:
        assert variant.shape == (CONFIG.clip_samples,) and variant.dtype == np.float32
        assert np.max(np.abs(variant)) <= 1.0 and np.max(np.abs(variant)) > 0.01
    assert not np.allclose(variants[0], variants[1])
