"""A visitor's workspace (app.ui.workspace): one folder per kernel, private to it, removed when the kernel ends, and
two visitors at once never see each other's examples or models."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from fixtures_data import TONE_CLASSES, tone, write_wav

from app.ui import build_dashboard
from app.ui.workspace import OWNER_FILE, WORKSPACE_VARIABLE, Workspace, process_start, remove_abandoned

ROOT = Path(__file__).resolve().parent.parent


def fake_bundle(folder: Path, kind: str = "audio", class_names: tuple[str, ...] = ("low", "high")) -> Path:
    """A folder the pickers list as a bundle (they read only its metadata)."""
    folder.mkdir(parents=True)
    (folder / "metadata.json").write_text(json.dumps({"kind": kind, "class_names": list(class_names)}))
    return folder


def dead_pid() -> int:
    """The id of a process that has ended."""
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


def test_a_workspace_is_a_private_folder_with_its_owner(tmp_path):
    workspace = Workspace.create(tmp_path)
    assert workspace.root.parent == tmp_path and workspace.root.name.startswith(f"kernel-{os.getpid()}-")
    assert workspace.root.stat().st_mode & 0o777 == 0o700
    owner = json.loads((workspace.root / OWNER_FILE).read_text())
    assert owner == {"pid": os.getpid(), "start": process_start(os.getpid())}
    assert {p.name for p in workspace.root.iterdir()} >= {"examples", "thumbnails", "runs", "models"}
    assert workspace.contains(workspace.models_dir / "x") and not workspace.contains(tmp_path / "elsewhere")
    first, second = workspace.new_run_dir(), workspace.new_run_dir()
    assert (first.name, second.name) == ("1", "2")
    workspace.record_trainer(os.getpid())
    assert json.loads((workspace.root / OWNER_FILE).read_text())["trainer"]["pid"] == os.getpid()
    workspace.remove()
    assert not workspace.root.exists()


def test_the_parent_comes_from_the_environment_or_the_temp_folder(tmp_path, monkeypatch):
    from app.ui import workspace as workspace_module

    monkeypatch.setenv(WORKSPACE_VARIABLE, str(tmp_path / "visitors"))
    assert workspace_module.workspaces_parent() == tmp_path / "visitors"
    monkeypatch.delenv(WORKSPACE_VARIABLE)
    monkeypatch.setattr(workspace_module.tempfile, "gettempdir", lambda: str(tmp_path))
    assert workspace_module.workspaces_parent() == tmp_path / "onepipe-workspaces"


def test_the_workspace_goes_when_the_kernel_ends(tmp_path):
    code = (
        "from app.ui.workspace import current_workspace\n"
        "workspace = current_workspace()\n"
        "assert current_workspace() is workspace\n"
        "(workspace.examples_dir / 'a.wav').write_bytes(b'x')\n"
        "print(workspace.root)\n"
    )
    environment = dict(os.environ, **{WORKSPACE_VARIABLE: str(tmp_path)})
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=environment, cwd=ROOT)
    assert result.returncode == 0, result.stderr
    folder = Path(result.stdout.strip())
    assert folder.parent == tmp_path and not folder.exists()


def test_abandoned_workspaces_are_removed_and_their_training_stopped(tmp_path):
    alive = Workspace.create(tmp_path)  # this kernel's: kept
    trainer = subprocess.Popen(["sleep", "60"], start_new_session=True)  # a training process left running
    try:
        abandoned = tmp_path / "kernel-1-abcdefgh"
        abandoned.mkdir()
        owner = {"pid": dead_pid(), "start": "1", "trainer": {"pid": trainer.pid, "start": process_start(trainer.pid)}}
        (abandoned / OWNER_FILE).write_text(json.dumps(owner))
        reused = tmp_path / "kernel-2-abcdefgh"  # its id now belongs to another process (this one)
        reused.mkdir()
        (reused / OWNER_FILE).write_text(json.dumps({"pid": os.getpid(), "start": "not this process's start"}))
        not_ours = [tmp_path / "kernel-3-abcdefgh", tmp_path / "notes", tmp_path / "kernel-x"]
        for folder in not_ours:  # no owner.json of ours, or not our name: never deleted
            folder.mkdir()
        (tmp_path / "kernel-x" / OWNER_FILE).write_text(json.dumps({"pid": dead_pid()}))

        removed = remove_abandoned(tmp_path)
        assert sorted(removed) == [abandoned, reused]
        assert alive.root.is_dir() and all(folder.is_dir() for folder in not_ours)
        assert trainer.wait(timeout=10) == -signal.SIGKILL
    finally:
        if trainer.poll() is None:
            trainer.kill()


def test_making_a_workspace_removes_the_abandoned_ones(tmp_path):
    abandoned = tmp_path / "kernel-1-abcdefgh"
    abandoned.mkdir()
    (abandoned / OWNER_FILE).write_text(json.dumps({"pid": dead_pid(), "start": "1"}))
    Workspace.create(tmp_path)
    assert not abandoned.exists()


def test_two_visitors_at_once_cannot_see_each_others_examples_or_models(tmp_path):
    """Two kernels (here two dashboards with their own workspaces) of one server: what one collects and trains is
    neither listed nor written in the other's."""
    models = tmp_path / "models"
    fake_bundle(models / "shipped")
    alice = build_dashboard(models, workspace=Workspace.create(tmp_path / "visitors"))
    bob = build_dashboard(models, workspace=Workspace.create(tmp_path / "visitors"))
    alice_tab, bob_tab = alice.open_train_tab(), bob.open_train_tab()
    assert alice_tab.workspace.root != bob_tab.workspace.root

    clip = write_wav(tmp_path / "beep.wav", tone(TONE_CLASSES["high"], seconds=1.0)).read_bytes()
    first_class = alice_tab.store.classes[0]
    alice_tab.store.rename_class(first_class.id, "alice's secret")
    alice_tab.collector.add_examples(first_class.id, [("beep.wav", clip, "")] * 3, "uploads")
    assert alice_tab.store.counts()["alice's secret"] == 3
    assert bob_tab.store.counts() == {"Class 1": 0, "Class 2": 0}
    assert not any(path.is_file() for path in bob_tab.workspace.root.rglob("*.wav"))
    assert bob_tab.collector.shown == [] and [name for name, _ in bob_tab.collector.target.options] == [
        "Class 1",
        "Class 2",
    ]

    # a model Alice trains is listed in her Audio tab only
    alice_model = fake_bundle(alice_tab.workspace.models_dir / "my-sounds-1")
    alice.show_new_model("audio", alice_model)
    assert list(alice.audio.picker.dropdown.options) == ["my-sounds-1", "shipped"]
    assert alice.audio.picker.dropdown.value == "my-sounds-1"
    assert list(bob.audio.picker.dropdown.options) == ["shipped"]
    assert bob_tab._new_model_name("audio") == "my-sounds-1"  # his own folder: the name is free there
    assert not any(bob_tab.workspace.models_dir.iterdir())


def test_a_model_never_takes_the_name_of_a_shipped_one(tmp_path):
    models = tmp_path / "models"
    fake_bundle(models / "my-sounds-1")
    dashboard = build_dashboard(models, workspace=Workspace.create(tmp_path / "visitors"))
    tab = dashboard.open_train_tab()
    fake_bundle(tab.workspace.models_dir / "my-sounds-2")
    assert tab._new_model_name("audio") == "my-sounds-3"
    assert tab._new_model_name("image") == "my-pictures-1"


def test_opening_the_dashboard_makes_no_workspace(tmp_path, monkeypatch):
    """Only the Train tab writes, when it is first opened: a visitor who only predicts leaves nothing behind."""
    monkeypatch.setenv(WORKSPACE_VARIABLE, str(tmp_path / "visitors"))
    dashboard = build_dashboard(tmp_path / "models")
    assert dashboard.train is None and not (tmp_path / "visitors").exists()


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="start times come from /proc")
def test_a_process_is_told_apart_from_a_later_one_with_its_id():
    start = process_start(os.getpid())
    assert start and start.isdigit() and process_start(os.getpid()) == start
    assert process_start(dead_pid()) is None
