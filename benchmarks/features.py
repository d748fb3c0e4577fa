"""Feature-extraction throughput: WAV files → log-mel spectrograms per second, against the article's way.

The project path is `app.features.load_examples` (the batch path training uses, without the on-disk
cache) with the default AudioConfig. The reference does what the source article does for each file:
read the WAV, `scipy.signal.spectrogram`, write the spectrogram as a PNG with Pillow. Both run in the
same process on the same files with the page cache warm; the best of `--repeat` runs counts.

Usage:
    python benchmarks/features.py              # generates 2,000 clips of 1 s at 16 kHz in a temp dir
    python benchmarks/features.py DATA_DIR     # every audio file under DATA_DIR

Prints one JSON object: files, files_per_s, reference_files_per_s, ratio, cache (the on-disk feature cache
against decoding without it), cpu_count, load_average, config …
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import scipy.io.wavfile
import scipy.signal

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from app.audio import decode_audio, fit_window, log_mel_spectrogram
from app.config import AUDIO_EXTENSIONS, AudioConfig, to_dict
from app.features import CHUNK_SIZE, WORKERS, load_examples

SAMPLE_RATE = 16000


def generate_clips(root: Path, count: int, seed: int = 0) -> list[Path]:
    """Write `count` 1 s PCM16 mono WAV clips (tones plus noise) into root/<class>/ and return their paths."""
    rng = np.random.default_rng(seed)
    time_axis = np.arange(SAMPLE_RATE) / SAMPLE_RATE
    paths = []
    for index in range(count):
        frequency = rng.uniform(100.0, 4000.0)
        envelope = np.sin(np.pi * np.clip((time_axis - rng.uniform(0, 0.3)) / rng.uniform(0.3, 0.7), 0, 1))
        waveform = rng.uniform(0.1, 0.6) * envelope * np.sin(2 * np.pi * frequency * time_axis)
        waveform += rng.uniform(0.001, 0.05) * rng.standard_normal(SAMPLE_RATE)
        path = root / f"class{index % 10}" / f"{index:06d}_nohash_0.wav"
        path.parent.mkdir(parents=True, exist_ok=True)
        scipy.io.wavfile.write(path, SAMPLE_RATE, (np.clip(waveform, -1, 1) * 32767).astype(np.int16))
        paths.append(path)
    return paths


def find_audio_files(root: Path) -> list[Path]:
    """Every audio file under root, sorted."""
    return sorted(p for p in root.rglob("*") if p.is_file() and p.name.lower().endswith(AUDIO_EXTENSIONS))


def warm_page_cache(files: Sequence[Path]) -> int:
    """Read every file once; returns the total bytes read."""
    return sum(len(path.read_bytes()) for path in files)


def reference_extract(files: Sequence[Path], out_dir: Path) -> None:
    """The article's per-file loop: read WAV, scipy.signal.spectrogram, save a greyscale PNG with Pillow."""
    from PIL import Image

    for index, path in enumerate(files):
        rate, samples = scipy.io.wavfile.read(path)
        _, _, power = scipy.signal.spectrogram(samples.astype(np.float32), fs=rate)
        decibels = 10 * np.log10(power + 1e-10)
        low, high = decibels.min(), decibels.max()
        pixels = (255 * (decibels - low) / max(high - low, 1e-9)).astype(np.uint8)
        Image.fromarray(pixels[::-1]).save(out_dir / f"{index}.png")


def timed_runs(function: Callable[[], Any], repeat: int) -> list[dict[str, float]]:
    """Wall and process CPU seconds of `repeat` calls."""
    runs = []
    for _ in range(repeat):
        wall, cpu = time.perf_counter(), time.process_time()
        function()
        runs.append({"wall_s": time.perf_counter() - wall, "cpu_s": time.process_time() - cpu})
    return runs


def stage_costs(files: Sequence[Path], config: AudioConfig, limit: int = 1000) -> dict[str, float]:
    """Single-thread CPU microseconds per file of each stage: read, decode+window, log-mel (chunks of CHUNK_SIZE)."""
    from threadpoolctl import threadpool_limits

    files = list(files)[:limit]
    started = time.thread_time()
    data = [path.read_bytes() for path in files]
    read = time.thread_time() - started
    started = time.thread_time()
    windows = [fit_window(decode_audio(d, config.sample_rate, config.max_decoded_seconds), config) for d in data]
    decode = time.thread_time() - started
    with threadpool_limits(limits=1, user_api="blas"):
        started = time.thread_time()
        for start in range(0, len(windows), CHUNK_SIZE):
            log_mel_spectrogram(np.stack(windows[start : start + CHUNK_SIZE]), config)
        mel = time.thread_time() - started
    scale = 1e6 / len(files)
    return {
        "read": round(read * scale, 1),
        "decode_and_window": round(decode * scale, 1),
        "log_mel": round(mel * scale, 1),
        "files": len(files),
    }


