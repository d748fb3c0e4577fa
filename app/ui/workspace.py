"""A visitor's workspace: the one folder where the dashboard writes what a visitor collects and trains.

Each dashboard kernel serves one visitor, and gets its own folder, made when the Train tab first opens:
`<parent>/kernel-<pid>-<random>/`, where `<parent>` is `$ONEPIPE_WORKSPACE` or `<OS temp folder>/onepipe-workspaces`.
The Train tab writes nothing outside it, and lists nothing but it: one visitor never sees, overwrites or lists
another's examples or models (the shipped bundles in models/ are only read).

- **Inside:** `examples/<kind>/<class id>/` the collected files, `thumbnails/` their previews, `runs/<n>/` the
  class-folder dataset and log of each training run, `models/<name>/` the bundles trained, `cache/` the feature
  cache of the training process, and `owner.json` (the kernel's process id and start time, and the training
  process's while one runs).
- **At the end:** the folder is deleted when the kernel exits (atexit). A kernel killed outright leaves its
  folder behind; the next workspace made under the same parent deletes every `kernel-…` folder whose owner
  process is gone (and stops a training process it left running). Nothing without an `owner.json` of ours is
  ever deleted.

Example:
    >>> import tempfile
    >>> from pathlib import Path
    >>> parent = Path(tempfile.mkdtemp())
    >>> workspace = Workspace.create(parent)
    >>> workspace.root.parent == parent, workspace.root.name.startswith("kernel-"), workspace.models_dir.is_dir()
    (True, True, True)
    >>> workspace.remove()
    >>> list(parent.iterdir())
    []
"""

from __future__ import annotations

import atexit
import contextlib
import json
import logging
import os
import re
import shutil
import signal
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path

WORKSPACE_VARIABLE = "ONEPIPE_WORKSPACE"
DEFAULT_PARENT_NAME = "onepipe-workspaces"
OWNER_FILE = "owner.json"
FOLDER_PATTERN = re.compile(r"^kernel-(\d+)-[a-z0-9_]{8}$")

log = logging.getLogger(__name__)
_current: Workspace | None = None
_current_lock = threading.Lock()


def workspaces_parent() -> Path:
    """Where workspaces are made: `$ONEPIPE_WORKSPACE`, else `<OS temp folder>/onepipe-workspaces`."""
    configured = os.environ.get(WORKSPACE_VARIABLE)
    return Path(configured) if configured else Path(tempfile.gettempdir()) / DEFAULT_PARENT_NAME


def process_start(pid: int) -> str | None:
    """An identity of the running process `pid` that a later process given the same id does not share: its start
    time on Linux, "alive" where that cannot be read; None when no process `pid` runs."""
    if Path("/proc/self/stat").exists():
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
        except OSError:
            return None
        return stat.rsplit(")", 1)[1].split()[19]  # field 22, starttime (the command name may hold spaces)
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return None
    except PermissionError:  # someone else's process
        return "alive"
    return "alive"


