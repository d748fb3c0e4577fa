"""Training-time augmentation: what each transform does to its input, and the policy that chooses them."""

from __future__ import annotations

import numpy as np
from fixtures_data import tone

from app.audio import audio_features, hertz_to_mel
from app.config import AudioConfig, ImageConfig, TrainConfig
from app.training.augment import (
    erase_patches,
    jitter_images,
    mix_up,
    spec_augment,
    stretch_time,
    warp_frequencies,
    waveform_variant,
)
from app.training.augmentation_policy import augment_batch
from app.views import shift_frames

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


def test_time_stretch_lengthens_or_shortens_a_word_about_the_centre_by_the_drawn_factor():
    floor = CONFIG.floor_db
    batch = np.full((6, 97, CONFIG.n_mels), floor, np.float32)
    batch[:, 38:59] = 0.0  # a 21-frame word around the centre frame 48
    stretched = stretch_time(np.random.default_rng(5), batch, floor, max_stretch=0.3)
    factors = np.exp(np.random.default_rng(5).uniform(-np.log(1.3), np.log(1.3), size=6))  # its first draw
    for spectrogram, factor in zip(stretched, factors, strict=True):
        sounding = np.flatnonzero(spectrogram[:, 0] > floor / 2)
        assert abs(len(sounding) - 21 * factor) <= 2, factor
        assert abs((sounding[0] + sounding[-1]) / 2 - 48) <= 1  # still centred
        assert np.all(spectrogram[: sounding[0] - 1] == floor)  # silence around it stays silence
    assert stretched.shape == batch.shape and stretched.dtype == batch.dtype
    assert np.array_equal(stretch_time(np.random.default_rng(0), batch[..., None], floor, 0.0)[..., 0], batch)


