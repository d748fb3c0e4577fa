"""The public dashboard's kernel limits (app/server/kernel_limits.py): a cap on live kernels answered with a busy
page, and the shutdown of kernels no browser is connected to.

The fast tests drive the kernel manager's decisions with stand-in kernels; the slow ones start standalone Voila
(the preheated pool, as `make run`) and Jupyter Server with the Voila extension (the Binder route) with a small
cap and short timeouts, and make page requests without a browser.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import secrets
import shutil
import subprocess
import sys
import time
import uuid
from datetime import timedelta
from pathlib import Path
from types import SimpleNamespace
from urllib.error import HTTPError, URLError
from urllib.request import Request, urlopen

import pytest
from tornado import web

from app.server.kernel_limits import BUSY_REASON, BUSY_TITLE, DashboardKernelManager, busy_page
from benchmarks.browser_harness import PROJECT_ROOT, free_port, start_voila, stop_process
from benchmarks.load import server_usage

ROOT_FLAG = ["--allow-root"] if os.geteuid() == 0 else []
KERNEL_ID = re.compile(r'"kernelId": "([0-9a-f-]{36})"')


# ---------------------------------------------------------------------------------------------
# Decisions, with stand-in kernels


def fake_kernel(idle_seconds: float = 0.0) -> SimpleNamespace:
    """What the culler reads of a kernel: state, last activity, spec metadata and name."""
    from jupyter_server._tz import utcnow

    return SimpleNamespace(
        execution_state="idle",
        kernel_name="python3",
        kernel_spec=SimpleNamespace(metadata={}),
        last_activity=utcnow() - timedelta(seconds=idle_seconds),
    )


@pytest.fixture
def manager(monkeypatch, tmp_path) -> DashboardKernelManager:
    """A manager whose shutdowns are only recorded (in `manager.shut_down`)."""
    manager = DashboardKernelManager(root_dir=str(tmp_path), max_kernels=2, unconnected_timeout=45)
    manager.shut_down = []

    async def record_shutdown(kernel_id: str, now: bool = False, restart: bool = False) -> None:
        manager.shut_down.append(kernel_id)

    monkeypatch.setattr(manager, "shutdown_kernel", record_shutdown)
    return manager


def test_busy_page_is_small_and_says_to_try_again():
    page = busy_page(60)
    assert BUSY_TITLE in page and "try again in a minute" in page
    assert '<meta http-equiv="refresh" content="60">' in page
    assert len(page.encode()) < 1500


def test_defaults_are_the_documented_ones(tmp_path):
    manager = DashboardKernelManager(root_dir=str(tmp_path))
    assert (manager.max_kernels, manager.unconnected_timeout) == (10, 45)
    assert (manager.cull_idle_timeout, manager.cull_interval, manager.cull_connected) == (300, 10, True)
    settings = json.loads((PROJECT_ROOT / "voila.json").read_text())
    assert (
        settings["VoilaConfiguration"]["multi_kernel_manager_class"]
        == "app.server.kernel_limits.DashboardKernelManager"
    )
    assert settings["DashboardKernelManager"]["max_kernels"] >= 10  # the load benchmark's ten visitors fit
    assert (
        0
        < settings["DashboardKernelManager"]["unconnected_timeout"]
        + 2 * settings["MappingKernelManager"]["cull_interval"]
        <= 75
    )  # "within about a minute"


def test_a_kernel_beyond_the_cap_is_refused_with_503(manager):
    manager._kernels["a"], manager._kernels["b"] = fake_kernel(), fake_kernel()
    with pytest.raises(web.HTTPError) as refused:
        asyncio.run(manager.start_kernel(kernel_name="python3"))
    assert refused.value.status_code == 503
    assert manager.live_kernel_count == 2


def test_a_pool_refill_beyond_the_cap_leaves_the_pool_empty(manager):
    """Voila's refill task asks for a kernel at the cap: it is taken out of the pool, so no visitor waits on it."""
    manager._kernels["a"], manager._kernels["b"] = fake_kernel(), fake_kernel()

    async def refill_at_the_cap() -> dict:
        task = asyncio.ensure_future(manager.start_kernel(kernel_name="python3", env={"VOILA_PREHEAT": "True"}))
        manager._pools = {"app.ipynb": [task]}
        with pytest.raises(web.HTTPError) as refused:
            await task
        assert refused.value.status_code == 503 and refused.value.reason == BUSY_REASON
        return manager._pools

    assert asyncio.run(refill_at_the_cap()) == {"app.ipynb": []}


