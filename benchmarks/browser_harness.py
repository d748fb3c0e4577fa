"""Voila on 127.0.0.1 and Debian's Chromium with fake media devices: shared by the dashboard benchmark and the
browser tests (which import it as `benchmarks.browser_harness`). Standard library only; imports nothing from
`app` or `tests`.

Example:
    >>> process, url = start_voila(Path("models"))  # doctest: +SKIP
    >>> # drive `url` with Playwright: chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
    >>> stop_process(process)  # doctest: +SKIP
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = "/usr/bin/chromium"  # Debian's package, never a downloaded browser build
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    # Only 127.0.0.1 is reached: names (Voila's CDN font stylesheet among them) never resolve, online or not.
    "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
]


def fake_media_args(microphone: Path | None = None, camera: Path | None = None) -> list[str]:
    """Chromium flags that grant media access and play files as the microphone (WAV) and camera (Y4M)."""
    args = ["--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream"]
    if microphone is not None:
        args.append(f"--use-file-for-fake-audio-capture={microphone}")
    if camera is not None:
        args.append(f"--use-file-for-fake-video-capture={camera}")
    return args


def write_code_notebook(path: Path, code: str) -> Path:
    """A notebook (nbformat 4) of one code cell, `code`, for the python3 kernel, written to `path`."""
    import json

    notebook = {
        "cells": [{"cell_type": "code", "execution_count": None, "id": "code", "metadata": {}, "outputs": [],
                   "source": code}],
        "metadata": {"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}},
        "nbformat": 4,
        "nbformat_minor": 5,
    }  # fmt: skip
    path.write_text(json.dumps(notebook, indent=1))
    return path


def free_port() -> int:
    """A free TCP port on 127.0.0.1."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_voila(
    models_dir: Path,
    notebook: Path | None = None,
    log_path: Path | None = None,
    timeout: float = 60.0,
    cwd: Path = PROJECT_ROOT,
) -> tuple[subprocess.Popen, str]:
    """Start Voila on a free 127.0.0.1 port (by default from the project root, so voila.json applies).

    Args:
        models_dir: the models folder the dashboard lists (ONEPIPE_MODELS_DIR).
        notebook: the notebook to serve; by default notebooks/app.ipynb.
        log_path: where Voila's output goes; by default nowhere.
        timeout: seconds to wait for the port to accept connections.
        cwd: the server's working folder.

    Returns:
        (process, base URL). Stop it with `stop_process(process)`.

    Raises:
        RuntimeError: Voila exited, or did not answer within `timeout`.
    """
    port = free_port()
    env = dict(os.environ, ONEPIPE_MODELS_DIR=str(models_dir))
    voila = Path(sys.executable).parent / "voila"
    notebook = notebook or PROJECT_ROOT / "notebooks" / "app.ipynb"
    log = open(log_path, "w") if log_path else subprocess.DEVNULL  # noqa: SIM115
    process = subprocess.Popen(
        [str(voila), "--no-browser", f"--port={port}", "--Voila.ip=127.0.0.1", str(notebook)],
        cwd=cwd,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}/"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"voila exited with code {process.returncode}; see {log_path}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=2):  # no page request: starts no kernel
                return process, url
        except OSError:
            time.sleep(0.3)
    stop_process(process)
    raise RuntimeError(f"voila did not answer on {url} within {timeout:.0f} s")


def stop_process(process: subprocess.Popen) -> None:
    """Terminate a process we started, then kill it if it lingers."""
    process.terminate()
    try:
        process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
