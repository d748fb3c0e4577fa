"""End to end through the CLI: train, evaluate, predict; bundles, parity, and serving without TensorFlow."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from app.bundle import read_metadata
from app.errors import BundleError
from app.predict import Predictor
from app.views import input_views

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parent.parent


def run_cli(*args: str, cache: Path | None = None) -> subprocess.CompletedProcess:
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    return subprocess.run(
        [sys.executable, "-m", "app", *map(str, args)], capture_output=True, text=True, env=env, cwd=ROOT
    )


@dataclass(frozen=True)
class CliTraining:
    """One `python -m app train` run: the bundle folder it was asked to write and the finished process."""

    bundle: Path
    result: subprocess.CompletedProcess


@pytest.fixture(scope="module")
def cli_training(tmp_path_factory, tone_dataset) -> CliTraining:
    """`python -m app train` on the tone dataset (2 epochs, --subtract-band-mean), once for the tests below."""
    bundle = tmp_path_factory.mktemp("cli") / "tones"
    result = run_cli(
        "train", tone_dataset, "--out", bundle, "--epochs", "2", "--batch-size", "16", "--subtract-band-mean", "--quiet"
    )
    return CliTraining(bundle, result)


@pytest.fixture(scope="module")
def cli_bundle(cli_training) -> Path:
    """The bundle `cli_training` wrote; the tests using it fail at once, with its stderr, if training failed."""
    assert cli_training.result.returncode == 0, cli_training.result.stderr[-2000:]
    return cli_training.bundle


def test_cli_train_writes_the_model_its_litert_copy_metadata_and_a_report(cli_training):
    assert cli_training.result.returncode == 0, cli_training.result.stderr[-2000:]
    for name in ("model.keras", "model.tflite", "metadata.json", "report.png"):
        assert (cli_training.bundle / name).is_file()
    assert set(read_metadata(cli_training.bundle)["files"]) == {"model.keras", "model.tflite", "report.png"}


def test_cli_train_records_the_data_and_preprocessing_in_the_metadata(cli_bundle):
    metadata = read_metadata(cli_bundle)
    assert metadata["kind"] == "audio" and metadata["class_names"] == ["high", "low", "mid"]
    assert metadata["preprocessing"]["n_mels"] == 40 and metadata["input_shape"] == [97, 40, 1]
    assert metadata["preprocessing"]["subtract_band_mean"] is True
    assert metadata["data"]["files"] == 72 and sum(metadata["data"]["split"].values()) == 72


def test_cli_train_records_its_command_versions_and_the_keras_litert_difference(cli_bundle):
    metadata = read_metadata(cli_bundle)
    assert metadata["training"]["command"].startswith("python -m app train")
    assert metadata["metrics"]["keras_litert_max_abs_difference"] < 1e-4
    assert {"tensorflow-cpu", "keras", "numpy"} & set(metadata["versions"])


def test_cli_train_prints_a_json_summary_that_matches_the_metadata(cli_training, cli_bundle):
    metadata = read_metadata(cli_bundle)
    summary = json.loads(cli_training.result.stdout.strip().splitlines()[-1])
    assert summary["test_accuracy"] == metadata["metrics"]["test"]["accuracy"]
    assert {k: summary[f"{k}_files"] for k in ("train", "validation", "test")} == metadata["data"]["split"]


def test_cli_train_refuses_to_replace_a_bundle_without_force(cli_bundle, tone_dataset):
    again = run_cli("train", tone_dataset, "--out", cli_bundle, "--epochs", "1")
    assert again.returncode == 2 and "already exists" in again.stderr and "--force" in again.stderr


def test_subtract_band_mean_reaches_the_features_the_model_serves_on(cli_bundle, tone_dataset):
    predictor = Predictor.load(cli_bundle)
    band_means = predictor.preprocess(next((tone_dataset / "low").iterdir())).mean(axis=0)  # (n_mels,)
    assert np.abs(band_means).max() < 1e-3


def test_cli_evaluate_json_agrees_with_the_predictor_file_by_file(cli_bundle, tone_dataset):
    evaluation = run_cli("evaluate", cli_bundle, tone_dataset, "--json")
    assert evaluation.returncode == 0, evaluation.stderr[-2000:]
    report = json.loads(evaluation.stdout)
    predictor = Predictor.load(cli_bundle)
    class_names = read_metadata(cli_bundle)["class_names"]
    files = sorted(tone_dataset.glob("*/*.wav"))
    truth = [path.parent.name for path in files]
    labels = [predictor(path, top_k=1)[0]["label"] for path in files]
    assert report["count"] == 72
    assert report["accuracy"] == pytest.approx(np.mean([a == b for a, b in zip(truth, labels, strict=True)]))
    matrix = np.asarray(report["confusion_matrix"])  # rows: true class in class_names order, 24 files each
    assert matrix.sum(axis=1).tolist() == [24, 24, 24]
    for row, name in enumerate(class_names):
        heard = [label for label, true in zip(labels, truth, strict=True) if true == name]
        assert matrix[row].tolist() == [heard.count(column) for column in class_names]
        assert report["per_class"][name] == pytest.approx(heard.count(name) / 24)


def test_cli_predict_reports_a_bad_file_and_still_predicts_the_others(tmp_path, cli_bundle, tone_dataset):
    good, bad = next((tone_dataset / "low").iterdir()), tmp_path / "notes.txt"
    bad.write_text("not audio")
    prediction = run_cli("predict", cli_bundle, good, bad, good, "--top-k", "2")
    assert prediction.returncode == 2  # one file failed; the others were still predicted
    lines = [json.loads(line) for line in prediction.stdout.splitlines()]
    assert [("error" in line) for line in lines] == [False, True, False]
    assert lines[0]["file"] == str(good) and len(lines[0]["predictions"]) == 2
    assert lines[0]["predictions"] == lines[2]["predictions"]
    expected = Predictor.load(cli_bundle)(good, top_k=2)
    assert [p["label"] for p in lines[0]["predictions"]] == [p["label"] for p in expected]
    assert np.allclose([p["score"] for p in lines[0]["predictions"]], [p["score"] for p in expected], atol=1e-6)


def test_named_speakers_held_out_and_averaged_weights_through_the_cli(tmp_path, tone_dataset):
    from app.class_folders import speaker_key

    speakers = sorted({speaker_key(path) for path in tone_dataset.glob("*/*.wav")})
    bundle = tmp_path / "tones"
    result = run_cli(
        "train", tone_dataset, "--out", bundle, "--epochs", "2", "--batch-size", "16", "--quiet",
        "--validation-groups", f"{speakers[0]},{speakers[1]}", "--test-groups", speakers[2],
        "--weight-averaging", "--noise-from-silence", "--augment-copies", "1",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    metadata = read_metadata(bundle)
    assert metadata["data"]["split"] == {"train": 63, "validation": 6, "test": 3}  # 3 clips per speaker
    config = metadata["training"]["config"]
    assert config["validation_groups"] == speakers[:2] and config["test_groups"] == [speakers[2]]
    assert config["weight_averaging"] is True and config["noise_from_silence"] is True
    assert metadata["metrics"]["evaluated_on"] == "test" and metadata["metrics"]["test"]["count"] == 3
    assert metadata["metrics"]["keras_litert_max_abs_difference"] < 1e-4
    bad = run_cli("train", tone_dataset, "--out", tmp_path / "never", "--validation-groups", " , ")
    assert bad.returncode == 2 and "comma-separated names" in bad.stderr
    never = tmp_path / "never"
    unknown = run_cli("train", tone_dataset, "--out", never, "--validation-groups", f"{speakers[0]},nobody")
    assert unknown.returncode == 2 and "nobody" in unknown.stderr and speakers[0] in unknown.stderr
    assert not never.exists()


def test_a_final_model_trains_on_every_file(tmp_path, tone_dataset):
    """--validation-percent 0 --test-percent 0: all 72 clips train, all epochs run, nothing is scored."""
    bundle = tmp_path / "tones"
    result = run_cli(
        "train", tone_dataset, "--out", bundle, "--epochs", "3", "--batch-size", "16", "--quiet",
        "--validation-percent", "0", "--test-percent", "0", "--weight-averaging", "--augment-copies", "0",
        "--mixup", "0.2", "--time-stretch", "0.2",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    metadata = read_metadata(bundle)
    assert metadata["data"]["split"] == {"train": 72, "validation": 0, "test": 0}
    assert metadata["training"]["epochs_run"] == 3 and metadata["training"]["best_epoch"] is None
    assert metadata["training"]["config"]["mixup"] == 0.2 and metadata["training"]["config"]["time_stretch"] == 0.2
    assert "val_accuracy" not in metadata["training"]["history"]
    assert metadata["metrics"]["evaluated_on"] is None and set(metadata["metrics"]) == {
        "evaluated_on",
        "keras_litert_max_abs_difference",
    }
    assert metadata["metrics"]["keras_litert_max_abs_difference"] < 1e-4
    assert (bundle / "report.png").stat().st_size > 1000
    clip = next((tone_dataset / "mid").iterdir())
    assert len(Predictor.load(bundle)(clip.read_bytes(), top_k=3)) == 3


def test_cli_bad_input_exits_2_with_one_line(tmp_path, trained_models, tone_dataset):
    not_audio = tmp_path / "report.pdf"
    not_audio.write_bytes(b"%PDF-1.4 nothing to hear")
    result = run_cli("predict", trained_models / "tones", not_audio)
    assert result.returncode == 2
    assert "could not be decoded as audio" in result.stderr and "expected audio" in result.stderr
    missing = run_cli("evaluate", tmp_path / "nowhere", tmp_path)
    assert missing.returncode == 2 and len(missing.stderr.strip().splitlines()) == 1
    usage = run_cli("train")
    assert usage.returncode == 2
    # the whole table of bad options is in test_cli_options.py, in-process
    bad_option = run_cli("train", tone_dataset, "--out", tmp_path / "never", "--epochs", "0")
    assert bad_option.returncode == 2 and len(bad_option.stderr.strip().splitlines()) == 1
    assert "--epochs" in bad_option.stderr and not (tmp_path / "never").exists()
    broken = tmp_path / "broken" / "low"
    broken.mkdir(parents=True)
    (broken / "a.wav").write_bytes(b"RIFF\x00\x00\x00\x00WAVEnothing")
    unreadable = run_cli("evaluate", trained_models / "tones", tmp_path / "broken")
    assert unreadable.returncode == 2 and "could be read" in unreadable.stderr


def test_extra_training_folders_named_otherwise_through_the_cli(tmp_path, tone_dataset):
    import shutil

    extra = tmp_path / "extra"
    shutil.copytree(tone_dataset / "high", extra / "treble")  # another dataset's name for "high"
    shutil.copytree(tone_dataset / "low", extra / "bass")
    common = ["train", tone_dataset, "--out", tmp_path / "tones", "--extra-train-data", extra, "--quiet"]
    wrong = run_cli(*common, "--extra-folder-classes", "treble=soprano")
    assert wrong.returncode == 2 and "soprano" in wrong.stderr and "not a class" in wrong.stderr
    result = run_cli(*common, "--extra-folder-classes", "treble=high", "bass=low", "--epochs", "1", "--no-augment")
    assert result.returncode == 0, result.stderr[-2000:]
    counts = read_metadata(tmp_path / "tones")["data"]["extra_training_data"][str(extra.resolve())]
    assert counts == {"high": 24, "low": 24, "mid": 0}


def test_training_says_what_it_left_out_and_when_classes_look_like_sets(tmp_path, tone_dataset, shape_dataset):
    import shutil

    data = tmp_path / "data"
    for split, names in (("train", ("high", "low")), ("test", ("high", "low"))):
        for name in names:
            shutil.copytree(tone_dataset / name, data / split / name)
    shutil.copytree(shape_dataset / "circle", data / "pictures")
    (data / "train" / "high" / "broken.wav").write_bytes(b"RIFF\x00\x00\x00\x00WAVEnothing")
    result = run_cli("train", data, "--out", tmp_path / "model", "--epochs", "1", "--no-augment", "--quiet")
    assert result.returncode == 0, result.stderr[-2000:]
    assert f"skipped 1 unreadable file(s); listed in {tmp_path / 'model' / 'metadata.json'}" in result.stderr
    skipped = read_metadata(tmp_path / "model")["data"]["skipped"]
    assert [Path(entry["file"]).name for entry in skipped] == ["broken.wav"] and skipped[0]["reason"]
    pictures = len(list((shape_dataset / "circle").iterdir()))
    assert f"left out the image files of this audio dataset: pictures/ ({pictures})" in result.stderr
    assert f"rather than classes (root/<set>/<class>/), stop and give one set, e.g. {data / 'train'}" in result.stderr
    assert read_metadata(tmp_path / "model")["data"]["other_kind_files"] == {"pictures": pictures}


def test_cli_evaluate_in_words_names_what_it_skipped_and_ignored(tmp_path, trained_models, tone_dataset):
    import shutil

    data = tmp_path / "data"
    for name in ("high", "low", "mid"):
        (data / name).mkdir(parents=True)
        for path in sorted((tone_dataset / name).iterdir())[:2]:
            shutil.copy(path, data / name / path.name)
    (data / "low" / "broken.wav").write_bytes(b"RIFF\x00\x00\x00\x00WAVEnothing")
    (data / "cats").mkdir()
    result = run_cli("evaluate", trained_models / "tones", data)
    assert result.returncode == 0, result.stderr[-2000:]
    lines = result.stdout.splitlines()
    assert lines[0].startswith("accuracy ") and lines[0].endswith("on 6 files")
    assert [line.split()[0] for line in lines[1:4]] == ["high", "low", "mid"]
    assert any(line.startswith("skipped 1 unreadable file(s)") and "broken.wav" in line for line in lines)
    assert "ignored folders the model has no class for: cats" in lines
    assert not any(line.startswith("note:") for line in lines)  # a copy elsewhere is not the training folder
    on_training_data = run_cli("evaluate", trained_models / "tones", tone_dataset, "--json")
    assert json.loads(on_training_data.stdout)["training_data"] == str(tone_dataset.resolve())
    in_words = run_cli("evaluate", trained_models / "tones", tone_dataset)
    assert f"note: the bundle trained on {tone_dataset.resolve()}, so this score includes" in in_words.stdout


def test_cli_predict_reports_an_unexpected_error_and_goes_on(trained_models, tone_dataset, monkeypatch, capsys):
    from app import cli
    from app.predict import Predictor as RealPredictor

    first, second = sorted((tone_dataset / "low").iterdir())[:2]
    real_assess = RealPredictor.assess

    def failing_on_the_first(self, source, top_k=5):
        if source == first:
            raise RuntimeError("a bug")
        return real_assess(self, source, top_k)

    monkeypatch.setattr(RealPredictor, "assess", failing_on_the_first)
    assert cli.main(["predict", str(trained_models / "tones"), str(first), str(second)]) == 1
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert lines[0] == {"file": str(first), "error": "unexpected RuntimeError: a bug"}
    assert lines[1]["file"] == str(second) and lines[1]["predictions"]


def test_training_refuses_bad_targets_and_extra_data_before_it_trains(tmp_path, shape_dataset):
    from app.config import TrainConfig
    from app.errors import DatasetError, InputError
    from app.training.train import train

    data = tmp_path / "data"
    (data / "a").mkdir(parents=True)
    (data / "b").mkdir()
    with pytest.raises(InputError, match="inside the data folder"):
        train(data, data / "model", force=True)  # its report.png would become class "model" next time
    notes = tmp_path / "notes"
    notes.mkdir()
    (notes / "todo.txt").write_text("keep me")
    with pytest.raises(BundleError, match="not a model bundle"):
        train(shape_dataset, notes, force=True, cache_dir=tmp_path / "cache", progress=False)
    assert (notes / "todo.txt").read_text() == "keep me"
    assert not (tmp_path / "cache").exists()  # refused before any feature was extracted, let alone trained
    unrelated = tmp_path / "unrelated" / "bird"
    unrelated.mkdir(parents=True)
    (unrelated / "x.png").write_bytes(next((shape_dataset / "circle").iterdir()).read_bytes())
    with pytest.raises(DatasetError, match=r"no class folder of .* matches"):
        train(shape_dataset, tmp_path / "never", extra_train_dirs=[unrelated.parent], progress=False)
    assert not (tmp_path / "never").exists()
    speaker = next((shape_dataset / "circle").iterdir()).name  # each image is its own group here
    with pytest.raises(DatasetError, match="name validation speakers too"):
        train(shape_dataset, tmp_path / "never", train_config=TrainConfig(test_groups=(speaker,)), progress=False)
    with pytest.raises(DatasetError, match=r"nobody .*before _nohash_; --group-pattern names them in other schemes"):
        train(shape_dataset, tmp_path / "never", train_config=TrainConfig(validation_groups=("nobody",)))


def test_trained_bundles_predict_their_own_data(trained_models, tone_dataset, shape_dataset):
    for name, data in (("tones", tone_dataset), ("shapes", shape_dataset)):
        predictor = Predictor.load(trained_models / name)
        files = sorted(data.glob("*/*"))[::6]
        correct = [predictor(f, top_k=1)[0]["label"] == f.parent.name for f in files]
        assert np.mean(correct) > 0.6, name


def test_keras_and_litert_agree(trained_models, tone_dataset, shape_dataset):
    import keras

    for name, data in (("tones", tone_dataset), ("shapes", shape_dataset)):
        predictor = Predictor.load(trained_models / name)
        model = keras.saving.load_model(trained_models / name / "model.keras")
        features = np.stack([predictor.preprocess(f) for f in sorted(data.glob("*/*"))[:16]]).astype(np.float32)
        keras_input = features[..., None] if features.ndim == 3 else features
        floor = -predictor.config.top_db if name == "tones" else 0.0
        views = input_views(keras_input, predictor.serving, floor)
        keras_probabilities = np.mean([model.predict(view, verbose=0) for view in views], axis=0)
        np.testing.assert_allclose(predictor.predict_features(features), keras_probabilities, atol=1e-4)


def _copy_with_serving(source: Path, target: Path, **serving) -> Predictor:
    """A copy of a bundle whose metadata's "serving" has the given values."""
    import shutil

    shutil.copytree(source, target)
    metadata = read_metadata(target)
    metadata["serving"].update(serving)
    (target / "metadata.json").write_text(json.dumps(metadata))
    return Predictor.load(target)


