"""Held-out clips said into the dashboard's microphone: Chromium's fake microphone plays each clip, the Audio tab
records it (WebM/Opus, as for a person) and predicts; prints JSON.

For each of `--clips` held-out files of the bundle (its validation and test split, as
`benchmarks/accuracy.py --held-out` finds it; one per class in turn), the clip is written at 48 kHz in the
middle of 3 s of silence, Chromium starts with that file as its microphone (it plays it in a loop), the Record
button records for 3.5 s, and the label the dashboard shows is compared with the clip's class and with what the
Predictor says for the file itself.

Usage:
    python benchmarks/microphone.py runs/digits-george --data DATA_ROOT/fsdd --clips 10

Prints {bundle, clips: [{file, class, dashboard_label, file_label, correct}], dashboard_accuracy, file_accuracy}.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(PROJECT_ROOT))
sys.path.insert(0, str(PROJECT_ROOT / "benchmarks"))

import numpy as np  # noqa: E402
import scipy.io.wavfile  # noqa: E402
from accuracy import split_files, split_settings  # noqa: E402

from app.audio import decode_audio  # noqa: E402
from app.bundle import read_metadata  # noqa: E402
from app.predict import Predictor  # noqa: E402
from benchmarks.browser_harness import CHROMIUM, CHROMIUM_ARGS, fake_media_args, start_voila, stop_process  # noqa: E402

TIMEOUT_MS = 120_000
MICROPHONE_RATE = 48000  # Hz of the file Chromium plays
MICROPHONE_SECONDS = 3.0  # the clip in the middle of this much silence, played in a loop
RECORD_MS = 3500  # longer than one loop: one whole copy of the word is always recorded


def microphone_file(waveform: np.ndarray, path: Path) -> Path:
    """A (samples,) waveform at MICROPHONE_RATE in the middle of MICROPHONE_SECONDS of silence, as a 16-bit WAV
    file for Chromium's fake microphone."""
    length = max(int(MICROPHONE_SECONDS * MICROPHONE_RATE), waveform.size)
    recording = np.zeros(length, np.float32)
    start = (length - waveform.size) // 2
    recording[start : start + waveform.size] = waveform
    scipy.io.wavfile.write(path, MICROPHONE_RATE, np.round(recording * 32767).astype(np.int16))
    return path


def record_in_dashboard(playwright, url: str, microphone: Path) -> str:
    """The top label the Audio tab shows after recording RECORD_MS from a fake microphone playing `microphone`."""
    browser = playwright.chromium.launch(
        executable_path=CHROMIUM, args=[*CHROMIUM_ARGS, *fake_media_args(microphone=microphone)]
    )
    try:
        context = browser.new_context(viewport={"width": 1200, "height": 900})
        context.grant_permissions(["microphone"])
        page = context.new_page()
        page.goto(url)
        page.wait_for_selector(".onepipe-predict", timeout=TIMEOUT_MS)
        audio = page.locator(".onepipe-tab").first
        audio.locator(".onepipe-record").click()
        audio.get_by_text("Recording…").wait_for(timeout=TIMEOUT_MS)
        page.wait_for_timeout(RECORD_MS)
        audio.locator(".onepipe-record").click()
        audio.locator(".onepipe-source", has_text="your recording").wait_for(timeout=TIMEOUT_MS)
        return audio.locator(".onepipe-result .onepipe-top-label").inner_text().strip()
    finally:
        browser.close()


def chosen_clips(bundle: Path, data_dir: Path, count: int) -> list[tuple[str, Path]]:
    """`count` held-out (class, file) pairs, taking one file per class in turn."""
    metadata = read_metadata(bundle)
    files = split_files(data_dir, metadata, "held-out", split_settings(metadata, {}))
    by_class: dict[str, list[Path]] = {}
    for class_name, path in files:
        by_class.setdefault(class_name, []).append(path)
    chosen: list[tuple[str, Path]] = []
    for round_index in range(max(len(paths) for paths in by_class.values()) if by_class else 0):
        for class_name in sorted(by_class):
            if round_index < len(by_class[class_name]) and len(chosen) < count:
                chosen.append((class_name, by_class[class_name][round_index]))
    return chosen


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("bundle", type=Path, help="an audio bundle trained with part of its data held out")
    parser.add_argument("--data", type=Path, help="its class folders (default: the folder it trained on)")
    parser.add_argument("--clips", type=int, default=10, help="held-out clips said into the microphone")
    args = parser.parse_args(argv)
    data_dir = args.data or Path(read_metadata(args.bundle).get("data", {}).get("root", ""))
    clips = chosen_clips(args.bundle, data_dir, args.clips)
    if not clips:
        parser.error(f"{args.bundle} has no held-out files in {data_dir}")
    predictor = Predictor.load(args.bundle)

    from playwright.sync_api import sync_playwright

    results = []
    with tempfile.TemporaryDirectory(prefix="onepipe-microphone-") as scratch, sync_playwright() as playwright:
        models = Path(scratch) / "models"
        models.mkdir()
        (models / args.bundle.name).symlink_to(args.bundle.resolve())
        process, url = start_voila(models, log_path=Path(scratch) / "voila.log")
        try:
            for index, (class_name, clip) in enumerate(clips):
                microphone = microphone_file(
                    decode_audio(clip, MICROPHONE_RATE), Path(scratch) / f"microphone-{index}.wav"
                )
                label = record_in_dashboard(playwright, url, microphone)
                file_label = predictor(clip, top_k=1)[0]["label"]
                results.append(
                    {
                        "file": f"{class_name}/{clip.name}",
                        "class": class_name,
                        "dashboard_label": label,
                        "file_label": file_label,
                        "correct": label == class_name,
                    }
                )
        finally:
            stop_process(process)
    report = {
        "bundle": str(args.bundle),
        "data": str(data_dir),
        "clips": results,
        "dashboard_accuracy": round(sum(r["correct"] for r in results) / len(results), 4),
        "file_accuracy": round(sum(r["file_label"] == r["class"] for r in results) / len(results), 4),
    }
    print(json.dumps(report))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
