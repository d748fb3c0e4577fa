"""Benchmark the Voila dashboard against a naive notebook that imports TensorFlow and calls the Keras model.

Both are served by Voila on 127.0.0.1 (one after the other, never at once) and driven by Playwright with
Debian's Chromium. Prints one JSON object:

- page_interactive_s: page request → both tabs usable (median of `--loads`);
- predict_ms: click Predict on a sample → label shown, measured in the page (median of `--predictions`);
- record_ms: recording stopped → label shown, with Chromium's fake microphone playing a sample clip;
- kernel_rss_mb: resident memory of the page's kernel after five predictions.

Usage:
    python benchmarks/dashboard.py [--models-dir models] [--audio-bundle NAME] [--loads N] [--predictions N]
"""

from __future__ import annotations

import argparse
import json
import platform
import re
import statistics
import sys
import tempfile
import time
from pathlib import Path

import psutil

PROJECT_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(PROJECT_ROOT))

from app import paths  # noqa: E402
from benchmarks.browser_harness import (  # noqa: E402
    CHROMIUM,
    CHROMIUM_ARGS,
    fake_media_args,
    start_voila,
    stop_process,
    write_code_notebook,
)

TIMEOUT_MS = 120_000
# Click a button and resolve with the milliseconds until the result element changes.
CLICK_UNTIL_CHANGED_JS = """
([button, result]) => new Promise((resolve) => {
  const start = performance.now();
  const observer = new MutationObserver(() => { observer.disconnect(); resolve(performance.now() - start); });
  observer.observe(result, {childList: true, subtree: true, characterData: true});
  button.click();
})
"""

NAIVE_NOTEBOOK_CODE = """\
import json
from pathlib import Path

import ipywidgets as widgets
import keras
import numpy as np
import tensorflow as tf

from app.audio import audio_features
from app.config import preprocessing_from_metadata

bundle = Path({bundle!r})
metadata = json.loads((bundle / "metadata.json").read_text())
config = preprocessing_from_metadata(metadata)
model = keras.models.load_model(bundle / "model.keras")
files = sorted(p for p in (bundle / "samples").glob("*/*") if p.is_file())
clips = widgets.Dropdown(options=[(f"{{p.parent.name}}/{{p.name}}", str(p)) for p in files], description="Clip")
button = widgets.Button(description="Predict")
button.add_class("naive-predict")
result = widgets.HTML()
result.add_class("naive-result")


def predict(_):
    features = audio_features(clips.value, config)[None, ..., None]
    probabilities = model.predict(features, verbose=0)[0]
    best = int(np.argmax(probabilities))
    result.value = f"<b>{{metadata['class_names'][best]}}</b> {{probabilities[best]:.3f}} ({{clips.value}})"


button.on_click(predict)
widgets.VBox([clips, button, result])
"""


def kernel_rss_mb(server: psutil.Process, kernel_id: str) -> float:
    """RSS of the kernel with this id (its connection file is kernel-<id>.json) under the Voila process, in MB."""
    for process in server.children(recursive=True):
        if any(f"kernel-{kernel_id}" in part for part in process.cmdline()):
            return process.memory_info().rss / 1e6
    raise RuntimeError(f"no kernel process for {kernel_id}")


def open_with_kernel_id(browser, url: str, selector: str, **options) -> tuple:
    """Open a page, wait for `selector`, and return (page, id of the kernel its websocket talks to)."""
    page = browser.new_page(**options)
    sockets: list[str] = []
    page.on("websocket", lambda socket: sockets.append(socket.url))
    page.goto(url, timeout=TIMEOUT_MS)
    page.locator(selector).first.wait_for(timeout=TIMEOUT_MS)
    ids = [m.group(1) for u in sockets if (m := re.search(r"/api/kernels/([0-9a-f-]{36})", u))]
    return page, ids[0]


def median(values: list[float]) -> float:
    return round(statistics.median(values), 1)


def measure_dashboard(browser, url: str, server: psutil.Process, loads: int, predictions: int) -> dict:
    page_times, predict_times, record_times = [], [], []
    for _ in range(loads):
        page = browser.new_page(viewport={"width": 1200, "height": 900})
        start = time.perf_counter()
        page.goto(url)
        page.locator(".onepipe-predict").first.wait_for(timeout=TIMEOUT_MS)
        page.get_by_role("tab", name="Images").click()
        page.locator(".onepipe-thumb").first.wait_for(timeout=TIMEOUT_MS)
        page_times.append(time.perf_counter() - start)
        page.close(run_before_unload=True)
        time.sleep(1.0)

    page, kernel_id = open_with_kernel_id(browser, url, ".onepipe-predict", viewport={"width": 1200, "height": 900})
    audio = page.locator(".onepipe-tab").first
    result = audio.locator(".onepipe-result .widget-html-content").element_handle()
    button = audio.locator(".onepipe-predict").element_handle()
    clips = audio.locator(".onepipe-clips button")
    for index in range(predictions):
        clips.nth(index % clips.count()).click()
        page.wait_for_timeout(300)
        predict_times.append(page.evaluate(CLICK_UNTIL_CHANGED_JS, [button, result]))
    audio.locator(".onepipe-top-label").wait_for(timeout=TIMEOUT_MS)
    rss = kernel_rss_mb(server, kernel_id)

    record = audio.locator(".onepipe-record").element_handle()
    for _ in range(3):
        record.click()
        page.wait_for_timeout(1500)
        record_times.append(page.evaluate(CLICK_UNTIL_CHANGED_JS, [record, result]))
        # the first change may be the "processing" status; wait for the label of this recording
        audio.locator(".onepipe-source", has_text="your recording").wait_for(timeout=TIMEOUT_MS)
        page.wait_for_timeout(500)
    page.close(run_before_unload=True)
    return {**timings(page_times, predict_times, rss), "record_ms": median(record_times)}


