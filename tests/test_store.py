"""The on-disk example stores and what fills them: rows written in any order and read back as asked, float16 rows
read as float32, scratch stores that leave nothing behind, a pass over a store that leaves the resident memory
where it was, and the features of a run extracted into a store a block of whole cache shards at a time."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from fixtures_data import make_tone_dataset

from app.class_folders import find_dataset
from app.config import AudioConfig
from app.features import extract_features
from app.training.inputs import extract_to_store, shard_blocks, split_examples
from app.training.store import JoinedExamples, create_store, open_store, open_store_writer

CONFIG = AudioConfig()


@pytest.fixture(scope="module")
def small_tones(tmp_path_factory) -> Path:
    """6 clips per class of low, mid and high tones, plus one file that is no audio."""
    root = make_tone_dataset(tmp_path_factory.mktemp("small-tones"), per_class=6, speakers=6)
    (root / "mid" / "zzzzzzzz_nohash_9.wav").write_bytes(b"not audio")
    return root


def test_rows_written_in_any_order_read_back_as_asked(tmp_path):
    rows = np.random.default_rng(0).normal(0, 30, size=(50, 4, 3)).astype(np.float32)
    with create_store(tmp_path / "store.npy", 50, (4, 3), np.float32) as writer:
        writer.write(30, rows[30:])
        writer.write_rows(np.array([0, 1, 2, 10, 11]), rows[[0, 1, 2, 10, 11]])
    with open_store_writer(tmp_path / "store.npy") as writer:  # more rows later: what was written stays
        writer.write_rows(np.r_[3:10, 12:30], rows[np.r_[3:10, 12:30]])
    store = open_store(tmp_path / "store.npy")
    assert store.shape == (50, 4, 3) and len(store) == 50 and store.dtype == np.float32
    np.testing.assert_array_equal(np.load(tmp_path / "store.npy"), rows)  # a plain .npy file
    for key in (7, -1, slice(5, 40, 3), [49, 3, 3, 0], np.array([True] * 25 + [False] * 25), (slice(2, 4), 1)):
        np.testing.assert_array_equal(store[key], rows[key])
    view = store.select([9, 2, 40])
    np.testing.assert_array_equal(view[[2, 0]], rows[[40, 9]])
    np.testing.assert_array_equal(view.select([1])[:], rows[[2]])
    assert store[[]].shape == (0, 4, 3)
    with pytest.raises(IndexError):
        store[[50]]


def test_float16_rows_come_back_as_float32_within_a_step_of_half_precision(tmp_path):
    spectrograms = np.random.default_rng(1).uniform(-80, 40, size=(20, 97, 40)).astype(np.float32)
    with create_store(tmp_path / "half.npy", 20, (97, 40), np.float16) as writer:
        writer.write(0, spectrograms)
    store = open_store(tmp_path / "half.npy")
    assert store.stored_dtype == np.float16 and store.dtype == np.float32
    assert os.path.getsize(tmp_path / "half.npy") < 20 * 97 * 40 * 2 + 256  # half the bytes of float32
    np.testing.assert_allclose(store[:], spectrograms, atol=0.04)  # 0.03 dB steps up to 64 dB


def test_a_scratch_store_has_no_name_and_joins_arrays_and_stores(tmp_path):
    writer = create_store(None, 3, (2,), np.uint8, scratch_dir=tmp_path / "scratch")
    writer.write(0, np.array([[1, 2], [3, 4], [5, 6]]))
    assert list((tmp_path / "scratch").iterdir()) == []  # nothing to clean up after a crash
    joined = JoinedExamples([np.array([[7, 8]], np.uint8), writer.examples().select([2, 0])])
    assert joined.shape == (3, 2) and joined.dtype == np.uint8
    assert joined[[2, 0, 1]].tolist() == [[1, 2], [7, 8], [5, 6]]
    assert joined[1:].tolist() == [[5, 6], [1, 2]] and joined[..., 0].tolist() == [7, 5, 1]


def test_a_pass_over_a_store_reads_it_in_chunks_and_leaves_the_resident_memory_flat(tmp_path):
    psutil = pytest.importorskip("psutil")
    count, shape = 4000, (97, 40)  # 62 MB of float32
    with create_store(tmp_path / "big.npy", count, shape, np.float32) as writer:
        for start in range(0, count, 500):
            writer.write(start, np.full((500, *shape), start, np.float32))
    store = open_store(tmp_path / "big.npy")
    process = psutil.Process()
    before = process.memory_info().rss
    order = np.random.default_rng(0).permutation(count)
    for start in range(0, count, 64):  # an epoch of random batches
        batch = store[order[start : start + 64]]
        assert batch.shape == (len(order[start : start + 64]), *shape)
    grown = process.memory_info().rss - before
    assert grown < 24 * 2**20, f"resident memory grew by {grown / 2**20:.0f} MB over a 62 MB store"
    maps = Path(f"/proc/{os.getpid()}/maps")
    if maps.exists():
        assert str(tmp_path / "big.npy") not in maps.read_text()  # read, never mapped


def test_features_extracted_a_block_at_a_time_match_the_cache_and_split(small_tones, tmp_path):
    dataset = find_dataset(small_tones)
    whole = extract_features(dataset.files, CONFIG, cache_dir=tmp_path / "reference", progress=False)
    for attempt in range(2):  # the second run reads the feature cache
        stored = extract_to_store(dataset.files, CONFIG, cache_dir=tmp_path / "cache", progress=False)
        np.testing.assert_array_equal(stored.arrays[:], whole.arrays)
        assert stored.kept.tolist() == whole.kept.tolist() and stored.skipped == whole.skipped, attempt
    splits = {"train": list(range(0, 19, 2)), "validation": list(range(1, 19, 2))}
    arrays = split_examples(stored, splits, np.asarray(dataset.labels))
    assert not isinstance(arrays["train"][0], np.ndarray) and isinstance(arrays["validation"][0], np.ndarray)
    rows = {int(index): row for row, index in enumerate(whole.kept)}
    for name, indices in splits.items():
        kept = [index for index in indices if index in rows]
        np.testing.assert_array_equal(arrays[name][0][:], whole.arrays[[rows[i] for i in kept]])
        assert arrays[name][1].tolist() == [dataset.labels[i] for i in kept]


def test_blocks_hold_whole_cache_shards():
    keys = [f"{shard:02x}{n:030x}" for shard in range(256) for n in range(3)]
    blocks = shard_blocks(keys, block_files=100)
    assert sorted(np.concatenate(blocks).tolist()) == list(range(len(keys)))
    assert all(99 <= len(block) <= 102 for block in blocks[:-1])
    shards = [{keys[position][:2] for position in block} for block in blocks]
    assert all(not (a & b) for i, a in enumerate(shards) for b in shards[i + 1 :])


def test_channel_sums_read_a_chunk_at_a_time_match_numpy(tmp_path):
    from app.training.inputs import channel_sums

    spectrograms = np.random.default_rng(4).uniform(-80, 0, size=(300, 97, 40)).astype(np.float32)
    with create_store(tmp_path / "s.npy", 300, (97, 40), np.float32) as writer:
        writer.write(0, spectrograms)
    sample = np.random.default_rng(0).permutation(300)[:200]
    count, total, squares = channel_sums(open_store(tmp_path / "s.npy"), sample, chunk_rows=64)
    expected = spectrograms[np.sort(sample)][..., None].astype(np.float64)  # as input_statistics takes them
    assert count == expected.size and total.shape == squares.shape == (1,)
    np.testing.assert_allclose(total, expected.sum(axis=(0, 1, 2)), rtol=1e-9)
    np.testing.assert_allclose(squares, np.square(expected).sum(axis=(0, 1, 2)), rtol=1e-9)
