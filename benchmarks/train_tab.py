"""Benchmark the dashboard's Train tab: time and memory of making a model in the page, the page's speed for people
who only predict, and how well a model made from one speaker's digits hears another speaker.

Voila serves the dashboard on 127.0.0.1 (visitors' workspaces in a temporary folder) and Playwright drives Debian's
Chromium. Prints one JSON object:

- `sounds`: 3 classes × 20 one-second clips (generated tones) uploaded in the Train tab, then Train:
  `train_to_ready_s` (Train clicked → "Model ready" shown, in the page), `trainer_peak_rss_mb` (the training
  process's peak resident memory, its VmHWM), `kernel_peak_rss_mb` (the page's kernel, sampled every 0.1 s from the
  first upload to the end), `epochs_run`, `held_out_accuracy`;
- `pictures`: the same with 3 classes × 30 webcam-size snapshots (320 × 240 RGBA PNG, as the webcam sends them);
- `page`: with the preheated kernel pool warm, a page request → a clickable Predict in the page's own clock (as
  `benchmarks/load.py` measures it, each visit in a fresh browser context), median of `--loads`, for the dashboard
  (`predict_clickable_s_three_tabs`) and, served beside it and requested in turn with it, the same dashboard
  without its Train tab (`predict_clickable_s_two_tabs`, as it was before that tab); and the Train tab's title
  clicked → its Train button shown (`train_tab_open_s`);
- `fsdd` (with `--fsdd DIR`, a Free Spoken Digit Dataset folder `DIR/<digit>/<digit>_<speaker>_<n>.wav`): for each
  training speaker, a model trained with the Train tab's code (this process stands in for the kernel; no browser)
  on "0", "1" and "2" of that speaker (the first 20 of each), scored on every clip of those digits of each other
  speaker: `accuracy[train speaker][other speaker]`, `per_training_speaker` (the mean over the other speakers),
  their `mean` and `min`. `fsdd` keeps the tab's defaults (sounds start from the shipped speech model of
  `--models-dir`), `fsdd_spoken_words` adds the Advanced fold's "Spoken words", `fsdd_from_scratch` clears "Start
  from the shipped speech model" (`--fsdd-variants` chooses among them).

Usage:
    python benchmarks/train_tab.py [--models-dir models] [--loads 5] [--fsdd DATA/fsdd] [--skip-browser]
                                   [--fsdd-speakers lucas,george] [--fsdd-variants defaults,from_scratch]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import psutil

PROJECT_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(PROJECT_ROOT))

from app import paths  # noqa: E402
from benchmarks.browser_harness import CHROMIUM, CHROMIUM_ARGS, start_voila, stop_process, write_code_notebook  # noqa: E402
from benchmarks.load import PREDICT_CLICKABLE_JS, wait_until_quiet  # noqa: E402

TIMEOUT_MS = 60_000
TRAINING_TIMEOUT_MS = 600_000
DIGITS = ("0", "1", "2")
TARGETS = {"train_to_ready_s": 60, "trainer_peak_rss_mb": 1200, "kernel_peak_rss_mb": 250, "predict_clickable_s": 1.5}
FSDD_TARGET = 0.8  # accuracy on another speaker's digits
# The Advanced fold's boxes of each spoken-digit variant: (Spoken words, Start from the shipped speech model).
FSDD_VARIANTS = {"defaults": (False, True), "spoken_words": (True, True), "from_scratch": (False, False)}


# --- data ------------------------------------------------------------------------------------------------------


def write_tones(folder: Path, per_class: int = 20) -> dict[str, list[Path]]:
    """{class: WAV files}: 1 s tones (three pitches) with a little noise, a random start and an envelope."""
    import scipy.io.wavfile

    rng = np.random.default_rng(0)
    classes = {"low": 300.0, "mid": 900.0, "high": 2500.0}
    files: dict[str, list[Path]] = {}
    time_axis = np.arange(16000) / 16000
    for name, frequency in classes.items():
        (folder / name).mkdir(parents=True)
        for n in range(per_class):
            pitch = frequency * rng.uniform(0.95, 1.05)
            envelope = np.clip(np.sin(np.pi * (time_axis - rng.uniform(0, 0.3)) / 0.7), 0, None)
            wave = 0.4 * envelope * np.sin(2 * np.pi * pitch * time_axis) + 0.01 * rng.standard_normal(16000)
            path = folder / name / f"{name}-{n}.wav"
            scipy.io.wavfile.write(path, 16000, (np.clip(wave, -1, 1) * 32767).astype(np.int16))
            files.setdefault(name, []).append(path)
    return files


def write_snapshots(folder: Path, per_class: int = 30) -> dict[str, list[Path]]:
    """{class: PNG files}: 320 × 240 RGBA frames of a coloured disc, square or cross on a noisy background, placed
    and sized at random, as a webcam sends them."""
    from PIL import Image, ImageDraw

    rng = np.random.default_rng(1)
    files: dict[str, list[Path]] = {}
    for name in ("circle", "square", "cross"):
        (folder / name).mkdir(parents=True)
        for n in range(per_class):
            background = rng.integers(90, 160, (240, 320, 3), dtype=np.uint8)
            image = Image.fromarray(background).convert("RGBA")
            draw = ImageDraw.Draw(image)
            cx, cy, half = rng.uniform(120, 200), rng.uniform(90, 150), rng.uniform(40, 70)
            box = (cx - half, cy - half, cx + half, cy + half)
            colour = (*(int(c) for c in rng.integers(0, 255, 3)), 255)
            if name == "circle":
                draw.ellipse(box, fill=colour)
            elif name == "square":
                draw.rectangle(box, fill=colour)
            else:
                draw.line(box, fill=colour, width=24)
                draw.line((box[0], box[3], box[2], box[1]), fill=colour, width=24)
            path = folder / name / f"{name}-{n}.png"
            image.save(path)
            files.setdefault(name, []).append(path)
    return files


# --- memory ----------------------------------------------------------------------------------------------------


def peak_rss_mb(process: psutil.Process) -> float:
    """The process's peak resident memory so far (VmHWM on Linux; else its resident memory now), in MB."""
    try:
        status = Path(f"/proc/{process.pid}/status").read_text()
        match = re.search(r"^VmHWM:\s+(\d+) kB", status, re.M)
        if match:
            return int(match.group(1)) * 1024 / 1e6
    except OSError:
        pass
    return process.memory_info().rss / 1e6


