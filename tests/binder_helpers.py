"""Helpers for tests/test_binder.py: a copy of the repository as Binder sees it, publisher-shaped
archives served from 127.0.0.1, a fresh virtual environment, and a Jupyter Server's memory.
"""

from __future__ import annotations

import contextlib
import io
import os
import pickle
import shutil
import subprocess
import sys
import tarfile
import threading
import time
from collections.abc import Iterator
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.request import urlopen

import numpy as np
from fixtures_data import tone
from scipy.io import wavfile

from benchmarks.browser_harness import stop_process

# ---------------------------------------------------------------------------------------------
# The repository as Binder gets it


def copy_repository(source: Path, destination: Path) -> Path:
    """Copy the files git would publish (tracked, plus untracked but not ignored) to `destination`.

    Files that vanish while copying (a bundle being renamed into place) are skipped.
    """
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=source,
        capture_output=True,
        check=True,
    ).stdout.decode()
    for relative in filter(None, listed.split("\0")):
        origin = source / relative
        if not origin.is_file():
            continue
        target = destination / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        with contextlib.suppress(FileNotFoundError):
            shutil.copy2(origin, target)
    return destination


def runtime_python(runtime_txt: Path) -> tuple[str, str | None]:
    """("3.11", interpreter path or None) for a repo2docker runtime.txt such as `python-3.11`."""
    runtime = runtime_txt.read_text().strip()
    if not runtime.startswith("python-"):
        raise ValueError(f"{runtime_txt} holds {runtime!r}; expected python-X.Y")
    version = ".".join(runtime.removeprefix("python-").split(".")[:2])
    if f"{sys.version_info.major}.{sys.version_info.minor}" == version:
        return version, getattr(sys, "_base_executable", sys.executable)
    return version, shutil.which(f"python{version}")


def create_venv(python: str, venv: Path, requirements: Path, log: Path) -> Path:
    """A fresh virtual environment with only `requirements` installed; returns its bin folder."""
    with open(log, "w") as output:
        subprocess.run([python, "-m", "venv", str(venv)], check=True, stdout=output, stderr=subprocess.STDOUT)
        subprocess.run(
            [str(venv / "bin" / "python"), "-m", "pip", "install", "-r", str(requirements)],
            check=True,
            stdout=output,
            stderr=subprocess.STDOUT,
            timeout=1800,
        )
    return venv / "bin"


def venv_environment(bin_dir: Path, jupyter_home: Path, **extra: str) -> dict[str, str]:
    """os.environ with the venv first on PATH and Jupyter's user folders moved into `jupyter_home`.

    The user's ~/.jupyter and ~/.local/share/jupyter stay out of it, as on a fresh Binder image;
    the venv's own {sys.prefix}/etc/jupyter is read, as Binder's {sys.prefix}/etc/jupyter is.
    """
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in ("PYTHONPATH", "PYTHONHOME", "ONEPIPE_MODELS_DIR", "JUPYTER_PATH", "JUPYTER_CONFIG_PATH")
    }
    env.update(
        PATH=f"{bin_dir}{os.pathsep}{env.get('PATH', '')}",
        VIRTUAL_ENV=str(bin_dir.parent),
        JUPYTER_CONFIG_DIR=str(jupyter_home / "config"),
        JUPYTER_DATA_DIR=str(jupyter_home / "data"),
        JUPYTER_RUNTIME_DIR=str(jupyter_home / "runtime"),
        PYTHONUNBUFFERED="1",
    )
    env.update(extra)
    return env


# ---------------------------------------------------------------------------------------------
# Archives shaped like the publishers' (small)

CIFAR10_CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
SPEECH_WORDS = ("yes", "no", "up", "_unknown_", "_silence_")  # the test archive also has `_unknown_`, `_silence_`


