"""Resuming a killed training run: the checkpoint folder beside the bundle, the refusal of another run's checkpoint,
a real `python -m app train` killed with SIGKILL and continued with --resume, and a resumed run that ends exactly
as an uninterrupted one."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from fixtures_data import make_shape_dataset, make_tone_dataset

from app.bundle import read_metadata
from app.cli import main
from app.errors import InputError
from app.training.checkpoints import checkpoint_folder, open_checkpoints

ROOT = Path(__file__).resolve().parent.parent


def test_the_checkpoint_folder_is_hidden_beside_the_bundle_and_a_fresh_run_empties_it(tmp_path):
    out = tmp_path / "models" / "words"
    assert checkpoint_folder(out) == tmp_path / "models" / ".words.checkpoint"
    assert checkpoint_folder(out, worker_index=2) == tmp_path / "models" / ".words.checkpoint" / "worker-2"
    place = open_checkpoints(out, resume=False, worker_index=0, key="run-a")
    place.mark()
    (place.folder / "ckpt-1.index").write_bytes(b"x")
    assert open_checkpoints(out, resume=True, worker_index=0, key="run-a").resume
    fresh = open_checkpoints(out, resume=False, worker_index=0, key="run-a")  # no --resume: starts afresh
    assert not fresh.resume and not fresh.folder.exists()


def test_resume_without_a_checkpoint_starts_at_epoch_one(tmp_path, caplog):
    with caplog.at_level("INFO", logger="app"):
        place = open_checkpoints(tmp_path / "words", resume=True, worker_index=0, key="run-a")
    assert not place.resume and "starting at epoch 1" in caplog.text


def test_a_folder_that_is_not_a_checkpoint_is_never_deleted(tmp_path):
    folder = checkpoint_folder(tmp_path / "words")
    folder.mkdir()
    (folder / "notes.txt").write_text("mine")
    with pytest.raises(InputError, match="not a training checkpoint"):
        open_checkpoints(tmp_path / "words", resume=False, worker_index=0, key="run-a")
    assert (folder / "notes.txt").read_text() == "mine"


def test_resume_refuses_the_checkpoint_of_another_recipe_before_it_trains(tmp_path, capsys):
    data = make_shape_dataset(tmp_path / "shapes", per_class=4)
    out = tmp_path / "models" / "shapes"
    open_checkpoints(out, resume=False, worker_index=0, key="another run").mark()
    code = main(["train", str(data), "--out", str(out), "--epochs", "3", "--resume"])
    message = capsys.readouterr().err
    assert code == 2 and "other data or another recipe" in message and "without --resume" in message
    assert (checkpoint_folder(out) / "run.json").is_file() and not out.exists()  # nothing deleted, nothing trained


@pytest.mark.slow
def test_a_killed_training_process_resumes_from_its_last_epoch(tmp_path, trained_models):
    """SIGKILL a real `train` once its checkpoint of epoch 2 or later is written; --resume continues there, and
    the old bundle at --out stays whole until the new one replaces it."""
    data = make_tone_dataset(tmp_path / "tones")
    out = tmp_path / "models" / "tones"
    shutil.copytree(trained_models / "tones", out)  # an old bundle, which the run replaces
    old_created = read_metadata(out)["created"]
    command = ["train", data, "--out", out, "--force", "--epochs", "40", "--patience", "40", "--batch-size", "16"]
    first = start_cli(*command)
    reached = wait_for_checkpoint(checkpoint_folder(out), first, at_least=2)
    first.send_signal(signal.SIGKILL)
    first.wait(timeout=30)
    assert read_metadata(out)["created"] == old_created  # still the old bundle, whole

    second = start_cli(*command, "--resume")
    stdout, stderr = second.communicate(timeout=600)
    assert second.returncode == 0, stderr[-3000:]
    resumed_at = int(stderr.split("resumed at epoch ", 1)[1].split()[0])
    assert resumed_at >= reached + 1 >= 3, stderr[-3000:]  # not from epoch 1
    assert f"epoch {resumed_at}/40" in stderr and "epoch 1/40" not in stderr
    metadata = read_metadata(out)
    assert metadata["created"] != old_created and len(metadata["training"]["history"]["loss"]) == 40
    assert json.loads(stdout.splitlines()[-1])["bundle"] == str(out.resolve())
    assert not checkpoint_folder(out).exists()  # removed once the bundle is written
    from app.predict import Predictor

    clip = next((data / "high").iterdir())
    assert Predictor.load(out)(clip, top_k=1)[0]["label"] == "high"


@pytest.mark.slow
def test_a_resumed_run_ends_as_the_uninterrupted_run_would(tmp_path, monkeypatch):
    """Same seed: stopped after epoch 2 and resumed, the run has the history of one that never stopped (the
    weights, the optimizer with its moving average, the best epoch and the data order were all restored)."""
    from app.config import TrainConfig
    from app.training import loop_state
    from app.training.train import train

    data = make_shape_dataset(tmp_path / "shapes", per_class=12)
    recipe = TrainConfig(epochs=5, batch_size=8, patience=5, weight_averaging=True, random_erasing=0.5)
    whole = train(data, tmp_path / "whole", train_config=recipe, progress=False)

    save = loop_state.EpochCheckpoints.save

    def save_then_stop(self, state):
        save(self, state)
        if state.epochs_done == 2:
            raise KeyboardInterrupt  # as a kill right after the checkpoint of epoch 2

    monkeypatch.setattr(loop_state.EpochCheckpoints, "save", save_then_stop)
    with pytest.raises(KeyboardInterrupt):
        train(data, tmp_path / "parts", train_config=recipe, progress=False)
    monkeypatch.setattr(loop_state.EpochCheckpoints, "save", save)
    resumed = train(data, tmp_path / "parts", train_config=recipe, progress=False, resume=True)
    histories = [read_metadata(result.bundle)["training"]["history"] for result in (whole, resumed)]
    assert histories[0] == histories[1]
    assert resumed.summary["test_accuracy"] == whole.summary["test_accuracy"]


def start_cli(*args: object) -> subprocess.Popen:
    """`python -m app ARGS…` in the background, its stdout and stderr captured as text."""
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    return subprocess.Popen(
        [sys.executable, "-m", "app", *map(str, args)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        cwd=ROOT,
    )


def wait_for_checkpoint(folder: Path, process: subprocess.Popen, at_least: int, timeout: float = 300) -> int:
    """The number of the latest checkpoint in `folder` once it is `at_least` (TensorFlow's `checkpoint` index names
    it, so it is complete); fails if the process ends first."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        index = folder / "checkpoint"
        if index.is_file():
            latest = index.read_text().split('"')[1]  # model_checkpoint_path: "ckpt-N"
            if int(latest.rsplit("-", 1)[1]) >= at_least:
                return int(latest.rsplit("-", 1)[1])
        if process.poll() is not None:
            pytest.fail(f"training ended before its checkpoint of epoch {at_least}: {process.communicate()[1][-3000:]}")
        time.sleep(0.05)
    process.kill()
    pytest.fail(f"no checkpoint of epoch {at_least} in {folder} after {timeout} s")