def cache_costs(files: Sequence[Path], config: AudioConfig, scratch: Path, seed: int) -> dict[str, Any]:
    """The on-disk cache against decoding without it, same process, same files (best of two runs each).

    Three numbers: filling the cache with every file, a second pass that finds them all (against
    decoding them again), and a small job of 10 new files once the cache holds all the others (against
    the same 10 without the cache): a small job must not pay for everything cached before it.
    """
    from app.features import extract_features

    cache = scratch / "cache"

    def best(function: Callable[[], Any]) -> float:
        return min(run["wall_s"] for run in timed_runs(function, 2))

    fill = timed_runs(lambda: extract_features(files, config, cache_dir=cache, progress=False), 1)[0]["wall_s"]
    hit = best(lambda: extract_features(files, config, cache_dir=cache, progress=False))
    no_cache = best(lambda: load_examples(files, config, progress=False))
    new_files = generate_clips(scratch / "new", 10, seed + 1)
    small_uncached = best(lambda: load_examples(new_files, config, progress=False))
    small_cached = timed_runs(lambda: extract_features(new_files, config, cache_dir=cache, progress=False), 1)
    megabytes = sum(path.stat().st_size for path in cache.rglob("*.npz")) / 1e6
    return {
        "files": len(files),
        "cache_megabytes": round(megabytes, 1),
        "fill_s": round(fill, 3),
        "hit_s": round(hit, 3),
        "no_cache_s": round(no_cache, 3),
        "hit_speedup": round(no_cache / hit, 2),
        "small_job_s": round(small_cached[0]["wall_s"], 4),
        "small_job_no_cache_s": round(small_uncached, 4),
        "small_job_ratio": round(small_cached[0]["wall_s"] / small_uncached, 2),
    }


def environment() -> dict[str, Any]:
    """CPU count, load, BLAS settings and library versions: what the numbers depend on."""
    from importlib.metadata import version

    from threadpoolctl import threadpool_info

    return {
        "cpu_count": os.cpu_count(),
        "cpus_usable": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        "load_average": [round(x, 2) for x in os.getloadavg()],
        "blas_env": {k: v for k, v in os.environ.items() if k.startswith(("OPENBLAS", "OMP_", "MKL_"))},
        "blas": [
            {k: info.get(k) for k in ("internal_api", "version", "architecture", "num_threads")}
            for info in threadpool_info()
        ],
        "python": platform.python_version(),
        "versions": {name: version(name) for name in ("numpy", "scipy", "pillow")},
    }


def run(data_dir: Path | None, generate: int, repeat: int, reference_limit: int, seed: int) -> dict[str, Any]:
    """Measure both paths and return the JSON-ready result."""
    config = AudioConfig()
    with tempfile.TemporaryDirectory(prefix="onepipe-bench-") as scratch:
        scratch = Path(scratch)
        if data_dir is None:
            files = generate_clips(scratch / "clips", generate, seed)
        else:
            files = find_audio_files(data_dir)
            if not files:
                raise SystemExit(f"error: no audio files ({', '.join(AUDIO_EXTENSIONS)}) under {data_dir}")
        environment_before = environment()
        total_bytes = warm_page_cache(files)
        kept = len(load_examples(files[: min(len(files), 256)], config, progress=False).kept)  # warm-up
        project = timed_runs(lambda: load_examples(files, config, progress=False), repeat)
        reference_files = files[: min(len(files), reference_limit)]
        png_dir = scratch / "png"
        png_dir.mkdir()
        reference = timed_runs(lambda: reference_extract(reference_files, png_dir), repeat)
        stages = stage_costs(files, config)
        cache = cache_costs(files, config, scratch, seed)
    best = min(r["wall_s"] for r in project)
    best_reference = min(r["wall_s"] for r in reference)
    files_per_s = len(files) / best
    reference_files_per_s = len(reference_files) / best_reference
    cpu_per_file = statistics.median(r["cpu_s"] for r in project) / len(files)
    return {
        "files": len(files),
        "generated": data_dir is None,
        "data_dir": str(data_dir) if data_dir else None,
        "megabytes": round(total_bytes / 1e6, 1),
        "files_per_s": round(files_per_s, 1),
        "files_per_s_median": round(len(files) / statistics.median(r["wall_s"] for r in project), 1),
        "reference_files": len(reference_files),
        "reference_files_per_s": round(reference_files_per_s, 1),
        "ratio": round(files_per_s / reference_files_per_s, 2),
        "target": {"files_per_s": 8000, "ratio": 10},
        "meets_target": bool(files_per_s >= 8000 and files_per_s / reference_files_per_s >= 10),
        "cpu_us_per_file": round(cpu_per_file * 1e6, 1),
        "files_per_cpu_s": round(1 / cpu_per_file, 1),
        "reference_files_per_cpu_s": round(len(reference_files) / statistics.median(r["cpu_s"] for r in reference), 1),
        "single_thread_stage_cpu_us_per_file": stages,
        "cache": cache,
        "runs": {"project": project, "reference": reference},
        "workers": WORKERS,
        "chunk_size": CHUNK_SIZE,
        "warm_up_files_kept": kept,
        "config": to_dict(config),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        **environment_before,
        "load_average_after": [round(x, 2) for x in os.getloadavg()],
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("data_dir", nargs="?", type=Path, help="folder of audio clips (default: generate clips)")
    parser.add_argument("--generate", type=int, default=2000, help="clips to generate without DATA_DIR")
    parser.add_argument("--repeat", type=int, default=3, help="timed runs of each path; the best counts")
    parser.add_argument("--reference-files", type=int, default=2000, help="at most this many files for the reference")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    if args.data_dir is not None and not args.data_dir.is_dir():
        parser.error(f"DATA_DIR {args.data_dir} is not a folder")
    print(json.dumps(run(args.data_dir, args.generate, max(1, args.repeat), args.reference_files, args.seed)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