class MemoryWatch(threading.Thread):
    """Samples a kernel's resident memory, and the peak of the training processes it starts, every 0.1 s."""

    def __init__(self, kernel: psutil.Process):
        super().__init__(daemon=True)
        self.kernel = kernel
        self.kernel_peak_mb = 0.0
        self.trainer_peak_mb = 0.0
        self.stopping = threading.Event()

    def run(self) -> None:
        while not self.stopping.is_set():
            try:
                self.kernel_peak_mb = max(self.kernel_peak_mb, self.kernel.memory_info().rss / 1e6)
                for child in self.kernel.children(recursive=True):
                    if "train" in child.cmdline():
                        self.trainer_peak_mb = max(self.trainer_peak_mb, peak_rss_mb(child))
            except psutil.Error:
                pass
            time.sleep(0.1)

    def stop(self) -> None:
        self.stopping.set()
        self.join()


# --- the page --------------------------------------------------------------------------------------------------


def kernel_of(page_sockets: list[str], server: psutil.Process) -> psutil.Process:
    """The kernel process a page's websocket talks to."""
    ids = [m.group(1) for url in page_sockets if (m := re.search(r"/api/kernels/([0-9a-f-]{36})", url))]
    for process in server.children(recursive=True):
        if any(f"kernel-{ids[0]}" in part for part in process.cmdline()):
            return process
    raise RuntimeError(f"no kernel process for {ids}")


def open_train_tab(browser, url: str):
    """A page with the Train tab open, and the ids its websockets used."""
    page = browser.new_page(viewport={"width": 1200, "height": 1000})
    sockets: list[str] = []
    page.on("websocket", lambda socket: sockets.append(socket.url))
    page.goto(url, timeout=TIMEOUT_MS)
    page.locator(".onepipe-predict").first.wait_for(timeout=TIMEOUT_MS)
    page.get_by_role("tab", name="Train").click()
    page.locator(".onepipe-train-button").wait_for(timeout=TIMEOUT_MS)
    return page, sockets