def test_unconnected_kernels_go_after_the_timeout_and_connected_ones_stay(manager):
    for kernel_id in ("never-connected", "just-handed-out", "connected", "tab-closed"):
        manager._kernels[kernel_id] = fake_kernel(idle_seconds=100)
        manager._kernel_connections[kernel_id] = 0
    manager._unconnected_since["never-connected"] = time.monotonic() - 46
    manager._unconnected_since["just-handed-out"] = time.monotonic()
    manager.notify_connect("connected")
    manager.notify_connect("tab-closed")
    manager.notify_disconnect("tab-closed")
    manager._unconnected_since["tab-closed"] -= 46  # the tab closed 46 s ago

    for kernel_id in list(manager._kernels):
        asyncio.run(manager.cull_kernel_if_idle(kernel_id))
    assert sorted(manager.shut_down) == ["never-connected", "tab-closed"]


def test_a_connected_kernel_goes_when_idle_for_cull_idle_timeout(manager):
    manager.cull_idle_timeout = 300
    for kernel_id, idle in (("busy-reader", 299), ("gone-quiet", 301)):
        manager._kernels[kernel_id] = fake_kernel(idle_seconds=idle)
        manager._kernel_connections[kernel_id] = 0
        manager.notify_connect(kernel_id)
        asyncio.run(manager.cull_kernel_if_idle(kernel_id))
    assert manager.shut_down == ["gone-quiet"]


def test_a_kernel_still_running_its_page_is_kept_however_long_ago_it_was_handed_out(manager):
    manager._kernels["slow-page"] = fake_kernel(idle_seconds=5)
    manager._kernel_connections["slow-page"] = 0
    manager._unconnected_since["slow-page"] = time.monotonic() - 100
    asyncio.run(manager.cull_kernel_if_idle("slow-page"))
    assert manager.shut_down == []


def test_a_kernel_seen_unconnected_for_the_first_time_gets_the_whole_grace(manager):
    """A pooled kernel's hand-out is noticed by the culler: its clock starts then, whatever its idle time."""
    manager._kernels["pooled"] = fake_kernel(idle_seconds=3600)
    manager._kernel_connections["pooled"] = 0
    asyncio.run(manager.cull_kernel_if_idle("pooled"))
    assert manager.shut_down == []


# ---------------------------------------------------------------------------------------------
# Real servers, page requests without a browser


def get(url: str, timeout: float = 120) -> tuple[int, str, dict]:
    """(status, body, headers) of a GET, error statuses included."""
    try:
        with urlopen(url, timeout=timeout) as response:
            return response.status, response.read().decode(), dict(response.headers)
    except HTTPError as error:
        return error.code, error.read().decode(), dict(error.headers)


def answers(url: str, process: subprocess.Popen) -> bool:
    """Whether the server answers `url` with 200; fails the test if it exited."""
    if process.poll() is not None:
        pytest.fail(f"the server exited with code {process.returncode}")
    try:
        return get(url, timeout=5)[0] == 200
    except URLError:
        return False


def wait_for(condition, timeout: float, message: str, interval: float = 0.5):
    """Poll `condition()` until it returns something true; its value, or a failed test after `timeout` s."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(interval)
    pytest.fail(f"{message} (waited {timeout:.0f} s)")


def kernel_count(pid: int) -> int:
    return server_usage(pid)["kernels"]


def served_folder(folder: Path, settings: dict) -> Path:
    """A folder with the dashboard notebook and a voila.json: the project's, updated with `settings`."""
    shutil.copy(PROJECT_ROOT / "notebooks" / "app.ipynb", folder / "app.ipynb")
    config = json.loads((PROJECT_ROOT / "voila.json").read_text())
    for section, values in settings.items():
        config.setdefault(section, {}).update(values)
    (folder / "voila.json").write_text(json.dumps(config))
    return folder / "app.ipynb"


async def hold_connection(url: str, seconds: float) -> None:
    """Connect to a kernel's channels as a browser does, stay `seconds`, then close."""
    from tornado.websocket import websocket_connect

    connection = await websocket_connect(f"{url}?session_id={uuid.uuid4()}")
    await asyncio.sleep(seconds)
    connection.close()
    await asyncio.sleep(0.5)  # the server notices the close


