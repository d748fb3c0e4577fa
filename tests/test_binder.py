"""What mybinder.org does with this repository, as far as this machine allows (no Docker).

1. A fresh virtual environment with the Python of binder/runtime.txt, installed only from
   binder/requirements.txt (pip's cache makes this about a minute).
2. binder/postBuild in a copy of the repository (the files git would publish), its downloads
   pointed at publisher-shaped fixture archives served from 127.0.0.1.
3. `jupyter server` from that environment, in the repository root, with a token; Chromium opens
   the Binder route /voila/render/notebooks/app.ipynb?token=…, both tabs render, the downloaded
   examples appear and predict, and an upload over Tornado's default 10 MiB message cap is answered.
4. The resident memory of the server and its kernels with one dashboard open stays under 1 GB
   (Binder's guaranteed amount); the figure goes to test-artifacts/binder-memory.json.

When the copied models/ lacks the shipped speech-commands and cifar10 bundles, the tests' tiny
bundles stand in there under those names, so the dashboard finds the downloaded examples.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import subprocess
import time
from pathlib import Path
from urllib.request import urlopen

import binder_helpers as binder
import pytest

from benchmarks.browser_harness import CHROMIUM, CHROMIUM_ARGS, PROJECT_ROOT, free_port

pytestmark = [pytest.mark.slow, pytest.mark.browser]
playwright_api = pytest.importorskip("playwright.sync_api")
psutil = pytest.importorskip("psutil")

ARTIFACTS = PROJECT_ROOT / "test-artifacts"
MEMORY_LIMIT_BYTES = 10**9  # Binder guarantees 1 GB
TIMEOUT_MS = 60_000
DOWNLOADED_BUNDLES = {"audio": "speech-commands", "image": "cifar10"}  # where postBuild's examples show
# tests' bundles under shipped names, to see the downloaded examples, when models/ lacks the real ones
STAND_INS = {"speech-commands": "tones", "cifar10": "shapes"}
SAMPLES_PER_CLASS = 4  # `data download … --samples` default
ROOT_FLAG = ["--allow-root"] if os.geteuid() == 0 else []  # Binder runs as a user; containers here may be root


@pytest.fixture(scope="module")
def workspace(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("binder")


@pytest.fixture(scope="module")
def repository(workspace) -> Path:
    if shutil.which("git") is None or not (PROJECT_ROOT / ".git").exists():
        pytest.skip("needs git and a git checkout to know which files Binder would get")
    return binder.copy_repository(PROJECT_ROOT, workspace / "repo")


@pytest.fixture(scope="module")
def venv_bin(workspace, repository) -> Path:
    version, python = binder.runtime_python(repository / "binder" / "runtime.txt")
    if python is None:
        pytest.skip(f"binder/runtime.txt asks for Python {version}, which is not installed here")
    log = workspace / "pip.log"
    try:
        return binder.create_venv(python, workspace / "venv", repository / "binder" / "requirements.txt", log)
    except subprocess.CalledProcessError:
        pytest.fail(f"pip install -r binder/requirements.txt failed:\n{log.read_text()[-4000:]}")


@pytest.fixture(scope="module")
def stand_ins(repository, trained_models) -> bool:
    """When the copied models/ lacks the shipped bundles, put the tests' tiny ones there under shipped
    names, without examples, as a checkout would hold them. True when stand-ins are used."""
    models = repository / "models"
    names = {path.parent.name for path in models.glob("*/metadata.json")}
    if set(DOWNLOADED_BUNDLES.values()) <= names:
        return False
    for name, stand_in in STAND_INS.items():
        shutil.rmtree(models / name, ignore_errors=True)
        shutil.copytree(trained_models / stand_in, models / name, ignore=shutil.ignore_patterns("samples"))
    return True


@pytest.fixture(scope="module")
def post_build(workspace, repository, venv_bin, stand_ins) -> dict:
    """Run binder/postBuild as repo2docker does (repository root, the environment's python on PATH)."""
    mirror = workspace / "mirror"
    mirror.mkdir()
    (mirror / "cifar-10-python.tar.gz").write_bytes(binder.cifar10_archive())
    (mirror / "speech_commands_test_set_v0.02.tar.gz").write_bytes(binder.speech_commands_test_archive())
    before = {path.relative_to(repository) for path in repository.rglob("*") if path.is_file()}
    shim = binder.write_checksum_shim(workspace / "checksum-shim")
    log = workspace / "postBuild.log"
    with binder.serve_files(mirror) as (url, requested), open(log, "w") as output:
        env = binder.venv_environment(
            venv_bin, workspace / "jupyter-home", ONEPIPE_DOWNLOAD_BASE_URL=url, PYTHONPATH=str(shim)
        )
        result = subprocess.run(
            ["./binder/postBuild"], cwd=repository, env=env, stdout=output, stderr=subprocess.STDOUT, timeout=1200
        )
    assert result.returncode == 0, f"binder/postBuild failed:\n{log.read_text()[-4000:]}"
    after = {path.relative_to(repository) for path in repository.rglob("*") if path.is_file()}
    return {"requested": requested, "new_files": sorted(after - before), "log": log.read_text()}


@pytest.fixture(scope="module")
def server(workspace, repository, venv_bin, post_build):
    """`jupyter server` from the Binder environment, in the repository root, on 127.0.0.1 with a token."""
    token, port = secrets.token_hex(16), free_port()
    env = binder.venv_environment(venv_bin, workspace / "jupyter-home")
    log = workspace / "jupyter-server.log"
    command = [
        str(venv_bin / "jupyter"),
        "server",
        "--no-browser",
        f"--port={port}",
        "--ServerApp.ip=127.0.0.1",
        f"--IdentityProvider.token={token}",
        "--ServerApp.port_retries=0",
        *ROOT_FLAG,
    ]
    with open(log, "w") as output:
        process = subprocess.Popen(command, cwd=repository, env=env, stdout=output, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        binder.wait_for_http(f"{base}/api/status?token={token}", process, timeout=120, log=log)
        yield {
            "base": base,
            "token": token,
            "process": process,
            "log": log,
            "models": repository / "models",
        }
    finally:
        binder.stop_tree(process)


def test_post_build_installs_the_package_settings_and_examples(workspace, repository, venv_bin, post_build, stand_ins):
    # the package, editable, so its paths are the repository's
    root = subprocess.run(
        [str(venv_bin / "python"), "-c", "import app.paths; print(app.paths.PROJECT_ROOT)"],
        cwd="/",
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    assert Path(root) == repository

    # the dashboard's server settings where Jupyter Server reads them
    installed = json.loads((venv_bin.parent / "etc" / "jupyter" / "jupyter_server_config.json").read_text())
    assert installed["ServerApp"]["tornado_settings"]["websocket_max_message_size"] > 20 * 2**20
    assert installed["VoilaConfiguration"]["show_tracebacks"] is False
    assert installed["VoilaConfiguration"]["strip_sources"] is True
    assert installed["MappingKernelManager"]["cull_idle_timeout"] > 0
    assert "voila.server_extension" in json.dumps(_server_extensions(venv_bin))
    # ... and the server loads them from there (it never reads voila.json from its working directory)
    shown = subprocess.run(
        [str(venv_bin / "jupyter"), "server", "--show-config-json", *ROOT_FLAG],
        cwd=repository,
        env=binder.venv_environment(venv_bin, workspace / "jupyter-home"),
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    loaded = json.loads(shown)
    assert loaded["ServerApp"]["tornado_settings"] == installed["ServerApp"]["tornado_settings"]
    assert loaded["MappingKernelManager"] == installed["MappingKernelManager"]

    # both archives came from the mirror, and their examples are where the dashboard looks
    assert {"/cifar-10-python.tar.gz", "/speech_commands_test_set_v0.02.tar.gz"} <= set(post_build["requested"])
    samples = repository / "data" / "samples"
    cifar = {folder.name: sorted(folder.glob("*.png")) for folder in (samples / "cifar10").iterdir() if folder.is_dir()}
    assert set(cifar) == set(binder.CIFAR10_CLASSES)
    assert all(
        len(files) == SAMPLES_PER_CLASS and all(file.name.startswith("test-") for file in files)
        for files in cifar.values()
    )
    speech = {
        folder.name: list(folder.glob("*.wav")) for folder in (samples / "speech-commands").iterdir() if folder.is_dir()
    }
    assert set(speech) == set(binder.SPEECH_WORDS)
    assert all(len(files) == SAMPLES_PER_CLASS for files in speech.values())
    assert not (repository / "data" / ".downloads").exists()  # archives deleted

    # postBuild writes only what git ignores (data/, the egg-info) or bundle examples
    def allowed(path: Path) -> bool:
        parts = path.parts
        return parts[0] in ("data", "build") or parts[0].endswith(".egg-info") or "samples" in parts[:3]

    assert [str(path) for path in post_build["new_files"] if not allowed(path)] == []


def _server_extensions(venv_bin: Path) -> list[str]:
    folder = venv_bin.parent / "etc" / "jupyter" / "jupyter_server_config.d"
    return [path.read_text() for path in sorted(folder.glob("*.json"))]


def test_the_binder_route_needs_the_token(server):
    with urlopen(f"{server['base']}/voila/render/notebooks/app.ipynb", timeout=30) as response:
        assert "/login" in response.url


def test_dashboard_on_the_binder_route_predicts_within_binders_memory(server, repository, venv_bin, stand_ins):
    url = f"{server['base']}/voila/render/notebooks/app.ipynb?token={server['token']}"
    samples = repository / "data" / "samples"
    measurements = {}
    with playwright_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1200, "height": 900})
            errors: list[str] = []
            page.on("pageerror", lambda error: errors.append(str(error)))
            started = time.monotonic()
            page.goto(url, timeout=TIMEOUT_MS)
            page.wait_for_selector(".onepipe-predict", timeout=TIMEOUT_MS * 2)
            measurements["first_render_seconds"] = round(time.monotonic() - started, 1)
            measurements["after_render"] = binder.tree_memory(server["process"].pid)

            # Audio: the downloaded Speech Commands test clips, predicted
            audio = _open_tab(page, "Audio")
            audio.locator(".onepipe-model-picker select").select_option(label=DOWNLOADED_BUNDLES["audio"])
            audio.locator(".onepipe-clips button").first.wait_for(timeout=TIMEOUT_MS)
            audio.locator(".onepipe-clips button").nth(1).click()
            label, source = _predict(page, audio)
            assert label in _class_names(server["models"] / DOWNLOADED_BUNDLES["audio"])
            if not (server["models"] / DOWNLOADED_BUNDLES["audio"] / "samples").exists():
                assert (samples / DOWNLOADED_BUNDLES["audio"] / source).is_file(), source

            # Images: the downloaded CIFAR-10 test images, predicted
            images = _open_tab(page, "Images")
            images.locator(".onepipe-model-picker select").select_option(label=DOWNLOADED_BUNDLES["image"])
            thumbnails = images.locator(".onepipe-thumb")
            thumbnails.first.wait_for(timeout=TIMEOUT_MS)
            if not (server["models"] / DOWNLOADED_BUNDLES["image"] / "samples").exists():
                shown = set(thumbnails.all_inner_texts())
                assert shown == set(binder.CIFAR10_CLASSES), shown
            thumbnails.nth(2).click()
            label, source = _predict(page, images)
            assert label in _class_names(server["models"] / DOWNLOADED_BUNDLES["image"])
            if not (server["models"] / DOWNLOADED_BUNDLES["image"] / "samples").exists():
                assert (samples / DOWNLOADED_BUNDLES["image"] / source).is_file(), source
            ARTIFACTS.mkdir(exist_ok=True)
            page.screenshot(path=str(ARTIFACTS / "binder-dashboard.png"), full_page=True)
            time.sleep(2)
            measurements["one_session_after_predictions"] = binder.tree_memory(server["process"].pid)

            # An upload over Tornado's default 10 MiB websocket cap reaches the kernel: the installed
            # ServerApp.tornado_settings hold on this route, and the connection survives it.
            big = server["log"].parent / "long recording.wav"
            big.write_bytes(b"\0" * (21 * 2**20))
            audio = _open_tab(page, "Audio")
            before = audio.locator(".onepipe-result .widget-html-content").inner_html()
            with page.expect_file_chooser() as chooser:
                audio.locator(".onepipe-upload").click()
            chooser.value.set_files(str(big))
            _wait_for_change(page, audio, before)
            assert "MB" in audio.locator(".onepipe-result .onepipe-message-text").inner_text()
            label, _ = _predict(page, audio)
            assert label in _class_names(server["models"] / DOWNLOADED_BUNDLES["audio"])
            measurements["after_21_mb_upload"] = binder.tree_memory(server["process"].pid)
            assert errors == []
        finally:
            browser.close()

    # one kernel, from the Binder environment
    kernels = [item for item in measurements["after_render"]["processes"] if "ipykernel_launcher" in str(item)]
    assert len(kernels) == 1 and kernels[0]["command"][0].startswith(str(venv_bin.parent)), kernels
    peak = max(item["rss_bytes"] for key, item in measurements.items() if isinstance(item, dict))
    report = {
        "what": "resident memory (sum of RSS) of jupyter server and its kernels, one dashboard session open",
        "limit_bytes": MEMORY_LIMIT_BYTES,
        "peak_rss_bytes": peak,
        "peak_rss_mb": round(peak / 2**20, 1),
        "models": "test stand-ins (tiny bundles)" if stand_ins else "shipped bundles",
        **measurements,
    }
    ARTIFACTS.mkdir(exist_ok=True)
    (ARTIFACTS / "binder-memory.json").write_text(json.dumps(report, indent=2) + "\n")
    assert peak < MEMORY_LIMIT_BYTES, f"{peak / 2**20:.0f} MB resident; Binder guarantees 1 GB"


def _open_tab(page, name: str):
    page.get_by_role("tab", name=name).click()
    panel = page.locator(".onepipe-tab:visible")
    panel.wait_for(timeout=TIMEOUT_MS)
    return panel


def _wait_for_change(page, tab, previous: str) -> None:
    element = tab.locator(".onepipe-result .widget-html-content").element_handle()
    page.wait_for_function("([e, old]) => e.innerHTML !== old", arg=[element, previous], timeout=TIMEOUT_MS)


def _predict(page, tab) -> tuple[str, str]:
    """Press Predict; (top label, source name "class/file") once the result shows."""
    before = tab.locator(".onepipe-result .widget-html-content").inner_html()
    tab.locator(".onepipe-predict").click()
    _wait_for_change(page, tab, before)
    label = tab.locator(".onepipe-result .onepipe-top-label")
    label.wait_for(timeout=TIMEOUT_MS)
    return label.inner_text().strip(), tab.locator(".onepipe-result .onepipe-source").inner_text().strip()


def _class_names(bundle_dir: Path) -> list[str]:
    return json.loads((bundle_dir / "metadata.json").read_text())["class_names"]