def _tar_gz(members: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.mtime = 1_500_000_000
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def _cifar_batch(labels: list[int], seed: int) -> bytes:
    """One python batch: {b"data": uint8 (count, 3072) planes R, G, B of 32×32, b"labels": [...]}."""
    random = np.random.default_rng(seed)
    images = np.zeros((len(labels), 3, 32, 32), dtype=np.uint8)
    for index, label in enumerate(labels):
        colour = np.array([(label * 25) % 256, (label * 70) % 256, 255 - label * 20], dtype=np.uint8)
        images[index] = colour[:, None, None]
        top, left = random.integers(0, 16, size=2)
        images[index, :, top : top + 16, left : left + 16] = 255 - colour[:, None, None]
    batch = {b"batch_label": b"batch", b"labels": labels, b"data": images.reshape(len(labels), -1)}
    return pickle.dumps(batch, protocol=2)


def cifar10_archive(test_per_class: int = 5, train_per_class: int = 1) -> bytes:
    """cifar-10-python.tar.gz: cifar-10-batches-py/{batches.meta, data_batch_1..5, test_batch, readme.html}."""
    meta = {b"label_names": [name.encode() for name in CIFAR10_CLASSES], b"num_cases_per_batch": 10}
    members = {
        "cifar-10-batches-py/batches.meta": pickle.dumps(meta, protocol=2),
        "cifar-10-batches-py/readme.html": b"<html>CIFAR-10 (test fixture)</html>",
        "cifar-10-batches-py/test_batch": _cifar_batch(list(range(10)) * test_per_class, seed=0),
    }
    for number in range(1, 6):
        members[f"cifar-10-batches-py/data_batch_{number}"] = _cifar_batch(list(range(10)) * train_per_class, number)
    return _tar_gz(members)


def speech_commands_test_archive(per_class: int = 5) -> bytes:
    """speech_commands_test_set_v0.02.tar.gz: ./<word>/<speaker>_nohash_<n>.wav, 1 s 16 kHz PCM16."""
    members = {"./LICENSE": b"Creative Commons BY 4.0 (test fixture)"}
    for class_index, word in enumerate(SPEECH_WORDS):
        for n in range(per_class):
            buffer = io.BytesIO()
            waveform = tone(250.0 * (class_index + 1), seconds=1.0, seed=class_index * 100 + n)
            wavfile.write(buffer, 16000, (np.clip(waveform, -1, 1) * 32767).astype(np.int16))
            members[f"./{word}/{class_index * 7919 + n:08x}_nohash_{n}.wav"] = buffer.getvalue()
    return _tar_gz(members)


@contextlib.contextmanager
def serve_files(folder: Path) -> Iterator[tuple[str, list[str]]]:
    """Serve `folder` on 127.0.0.1; yields (base URL, paths requested so far)."""
    requested: list[str] = []

    class Handler(SimpleHTTPRequestHandler):
        def log_message(self, format: str, *args) -> None:
            requested.append(self.path)

    server = ThreadingHTTPServer(("127.0.0.1", 0), partial(Handler, directory=str(folder)))
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", requested
    finally:
        server.shutdown()
        server.server_close()


# A fixture archive cannot have CIFAR-10's published MD5, so for postBuild only, a sitecustomize
# drops that one checksum when app.datasets.download is imported. Everything else runs as shipped.
CHECKSUM_SHIM = """\
import dataclasses
import importlib.machinery
import sys


class _FixtureCifarChecksum:
    @classmethod
    def find_spec(cls, name, path=None, target=None):
        if name != "app.datasets.download":
            return None
        spec = importlib.machinery.PathFinder.find_spec(name, path)
        execute = spec.loader.exec_module

        def exec_module(module):
            execute(module)
            source = module.DATASETS["cifar10"]
            files = tuple(dataclasses.replace(remote, md5=None) for remote in source.files)
            module.DATASETS["cifar10"] = dataclasses.replace(source, files=files)

        spec.loader.exec_module = exec_module
        return spec


sys.meta_path.insert(0, _FixtureCifarChecksum)
"""


def write_checksum_shim(folder: Path) -> Path:
    """A folder for PYTHONPATH whose sitecustomize.py accepts the fixture CIFAR-10 archive."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "sitecustomize.py").write_text(CHECKSUM_SHIM)
    return folder


# ---------------------------------------------------------------------------------------------
# The server and its memory


def wait_for_http(url: str, process: subprocess.Popen, timeout: float, log: Path) -> None:
    """Poll `url` until it answers 200; RuntimeError if the process dies or time runs out."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the server exited with code {process.returncode}:\n{log.read_text()[-3000:]}")
        with contextlib.suppress(OSError), urlopen(url, timeout=5) as response:
            if response.status == 200:
                return
        time.sleep(0.5)
    raise RuntimeError(f"{url} did not answer within {timeout:.0f} s:\n{log.read_text()[-3000:]}")


def process_tree(pid: int) -> list:
    """psutil.Process of `pid` and all its descendants that are still alive."""
    import psutil

    root = psutil.Process(pid)
    return [root, *root.children(recursive=True)]


def tree_memory(pid: int) -> dict[str, object]:
    """Resident memory of a process and its descendants: total and per process (bytes)."""
    import psutil

    processes = []
    for process in process_tree(pid):
        with contextlib.suppress(psutil.NoSuchProcess, psutil.AccessDenied):
            processes.append({"pid": process.pid, "command": process.cmdline()[:4], "rss": process.memory_info().rss})
    return {"rss_bytes": sum(item["rss"] for item in processes), "processes": processes}


def stop_tree(process: subprocess.Popen) -> None:
    """Stop a server we started, then any of its children (kernels) that outlive it."""
    import psutil

    try:
        children = process_tree(process.pid)[1:]
    except psutil.NoSuchProcess:
        children = []
    stop_process(process)
    for child in children:
        with contextlib.suppress(psutil.NoSuchProcess):
            child.kill()
