"""Training at scale: peak memory and time of `python -m app train` on N-file data sets built from a smaller one.

For each N, the script builds a folder of N files by linking (symbolic links) the files of SOURCE_DIR, a
class-folder data set, over and over under new names: in a speech set, copy k of a clip of speaker S is a clip
of speaker `S` + `k` (`<speaker>_nohash_<n>.wav`, so that each new speaker's clips stay in one split), in an
image set copy k of `name.png` is `c<k>_name.png`. Classes take turns, so any N keeps the source's balance.
Then it trains one epoch of a shipped recipe on it in a child process, with a cache folder of its own (a first
run: every feature and variant is made), and prints one JSON line per N:

- `files`, `examples` (what one epoch trains on, variants included), `classes`;
- `peak_rss_mb`: "Maximum resident set size" as `/usr/bin/time -v` reports it (the largest process of the run);
  `peak_tree_rss_mb`: the run's processes (the training process and its variant workers) summed, sampled
  every 0.5 s;
- `feature_s`, `variant_s`, `s_per_epoch` (from the run's log lines), `examples_per_s` (per second of the
  epoch), `total_s`;
- `longest_quiet_s`: the longest time between two lines of the run's output (its progress), `lines`;
- `load_average` before and after: the computer may be shared.

Recipes (`--recipe`): `speech` is the speech-commands recipe but for its rooms (`--augment-copies 10
--subtract-band-mean`, every file trains: `--validation-percent 0 --test-percent 0`), `images` the cifar10 one but
for its `--rotation 0 --zoom 0` (`--image-size 48x48 --horizontal-flip --weight-averaging`, every file trains);
both for `--epochs 1`. Neither difference changes what is held in memory.

Usage:
    python benchmarks/scale.py SOURCE_DIR --sizes 10000 30000
    python benchmarks/scale.py SOURCE_DIR --recipe images --sizes 10000 50000 --work /big/disk/scale
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from app.class_folders import find_dataset

RECIPES = {
    "speech": ["--augment-copies", "10", "--subtract-band-mean"],
    "images": ["--image-size", "48x48", "--horizontal-flip", "--weight-averaging"],
}
EVERY_FILE_ONE_EPOCH = ["--validation-percent", "0", "--test-percent", "0", "--epochs", "1"]
TIME = Path("/usr/bin/time")
SAMPLE_SECONDS = 0.5


def build_dataset(source: Path, target: Path, count: int) -> int:
    """target/<class>/<name>: `count` symbolic links to the files of the class-folder set `source`, classes in
    turn, copy k of a file renamed as the module docstring says. Returns the number of classes."""
    dataset = find_dataset(source)
    by_class: dict[int, list[Path]] = {}
    for path, label in zip(dataset.files, dataset.labels, strict=True):
        by_class.setdefault(label, []).append(path)
    classes = sorted(by_class)
    for round_index in range(count):
        label = classes[round_index % len(classes)]
        files = by_class[label]
        turn = round_index // len(classes)
        original = files[turn % len(files)]
        link = target / dataset.class_names[label] / renamed(original.name, turn // len(files))
        link.parent.mkdir(parents=True, exist_ok=True)
        link.symlink_to(original.resolve())
    return len(classes)


def renamed(name: str, copy: int) -> str:
    """The name of copy `copy` of a file: the speaker gains the copy number (`ab12_nohash_0.wav` →
    `ab12x3_nohash_0.wav`, `bed_ab12_nohash_0.wav.wav` → `bed_ab12x3_nohash_0.wav.wav`), other names a prefix.

    Example:
        >>> renamed("0a1b_nohash_2.wav", 3), renamed("cat.png", 0)
        ('0a1bx3_nohash_2.wav', 'c0_cat.png')
    """
    if "_nohash_" in name:
        speaker, rest = name.split("_nohash_", 1)
        return f"{speaker}x{copy}_nohash_{rest}"
    return f"c{copy}_{name}"


def run_training(data: Path, out: Path, cache: Path, recipe: str, log_path: Path) -> dict[str, Any]:
    """Train in a child process; its peak memory, timings from its log lines, and the gaps between them."""
    import psutil

    command = [sys.executable, "-m", "app", "train", str(data), "--out", str(out), "--force"]
    command += RECIPES[recipe] + EVERY_FILE_ONE_EPOCH
    wrapped = [str(TIME), "-v", *command] if TIME.exists() else command
    environment = {**os.environ, "ONEPIPE_CACHE_DIR": str(cache)}
    started = time.monotonic()
    child = subprocess.Popen(
        wrapped, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=environment, text=True,
        cwd=Path(__file__).resolve().parents[1],
    )  # fmt: skip
    lines: list[tuple[float, str]] = []
    reader = threading.Thread(target=lambda: lines.extend((time.monotonic() - started, line) for line in child.stderr))
    reader.start()
    tree_peak = 0
    while child.poll() is None:
        tree_peak = max(tree_peak, tree_rss(psutil, child.pid))
        time.sleep(SAMPLE_SECONDS)
    reader.join()
    total = time.monotonic() - started
    output = child.stdout.read()
    log_path.write_text("".join(f"{seconds:8.1f}  {line}" for seconds, line in lines))
    if child.returncode != 0:
        raise RuntimeError(f"training failed ({child.returncode}); its output is in {log_path}")
    text = "".join(line for _, line in lines)
    times = [seconds for seconds, _ in lines]
    return {
        "peak_rss_mb": peak_from_time(text),
        "peak_tree_rss_mb": round(tree_peak / 2**20, 1),
        **timings(text),
        "total_s": round(total, 1),
        "longest_quiet_s": round(max(b - a for a, b in zip([0.0, *times], [*times, total], strict=True)), 1),
        "lines": len(lines),
        "result": json.loads(output.strip().splitlines()[-1]),
    }


def tree_rss(psutil, pid: int) -> int:
    """Resident bytes of a process and all its descendants, now."""
    try:
        root = psutil.Process(pid)
        return sum(process.memory_info().rss for process in [root, *root.children(recursive=True)])
    except psutil.Error:
        return 0


def peak_from_time(text: str) -> float | None:
    """/usr/bin/time -v's "Maximum resident set size (kbytes)" in MB; None without it."""
    match = re.search(r"Maximum resident set size \(kbytes\): (\d+)", text)
    return round(int(match.group(1)) / 1024, 1) if match else None


