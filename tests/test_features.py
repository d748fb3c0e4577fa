"""Batch feature extraction: equal to one-by-one, cached by content, unreadable files listed, progress shown."""

from __future__ import annotations

import io
import logging

import numpy as np

from app import features as features_module
from app.audio import audio_features
from app.config import AudioConfig, ImageConfig
from app.features import extract_features
from app.images import load_image


def test_batch_extraction_matches_single_files_and_skips_bad_ones(tmp_path, tone_dataset):
    files = sorted(tone_dataset.glob("*/*.wav"))[:70]
    broken = tmp_path / "broken.wav"
    broken.write_bytes(b"RIFF....WAVEjunk")
    config = AudioConfig()
    result = extract_features([*files[:5], broken, *files[5:]], config, cache_dir=tmp_path / "cache", progress=False)
    assert result.arrays.shape == (70, config.n_frames, config.n_mels)
    assert 5 not in result.kept and len(result.kept) == 70
    assert result.skipped[0][0] == str(broken) and "WAV" in result.skipped[0][1]
    for row in (0, 37, 69):
        file_index = result.kept[row]
        source = files[file_index] if file_index < 5 else files[file_index - 1]
        np.testing.assert_allclose(result.arrays[row], audio_features(source, config), atol=1e-4)


def test_second_run_reads_the_cache(tmp_path, shape_dataset, monkeypatch):
    files = sorted(shape_dataset.glob("*/*.png"))
    config = ImageConfig(image_size=(28, 28), channels=1)
    reads, decoded = [], []
    original_read, original_decode = features_module.read_source_bytes, features_module._read_example
    monkeypatch.setattr(
        features_module, "read_source_bytes", lambda path, *a: reads.append(path) or original_read(path, *a)
    )
    monkeypatch.setattr(
        features_module, "_read_example", lambda config, data: decoded.append(data) or original_decode(config, data)
    )
    contents = sorted(file.read_bytes() for file in files)
    first = extract_features(files, config, cache_dir=tmp_path, progress=False)
    assert list(tmp_path.glob("features-*/??.npz"))
    assert sorted(reads) == files and sorted(decoded) == contents  # a miss reads each file once
    reads.clear(), decoded.clear()
    second = extract_features(files, config, cache_dir=tmp_path, progress=False)
    assert decoded == [] and sorted(reads) == files  # a hit only reads the file to hash it
    np.testing.assert_array_equal(first.arrays, second.arrays)
    np.testing.assert_array_equal(second.arrays[3], load_image(files[3], config))
    other = extract_features(files, ImageConfig(image_size=(20, 20), channels=1), cache_dir=tmp_path, progress=False)
    assert other.arrays.shape[1:] == (20, 20, 1) and sorted(decoded) == contents  # a new config misses the cache
    decoded.clear()
    real_version = features_module.importlib.metadata.version
    monkeypatch.setattr(
        features_module.importlib.metadata,
        "version",
        lambda name: "0.0-other" if name == "pillow" else real_version(name),
    )
    extract_features(files, config, cache_dir=tmp_path, progress=False)
    assert sorted(decoded) == contents  # another Pillow may decode differently: a miss too


def test_a_partly_cached_list_keeps_its_order(tmp_path, shape_dataset):
    files = sorted(shape_dataset.glob("*/*.png"))
    config = ImageConfig(image_size=(28, 28), channels=1)
    extract_features(files[::2], config, cache_dir=tmp_path, progress=False)
    mixed = extract_features(files, config, cache_dir=tmp_path, progress=False)
    uncached = extract_features(files, config, use_cache=False, progress=False)
    np.testing.assert_array_equal(mixed.arrays, uncached.arrays)
    assert mixed.kept.tolist() == list(range(len(files)))