@dataclass
class Workspace:
    """One visitor's folder (see the module's docstring); make it with `Workspace.create`."""

    root: Path

    @property
    def examples_dir(self) -> Path:
        return self.root / "examples"

    @property
    def thumbnails_dir(self) -> Path:
        return self.root / "thumbnails"

    @property
    def runs_dir(self) -> Path:
        return self.root / "runs"

    @property
    def models_dir(self) -> Path:
        return self.root / "models"

    @property
    def cache_dir(self) -> Path:
        return self.root / "cache"

    @classmethod
    def create(cls, parent: Path | None = None) -> Workspace:
        """A new, empty workspace under `parent` (default workspaces_parent()), owned by this process; first
        deletes the workspaces there whose kernel is gone (remove_abandoned)."""
        parent = Path(parent) if parent is not None else workspaces_parent()
        _make_private_parent(parent)
        remove_abandoned(parent)
        root = Path(tempfile.mkdtemp(prefix=f"kernel-{os.getpid()}-", dir=parent))  # 8 random characters, 0700
        workspace = cls(root)
        workspace._write_owner()
        for folder in (workspace.examples_dir, workspace.thumbnails_dir, workspace.runs_dir, workspace.models_dir):
            folder.mkdir()
        return workspace

    def contains(self, path: Path) -> bool:
        """True when `path` (resolved) lies inside this workspace."""
        return Path(path).resolve().is_relative_to(self.root.resolve())

    def new_run_dir(self) -> Path:
        """A new empty folder runs/<n>/ for one training run."""
        self.runs_dir.mkdir(exist_ok=True)
        taken = [int(p.name) for p in self.runs_dir.iterdir() if p.name.isdigit()]
        folder = self.runs_dir / str(max(taken, default=0) + 1)
        folder.mkdir()
        return folder

    def record_trainer(self, pid: int | None) -> None:
        """Note the running training process (its own process group) in owner.json, or that none runs (None),
        so that a cleanup after a crash of this kernel can stop it."""
        self._write_owner(pid)

    def remove(self) -> None:
        """Delete the whole folder (what the kernel does when it exits)."""
        shutil.rmtree(self.root, ignore_errors=True)

    def _write_owner(self, trainer_pid: int | None = None) -> None:
        owner: dict[str, object] = {"pid": os.getpid(), "start": process_start(os.getpid())}
        if trainer_pid is not None:
            owner["trainer"] = {"pid": trainer_pid, "start": process_start(trainer_pid)}
        temporary = self.root / f".{OWNER_FILE}.part"
        temporary.write_text(json.dumps(owner))
        temporary.replace(self.root / OWNER_FILE)


def current_workspace() -> Workspace:
    """This kernel's workspace, made on the first call and deleted when the process exits."""
    global _current
    with _current_lock:
        if _current is None or not _current.root.is_dir():
            _current = Workspace.create()
            atexit.register(_current.remove)
        return _current


def remove_abandoned(parent: Path) -> list[Path]:
    """Delete the workspaces under `parent` whose owner process is gone (or is another process by now, with the
    same id), after stopping a training process one of them left running. Only folders named kernel-<pid>-<random>
    that hold our owner.json are considered.

    Returns:
        The folders deleted.
    """
    removed: list[Path] = []
    if not parent.is_dir():
        return removed
    for folder in sorted(parent.iterdir()):
        owner = _read_owner(folder)
        if owner is None or _alive(owner):
            continue
        trainer = owner.get("trainer")
        if isinstance(trainer, dict) and _alive(trainer):
            with contextlib.suppress(OSError):
                os.killpg(int(trainer["pid"]), signal.SIGKILL)  # it runs in a process group of its own
        shutil.rmtree(folder, ignore_errors=True)
        removed.append(folder)
        log.info("removed the abandoned workspace %s", folder)
    return removed


def _read_owner(folder: Path) -> dict | None:
    """owner.json of a workspace folder, or None for anything that is not one."""
    if not FOLDER_PATTERN.match(folder.name) or folder.is_symlink() or not folder.is_dir():
        return None
    try:
        owner = json.loads((folder / OWNER_FILE).read_text())
    except (OSError, ValueError):
        return None
    return owner if isinstance(owner, dict) and isinstance(owner.get("pid"), int) else None


def _alive(owner: dict) -> bool:
    """True while the process an owner record names still runs (the same process, not a later one with its id)."""
    try:
        pid = int(owner["pid"])
    except (KeyError, TypeError, ValueError):
        return False
    start, recorded = process_start(pid), owner.get("start")
    return start is not None and (recorded in (None, "alive") or start in (recorded, "alive"))


def _make_private_parent(parent: Path) -> None:
    """Make `parent` (readable by its owner only when made here); refuse a symlink, where a shared temp folder
    could send our files elsewhere."""
    parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    if parent.is_symlink() or not parent.is_dir():
        raise OSError(f"{parent} is not a folder; the dashboard's workspaces need one")