def test_an_image_bundle_averages_moved_and_mirrored_views(tmp_path, trained_models, shape_dataset):
    """Trained with jitter, an image bundle also sees its input moved 1/16 of its size; with flips, mirrored too."""
    from app.views import translate_images

    moved = Predictor.load(trained_models / "shapes")
    step = round(min(moved.config.image_size) / 16)
    shifts = [[dy, dx] for dy in (step, -step, 0) for dx in (step, -step, 0) if dy or dx]
    assert sorted(moved.metadata["serving"]["pixel_shifts"]) == sorted(shifts)
    shifts = moved.metadata["serving"]["pixel_shifts"]
    assert moved.metadata["serving"] == {"average_mirrored": False, "time_shift_frames": [], "pixel_shifts": shifts}
    bare = _copy_with_serving(trained_models / "shapes", tmp_path / "bare", pixel_shifts=[])
    mirrored = _copy_with_serving(trained_models / "shapes", tmp_path / "mirrored", average_mirrored=True)
    images = np.stack([bare.preprocess(f) for f in sorted(shape_dataset.glob("*/*"))[:5]]).astype(np.float32)
    views = [images] + [translate_images(images, dy, dx) for dy, dx in shifts]
    expected = np.mean([bare.predict_features(view) for view in views], axis=0)
    np.testing.assert_allclose(moved.predict_features(images), expected, atol=1e-6)
    both_mirrors = (moved.predict_features(images) + moved.predict_features(images[:, :, ::-1])) / 2
    np.testing.assert_allclose(mirrored.predict_features(images), both_mirrors, atol=1e-6)
    np.testing.assert_allclose(mirrored.predict_features(images[0]), both_mirrors[0], atol=1e-6)
    down = translate_images(images, 2, 0)
    np.testing.assert_array_equal(down[:, 2:], images[:, :-2])
    np.testing.assert_array_equal(down[:, :2], np.repeat(images[:, :1], 2, axis=1))  # the edge row repeats
    np.testing.assert_array_equal(translate_images(images, 0, -3)[:, :, :-3], images[:, :, 3:])


