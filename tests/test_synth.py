"""The eSpeak NG synthetic speech dataset: real synthesis, determinism, layout, noise and the CLI."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest
from fixtures_data import data_command
from scipy.io import wavfile

from app.datasets import synth
from app.errors import DatasetError, InputError


def _digests(root: Path) -> dict[str, str]:
    return {
        path.relative_to(root).as_posix(): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(root.rglob("*.wav"))
    }


def test_engine_speaks_at_22050_hz_and_is_repeatable():
    engine = synth.engine()
    first = engine.speak("marvin", synth.Voice("en-us", "m1"), seed=3)
    again = engine.speak("marvin", synth.Voice("en-us", "m1"), seed=3)
    other = engine.speak("sheila", synth.Voice("en-us", "m1"), seed=3)
    assert engine.sample_rate == 22050
    assert first.dtype == np.float32 and first.ndim == 1
    assert 0.2 * 22050 < first.size < 1.5 * 22050
    assert 0.05 < np.abs(first).max() <= 1.0
    np.testing.assert_array_equal(first, again)  # fresh library state per call
    assert not np.array_equal(first[: other.size], other[: first.size])


def test_every_listed_voice_exists():
    engine = synth.engine()
    languages = {language for language, _ in synth.english_voices()}
    variants = {variant for _, variant in synth.english_voices()}
    for language in languages:
        assert engine.speak("go", synth.Voice(language, "m1")).size > 0
    for variant in variants:
        assert engine.speak("go", synth.Voice("en-us", variant)).size > 0


def test_unknown_voice_is_a_clear_error():
    with pytest.raises(InputError, match="no voice"):
        synth.engine().speak("yes", synth.Voice("xx-nowhere", "m1"))


def test_dataset_layout_format_and_counts(tmp_path):
    counts = synth.synthesize_dataset(tmp_path, words=["yes", "no"], per_class=3, seed=1, silence=2, progress=False)
    assert counts == {"yes": 3, "no": 3, "_silence_": 2}
    for label, expected in counts.items():
        files = sorted((tmp_path / label).glob("*.wav"))
        assert len(files) == expected
        assert all("_nohash_" in file.name for file in files)
        for file in files:
            sample_rate, samples = wavfile.read(file)
            assert sample_rate == 16000 and samples.dtype == np.int16 and samples.shape == (16000,)
    speakers = {file.name.split("_nohash_")[0] for file in (tmp_path / "yes").glob("*.wav")}
    assert len(speakers) == 3  # voices are dealt, not repeated, while there are enough
    _, speech = wavfile.read(next((tmp_path / "yes").glob("*.wav")))
    _, silence = wavfile.read(next((tmp_path / "_silence_").glob("*.wav")))
    assert np.abs(speech).max() > np.abs(silence).max()


def test_same_seed_same_files_and_classes_are_independent(tmp_path):
    synth.synthesize_dataset(tmp_path / "a", words=["up", "down"], per_class=3, seed=5, progress=False)
    synth.synthesize_dataset(tmp_path / "b", words=["down"], per_class=3, seed=5, progress=False)
    synth.synthesize_dataset(tmp_path / "c", words=["down"], per_class=3, seed=6, progress=False)
    first, only_down, other_seed = (
        _digests(tmp_path / "a"),
        _digests(tmp_path / "b"),
        _digests(tmp_path / "c"),
    )
    assert only_down == {name: digest for name, digest in first.items() if name.startswith("down/")}
    assert set(other_seed.values()).isdisjoint(only_down.values())


def test_bad_words_and_counts_are_rejected(tmp_path):
    with pytest.raises(InputError, match="as a word"):
        synth.synthesize_dataset(tmp_path, words=["../escape"], per_class=1, progress=False)
    with pytest.raises(InputError, match="counts"):
        synth.synthesize_dataset(tmp_path, words=["yes"], per_class=-1, progress=False)


def test_place_in_window_keeps_the_loudest_part_of_long_speech():
    long_speech = np.full(20000, 0.01, dtype=np.float32)
    long_speech[15000:16000] = 1.0
    window = synth.place_in_window(long_speech, 16000, np.random.default_rng(0))
    assert window.shape == (16000,) and np.count_nonzero(window == 1.0) == 1000
    short = synth.place_in_window(np.ones(100, np.float32), 16000, np.random.default_rng(0))
    assert short.sum() == 100


def test_change_rate_and_speed():
    one_second = np.zeros(22050, dtype=np.float32)
    assert synth.change_rate(one_second, 22050, 16000).shape == (16000,)
    assert synth.change_rate(one_second, 22050, 16000, speed=1.1).size == pytest.approx(16000 / 1.1, abs=2)


def test_cli_synth_speech(tmp_path, capsys):
    assert data_command("synth-speech", tmp_path, "--words", "left", "right", "--per-class", 2, "--silence", 1) == 0
    assert sorted(path.name for path in tmp_path.iterdir()) == [".onepipe-data", "_silence_", "left", "right"]
    assert "wrote 5 files" in capsys.readouterr().out


def test_cli_synth_speech_never_mixes_runs_and_replaces_only_its_own_output(tmp_path, capsys):
    def run(*options: str) -> int:
        return data_command("synth-speech", tmp_path / "out", "--words", "yes", *options)

    assert run("--per-class", "3") == 0
    with pytest.raises(DatasetError, match="not empty"):
        run("--per-class", "2", "--seed", "1")
    assert run("--per-class", "2", "--seed", "1", "--replace") == 0
    assert len(list((tmp_path / "out" / "yes").iterdir())) == 2  # no clip of the first run left behind
    (tmp_path / "out" / "notes.txt").write_text("mine")
    with pytest.raises(DatasetError, match="nothing was deleted"):
        run("--per-class", "2", "--replace")
    assert (tmp_path / "out" / "notes.txt").read_text() == "mine"


def test_a_replace_that_fails_keeps_the_earlier_dataset(tmp_path):
    def run(*options: str) -> int:
        return data_command("synth-speech", tmp_path / "out", "--per-class", "2", *options)

    assert run("--words", "yes") == 0
    before = sorted(path.relative_to(tmp_path) for path in tmp_path.rglob("*"))
    with pytest.raises(InputError):
        run("--words", "yes", "no!", "--replace")  # a bad word, found only after --replace was accepted
    assert sorted(path.relative_to(tmp_path) for path in tmp_path.rglob("*")) == before  # and no staging folder