def collect_and_train(browser, url: str, server: psutil.Process, kind: str, files: dict[str, list[Path]]) -> dict:
    """Upload each class's files in the Train tab, press Train, and time it until the model is ready."""
    page, sockets = open_train_tab(browser, url)
    tab = page.locator(".onepipe-train")
    watch = MemoryWatch(kernel_of(sockets, server))
    watch.start()
    if kind == "image":
        tab.locator(".onepipe-kind").get_by_role("button", name="Pictures").click()
        tab.locator(".onepipe-train-camera").wait_for(timeout=TIMEOUT_MS)
    tab.locator(".onepipe-add-class").click()
    for index, (name, paths_of_class) in enumerate(files.items()):
        box = tab.locator(".onepipe-class-name input").nth(index)
        box.fill(name)
        box.press("Enter")
        target = tab.locator(".onepipe-target").get_by_role("button", name=name, exact=True)
        target.click()
        with page.expect_file_chooser() as chooser:
            tab.locator(".onepipe-train-upload").click()
        chooser.value.set_files([str(path) for path in paths_of_class])
        page.wait_for_function(
            "([i, n]) => { const e = document.querySelectorAll('.onepipe-train .onepipe-count')[i];"
            " return e && parseInt(e.textContent) === n; }",
            arg=[index, len(paths_of_class)],
            timeout=TIMEOUT_MS,
        )
    started = time.perf_counter()
    tab.locator(".onepipe-train-button").click()
    tab.locator(".onepipe-train-status", has_text="Model ready").wait_for(timeout=TRAINING_TIMEOUT_MS)
    ready_s = time.perf_counter() - started
    summary = tab.locator(".onepipe-metrics").inner_text()
    epochs = re.search(r"(\d+) epochs in", tab.inner_text())
    accuracy = re.search(r"(\d+) % right", summary)
    watch.stop()
    page.close(run_before_unload=True)
    return {
        "examples": sum(len(p) for p in files.values()),
        "classes": len(files),
        "train_to_ready_s": round(ready_s, 1),
        "trainer_peak_rss_mb": round(watch.trainer_peak_mb, 1),
        "kernel_peak_rss_mb": round(watch.kernel_peak_mb, 1),
        "epochs_run": int(epochs.group(1)) if epochs else None,
        "held_out_accuracy": int(accuracy.group(1)) / 100 if accuracy else None,
    }


def measure_pages(browser, servers: dict[str, tuple[str, int]], loads: int) -> dict:
    """Page request → clickable Predict with the pool warm, in the page's own clock (navigation start → the Audio
    tab's Predict enabled, as `benchmarks/load.py` measures it), each visit in a fresh browser context (nothing
    cached, as a first visit); the servers take turns, and each is quiet again (its pool refilled) before its next
    request. Where there is one, the Train tab's first opening (title clicked → its Train button shown)."""
    clickable: dict[str, list[float]] = {name: [] for name in servers}
    train_open: list[float] = []
    for _ in range(loads):
        for name, (url, server_pid) in servers.items():
            wait_until_quiet(server_pid, kernels=1)
            context = browser.new_context(viewport={"width": 1200, "height": 1000})
            page = context.new_page()
            page.goto(url, timeout=TIMEOUT_MS)
            handle = page.wait_for_function(PREDICT_CLICKABLE_JS, polling="raf", timeout=TIMEOUT_MS)
            clickable[name].append(handle.json_value() / 1000)
            if page.get_by_role("tab", name="Train").count():
                started = time.perf_counter()
                page.get_by_role("tab", name="Train").click()
                page.locator(".onepipe-train-button").wait_for(timeout=TIMEOUT_MS)
                train_open.append(time.perf_counter() - started)
            page.close(run_before_unload=True)  # the page's beacon shuts its kernel down
            context.close()
    report = {f"predict_clickable_s_{name}": round(statistics.median(times), 2) for name, times in clickable.items()}
    report.update(
        {f"predict_clickable_all_s_{name}": [round(t, 2) for t in times] for name, times in clickable.items()}
    )
    report["train_tab_open_s"] = round(statistics.median(train_open), 2) if train_open else None
    report["train_tab_open_all_s"] = [round(t, 2) for t in train_open]
    return report


TWO_TABS_CODE = """\
from app.ui import build_dashboard

dashboard = build_dashboard()
dashboard.tabs.children = dashboard.tabs.children[:2]  # the dashboard as it was before the Train tab
dashboard.tabs.titles = ("Audio", "Images")
dashboard
"""


def browser_runs(models_dir: Path, loads: int, scratch: Path) -> dict:
    from playwright.sync_api import sync_playwright

    report = {}
    sounds, pictures = write_tones(scratch / "sounds"), write_snapshots(scratch / "pictures")
    os.environ["ONEPIPE_WORKSPACE"] = str(scratch / "workspaces")  # start_voila passes the environment on
    logs = {"three_tabs": scratch / "voila.log", "two_tabs": scratch / "voila-two-tabs.log"}
    process, url = start_voila(models_dir, log_path=logs["three_tabs"])
    two_tabs, two_tabs_url = start_voila(
        models_dir,
        notebook=write_code_notebook(scratch / "two_tabs.ipynb", TWO_TABS_CODE),
        log_path=logs["two_tabs"],
        cwd=PROJECT_ROOT,
    )
    try:
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            try:
                servers = {"three_tabs": (url, process.pid), "two_tabs": (two_tabs_url, two_tabs.pid)}
                report["page"] = measure_pages(browser, servers, loads)
                stop_process(two_tabs)
                server = psutil.Process(process.pid)
                report["sounds"] = collect_and_train(browser, url, server, "audio", sounds)
                report["pictures"] = collect_and_train(browser, url, server, "image", pictures)
            finally:
                browser.close()
    finally:
        stop_process(process)
        if two_tabs.poll() is None:
            stop_process(two_tabs)
    return report


# --- spoken digits ---------------------------------------------------------------------------------------------