def test_spec_augment_keeps_shape_and_masks_with_the_clip_mean():
    clip = audio_features(tone(700.0, seconds=1.0), CONFIG)
    batch = np.repeat(clip[None], 8, axis=0)
    masked = spec_augment(np.random.default_rng(0), batch, -CONFIG.top_db)
    assert masked.shape == batch.shape
    assert np.array_equal(batch[0], clip)  # the input is left alone
    assert any(not np.array_equal(m, clip) for m in masked)
    # A masked frame holds one value across every band: the mean of the (shifted) clip, not 0 or silence.
    shifts = range(-CONFIG.n_frames // 10, CONFIG.n_frames // 10 + 1)  # as spec_augment draws them
    means = [float(shift_frames(clip[None], shift, -CONFIG.top_db)[0].mean()) for shift in shifts]
    fills = [frame[0] for example in masked for frame in example if np.ptp(frame) == 0 and frame[0] != -CONFIG.top_db]
    assert fills and all(min(abs(fill - mean) for mean in means) < 1e-3 for fill in fills)


def test_waveform_variants_are_windows_in_range_and_differ():
    rng = np.random.default_rng(1)
    source = tone(500.0, seconds=0.6)
    variants = [waveform_variant(rng, source, CONFIG, noise_bank=[]) for _ in range(4)]
    for variant in variants:
        assert variant.shape == (CONFIG.clip_samples,) and variant.dtype == np.float32
        assert np.max(np.abs(variant)) <= 1.0 and np.max(np.abs(variant)) > 0.01
        spectrum = np.abs(np.fft.rfft(variant))
        peak_hz = (np.argmax(spectrum[20:]) + 20) * CONFIG.sample_rate / variant.size  # above 20 Hz
        assert 400 < peak_hz < 600  # still the 500 Hz tone (speed ±15 %), not buried in noise
    assert not np.allclose(variants[0], variants[1])


def test_mixup_blends_inputs_and_targets_by_the_same_weight():
    rng = np.random.default_rng(0)
    batch = rng.normal(size=(16, 5, 4, 1)).astype(np.float32)
    targets = np.eye(3, dtype=np.float32)[rng.integers(0, 3, size=16)]
    mixed, mixed_targets = mix_up(np.random.default_rng(7), batch, targets, alpha=0.4)
    weights = np.random.default_rng(7).beta(0.4, 0.4, size=16)  # the function's draws, in order
    partners = np.random.default_rng(7)
    partners.beta(0.4, 0.4, size=16)
    partners = partners.permutation(16)
    for i in range(16):
        np.testing.assert_allclose(mixed[i], weights[i] * batch[i] + (1 - weights[i]) * batch[partners[i]], atol=1e-5)
        np.testing.assert_allclose(
            mixed_targets[i], weights[i] * targets[i] + (1 - weights[i]) * targets[partners[i]], atol=1e-6
        )
    assert mixed.shape == batch.shape and mixed.dtype == np.float32
    np.testing.assert_allclose(mixed_targets.sum(axis=1), 1.0, atol=1e-6)  # still a distribution


def test_random_erasing_fills_one_patch_per_chosen_image_with_noise():
    batch = np.full((200, 32, 32, 3), 100.0, dtype=np.float32)
    batch[:, 0, 0] = 0.0  # the value range noise is drawn from: 0–100
    erased = erase_patches(np.random.default_rng(0), batch, probability=0.5)
    changed = (erased != batch).any(axis=3)  # (batch, height, width)
    hit = changed.any(axis=(1, 2))
    assert 70 < hit.sum() < 130 and erased.shape == batch.shape and erased.dtype == batch.dtype
    for image in changed[hit]:
        rows, columns = np.flatnonzero(image.any(axis=1)), np.flatnonzero(image.any(axis=0))
        box = (rows[-1] - rows[0] + 1) * (columns[-1] - columns[0] + 1)
        assert rows.size == rows[-1] - rows[0] + 1 and columns.size == columns[-1] - columns[0] + 1  # one block
        assert 0.01 * 32 * 32 <= box <= 0.3 * 32 * 32
    assert erased.min() >= 0.0 and erased.max() <= 100.0
    assert np.array_equal(batch[1:, 0, 0], np.zeros((199, 3)))  # the input is left alone
    np.testing.assert_array_equal(erase_patches(np.random.default_rng(0), batch, probability=0.0), batch)


def test_image_jitter_scales_only_when_asked_to():
    image = np.zeros((1, 33, 33, 1), dtype=np.float32)
    image[0, 14:19, 14:19] = 1.0  # a 5 × 5 square in the middle

    def jittered(zoom: float) -> list[np.ndarray]:
        return [jitter_images(np.random.default_rng(seed), image, False, 0.0, zoom) for seed in range(5)]

    moved, zoomed = jittered(0.0), jittered(0.3)
    assert all(abs(float(m.sum()) - 25.0) < 1e-3 for m in moved)  # moved, same area
    assert not all(np.array_equal(m, image) for m in moved)
    assert max(abs(float(z.sum()) - 25.0) for z in zoomed) > 2.0  # scaled by up to ±30 %


def test_image_jitter_moves_as_far_as_the_translation_says():
    image = np.zeros((1, 33, 33, 1), dtype=np.float32)
    image[0, 16, 16] = 1.0  # one bright pixel in the middle

    def largest_move(translation: float) -> int:
        moves = []
        for seed in range(40):
            moved = jitter_images(np.random.default_rng(seed), image, False, 0.0, 0.0, translation)[0, :, :, 0]
            rows, columns = np.nonzero(moved > 0.25)  # the pixel, spread over its neighbours when moved by a fraction
            moves.append(int(max(np.abs(rows - 16).max(), np.abs(columns - 16).max())))
        return max(moves)

    np.testing.assert_array_equal(jitter_images(np.random.default_rng(0), image, False, 0.0, 0.0, 0.0), image)
    assert 2 <= largest_move(1 / 11) <= 3  # up to 3 pixels of 33
    assert 6 <= largest_move(0.25) <= 9  # up to 8.25 pixels


def test_the_policy_applies_the_audio_recipe_in_order_from_one_generator():
    batch = np.stack([audio_features(tone(frequency, seconds=1.0), CONFIG) for frequency in (300.0, 900.0, 2500.0)])
    targets = np.eye(3, dtype=np.float32)
    recipe = TrainConfig(frequency_warp=0.1, time_stretch=0.2, mixup=0.2)
    augmented, mixed_targets = augment_batch(np.random.default_rng(5), batch, targets, CONFIG, recipe)
    rng = np.random.default_rng(5)  # the same draws, in the order the policy promises
    expected = warp_frequencies(rng, batch, CONFIG, 0.1)
    expected = spec_augment(rng, stretch_time(rng, expected, CONFIG.floor_db, 0.2), CONFIG.floor_db)
    expected, expected_targets = mix_up(rng, expected.astype(np.float32), targets, 0.2)
    np.testing.assert_array_equal(augmented, expected)
    np.testing.assert_array_equal(mixed_targets, expected_targets)
    assert augmented.dtype == np.float32


def test_the_policy_applies_the_image_recipe_in_order_and_nothing_without_augmentation():
    images = np.random.default_rng(0).integers(0, 256, size=(4, 16, 16, 3), dtype=np.uint8)
    targets = np.eye(2, dtype=np.float32)[[0, 1, 1, 0]]
    config = ImageConfig((16, 16), 3)
    recipe = TrainConfig(horizontal_flip=True, rotation_degrees=5.0, zoom=0.2, random_erasing=0.5)
    augmented, same_targets = augment_batch(np.random.default_rng(2), images, targets, config, recipe)
    rng = np.random.default_rng(2)
    expected = erase_patches(rng, jitter_images(rng, images, True, 5.0, 0.2), 0.5).astype(np.float32)
    np.testing.assert_array_equal(augmented, expected)
    assert same_targets is targets and augmented.dtype == np.float32  # no mixup asked for
    rng = np.random.default_rng(2)
    plain, plain_targets = augment_batch(rng, images, targets, config, TrainConfig(augment=False))
    np.testing.assert_array_equal(plain, images.astype(np.float32))
    assert plain_targets is targets and rng.random() == np.random.default_rng(2).random()  # nothing drawn


def test_waveform_variants_without_rooms_draw_as_before_and_with_rooms_echo():
    from app.training.augment import waveform_variant

    config = AudioConfig(sample_rate=8000, n_fft=256, hop_length=80, f_max=3800.0)
    word = tone(440.0, 0.5, sample_rate=8000) * np.hanning(4000).astype(np.float32)
    plain = waveform_variant(np.random.default_rng(3), word, config, [])
    assert np.array_equal(plain, waveform_variant(np.random.default_rng(3), word, config, [], reverberation=0.0))
    in_a_room = waveform_variant(np.random.default_rng(3), word, config, [], reverberation=1.0)
    assert in_a_room.shape == (8000,) and np.all(np.abs(in_a_room) <= 1.0)
    assert not np.allclose(plain, in_a_room, atol=1e-3)