def test_caches_of_the_old_one_file_format_are_removed(tmp_path, shape_dataset):
    unsharded = tmp_path / "features-0035445b6298beac.npz"  # as FEATURES_VERSION 2 wrote them; never read now
    unsharded.write_bytes(b"old")
    for name in ("notes.npz", "features-mine.npz"):
        (tmp_path / name).write_bytes(b"not ours")
    extract_features(sorted(shape_dataset.glob("*/*.png"))[:2], ImageConfig((28, 28), 1), cache_dir=tmp_path)
    assert not unsharded.exists() and (tmp_path / "notes.npz").exists() and (tmp_path / "features-mine.npz").exists()
    assert list(tmp_path.glob("features-*/??.npz"))


def test_a_damaged_cache_is_ignored_and_rewritten(tmp_path, shape_dataset):
    files = sorted(shape_dataset.glob("*/*.png"))[:10]
    config = ImageConfig(image_size=(28, 28), channels=1)
    first = extract_features(files, config, cache_dir=tmp_path, progress=False)
    shards = sorted(tmp_path.glob("features-*/??.npz"))
    for shard in shards:
        shard.write_bytes(shard.read_bytes()[:100])  # truncated by a crash or a full disk
    again = extract_features(files, config, cache_dir=tmp_path, progress=False)
    np.testing.assert_array_equal(first.arrays, again.arrays)
    assert sum(len(np.load(shard)["keys"]) for shard in shards) == 10


def test_a_shard_whose_keys_read_but_arrays_do_not_is_decoded_again(tmp_path, shape_dataset):
    files = sorted(shape_dataset.glob("*/*.png"))[:10]
    config = ImageConfig(image_size=(28, 28), channels=1)
    extract_features(files, config, cache_dir=tmp_path, progress=False)
    shard = sorted(tmp_path.glob("features-*/??.npz"))[0]
    keys = np.load(shard)["keys"]
    np.savez(shard, keys=keys, arrays=np.zeros((len(keys), 3), np.uint8))  # arrays of another shape
    again = extract_features(files, config, cache_dir=tmp_path, progress=False)
    np.testing.assert_array_equal(again.arrays, extract_features(files, config, use_cache=False, progress=False).arrays)
    assert again.kept.tolist() == list(range(10))


def test_new_files_rewrite_only_their_shards(tmp_path, shape_dataset):
    files = sorted(shape_dataset.glob("*/*.png"))
    config = ImageConfig(image_size=(28, 28), channels=1)
    extract_features(files[1:], config, cache_dir=tmp_path, progress=False)
    before = {path.name: path.stat().st_mtime_ns for path in tmp_path.glob("features-*/??.npz")}
    extract_features(files[:1], config, cache_dir=tmp_path, progress=False)
    after = {path.name: path.stat().st_mtime_ns for path in tmp_path.glob("features-*/??.npz")}
    changed = [name for name in after if before.get(name) != after[name]]
    assert len(changed) == 1 and len(before) > 1


class _Stream(io.StringIO):
    def __init__(self, terminal: bool) -> None:
        super().__init__()
        self.terminal = terminal

    def isatty(self) -> bool:
        return self.terminal


def test_progress_is_a_bar_on_a_terminal_and_a_log_line_per_tenth_otherwise(monkeypatch, caplog):
    from app import step_progress

    monkeypatch.setattr(step_progress.sys, "stderr", _Stream(terminal=True))
    bar = step_progress.step_progress(250, "features", "file", enabled=True)
    assert isinstance(bar, step_progress.tqdm) and not bar.disable
    bar.close()
    monkeypatch.setattr(step_progress.sys, "stderr", _Stream(terminal=False))
    assert step_progress.step_progress(250, "features", "file", enabled=False).disable  # --quiet, or few files
    clock = iter(float(second) for second in range(0, 1000, 3))  # 3 s per update: past the quiet first seconds
    monkeypatch.setattr(step_progress.time, "monotonic", lambda: next(clock))
    caplog.set_level(logging.INFO, logger="app.step_progress")
    with step_progress.step_progress(250, "features", "file", enabled=True) as bar:
        for _ in range(50):
            bar.update(5)
    lines = [record.getMessage() for record in caplog.records]
    assert lines[0].startswith("features: 10 % (25 of 250 files)")
    assert lines[-1].startswith("features: 100 % (250 of 250 files)")
    assert len(lines) == 10 and not any("\r" in line or "\x1b" in line for line in lines)