def fsdd_accuracy(
    fsdd: Path, speakers: list[str] | None, scratch: Path, models_dir: Path, spoken_words: bool, start_from: bool
) -> dict:
    """Train with the Train tab's code (shipped bundles from `models_dir`) on one speaker's 0, 1, 2 (first 20
    each), its Advanced "Spoken words" and "Start from the shipped speech model" boxes as given; score every other
    speaker."""
    from app.predict import Predictor
    from app.ui import build_dashboard
    from app.ui.workspace import Workspace

    everyone = sorted({p.name.split("_")[1] for p in (fsdd / DIGITS[0]).glob("*.wav")})
    accuracy: dict[str, dict[str, float]] = {}
    seconds: dict[str, float] = {}
    for speaker in speakers or everyone:
        dashboard = build_dashboard(models_dir, workspace=Workspace.create(scratch / "fsdd-workspaces"))
        tab = dashboard.open_train_tab()
        tab.speech.value = spoken_words
        if start_from and tab.donors["audio"] is None:
            raise RuntimeError(f"{models_dir} has no shipped speech model to start from")
        tab.start_from.value = start_from
        tab.collector.new_class()
        for example_class, digit in zip(tab.store.classes, DIGITS, strict=True):
            tab.store.rename_class(example_class.id, digit)
            clips = [fsdd / digit / f"{digit}_{speaker}_{n}.wav" for n in range(20)]
            tab.collector.add_examples(example_class.id, [(p.name, p.read_bytes(), "") for p in clips], "upload")
        started = time.perf_counter()
        tab.start_training()
        tab.run.wait()
        seconds[speaker] = round(time.perf_counter() - started, 1)
        if tab.model is None:
            raise RuntimeError(f"training on {speaker} failed: {tab.status.value}")
        predictor = Predictor.load(tab.model)
        accuracy[speaker] = {}
        for other in everyone:
            if other == speaker:
                continue
            clips = [
                (digit, path) for digit in DIGITS for path in sorted((fsdd / digit).glob(f"{digit}_{other}_*.wav"))
            ]
            right = sum(predictor(path)[0]["label"] == digit for digit, path in clips)
            accuracy[speaker][other] = round(right / len(clips), 3)
        tab.workspace.remove()
        print(f"fsdd: trained on {speaker} in {seconds[speaker]} s: {accuracy[speaker]}", file=sys.stderr)
    pairs = [value for row in accuracy.values() for value in row.values()]
    return {
        "spoken_words": spoken_words,
        "start_from_speech_model": start_from,
        "accuracy": accuracy,
        "per_training_speaker": {speaker: round(statistics.mean(row.values()), 3) for speaker, row in accuracy.items()},
        "mean": round(statistics.mean(pairs), 3),
        "min": min(pairs),
        "pairs_at_least_target": f"{sum(value >= FSDD_TARGET for value in pairs)} of {len(pairs)}",
        "target": FSDD_TARGET,
        "train_to_ready_s": seconds,
        "clips_per_other_speaker": "every clip of 0, 1 and 2 (50 each in FSDD)",
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models-dir", type=Path, default=paths.MODELS_DIR, help="the bundles the page lists")
    parser.add_argument("--loads", type=int, default=5, help="page requests timed (median)")
    parser.add_argument("--fsdd", type=Path, help="a Free Spoken Digit Dataset folder: also measure the accuracy")
    parser.add_argument("--fsdd-speakers", help="comma-separated training speakers (default: every one)")
    parser.add_argument(
        "--fsdd-variants",
        default=",".join(FSDD_VARIANTS),
        help=f"comma-separated spoken-digit variants among {', '.join(FSDD_VARIANTS)} (default: all)",
    )
    parser.add_argument("--skip-browser", action="store_true", help="only the spoken-digit accuracy")
    args = parser.parse_args(argv)
    report: dict = {
        "machine": {"cpus": psutil.cpu_count(), "python": platform.python_version()},
        "load_average": [round(x, 2) for x in os.getloadavg()],
        "targets": TARGETS,
    }
    with tempfile.TemporaryDirectory() as folder:
        scratch = Path(folder)
        if not args.skip_browser:
            report.update(browser_runs(args.models_dir.resolve(), args.loads, scratch))
        if args.fsdd:
            speakers = args.fsdd_speakers.split(",") if args.fsdd_speakers else None
            for variant in args.fsdd_variants.split(","):
                spoken_words, start_from = FSDD_VARIANTS[variant]
                key = "fsdd" if variant == "defaults" else f"fsdd_{variant}"
                report[key] = fsdd_accuracy(
                    args.fsdd, speakers, scratch, args.models_dir.resolve(), spoken_words, start_from
                )
    report["load_average_after"] = [round(x, 2) for x in os.getloadavg()]
    print(json.dumps(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