def test_an_audio_bundle_averages_its_input_shifted_in_time(tmp_path, trained_models, tone_dataset):
    """Trained with time-shift augmentation, an audio bundle also hears its input 50 and 100 ms earlier and later."""
    from app.views import shift_frames

    shifting = Predictor.load(trained_models / "tones")
    assert shifting.serving["time_shift_frames"] == [-10, -5, 5, 10]  # 10 ms frames
    plain = _copy_with_serving(trained_models / "tones", tmp_path / "plain", time_shift_frames=[])
    clips = np.stack([plain.preprocess(f) for f in sorted(tone_dataset.glob("*/*"))[:4]]).astype(np.float32)
    floor = -plain.config.top_db
    views = [clips] + [shift_frames(clips, shift, floor) for shift in (-10, -5, 5, 10)]
    expected = np.mean([plain.predict_features(view) for view in views], axis=0)
    np.testing.assert_allclose(shifting.predict_features(clips), expected, atol=1e-6)
    np.testing.assert_allclose(shifting.predict_features(clips[1]), expected[1], atol=1e-6)
    assert shift_frames(clips, 5, floor)[:, :5].max() == floor  # the frames left empty are silence
    np.testing.assert_array_equal(shift_frames(clips, 5, floor)[:, 5:], clips[:, :-5])


def test_predictor_verifies_the_model_checksum(tmp_path, trained_models):
    import shutil

    copy = tmp_path / "tampered"
    shutil.copytree(trained_models / "tones", copy)
    with open(copy / "model.tflite", "r+b") as handle:
        handle.seek(-4, 2)
        handle.write(b"\x00\x01\x02\x03")
    with pytest.raises(BundleError, match="sha256"):
        Predictor.load(copy)


def test_serving_never_imports_tensorflow(trained_models, tone_dataset):
    clip = next((tone_dataset / "mid").iterdir())
    code = (
        "import sys\n"
        "from app.predict import Predictor\n"
        f"p = Predictor.load({str(trained_models / 'tones')!r})\n"
        f"print(p({str(clip)!r})[0]['label'])\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('tensorflow', 'keras')))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert result.returncode == 0, result.stderr
    label, modules = result.stdout.strip().splitlines()
    assert label in ("low", "mid", "high")
    assert modules == "[]"