def measure_naive(browser, url: str, server: psutil.Process, loads: int, predictions: int) -> dict:
    page_times, predict_times = [], []
    for _ in range(loads):
        page = browser.new_page()
        start = time.perf_counter()
        page.goto(url, timeout=TIMEOUT_MS)
        page.locator(".naive-predict").wait_for(timeout=TIMEOUT_MS)
        page_times.append(time.perf_counter() - start)
        page.close(run_before_unload=True)
        time.sleep(1.0)
    page, kernel_id = open_with_kernel_id(browser, url, ".naive-predict")
    button = page.locator(".naive-predict").element_handle()
    result = page.locator(".naive-result").element_handle()
    options = page.locator("select option").all_inner_texts()
    for index in range(predictions):
        page.locator("select").select_option(label=options[index % len(options)])
        page.wait_for_timeout(300)
        predict_times.append(page.evaluate(CLICK_UNTIL_CHANGED_JS, [button, result]))
    rss = kernel_rss_mb(server, kernel_id)
    page.close(run_before_unload=True)
    return timings(page_times, predict_times, rss)


def timings(page_times: list[float], predict_times: list[float], rss_mb: float) -> dict:
    """The JSON of one dashboard: page load (s) and Predict (ms) medians with every run, kernel memory (MB)."""
    return {
        "page_interactive_s": round(statistics.median(page_times), 2),
        "page_interactive_all_s": [round(t, 2) for t in page_times],
        "predict_ms": median(predict_times),
        "predict_all_ms": [round(t, 1) for t in predict_times],
        "kernel_rss_mb": round(rss_mb, 1),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models-dir", type=Path, default=paths.MODELS_DIR)
    parser.add_argument("--audio-bundle", default=None, help="default: the first audio bundle with samples")
    parser.add_argument("--loads", type=int, default=3, help="page loads per server (median)")
    parser.add_argument("--predictions", type=int, default=7, help="Predict clicks (median); at least 5")
    args = parser.parse_args(argv)

    from playwright.sync_api import sync_playwright

    from app.ui.bundles import list_bundle_infos, sample_files

    audio = [i for i in list_bundle_infos("audio", args.models_dir) if sample_files(i.path, "audio")]
    if args.audio_bundle:
        audio = [i for i in audio if i.name == args.audio_bundle]
    if not audio or not list_bundle_infos("image", args.models_dir):
        print(json.dumps({"error": f"need an audio bundle with samples and an image bundle in {args.models_dir}"}))
        return 2
    bundle = audio[0].path
    microphone_clip = next(f for files in sample_files(bundle, "audio").values() for f in files if f.suffix == ".wav")
    # The dashboard shows the first audio bundle: pass only that one and the image bundles.
    report = {
        "machine": {"cpus": psutil.cpu_count(), "python": platform.python_version()},
        "audio_bundle": bundle.name,
        "microphone_clip": f"{microphone_clip.parent.name}/{microphone_clip.name}",
        "targets": {"page_interactive_s": 2.0, "predict_ms": 150, "record_ms": 400, "kernel_rss_mb": 250},
    }
    with tempfile.TemporaryDirectory() as folder, sync_playwright() as playwright:
        models = Path(folder) / "models"
        models.mkdir()
        for info in [audio[0], *list_bundle_infos("image", args.models_dir)]:
            (models / info.name).symlink_to(info.path.resolve())
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM,
            args=[*CHROMIUM_ARGS, *fake_media_args(microphone=microphone_clip)],
        )
        naive = write_code_notebook(Path(folder) / "naive.ipynb", NAIVE_NOTEBOOK_CODE.format(bundle=str(bundle)))
        runs = (
            ("dashboard", measure_dashboard, {"log_path": Path(folder) / "voila.log"}),
            ("naive", measure_naive, {"notebook": naive, "log_path": Path(folder) / "naive.log", "cwd": Path(folder)}),
        )
        try:
            for name, measure, voila_options in runs:  # one server at a time, never both
                process, url = start_voila(models, **voila_options)
                try:
                    time.sleep(1.0)
                    report[name] = measure(
                        browser, url, psutil.Process(process.pid), args.loads, max(5, args.predictions)
                    )
                finally:
                    stop_process(process)
        finally:
            browser.close()
    print(json.dumps(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
