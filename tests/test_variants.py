"""Waveform variants made into a cached store: made once per recipe and then read, reproducible with a seed and
the same for one clip whatever the other clips, the same on any number of worker processes, continued after a
kill, mixed with the background noise files, and old stores removed."""

from __future__ import annotations

import dataclasses
import logging
import os
from pathlib import Path

import numpy as np
import pytest
from fixtures_data import make_tone_dataset, tone, write_wav

from app.class_folders import find_dataset
from app.config import AudioConfig, TrainConfig
from app.training import variants

CONFIG = AudioConfig()


@pytest.fixture(scope="module")
def small_tones(tmp_path_factory) -> Path:
    """6 clips per class of low, mid and high tones, plus one file that is no audio."""
    root = make_tone_dataset(tmp_path_factory.mktemp("small-tones"), per_class=6, speakers=6)
    (root / "mid" / "zzzzzzzz_nohash_9.wav").write_bytes(b"not audio")
    return root


def _variants(dataset, cache: Path, **options):
    recipe = TrainConfig(augment_copies=options.pop("copies", 2), seed=options.pop("seed", 0))
    indices = options.pop("indices", range(len(dataset.files)))
    return variants.variant_examples(dataset, list(indices), CONFIG, recipe, cache, progress=False, **options)


def test_variants_are_made_once_per_recipe_and_then_read_from_the_store(small_tones, tmp_path, monkeypatch, caplog):
    dataset = find_dataset(small_tones)
    examples, labels = _variants(dataset, tmp_path)
    readable = [i for i, path in enumerate(dataset.files) if path.name != "zzzzzzzz_nohash_9.wav"]
    assert examples.shape == (2 * len(readable), 97, 40) and examples.dtype == np.float32
    assert labels.tolist() == np.repeat([dataset.labels[i] for i in readable], 2).tolist()
    assert examples.path.parent.name.startswith("variants-") and examples.stored_dtype == np.float16

    def no_work(*arguments, **options):
        raise AssertionError("variants made again")

    monkeypatch.setattr(variants, "make_chunk", no_work)
    with caplog.at_level(logging.INFO, logger="app.training.variants"):
        again, again_labels = _variants(dataset, tmp_path)
    assert "found in" in caplog.text
    np.testing.assert_array_equal(again[:], examples[:])
    assert again_labels.tolist() == labels.tolist()
    with pytest.raises(AssertionError, match="made again"):  # another seed is another recipe
        _variants(dataset, tmp_path, seed=1)


def test_variants_follow_the_seed_and_the_clip_not_the_run(small_tones, tmp_path):
    dataset = find_dataset(small_tones)
    first, _ = _variants(dataset, tmp_path / "a")
    same, _ = _variants(dataset, tmp_path / "b")
    other_seed, _ = _variants(dataset, tmp_path / "c", seed=1)
    np.testing.assert_array_equal(first[:], same[:])
    assert not np.array_equal(first[:], other_seed[:])
    assert not np.array_equal(first[0], first[1])  # two copies of a clip differ
    # one clip's variants depend on its position and the seed only, not on the other clips
    alone, _ = _variants(dataset, tmp_path / "d", indices=range(3))
    np.testing.assert_array_equal(alone[:], first[:6])


@pytest.mark.slow
def test_worker_processes_make_the_same_variants_as_one_process(small_tones, tmp_path, monkeypatch):
    dataset = find_dataset(small_tones)
    monkeypatch.setattr(variants, "CHUNK_CLIPS", 3)  # several chunks, finishing in any order
    serial, serial_labels = _variants(dataset, tmp_path / "one", workers=1)
    parallel, parallel_labels = _variants(dataset, tmp_path / "two", workers=2)
    np.testing.assert_array_equal(serial[:], parallel[:])
    assert serial_labels.tolist() == parallel_labels.tolist()


