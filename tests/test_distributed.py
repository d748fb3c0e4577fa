"""Training under tf.distribute: where a process stands in TF_CONFIG's cluster, how the training examples are shared
out, `--distribute mirrored` on this machine's one CPU replica, and two worker processes on 127.0.0.1 training one
bundle together under MultiWorkerMirroredStrategy."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from fixtures_data import make_tone_dataset

from app.bundle import read_metadata
from app.cli import main
from app.errors import DatasetError, InputError
from app.training.distribute import Distribution, cluster_position

ROOT = Path(__file__).resolve().parent.parent
TWO_WORKER_TIMEOUT = 900  # seconds; the machine may be shared


@dataclass(frozen=True)
class FakeStrategy:
    """What Distribution reads of a tf.distribute strategy."""

    num_replicas_in_sync: int


def tf_config(ports: list[int], index: int, task_type: str = "worker") -> str:
    return json.dumps(
        {"cluster": {"worker": [f"127.0.0.1:{port}" for port in ports]}, "task": {"type": task_type, "index": index}}
    )


def test_workers_are_numbered_chief_first_then_in_order():
    assert cluster_position(tf_config([1, 2, 3], 2)) == (2, 3)
    with_chief = json.dumps({"cluster": {"chief": ["a:1"], "worker": ["b:1", "c:1"]}, "task": {"type": "worker"}})
    assert cluster_position(with_chief) == (1, 3)  # worker 0 comes after the chief
    assert cluster_position(with_chief.replace('"type": "worker"', '"type": "chief"')) == (0, 3)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (None, "TF_CONFIG, which is not set"),
        ("{not json", "not a cluster description"),
        (tf_config([1, 2], 2), "task worker 2"),
        (tf_config([1, 2], 0, task_type="ps"), "task ps 0"),
    ],
)
def test_a_bad_tf_config_says_what_is_expected(text, message):
    with pytest.raises(InputError, match=message):
        cluster_position(text)


def test_multi_worker_without_tf_config_exits_2_before_reading_the_data(tmp_path, monkeypatch, capsys):
    monkeypatch.delenv("TF_CONFIG", raising=False)
    code = main(["train", str(tmp_path / "data"), "--out", str(tmp_path / "model"), "--distribute", "multi-worker"])
    assert code == 2 and "TF_CONFIG" in capsys.readouterr().err


def test_each_worker_takes_every_nth_example_and_as_many_whole_steps_as_the_others():
    first, second = (Distribution("multi-worker", index, 2, FakeStrategy(2)) for index in (0, 1))
    rows = np.arange(10)
    assert first.shard(rows).tolist() == [0, 2, 4, 6, 8] and second.shard(rows).tolist() == [1, 3, 5, 7, 9]
    assert np.shares_memory(first.shard(rows), rows)  # a view, not a copy
    assert first.per_replica_batch_size(8) == 4
    assert first.steps_per_epoch(10, 8) == second.steps_per_epoch(10, 8) == 2  # shards of 11 and 10: 2 steps of 4
    assert Distribution().steps_per_epoch(21, 8) == 3  # one process: every batch, the last one partial
    with pytest.raises(InputError, match="does not split evenly over the 2 replicas"):
        first.per_replica_batch_size(7)
    with pytest.raises(DatasetError, match="fewer than one step"):
        first.steps_per_epoch(3, 8)


def test_each_worker_reads_its_own_share_of_the_files():
    first, second = (Distribution("multi-worker", index, 2, FakeStrategy(2)) for index in (0, 1))
    training_files = [3, 5, 8, 9, 12]
    assert first.shard_files(training_files) == [3, 8, 12] and second.shard_files(training_files) == [5, 9]
    assert Distribution().shard_files(training_files) == training_files


def test_a_worker_extracts_its_share_of_the_training_files_and_every_held_out_file(tmp_path):
    import scipy.io.wavfile

    from app.config import AudioConfig
    from app.training.inputs import split_examples
    from app.training.train import extract_files

    files = []
    for index in range(6):  # 0.5 s tones at 16 kHz, each of its own pitch
        tone = 0.3 * np.sin(2 * np.pi * (200 + 50 * index) * np.arange(8000) / 16000)
        scipy.io.wavfile.write(path := tmp_path / f"{index}.wav", 16000, (tone * 32767).astype(np.int16))
        files.append(path)
    second = Distribution("multi-worker", 1, 2, FakeStrategy(2))
    splits = {"train": second.shard_files([0, 2, 3, 5]), "validation": [1], "test": [4]}  # train: 2 and 5
    extraction = extract_files(files, splits, AudioConfig(), tmp_path / "cache", progress=False)
    assert extraction.kept.tolist() == [1, 2, 4, 5]  # indices into every file: 0 and 3 are another worker's
    assert [key is None for key in extraction.readable_keys()] == [True, False, False, True, False, False]
    arrays = split_examples(extraction, splits, labels=np.arange(6))
    assert {name: labels.tolist() for name, (_, labels) in arrays.items()} == {
        "train": [2, 5],
        "validation": [1],
        "test": [4],
    }


def test_every_worker_normalises_with_the_statistics_of_every_shard():
    from app.training.fit import input_statistics

    shares: dict[int, np.ndarray] = {}

    class SummingInOneProcess(Distribution):  # the all-reduce, for two workers called one after the other
        def sum_over_workers(self, values):
            shares[self.worker_index] = np.asarray(values, dtype=np.float64)
            return sum(shares.values())

    images = np.random.default_rng(0).integers(0, 256, (41, 4, 4, 3), dtype=np.uint8)  # (n, height, width, channels)
    first, second = (SummingInOneProcess("multi-worker", index, 2, FakeStrategy(2)) for index in (0, 1))
    input_statistics(second.shard(images), seed=0, distribution=second)
    mean, variance = input_statistics(first.shard(images), seed=0, distribution=first)
    pixels = images.reshape(-1, 3).astype(np.float64)
    np.testing.assert_allclose(mean, pixels.mean(axis=0), rtol=1e-6)
    np.testing.assert_allclose(variance, pixels.var(axis=0) + 1e-6, rtol=1e-5)


def test_a_shard_of_rows_read_on_demand_reads_only_its_rows():
    class Rows:  # a stand-in for a store on disk
        shape, dtype = (7, 2), np.dtype(np.float32)

        def __len__(self):
            return 7

        def __getitem__(self, key):
            return np.arange(14, dtype=np.float32).reshape(7, 2)[key]

    shard = Distribution("multi-worker", 1, 3, FakeStrategy(3)).shard(Rows())
    assert len(shard) == 2 and shard.shape == (2, 2) and shard[[1, 0]].tolist() == [[8, 9], [2, 3]]


@pytest.mark.slow
def test_mirrored_strategy_trains_on_the_one_cpu_replica(tmp_path):
    from app.predict import Predictor
    from app.training.train import train, train_config_with

    data = make_tone_dataset(tmp_path / "tones")
    recipe = train_config_with(epochs=3, batch_size=16, augment_copies=1)
    result = train(data, tmp_path / "mirrored", train_config=recipe, progress=False, distribute="mirrored")
    training = read_metadata(result.bundle)["training"]
    assert training["distribution"] == {"strategy": "mirrored", "workers": 1, "replicas": 1}
    assert sorted(training["history"]) == ["accuracy", "loss", "val_accuracy", "val_loss"]
    clip = next((data / "mid").iterdir())
    assert Predictor.load(result.bundle)(clip, top_k=1)[0]["label"] == "mid"


@pytest.mark.slow
def test_two_workers_train_one_bundle_together(tmp_path):
    """Two processes on 127.0.0.1 under MultiWorkerMirroredStrategy: each reads and varies its own half of the
    training files, both finish, the chief alone writes the bundle (and nothing else is left beside it), which
    predicts like one trained by a single process on the same data."""
    from app.evaluate import evaluate_bundle

    data = make_tone_dataset(tmp_path / "tones", per_class=40)
    models = tmp_path / "models"
    options = ["--epochs", "8", "--batch-size", "16", "--augment-copies", "1", "--quiet"]
    single = run_cli("train", data, "--out", models / "single", *options)
    assert single.returncode == 0, single.stderr[-3000:]

    ports, cache = free_ports(2), tmp_path / "cache"  # the workers' own cache folder, shared as on one machine
    workers = [
        start_cli("train", data, "--out", models / "together", *options, "--distribute", "multi-worker",
                  env={"TF_CONFIG": tf_config(ports, index), "ONEPIPE_CACHE_DIR": str(cache)})
        for index in range(2)
    ]  # fmt: skip
    outputs = finish_together(workers)
    for process, (_, stderr) in zip(workers, outputs, strict=True):
        assert process.returncode == 0, stderr[-3000:]
    chief_summary, worker_summary = (json.loads(stdout.splitlines()[-1]) for stdout, _ in outputs)
    assert chief_summary["bundle"] == str((models / "together").resolve()) and "test_accuracy" in chief_summary
    assert worker_summary == {"bundle": chief_summary["bundle"], "worker": 1, "written_by": 0}
    assert sorted(path.name for path in models.iterdir()) == ["single", "together"]  # no checkpoint or staging left

    metadata, alone_metadata = (read_metadata(models / name) for name in ("together", "single"))
    training_files = metadata["data"]["split"]["train"]
    shares = [-(-training_files // 2), training_files // 2]  # files of worker 0 and 1: every other one
    assert metadata["training"]["distribution"] == {
        "strategy": "multi-worker", "workers": 2, "replicas": 2,
        "examples_per_worker": [2 * files for files in shares],  # each clip and its one variant
    }  # fmt: skip
    assert metadata["data"]["augmented_training_examples"] == alone_metadata["data"]["augmented_training_examples"]
    variant_clips = sorted(len(np.load(store / "labels.npy")) for store in cache.glob("variants-*") if store.is_dir())
    assert variant_clips == sorted(shares)  # each worker varied its own share of the clips, no more
    together, alone = (evaluate_bundle(models / name, data, progress=False) for name in ("together", "single"))
    assert together["count"] == alone["count"] == 120
    assert together["accuracy"] > 0.9 and abs(together["accuracy"] - alone["accuracy"]) <= 0.05


def run_cli(*args: object) -> subprocess.CompletedProcess:
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    return subprocess.run(
        [sys.executable, "-m", "app", *map(str, args)], capture_output=True, text=True, env=env, cwd=ROOT
    )


def start_cli(*args: object, env: dict[str, str]) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "app", *map(str, args)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", **env},
        cwd=ROOT,
    )


def finish_together(processes: list[subprocess.Popen]) -> list[tuple[str, str]]:
    """Each process's (stdout, stderr) once all have ended; if one fails or time runs out, the others are killed
    (a worker whose peer is gone would wait for it)."""
    deadline = time.monotonic() + TWO_WORKER_TIMEOUT
    while any(process.poll() is None for process in processes):
        failed = any(process.returncode not in (None, 0) for process in processes)
        if failed or time.monotonic() > deadline:
            for process in processes:
                if process.poll() is None:
                    process.kill()
            break
        time.sleep(0.2)
    return [process.communicate() for process in processes]


def free_ports(count: int) -> list[int]:
    """Ports on 127.0.0.1 that nothing listens on now."""
    sockets = [socket.socket() for _ in range(count)]
    try:
        for sock in sockets:
            sock.bind(("127.0.0.1", 0))
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()
