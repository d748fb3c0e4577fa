"""Replacing a folder whole (app.staging): at every moment the bundle at --out is the old one or the new one, never
none, even when the process is killed at the worst point; a replacement killed half-way where folders cannot be
swapped in one step is repaired by the next run; leftovers of killed runs are deleted, and nothing else."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
from PIL import Image, ImageDraw

from app import staging
from app.bundle import check_bundle_target, list_bundles, read_metadata, write_bundle
from app.errors import BundleError
from app.paths import PROJECT_ROOT
from app.predict import Predictor
from app.staging import exchange_paths, remove_stale, replace_when_complete, restore_interrupted


def hidden(folder: Path) -> list[str]:
    return sorted(path.name for path in folder.iterdir() if path.name.startswith("."))


def dead_pid() -> int:
    """The id of a process that has ended."""
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


def shipped_copy(models: Path) -> Path:
    """models/mnist: a copy of the shipped bundle (without samples), the "old" bundle of these tests."""
    source = PROJECT_ROOT / "models" / "mnist"
    return Path(shutil.copytree(source, models / "mnist", ignore=shutil.ignore_patterns("samples")))


def bundle_name(bundle: Path) -> str:
    """ "mnist" for the old bundle, "new" for the one written over it."""
    return json.loads((bundle / "metadata.json").read_text())["name"]


def answers_a_digit(bundle: Path) -> bool:
    picture = Image.new("L", (28, 28))
    ImageDraw.Draw(picture).line([(14, 4), (14, 24)], fill=255, width=3)
    return Predictor.load(bundle)(picture, top_k=1)[0]["label"] == "1"


# Rewrites the bundle at argv[1] (force) as "new", pausing at the point that argv[2] names until it is killed.
REWRITE = """
import shutil, sys, time
from pathlib import Path
from app import staging
from app.bundle import read_metadata, write_bundle

out, point = Path(sys.argv[1]), sys.argv[2]
metadata = {key: value for key, value in read_metadata(out).items() if key != "files"}
metadata["name"] = "new"


def pause_here():
    print(point, flush=True)
    time.sleep(120)


def write_files(folder):
    for name in ("model.tflite", "model.keras"):
        shutil.copy(out / name, folder / name)
    if point == "writing":
        pause_here()


if point == "between renames":  # where folders cannot be swapped in one step
    staging.exchange_paths = lambda first, second: False
    rename = Path.rename

    def rename_pausing(self, target):
        if self.name.startswith(f".{out.name}.staging-") and Path(target) == out:
            pause_here()
        return rename(self, target)

    Path.rename = rename_pausing
if point == "after the swap":
    remove = staging._remove

    def remove_pausing(path):
        if path.name.startswith(f".{out.name}.staging-") and path.exists():
            pause_here()
        remove(path)

    staging._remove = remove_pausing