def test_a_killed_variant_run_is_continued_where_it_stopped(small_tones, tmp_path, monkeypatch):
    dataset = find_dataset(small_tones)
    reference, _ = _variants(dataset, tmp_path / "reference")
    monkeypatch.setattr(variants, "CHUNK_CLIPS", 4)
    made = []
    real_chunk = variants.make_chunk

    def killed_after_two_chunks(positions, paths):
        if len(made) == 2:
            raise KeyboardInterrupt  # as a kill would stop it
        made.append(positions)
        return real_chunk(positions, paths)

    monkeypatch.setattr(variants, "make_chunk", killed_after_two_chunks)
    with pytest.raises(KeyboardInterrupt):
        _variants(dataset, tmp_path / "cache")
    partial = next((tmp_path / "cache").glob("variants-*.partial"))
    assert (np.load(partial / "clips.npy") != variants.WAITING).sum() == 8
    made.clear()
    monkeypatch.setattr(variants, "make_chunk", real_chunk)
    continued, _ = _variants(dataset, tmp_path / "cache")
    np.testing.assert_array_equal(continued[:], reference[:])
    assert not partial.exists()


def test_old_variant_stores_are_removed(small_tones, tmp_path, monkeypatch):
    dataset = find_dataset(small_tones)
    monkeypatch.setattr(variants, "KEEP_STORES", 2)
    for seed in range(4):
        _variants(dataset, tmp_path, seed=seed, indices=range(2))
        for store in tmp_path.glob("variants-*"):  # older ones first
            os.utime(store, (store.stat().st_mtime - 10, store.stat().st_mtime - 10))
    assert len([path for path in tmp_path.glob("variants-*") if path.is_dir()]) == 2


def test_noise_files_are_mapped_into_the_variants(tmp_path):
    root = tmp_path / "data"
    for name, frequency in (("low", 300.0), ("high", 2500.0)):
        for n in range(3):
            write_wav(root / name / f"s{n}_nohash_0.wav", tone(frequency, 0.8, seed=n))
    write_wav(root / "_background_noise_" / "hiss.wav", np.random.default_rng(0).normal(0, 0.3, 48000))
    dataset = find_dataset(root)
    with_noise, _ = _variants(dataset, tmp_path / "a")
    plain, _ = _variants(dataclasses.replace(dataset, background_noise_files=()), tmp_path / "b")
    assert with_noise.shape == plain.shape and not np.array_equal(with_noise[:], plain[:])


@pytest.mark.slow
def test_a_worker_that_fails_stops_the_run_with_its_reason(tmp_path):
    state = variants.WorkerState(variants.VariantRecipe(CONFIG, 0, 1), str(tmp_path / "none"), str(tmp_path / "none"))
    tasks = [(np.array([0]), [tmp_path / "clip.wav"])]
    with pytest.raises(RuntimeError, match="ended unexpectedly"):
        variants._run_tasks(tasks, state, workers=2, store=lambda *result: None)


@pytest.mark.slow
def test_a_seed_makes_a_training_run_reproducible(small_tones, tmp_path):
    """Same data, recipe and seed: the same weights, whether the variants are made or found in the store."""
    import keras

    from app.training.train import train

    recipe = TrainConfig(epochs=2, batch_size=8, augment_copies=2, validation_percent=0, test_percent=0, seed=5)
    weights = []
    for run in range(2):
        result = train(small_tones, tmp_path / f"run{run}", train_config=recipe, progress=False, cache_dir=tmp_path)
        weights.append(keras.models.load_model(result.bundle / "model.keras", compile=False).get_weights())
    assert len(list(tmp_path.glob("variants-*"))) == 2  # one store (and its lock): the second run read it
    for first, second in zip(*weights, strict=True):
        np.testing.assert_array_equal(first, second)


def test_a_store_left_damaged_is_made_again(small_tones, tmp_path):
    dataset = find_dataset(small_tones)
    made, _ = _variants(dataset, tmp_path, indices=range(4))
    store = next(path for path in tmp_path.glob("variants-*") if path.is_dir())
    (store / "labels.npy").write_bytes(b"")  # as a power loss right after the store was finished may leave it
    again, labels = _variants(dataset, tmp_path, indices=range(4))
    np.testing.assert_array_equal(again[:], made[:])
    assert len(labels) == len(made)


def test_recipes_without_rooms_keep_their_store_key():
    keys, labels, noise_keys = ["a", "b"], np.array([0, 1]), []
    plain = variants.VariantRecipe(CONFIG, 0, 2).key(keys, labels, noise_keys)
    assert variants.VariantRecipe(CONFIG, 0, 2, reverberation=0.0).key(keys, labels, noise_keys) == plain
    assert variants.VariantRecipe(CONFIG, 0, 2, reverberation=0.5).key(keys, labels, noise_keys) != plain
