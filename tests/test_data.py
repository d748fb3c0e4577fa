"""Dataset discovery and the stable, speaker-aware split."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from fixtures_data import tone, write_wav
from PIL import Image

from app.class_folders import find_dataset, speaker_key, split_dataset, which_set
from app.errors import DatasetError


def test_kind_classes_and_background_noise(tmp_path):
    for name in ("yes", "no"):
        write_wav(tmp_path / name / "aaaa1111_nohash_0.wav", tone(440))
    write_wav(tmp_path / "_background_noise_" / "white.wav", np.zeros(16000, np.float32))
    (tmp_path / "yes" / "notes.txt").write_text("not data")
    dataset = find_dataset(tmp_path)
    assert dataset.kind == "audio"
    assert dataset.class_names == ("no", "yes")
    assert len(dataset.files) == 2 and dataset.labels == (0, 1)
    assert [p.name for p in dataset.background_noise_files] == ["white.wav"]


def test_bad_layouts_are_explained(tmp_path):
    with pytest.raises(DatasetError, match="not found"):
        find_dataset(tmp_path / "missing")
    (tmp_path / "only").mkdir()
    write_wav(tmp_path / "only" / "a.wav", tone(440))
    with pytest.raises(DatasetError, match="need at least 2"):
        find_dataset(tmp_path)
    with pytest.raises(DatasetError, match="no audio or image files"):
        find_dataset(tmp_path / "only")


FSDD_PATTERN = r"^[^_]+_([^_]+)_"  # `--group-pattern` for `<digit>_<speaker>_<n>.wav`


@pytest.mark.parametrize(
    ("name", "group_pattern", "speaker"),
    [
        ("0a7c2a8d_nohash_3.wav", None, "0a7c2a8d"),  # Speech Commands: the text before _nohash_
        ("bed_0a7c2a8d_nohash_0.wav.wav", None, "0a7c2a8d"),  # its _unknown_ files: <word>_<speaker>_nohash_…
        ("happy_0a7c2a8d_nohash_1.wav", None, "0a7c2a8d"),
        ("7_george_12.wav", FSDD_PATTERN, "george"),  # the pattern's first group
        ("7_george_12.wav", None, "7_george_12.wav"),  # without the pattern: no _nohash_, its own group
        ("0a7c2a8d_nohash_3.wav", r"^(\d+)-", "0a7c2a8d"),  # a pattern that does not match: _nohash_ decides
        ("00003.png", None, "00003.png"),  # neither: every file is its own group
    ],
)
def test_speaker_key_of_known_names(name, group_pattern, speaker):
    assert speaker_key(Path(name), group_pattern) == speaker


@pytest.mark.parametrize(
    ("name", "group_pattern", "salt", "split"),
    [
        ("0a7c2a8d_nohash_0.wav", None, "", "train"),
        ("0a7c2a8d_nohash_3.wav", None, "", "train"),  # the same speaker, the same set
        ("bed_0a7c2a8d_nohash_0.wav", None, "", "train"),
        ("29fb33da_nohash_0.wav", None, "", "train"),
        ("1a9afd33_nohash_0.wav", None, "", "validation"),
        ("9a7c1f83_nohash_0.wav", None, "", "test"),
        ("9a7c1f83_nohash_0.wav", None, "onepipe", "validation"),  # a salt draws again
        ("015f5f34_nohash_0.wav", None, "onepipe", "validation"),
        ("7_george_12.wav", FSDD_PATTERN, "", "train"),
        ("7_theo_12.wav", FSDD_PATTERN, "", "train"),
        ("7_lucas_12.wav", FSDD_PATTERN, "", "validation"),
        ("7_nicolas_12.wav", FSDD_PATTERN, "", "validation"),
        ("7_lucas_12.wav", None, "", "test"),  # without the pattern the whole name is hashed
        ("7_theo_12.wav", None, "", "validation"),
    ],
)
def test_which_set_of_known_names_never_changes(name, group_pattern, salt, split):
    """Today's answers with the default 10 % validation and 10 % test: a change of the hash moves trained-on
    files into held-out sets of existing bundles, and must show here."""
    assert which_set(Path(name), 10, 10, group_pattern, salt=salt) == split


def test_one_speaker_never_straddles_splits_and_a_salt_reshuffles_in_proportion():
    names = [
        Path(f"{word}_{speaker:08x}_nohash_{n}.wav") for speaker in range(300) for word in ("a", "b") for n in (0, 1)
    ]
    sets = {}
    for path in names:
        sets.setdefault(speaker_key(path), set()).add(which_set(path, 10, 10))
    assert all(len(s) == 1 for s in sets.values())
    counts = {name: sum(which_set(p, 10, 10) == name for p in names) for name in ("train", "validation", "test")}
    assert 0.7 < counts["train"] / len(names) < 0.9
    salted = [which_set(p, 10, 10, salt="x") for p in names]
    assert salted != [which_set(p, 10, 10) for p in names]  # a salt reshuffles
    assert 0.7 < salted.count("train") / len(names) < 0.9  # in the same proportions


def test_list_files_take_precedence(tmp_path):
    for name in ("up", "down"):
        for n in range(4):
            write_wav(tmp_path / name / f"{n:08x}_nohash_0.wav", tone(440))
    (tmp_path / "validation_list.txt").write_text("up/00000000_nohash_0.wav\n")
    (tmp_path / "testing_list.txt").write_text("down/00000001_nohash_0.wav\n")
    dataset = find_dataset(tmp_path)
    splits = split_dataset(dataset, 10, 10)
    as_names = {k: [dataset.files[i].relative_to(tmp_path).as_posix() for i in v] for k, v in splits.items()}
    assert as_names["validation"] == ["up/00000000_nohash_0.wav"]
    assert as_names["test"] == ["down/00000001_nohash_0.wav"]
    assert len(as_names["train"]) == 6
    assert {k: len(v) for k, v in split_dataset(dataset, 0, 0).items()} == {"train": 8, "validation": 0, "test": 0}


def test_a_test_list_alone_leaves_validation_to_the_hash(tmp_path):
    """As `data download mnist` and `cifar10` write them: testing_list.txt only."""
    for name in ("up", "down"):
        for n in range(50):
            write_wav(tmp_path / name / f"{n:08x}_nohash_0.wav", tone(440, seconds=0.05))
    listed = [f"{name}/{n:08x}_nohash_0.wav" for name in ("up", "down") for n in range(10)]
    (tmp_path / "testing_list.txt").write_text("\n".join(listed))
    dataset = find_dataset(tmp_path)
    splits = split_dataset(dataset, 10, 10)
    as_names = {k: {dataset.files[i].relative_to(tmp_path).as_posix() for i in v} for k, v in splits.items()}
    assert as_names["test"] == set(listed)
    assert 0 < len(as_names["validation"]) < 40 and not as_names["validation"] & set(listed)  # ~10 % of 80 by hash
    assert len(as_names["train"]) == 100 - 20 - len(as_names["validation"])


def test_bundles_are_replaced_only_when_asked_and_only_bundles(tmp_path):
    from app.bundle import write_bundle
    from app.errors import BundleError

    def files(folder: Path) -> None:
        (folder / "model.tflite").write_bytes(b"model")

    metadata = {"format_version": 1, "kind": "audio", "class_names": ["a"], "preprocessing": {}, "input_shape": [1]}
    bundle = write_bundle(tmp_path / "b", metadata, files)
    (bundle / "samples" / "a").mkdir(parents=True)
    with pytest.raises(BundleError, match="--force"):
        write_bundle(bundle, metadata, files)
    write_bundle(bundle, {**metadata, "class_names": ["a", "b"]}, files, force=True)
    assert (bundle / "samples" / "a").is_dir()  # examples survive a retrain that keeps their class
    write_bundle(bundle, {**metadata, "class_names": ["b"]}, files, force=True)
    assert not (bundle / "samples" / "a").exists()  # but not one that drops it
    assert [p.name for p in tmp_path.iterdir()] == ["b"]  # no staging or retired folders left
    notes = tmp_path / "notes"
    notes.mkdir()
    (notes / "todo.txt").write_text("mine")
    with pytest.raises(BundleError, match="not a model bundle"):
        write_bundle(notes, metadata, files, force=True)
    assert (notes / "todo.txt").read_text() == "mine"


def test_a_bundle_may_go_into_an_empty_folder_but_not_onto_a_file(tmp_path):
    from app.bundle import write_bundle
    from app.errors import BundleError

    def files(folder: Path) -> None:
        (folder / "model.tflite").write_bytes(b"model")

    metadata = {"format_version": 1, "kind": "audio", "class_names": ["a"], "preprocessing": {}, "input_shape": [1]}
    (tmp_path / "empty").mkdir()
    assert (write_bundle(tmp_path / "empty", metadata, files) / "metadata.json").is_file()
    (tmp_path / "file").write_text("x")
    with pytest.raises(BundleError, match="is a file; expected a new or empty folder"):
        write_bundle(tmp_path / "file", metadata, files, force=True)


def test_files_of_the_other_kind_are_counted_and_split_layouts_noticed(tmp_path):
    for name in ("yes", "no"):
        for n in range(2):
            write_wav(tmp_path / "mixed" / name / f"{n}.wav", tone(440, seconds=0.05))
    (tmp_path / "mixed" / "cat").mkdir()
    for n in range(3):
        Image.new("L", (8, 8)).save(tmp_path / "mixed" / "cat" / f"{n}.png")
    mixed = find_dataset(tmp_path / "mixed")
    assert mixed.class_names == ("no", "yes") and mixed.other_kind_files == {"cat": 3}
    for split, name in (("train", "3"), ("train", "4"), ("test", "3")):
        write_wav(tmp_path / "sets" / split / name / "a.wav", tone(440, seconds=0.05))
    assert find_dataset(tmp_path / "sets").looks_split_into_sets  # train says so before training
    assert not find_dataset(tmp_path / "sets" / "train").looks_split_into_sets
    assert not mixed.looks_split_into_sets


def test_bundles_being_written_or_left_by_an_interrupted_write_are_not_listed(tmp_path):
    from app.bundle import list_bundles

    metadata = '{"kind": "image"}'
    for name in ("mnist", ".mnist.8d1omgbt", ".mnist.old-jsw52kzx"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "metadata.json").write_text(metadata)
    assert list_bundles(models_dir=tmp_path) == [tmp_path / "mnist"]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[1, 2]", "JSON list; expected an object"),
        (
            '{"format_version": "1", "kind": "audio", "class_names": [], "preprocessing": {}, "input_shape": [],'
            ' "files": {}}',
            'format_version is "1"; expected 1',
        ),
    ],
)
def test_metadata_of_the_wrong_shape_is_a_bundle_error(tmp_path, text, message):
    from app.bundle import read_metadata
    from app.errors import BundleError

    (tmp_path / "metadata.json").write_text(text)
    with pytest.raises(BundleError, match=message):
        read_metadata(tmp_path)


def test_named_speakers_are_held_out_whole_and_everyone_else_trains(tmp_path):
    pattern = r"^[^_]+_([^_]+)_"
    for digit in ("0", "1"):
        for speaker in ("george", "lucas", "theo", "yweweler"):
            for n in range(3):
                write_wav(tmp_path / digit / f"{digit}_{speaker}_{n}.wav", tone(440, seed=n))
    dataset = find_dataset(tmp_path)
    splits = split_dataset(dataset, 50, 50, pattern, validation_groups=("lucas",), test_groups=("theo", "nobody"))
    speakers = {name: {speaker_key(dataset.files[i], pattern) for i in v} for name, v in splits.items()}
    assert speakers == {"validation": {"lucas"}, "test": {"theo"}, "train": {"george", "yweweler"}}
    assert sum(len(v) for v in splits.values()) == len(dataset.files) == 24
    only_validation = split_dataset(dataset, 50, 50, pattern, validation_groups=("george", "lucas"))
    assert not only_validation["test"] and len(only_validation["validation"]) == 12  # percentages are ignored


def test_silence_clips_of_the_training_split_become_background_noise(tmp_path):
    from app.training.variants import silence_training_files

    for name in ("_silence_", "yes"):
        for n in range(4):
            write_wav(tmp_path / name / f"{n:08x}_nohash_0.wav", tone(440, seed=n))
    dataset = find_dataset(tmp_path)
    train_indices = [i for i, path in enumerate(dataset.files) if path.name != "00000000_nohash_0.wav"]
    chosen = silence_training_files(dataset, train_indices)
    assert [path.relative_to(tmp_path).as_posix() for path in chosen] == [
        f"_silence_/{n:08x}_nohash_0.wav" for n in (1, 2, 3)
    ]
    no_silence = find_dataset(tmp_path, class_names=["yes"])
    assert silence_training_files(no_silence, range(len(no_silence.files))) == []


def test_folders_named_otherwise_can_feed_a_class(tmp_path):
    """As Speech Commands' `zero` … folders would feed a digit model's `0` … classes."""
    for folder, count in (("zero", 2), ("0", 1), ("one", 3), ("yes", 1)):
        for n in range(count):
            write_wav(tmp_path / folder / f"{n:08x}_nohash_0.wav", tone(440, seconds=0.05))
    dataset = find_dataset(tmp_path, "audio", ["0", "1", "2"], {"zero": "0", "one": "1"})
    assert dataset.class_names == ("0", "1", "2")
    assert dataset.counts() == {"0": 3, "1": 3, "2": 0}  # "yes" is no class of these, and is left out
    assert [path.parent.name for path in dataset.files] == ["0", "zero", "zero", "one", "one", "one"]
