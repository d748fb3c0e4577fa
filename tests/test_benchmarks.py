"""Smoke tests of the benchmark scripts on tiny generated data: they run and print the promised JSON."""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


def load_script(name: str) -> ModuleType:
    """Import benchmarks/<name>.py (a script folder, not a package)."""
    spec = importlib.util.spec_from_file_location(f"benchmark_{name}", BENCHMARKS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def run_main(module: ModuleType, argv: list[str], capsys) -> dict:
    assert module.main(argv) == 0
    return json.loads(capsys.readouterr().out)


def test_features_benchmark_on_a_folder(tmp_path, capsys):
    features = load_script("features")
    features.generate_clips(tmp_path / "clips", 24)
    result = run_main(features, [str(tmp_path / "clips"), "--repeat", "1", "--reference-files", "8"], capsys)
    assert result["files"] == 24 and result["reference_files"] == 8
    assert result["files_per_s"] > 0 and result["reference_files_per_s"] > 0
    assert result["ratio"] == pytest.approx(result["files_per_s"] / result["reference_files_per_s"], rel=0.01)
    assert result["cpu_count"] >= 1 and len(result["load_average"]) == 3
    assert result["config"]["sample_rate"] == 16000
    assert set(result["single_thread_stage_cpu_us_per_file"]) >= {"read", "decode_and_window", "log_mel"}
    cache = result["cache"]
    assert cache["files"] == 24 and cache["cache_megabytes"] > 0  # 24 spectrograms of 97 × 40 float32
    assert cache["hit_speedup"] > 0 and cache["small_job_ratio"] > 0 and cache["fill_s"] > 0


def test_features_benchmark_rejects_a_missing_folder(tmp_path):
    features = load_script("features")
    with pytest.raises(SystemExit) as stop:
        features.main([str(tmp_path / "missing")])
    assert stop.value.code == 2


def test_dashboard_benchmark_starts_from_any_folder_without_the_tests(tmp_path):
    """The script imports its Voila and Chromium harness from benchmarks/, never from tests/."""
    env = {key: value for key, value in os.environ.items() if key != "PYTHONPATH"}
    script = BENCHMARKS / "dashboard.py"
    result = subprocess.run(
        [sys.executable, str(script), "--help"], capture_output=True, text=True, cwd=tmp_path, env=env
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert "--predictions" in result.stdout


@pytest.mark.slow
def test_training_benchmark_on_generated_sets(capsys):
    training = load_script("training")
    result = run_main(training, ["--samples", "48", "--epochs", "1", "--batch-size", "16"], capsys)
    assert set(result["sets"]) == {"audio", "image"}
    for name, measured in result["sets"].items():
        assert measured["data"]["samples"] == 48, name
        for variant in training.VARIANTS:
            assert measured[variant]["steady_samples_per_s"] > 0
            assert measured[variant]["peak_rss_mb"] > 0
    assert result["sets"]["audio"]["data"]["feature_shape"] == [97, 40]


@pytest.mark.slow
def test_training_overlap_names_the_root_and_the_extra_folders(tmp_path):
    accuracy = load_script("accuracy")
    root, extra, other = (tmp_path / name for name in ("train", "test", "other"))
    metadata = {"data": {"root": str(root), "extra_training_data": {str(extra): {"cat": 3}}}}
    assert accuracy.training_overlap(metadata, root) == {"same_data_as_training": True, "extra_training_data": False}
    assert accuracy.training_overlap(metadata, extra) == {"same_data_as_training": False, "extra_training_data": True}
    assert accuracy.training_overlap(metadata, other) == {"same_data_as_training": False, "extra_training_data": False}
    assert accuracy.training_overlap({}, other) == {"same_data_as_training": False, "extra_training_data": False}


def test_accuracy_benchmark_all_and_held_out(tmp_path, trained_models, tone_dataset, capsys):
    accuracy = load_script("accuracy")
    models = tmp_path / "models"
    shutil.copytree(trained_models / "tones", models / "spoken-digits")  # any audio bundle under a shipped name
    data_root = tmp_path / "data"
    data_root.mkdir()
    (data_root / "fsdd").symlink_to(tone_dataset)

    everything = run_main(accuracy, [str(data_root), "--models-dir", str(models)], capsys)
    assert list(everything) == ["spoken-digits"]  # the other bundles and folders are absent: skipped
    digits = everything["spoken-digits"]
    assert 0.0 <= digits["accuracy"] <= 1.0
    assert digits["count"] == sum(1 for _ in tone_dataset.rglob("*.wav"))
    assert set(digits["per_class"]) == {"low", "mid", "high"}
    assert digits["same_data_as_training"] is True
    assert digits["extra_training_data"] is False

    held_out = run_main(accuracy, [str(data_root), "--models-dir", str(models), "--held-out"], capsys)
    split = json.loads((models / "spoken-digits" / "metadata.json").read_text())["data"]["split"]
    assert held_out["spoken-digits"]["count"] == split["validation"] + split["test"]
    assert held_out["spoken-digits"]["split"] == "held-out"

    test_only = run_main(accuracy, [str(data_root), "--models-dir", str(models), "--split", "test"], capsys)
    assert test_only["spoken-digits"]["count"] == split["test"]


@pytest.mark.parametrize("seconds", [1.0, 2.5, 3.0])
def test_a_browser_like_recording_holds_the_whole_clip(seconds):
    import numpy as np

    from app.audio import decode_audio

    accuracy = load_script("accuracy")
    rate = 48000
    clip = np.full(int(seconds * rate), 0.1, np.float32)
    recording = decode_audio(accuracy.as_recording(np.random.default_rng(0), clip, rate), rate)
    assert recording.size >= max(2.5 * rate, clip.size) - rate // 100  # the encoder may trim a few ms
    loud = np.flatnonzero(np.abs(recording) > 0.01)
    assert (loud[-1] - loud[0]) / rate > seconds - 0.05  # the clip is in there, not cut
