"""Training batches that depend on the epoch and their index alone, from arrays or stores, and the progress lines
of the long steps before fitting."""

from __future__ import annotations

import logging

import numpy as np

from app.config import AudioConfig, ImageConfig, TrainConfig
from app.step_progress import LoggedProgress
from app.training.store import create_store, open_store

CONFIG = AudioConfig()


def test_batches_depend_on_the_epoch_and_the_index_alone(tmp_path):
    from app.training.batches import Batches

    spectrograms = np.random.default_rng(2).uniform(-80, 0, size=(40, 97, 40)).astype(np.float32)
    labels = np.arange(40) % 4
    with create_store(tmp_path / "s.npy", 40, (97, 40), np.float32) as writer:
        writer.write(0, spectrograms)
    recipe = TrainConfig(batch_size=16, seed=3, mixup=0.2)
    in_memory = Batches(spectrograms, labels, 4, recipe, CONFIG)
    on_disk = Batches(open_store(tmp_path / "s.npy"), labels, 4, recipe, CONFIG)
    epochs = []
    for _ in range(3):
        batches = [in_memory[index] for index in reversed(range(len(in_memory)))][::-1]  # any order
        for index, (inputs, targets) in enumerate(batches):
            disk_inputs, disk_targets = on_disk[index]
            np.testing.assert_array_equal(inputs, disk_inputs)
            np.testing.assert_array_equal(targets, disk_targets)
        epochs.append(batches)
        in_memory.on_epoch_end()
        on_disk.on_epoch_end()
    assert not np.array_equal(epochs[0][0][0], epochs[1][0][0])
    saved = in_memory.rng.bit_generator.state  # a checkpoint after epoch 2's batches, before its reshuffle …
    in_memory.on_epoch_end()
    expected = in_memory[1]
    resumed = Batches(spectrograms, labels, 4, recipe, CONFIG)  # … restored in a new run
    resumed.rng.bit_generator.state = saved
    resumed.on_epoch_end()
    np.testing.assert_array_equal(resumed[1][0], expected[0])
    resumed.set_epoch(1)
    np.testing.assert_array_equal(resumed[2][0], epochs[1][2][0])


def test_image_batches_read_from_a_store(tmp_path):
    from app.training.batches import Batches

    images = np.random.default_rng(0).integers(0, 256, size=(12, 16, 16, 3), dtype=np.uint8)
    writer = create_store(None, 12, (16, 16, 3), np.uint8, scratch_dir=tmp_path)
    writer.write(0, images)
    recipe = TrainConfig(batch_size=5)
    stored = Batches(writer.examples(), np.arange(12) % 2, 2, recipe, ImageConfig((16, 16), 3))
    plain = Batches(images, np.arange(12) % 2, 2, recipe, ImageConfig((16, 16), 3))
    for index in range(len(plain)):
        np.testing.assert_array_equal(stored[index][0], plain[index][0])


def test_long_steps_log_lines_with_rate_and_time_left_and_no_escape_codes(monkeypatch, caplog):
    clock = iter(float(second) for second in range(0, 1000, 3))
    monkeypatch.setattr("app.step_progress.time.monotonic", lambda: next(clock))
    with (
        caplog.at_level(logging.INFO, logger="app.step_progress"),
        LoggedProgress(100, "variants", "clip") as bar,
    ):
        for _ in range(20):
            bar.update(5)
    lines = [record.getMessage() for record in caplog.records]
    assert 10 <= len(lines) <= 20 and lines[-1].startswith("variants: 100 % (100 of 100 clips)")
    assert all("clips/s" in line and "ETA" in line and "\x1b" not in line and "\r" not in line for line in lines)