write_bundle(out, metadata, write_files, force=True)
"""


def kill_rewrite_at(bundle: Path, point: str) -> int:
    """Run REWRITE in a child process, kill -9 it once it reaches `point`, and return its process id."""
    child = subprocess.Popen(
        [sys.executable, "-c", REWRITE, str(bundle), point],
        cwd=PROJECT_ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        reached = child.stdout.readline().strip()
        assert reached == point, child.stderr.read() if child.poll() is not None else reached
    finally:
        child.kill()  # SIGKILL: no cleanup runs
        child.wait(timeout=30)
        child.stdout.close()
        child.stderr.close()
    return child.pid


def test_folders_are_swapped_in_one_step_here(tmp_path):
    for name in ("a", "b"):
        (tmp_path / name).mkdir()
        (tmp_path / name / f"{name}.txt").write_text(name)
    if not exchange_paths(tmp_path / "a", tmp_path / "b"):
        pytest.skip("this system or filesystem cannot swap two folders in one step")
    assert [path.name for path in (tmp_path / "a").iterdir()] == ["b.txt"]
    assert [path.name for path in (tmp_path / "b").iterdir()] == ["a.txt"]
    with pytest.raises(FileNotFoundError):
        exchange_paths(tmp_path / "a", tmp_path / "missing")


@pytest.mark.parametrize("point", ["writing", "after the swap", "between renames"])
def test_a_kill_at_any_point_leaves_the_old_or_the_new_bundle_and_the_next_run_tidies_up(tmp_path, point):
    models = tmp_path / "models"
    bundle = shipped_copy(models)
    pid = kill_rewrite_at(bundle, point)
    left = hidden(models)
    if point == "between renames":  # the worst point of two renames: nothing at --out until the next run
        assert not bundle.exists()
        assert [name.split("-")[0] for name in left] == [".mnist.old", ".mnist.staging"]
        assert all(f"-{pid}-" in name for name in left)
        assert list_bundles(models_dir=models) == [bundle]  # the listing puts the old bundle back
    else:
        assert [name.split("-")[0] for name in left] == [".mnist.staging"]  # the new one, or the old one swapped out
    assert bundle_name(bundle) == ("new" if point == "after the swap" else "mnist")
    assert answers_a_digit(bundle)

    metadata = {key: value for key, value in read_metadata(bundle).items() if key != "files"}
    write_bundle(
        bundle, {**metadata, "name": "next"}, lambda folder: shutil.copy(bundle / "model.tflite", folder), True
    )
    assert hidden(models) == [] and bundle_name(bundle) == "next"  # the next write deleted the leftovers


@pytest.mark.parametrize("reader", ["Predictor.load", "train --out"])
def test_every_reader_of_a_bundle_puts_back_one_a_killed_replacement_left_aside(tmp_path, reader):
    models = tmp_path / "models"
    bundle = shipped_copy(models)
    kill_rewrite_at(bundle, "between renames")
    assert not bundle.exists()
    if reader == "Predictor.load":
        assert answers_a_digit(bundle)
    else:  # the old bundle is back, so it is not replaced without --force
        with pytest.raises(BundleError, match="already exists; pass --force"):
            check_bundle_target(bundle, force=False)
    assert bundle_name(bundle) == "mnist"


def test_a_failure_at_the_worst_point_leaves_the_old_or_the_new_bundle(tmp_path, monkeypatch):
    target = tmp_path / "b"
    target.mkdir()
    (target / "which").write_text("old")

    def crash(path: Path) -> None:
        raise RuntimeError("killed after the swap")

    # One-step swap, failing right after it: the new folder is in place.
    monkeypatch.setattr(staging, "_remove", crash)
    with pytest.raises(RuntimeError, match="after the swap"), replace_when_complete(target) as folder:
        (folder / "which").write_text("new")
    assert (target / "which").read_text() == "new"
    monkeypatch.undo()

    # Two renames, interrupted between them: the old folder is put back.
    monkeypatch.setattr(staging, "exchange_paths", lambda first, second: False)
    rename = Path.rename

    def interrupted_rename(self: Path, destination):
        if self.name.startswith(".b.staging-"):
            raise KeyboardInterrupt
        return rename(self, destination)

    monkeypatch.setattr(Path, "rename", interrupted_rename)
    with pytest.raises(KeyboardInterrupt), replace_when_complete(target) as folder:
        (folder / "which").write_text("newer")
    assert (target / "which").read_text() == "new"
    monkeypatch.undo()
    remove_stale(target)  # what the swap that "crashed" left behind is ours, but our process still runs
    assert [name.split("-")[0] for name in hidden(tmp_path)] == [".b.staging"]


def test_without_the_swap_a_folder_is_replaced_in_two_renames(tmp_path, monkeypatch):
    monkeypatch.setattr(staging, "exchange_paths", lambda first, second: False)
    target = tmp_path / "dataset"
    for text in ("old", "new"):
        with replace_when_complete(target, (".made-by", "test")) as folder:
            (folder / "which").write_text(text)
    assert (target / "which").read_text() == "new" and hidden(tmp_path) == []


def make_leftover(parent: Path, name: str, age_seconds: float = 0) -> Path:
    folder = parent / name
    folder.mkdir()
    (folder / "file").write_text(name)
    if age_seconds:
        then = time.time() - age_seconds
        os.utime(folder, (then, then))
    return folder


def test_only_our_leftovers_of_the_same_target_are_deleted(tmp_path):
    target, dead, alive = tmp_path / "x", dead_pid(), os.getpid()
    target.mkdir()
    user_folder = tmp_path / "mine"
    user_folder.mkdir()
    deleted = [
        make_leftover(tmp_path, f".x.staging-{dead}-abcd_123"),  # a killed run's staging folder
        make_leftover(tmp_path, f".x.old-{dead}-abcd_123"),  # a killed run's old folder, redundant: x exists
        make_leftover(tmp_path, f".x.staging-{alive}-old_1234", age_seconds=2 * 24 * 3600),  # over a day old
    ]
    kept = [
        make_leftover(tmp_path, f".x.staging-{alive}-abcd_123"),  # a run of a process that still runs
        make_leftover(tmp_path, ".x.backup"),  # a user's folder
        make_leftover(tmp_path, ".x.old-abcd_123", age_seconds=10 * 24 * 3600),  # an earlier version's: only put back
        make_leftover(tmp_path, f".y.staging-{dead}-abcd_123"),  # another target's
        make_leftover(tmp_path, f".x.staging-{dead}-abcd_12"),  # not our pattern
    ]
    (tmp_path / f".x.staging-{dead}-link_123").symlink_to(user_folder, target_is_directory=True)
    (tmp_path / f".x.old-{dead}-file_123").write_text("a file, not a folder of ours")
    with replace_when_complete(target) as folder:
        (folder / "new").write_text("new")
    assert not any(path.exists() for path in deleted)
    assert all(path.is_dir() for path in kept) and user_folder.is_dir()
    assert (tmp_path / f".x.staging-{dead}-link_123").is_symlink() and (tmp_path / f".x.old-{dead}-file_123").is_file()


def test_a_folder_set_aside_is_put_back_rather_than_deleted_when_the_target_is_missing(tmp_path):
    dead = dead_pid()
    aside = make_leftover(tmp_path, f".x.old-{dead}-abcd_123")
    staged = make_leftover(tmp_path, f".x.staging-{dead}-abcd_123")
    remove_stale(tmp_path / "x")
    assert aside.is_dir() and not staged.exists()  # x missing: the old folder is what restore puts back
    assert restore_interrupted(tmp_path / "x") == tmp_path / "x"
    assert (tmp_path / "x" / "file").read_text() == aside.name and hidden(tmp_path) == []
    assert restore_interrupted(tmp_path / "x") is None  # x exists: nothing to do

    # Set aside by an earlier OnePipe (no process id in the name): put back too.
    earlier = make_leftover(tmp_path, ".y.old-k2j4h5g6")
    assert list_bundles(models_dir=tmp_path) == []  # not bundles, but the listing put y back
    assert (tmp_path / "y" / "file").read_text() == earlier.name


def test_a_folder_set_aside_by_a_running_process_is_left_to_it(tmp_path):
    aside = make_leftover(tmp_path, f".x.old-{os.getpid()}-abcd_123")
    assert restore_interrupted(tmp_path / "x") is None and aside.is_dir()