@pytest.mark.slow
def test_standalone_voila_caps_kernels_and_sheds_unconnected_ones(tmp_path):
    unconnected, interval = 12, 1
    notebook = served_folder(
        tmp_path,
        {
            "DashboardKernelManager": {"max_kernels": 2, "unconnected_timeout": unconnected},
            "MappingKernelManager": {"cull_interval": interval},
        },
    )
    models = tmp_path / "models"
    models.mkdir()
    process, url = start_voila(models, notebook=notebook, log_path=tmp_path / "voila.log", cwd=tmp_path)
    log = tmp_path / "voila.log"
    try:
        wait_for(lambda: kernel_count(process.pid) == 1, 60, "the preheated kernel did not start")
        # 1. the preheated kernel; the pool refills to the cap
        status, first, _ = get(url)
        assert status == 200 and KERNEL_ID.search(first)
        wait_for(lambda: kernel_count(process.pid) == 2, 60, "the pool did not refill")
        # 2. the refilled kernel; the cap stops the next refill
        status, second, _ = get(url)
        assert status == 200 and KERNEL_ID.search(second)
        # 3. beyond the cap: 503. Within a second of a hand-out Voila's refill is still waiting to start and this
        #    request may take it: Voila's error page, headed with the busy reason. Later the pool is empty: our page.
        status, body, _ = get(url)
        assert status == 503, log.read_text()[-3000:]
        assert BUSY_TITLE in body and "try again in a minute" in body
        time.sleep(2)
        started = time.monotonic()
        status, body, headers = get(url)
        assert status == 503, log.read_text()[-3000:]
        assert BUSY_TITLE in body and "try again in a minute" in body and len(body) < 1500
        assert headers["Retry-After"] == "60" and headers["Content-Type"].startswith("text/html")
        assert time.monotonic() - started < 10
        time.sleep(2 * interval + 1)
        assert kernel_count(process.pid) == 2

        # 4. nobody connected to either: both go, and the pool comes back
        handed_out = time.monotonic()
        wait_for(lambda: "no browser connected" in log.read_text() and kernel_count(process.pid) == 1, 60, "no cull")
        assert time.monotonic() - handed_out <= unconnected + 4 * interval + 30
        # a kernel being shut down may still count for a moment on a loaded machine: the page comes back soon
        status, page, _ = wait_for(lambda: (answer := get(url))[0] == 200 and answer, 60, "no page after the cull")
        assert status == 200

        # 5. a connected kernel outlives the unconnected timeout; once its connection closes, it goes
        kernel_id = KERNEL_ID.search(page).group(1)
        channels = f"ws://127.0.0.1:{url.split(':')[2].strip('/')}/api/kernels/{kernel_id}/channels"
        asyncio.run(hold_connection(channels, unconnected + 3 * interval + 2))
        assert f"Culling kernel {kernel_id}" not in log.read_text()
        wait_for(lambda: f"Culling kernel {kernel_id}" in log.read_text(), unconnected + 30, "not culled after close")
    finally:
        stop_process(process)


@pytest.mark.slow
def test_the_binder_route_caps_kernels_and_sheds_unconnected_ones(tmp_path):
    """`jupyter server` with the Voila extension and ServerApp.kernel_manager_class, as binder/postBuild sets it."""
    (tmp_path / "notebooks").mkdir()
    shutil.copy(PROJECT_ROOT / "notebooks" / "app.ipynb", tmp_path / "notebooks" / "app.ipynb")
    (tmp_path / "models").mkdir()
    token, port = secrets.token_hex(16), free_port()
    home = tmp_path / "jupyter-home"
    env = dict(
        os.environ,
        ONEPIPE_MODELS_DIR=str(tmp_path / "models"),
        JUPYTER_CONFIG_DIR=str(home / "config"),
        JUPYTER_DATA_DIR=str(home / "data"),
        JUPYTER_RUNTIME_DIR=str(home / "runtime"),
    )
    log = tmp_path / "server.log"
    command = [
        str(Path(sys.executable).parent / "jupyter-server"),
        "--no-browser",
        f"--port={port}",
        "--ServerApp.ip=127.0.0.1",
        "--ServerApp.port_retries=0",
        f"--IdentityProvider.token={token}",
        "--ServerApp.kernel_manager_class=app.server.kernel_limits.DashboardKernelManager",
        "--DashboardKernelManager.max_kernels=1",
        "--DashboardKernelManager.unconnected_timeout=5",
        "--MappingKernelManager.cull_interval=1",
        *ROOT_FLAG,
    ]
    with open(log, "w") as output:
        process = subprocess.Popen(command, cwd=tmp_path, env=env, stdout=output, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    page = f"{base}/voila/render/notebooks/app.ipynb?token={token}"

    def kernels() -> list[dict]:
        return json.loads(get(f"{base}/api/kernels?token={token}")[1])

    try:
        wait_for(lambda: answers(f"{base}/api/status?token={token}", process), 60, "the server did not start")
        assert get(page)[0] == 200
        assert len(kernels()) == 1
        status, body, headers = get(page)
        assert status == 503, log.read_text()[-3000:]
        assert BUSY_TITLE in body and headers["Retry-After"] == "60"
        # the REST API refuses too, as JSON
        request = Request(f"{base}/api/kernels?token={token}", data=b"{}", method="POST")
        try:
            urlopen(request, timeout=30)
            pytest.fail("a kernel beyond the cap was started through the API")
        except HTTPError as error:
            reply = json.loads(error.read())
            assert error.code == 503 and reply["reason"] == BUSY_REASON and "kernels are in use" in reply["message"]
        assert len(kernels()) == 1
        wait_for(lambda: kernels() == [], 40, "the unconnected kernel was not shut down")
        assert get(page)[0] == 200  # room again
    finally:
        stop_process(process)