def timings(text: str) -> dict[str, float | None]:
    """feature_s, variant_s, s_per_epoch from the run's log lines (None for a step that logged no time)."""
    features = re.search(r"^features: [\d,]+ files in ([\d.]+) s", text, re.MULTILINE)
    variants = re.search(r"^variants: [\d,]+ examples of [\d,]+ clips in ([\d.]+) s", text, re.MULTILINE)
    epoch = re.search(r"^epoch 1/\d+: .*?([\d.]+) s, ETA", text, re.MULTILINE)
    return {
        "feature_s": float(features.group(1)) if features else None,
        "variant_s": float(variants.group(1)) if variants else None,
        "s_per_epoch": float(epoch.group(1)) if epoch else None,
    }


def measure(source: Path, count: int, recipe: str, work: Path, keep: bool, cache: Path | None) -> dict[str, Any]:
    """Build the N-file set, train on it (with a cache of its own, or `cache`), and remove what the run wrote
    unless `keep`."""
    folder = work / f"{recipe}-{count}"
    shutil.rmtree(folder, ignore_errors=True)
    load_before = [round(x, 2) for x in os.getloadavg()]
    classes = build_dataset(source, folder / "data", count)
    measured = run_training(folder / "data", folder / "bundle", cache or folder / "cache", recipe, folder / "train.log")
    metadata = json.loads((folder / "bundle" / "metadata.json").read_text())
    examples = metadata["data"]["augmented_training_examples"]
    seconds = measured.pop("s_per_epoch")
    result = {
        "recipe": recipe,
        "cache": "given" if cache else "new",
        "files": count,
        "classes": classes,
        "examples": examples,
        "peak_rss_mb": measured.pop("peak_rss_mb"),
        "peak_tree_rss_mb": measured.pop("peak_tree_rss_mb"),
        "feature_s": measured.pop("feature_s"),
        "variant_s": measured.pop("variant_s"),
        "s_per_epoch": seconds,
        "examples_per_s": round(examples / seconds, 1) if seconds else None,
        **measured,
        "load_average": load_before,
        "load_average_after": [round(x, 2) for x in os.getloadavg()],
        "log": str(folder / "train.log") if keep else None,
    }
    if not keep:
        shutil.rmtree(folder, ignore_errors=True)
    return result


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("source", type=Path, help="a class-folder data set whose files are linked N times over")
    parser.add_argument("--sizes", type=int, nargs="+", default=[10000, 30000], help="files per data set")
    parser.add_argument("--recipe", choices=sorted(RECIPES), default="speech")
    parser.add_argument("--work", type=Path, help="where the sets, caches and bundles go (default: a temporary folder)")
    parser.add_argument("--keep", action="store_true", help="keep each set, its cache, bundle and log")
    parser.add_argument(
        "--cache", type=Path, help="a cache folder to use (and keep) for every size: a second run finds its work done"
    )
    args = parser.parse_args(argv)
    if not args.source.is_dir():
        parser.error(f"SOURCE {args.source} is not a folder")
    if min(args.sizes) < 2:
        parser.error("--sizes must be at least 2")
    work = args.work or Path(tempfile.mkdtemp(prefix="onepipe-scale-"))
    work.mkdir(parents=True, exist_ok=True)
    try:
        for count in args.sizes:
            print(json.dumps(measure(args.source, count, args.recipe, work, args.keep, args.cache)), flush=True)
    finally:
        if args.work is None and not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
