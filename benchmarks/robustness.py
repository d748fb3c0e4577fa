"""How an audio bundle's accuracy holds up when its held-out clips are recorded other ways, as JSON.

Each held-out clip (the bundle's validation and test split, recomputed as `benchmarks/accuracy.py --held-out`
does) is rendered through one condition at a time and given to the Predictor as a file, as the dashboard gets
it; every cell is compared with the clean baseline (the original files):

- codec: the clip at 48 kHz as PCM WAV, WebM/Opus (as Chrome's MediaRecorder makes it), MP4/AAC (as Safari's)
  and MP3 at 64 kbit/s; an encoder PyAV does not have is reported under `unavailable`, never replaced;
- sample_rate: PCM WAV at 16, 44.1 and 48 kHz (resampled up from the file and back down by the Predictor);
- level: the clip's peak at 0, −20 and −35 dBFS, 16-bit WAV (quantisation noise included);
- noise: speech-shaped noise (white noise with the average spectrum of the held-out clips) and recorded
  background noise (Speech Commands' `_silence_` clips, crops of real background recordings: DATA_ROOT/
  speech_commands/_silence_, the held-out ones only when the bundle trained on that folder) at 30, 20 and 10 dB
  SNR (RMS over the clip);
- room: synthetic reverberation, a direct sound plus an exponentially decaying noise tail of equal energy,
  with RT60 of 0.3 and 0.7 s;
- placement: the word at the start, middle or end of a 3 s recording (silence around it);
- recording: the browser-like recording of `benchmarks/accuracy.py --as-recordings` (the clip at a random point
  in 2.5 s of quiet noise, 15 dB down, 48 kHz WebM/Opus), and the same with one of its parts left out
  (`without_*`), which shows where a loss between files and recordings comes from.

`failing_cells` lists the cells, other than the 10 dB SNR ones, more than 5 points below clean.

Usage:
    python benchmarks/robustness.py DATA_ROOT                      # the shipped audio bundles under models/
    python benchmarks/robustness.py DATA_ROOT --bundle runs/digits-george --data DATA_ROOT/fsdd
    python benchmarks/robustness.py DATA_ROOT --groups recording,placement --limit 100

Prints {bundle: {clean, count, cells: {group: {condition: accuracy}}, worst_cell, failing_cells, unavailable}}.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import numpy as np
import scipy.io.wavfile
import scipy.signal
from accuracy import BUNDLE_FOLDERS, as_recording, split_files, split_settings

from app.audio import decode_audio
from app.bundle import read_metadata
from app.errors import OnePipeError
from app.noise import BROADBAND_KINDS, add_at_snr, make_noise, room_impulse_response
from app.predict import Predictor
from app.training.augment import encode_webm_opus

RENDER_RATE = 48000  # Hz: clips are decoded at this rate before a condition is applied
SNRS_DB = (30.0, 20.0, 10.0)
LEVELS_DBFS = (0.0, -20.0, -35.0)
RATES = (16000, 44100, 48000)
RT60_SECONDS = (0.3, 0.7)
PLACEMENT_SECONDS = 3.0
# The codec cells: name → (PyAV container format, encoder, bit rate or None for the encoder's default).
CODECS = {
    "wav": ("wav", "pcm_s16le", None),
    "webm_opus": ("webm", "libopus", None),
    "mp4_aac": ("mp4", "aac", 128_000),
    "mp3_64k": ("mp3", "libmp3lame", 64_000),
}
FAILING_POINTS = 5.0  # a cell this many points below clean (SNR above 10 dB) fails
NOISE_FOLDER = "speech_commands/_silence_"

Clip = tuple[str, Path, np.ndarray]  # class name, file, waveform at RENDER_RATE
Render = Callable[[np.random.Generator, np.ndarray], bytes]


def wav_bytes(waveform: np.ndarray, sample_rate: int) -> bytes:
    """A (samples,) float waveform in [-1, 1] as a 16-bit PCM WAV file."""
    buffer = io.BytesIO()
    pcm = np.round(np.clip(waveform, -1.0, 1.0) * 32767).astype(np.int16)
    scipy.io.wavfile.write(buffer, sample_rate, pcm)
    return buffer.getvalue()


def resample_to(waveform: np.ndarray, sample_rate: int) -> np.ndarray:
    """A (samples,) waveform at RENDER_RATE resampled to sample_rate."""
    from app.audio import resample

    return resample(waveform, RENDER_RATE, sample_rate)


def encoder_available(encoder: str) -> bool:
    """Whether PyAV's FFmpeg has this encoder."""
    import av

    try:
        av.Codec(encoder, "w")
    except (av.FFmpegError, ValueError):
        return False
    return True


def encode(waveform: np.ndarray, codec: str, sample_rate: int = RENDER_RATE) -> bytes:
    """A (samples,) waveform at RENDER_RATE as a file of CODECS[codec] at sample_rate."""
    container_format, encoder, bit_rate = CODECS[codec]
    pcm = resample_to(waveform, sample_rate)
    if encoder == "pcm_s16le":
        return wav_bytes(pcm, sample_rate)
    if encoder == "libopus" and sample_rate == 48000:
        return encode_webm_opus(pcm, sample_rate)  # exactly as the training recipe's round trips
    import av

    buffer = io.BytesIO()
    with av.open(buffer, mode="w", format=container_format) as container:
        stream = container.add_stream(encoder, rate=sample_rate)
        stream.layout = "mono"
        if bit_rate:
            stream.bit_rate = bit_rate
        frame_size = stream.codec_context.frame_size or 1024
        samples = pcm.astype(np.float32)
        # fltp: what aac and libmp3lame take; flt for the rest
        sample_format = "fltp" if encoder in ("aac", "libmp3lame") else "flt"
        for start in range(0, samples.size, frame_size):
            frame = av.AudioFrame.from_ndarray(samples[None, start : start + frame_size], sample_format, "mono")
            frame.sample_rate = sample_rate
            frame.pts = start
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)
    return buffer.getvalue()


def at_peak(waveform: np.ndarray, peak_dbfs: float) -> np.ndarray:
    """The waveform scaled so that its largest sample is at peak_dbfs."""
    return waveform * (10 ** (peak_dbfs / 20) / max(float(np.max(np.abs(waveform))), 1e-9))


def within_full_scale(waveform: np.ndarray) -> np.ndarray:
    """The waveform, scaled down to a peak of −1 dBFS only if it would clip."""
    peak = float(np.max(np.abs(waveform)))
    return at_peak(waveform, -1.0) if peak > 1.0 else waveform


def speech_shaped_noise(rng: np.random.Generator, sample_count: int, spectrum: np.ndarray) -> np.ndarray:
    """(sample_count,) white noise shaped by `spectrum`, an average power spectrum (frequencies,) at RENDER_RATE."""
    frequencies = np.fft.rfftfreq(sample_count, 1.0 / RENDER_RATE)
    reference = np.linspace(0.0, RENDER_RATE / 2, spectrum.size)
    gain = np.sqrt(np.interp(frequencies, reference, spectrum))
    noise = np.fft.irfft(np.fft.rfft(rng.standard_normal(sample_count)) * gain, n=sample_count)
    return (noise / max(float(np.sqrt(np.mean(noise**2))), 1e-12)).astype(np.float32)


def average_spectrum(clips: Sequence[Clip]) -> np.ndarray:
    """The mean Welch power spectrum (1025 frequencies up to RENDER_RATE / 2) of the clips, each at unit RMS."""
    total = np.zeros(1025)
    for _, _, waveform in clips:
        unit = waveform / max(float(np.sqrt(np.mean(waveform.astype(np.float64) ** 2))), 1e-9)
        total += scipy.signal.welch(unit, RENDER_RATE, nperseg=2048)[1]
    return total / max(len(clips), 1)


def recorded_noise_excerpt(rng: np.random.Generator, bank: Sequence[np.ndarray], sample_count: int) -> np.ndarray:
    """(sample_count,) of a random background recording at a random point (repeated if it is shorter)."""
    source = bank[int(rng.integers(len(bank)))]
    start = int(rng.integers(0, max(1, source.size - sample_count)))
    return np.resize(source[start : start + sample_count], sample_count)


def reverberate(rng: np.random.Generator, waveform: np.ndarray, rt60_seconds: float) -> np.ndarray:
    """The waveform in a synthetic room (app.noise.room_impulse_response: a unit direct sound plus Gaussian noise
    decaying by 60 dB over rt60_seconds, the tail as energetic as the direct sound); the tail is kept, the peak
    unchanged."""
    impulse = room_impulse_response(rng, rt60_seconds, RENDER_RATE, direct_to_reverberant_db=0.0)
    wet = scipy.signal.fftconvolve(waveform, impulse)
    return at_peak(wet, 20 * np.log10(max(float(np.max(np.abs(waveform))), 1e-9)))


def placed(waveform: np.ndarray, where: str) -> np.ndarray:
    """The waveform at the start, middle or end of PLACEMENT_SECONDS of silence (longer clips are left whole)."""
    length = max(int(PLACEMENT_SECONDS * RENDER_RATE), waveform.size)
    recording = np.zeros(length, np.float32)
    start = {"start": 0, "middle": (length - waveform.size) // 2, "end": length - waveform.size}[where]
    recording[start : start + waveform.size] = waveform
    return recording


def browser_like(
    rng: np.random.Generator, waveform: np.ndarray, codec: bool = True, noise: bool = True, quieter: bool = True
) -> np.ndarray | bytes:
    """accuracy.as_recording with parts left out: the clip in 2.5 s of −65 dBFS noise (or silence), 15 dB down
    (or not), then WebM/Opus (or 16-bit WAV), at RENDER_RATE."""
    if codec and noise and quieter:
        return as_recording(rng, waveform, RENDER_RATE)
    kind = str(rng.choice(BROADBAND_KINDS))
    length = max(int(2.5 * RENDER_RATE), waveform.size + RENDER_RATE // 2)
    recording = make_noise(kind, length, rng, RENDER_RATE) * 10 ** (-65 / 20) * noise
    start = int(rng.integers(0, recording.size - waveform.size))
    recording[start : start + waveform.size] += waveform * (10 ** (-15 / 20) if quieter else 1.0)
    return encode_webm_opus(recording, RENDER_RATE) if codec else wav_bytes(recording, RENDER_RATE)


def codec_cells(spectrum: np.ndarray, noise_bank: Sequence[np.ndarray]) -> dict[str, Render]:
    """The clip at 48 kHz through each of CODECS."""
    return {codec: lambda rng, w, c=codec: encode(w, c) for codec in CODECS}


def sample_rate_cells(spectrum: np.ndarray, noise_bank: Sequence[np.ndarray]) -> dict[str, Render]:
    """The clip as 16-bit WAV at each of RATES."""
    return {str(rate): lambda rng, w, r=rate: wav_bytes(resample_to(w, r), r) for rate in RATES}


def level_cells(spectrum: np.ndarray, noise_bank: Sequence[np.ndarray]) -> dict[str, Render]:
    """The clip's peak at each of LEVELS_DBFS, 16-bit WAV."""
    return {f"{level:g}dBFS": lambda rng, w, lv=level: wav_bytes(at_peak(w, lv), RENDER_RATE) for level in LEVELS_DBFS}


def noise_cells(spectrum: np.ndarray, noise_bank: Sequence[np.ndarray]) -> dict[str, Render]:
    """Speech-shaped and (when there are recordings) recorded noise at each of SNRS_DB."""
    sources: dict[str, Callable[[np.random.Generator, int], np.ndarray]] = {
        "speech_shaped": lambda rng, size: speech_shaped_noise(rng, size, spectrum)
    }
    if noise_bank:
        sources["recorded"] = lambda rng, size: recorded_noise_excerpt(rng, noise_bank, size)
    return {
        f"{name}_{snr:g}dB": lambda rng, w, s=snr, make=make: wav_bytes(
            within_full_scale(add_at_snr(w, make(rng, w.size), s)), RENDER_RATE
        )
        for snr in SNRS_DB
        for name, make in sources.items()
    }


def room_cells(spectrum: np.ndarray, noise_bank: Sequence[np.ndarray]) -> dict[str, Render]:
    """Synthetic reverberation with each of RT60_SECONDS."""
    return {f"rt60_{t:g}s": lambda rng, w, t=t: wav_bytes(reverberate(rng, w, t), RENDER_RATE) for t in RT60_SECONDS}


def placement_cells(spectrum: np.ndarray, noise_bank: Sequence[np.ndarray]) -> dict[str, Render]:
    """The word at the start, middle and end of a 3 s recording."""
    return {p: lambda rng, w, p=p: wav_bytes(placed(w, p), RENDER_RATE) for p in ("start", "middle", "end")}


def recording_cells(spectrum: np.ndarray, noise_bank: Sequence[np.ndarray]) -> dict[str, Render]:
    """The browser-like recording, and the same without its codec, its noise or its level change."""
    return {
        "browser": lambda rng, w: bytes(browser_like(rng, w)),
        "without_codec": lambda rng, w: bytes(browser_like(rng, w, codec=False)),
        "without_noise": lambda rng, w: bytes(browser_like(rng, w, noise=False)),
        "without_level_change": lambda rng, w: bytes(browser_like(rng, w, quieter=False)),
    }


CELLS = {
    "codec": codec_cells,
    "sample_rate": sample_rate_cells,
    "level": level_cells,
    "noise": noise_cells,
    "room": room_cells,
    "placement": placement_cells,
    "recording": recording_cells,
}
GROUPS = tuple(CELLS)


def conditions(groups: Sequence[str], spectrum: np.ndarray, noise_bank: Sequence[np.ndarray]) -> dict[str, Render]:
    """{"group/condition": render} for the chosen groups; render(rng, waveform at RENDER_RATE) → file bytes."""
    return {
        f"{group}/{condition}": render
        for group in groups
        for condition, render in CELLS[group](spectrum, noise_bank).items()
    }


def noise_recordings(data_root: Path, bundle_data: Path, metadata: dict[str, Any]) -> list[np.ndarray]:
    """The background recordings at RENDER_RATE (those the bundle did not train on, when it trained on them)."""
    folder = data_root / NOISE_FOLDER
    if not folder.is_dir():
        return []
    files = sorted(folder.iterdir())
    if bundle_data.resolve() == folder.parent.resolve():
        held_out = split_files(bundle_data, metadata, "held-out", split_settings(metadata, {}))
        files = [path for class_name, path in held_out if class_name == folder.name]
    return [decode_audio(path, RENDER_RATE) for path in files if path.suffix.lower() == ".wav"]


def accuracy_of(predictor: Predictor, clips: Sequence[Clip], render: Render | None, seed: int) -> float:
    """Share of clips predicted right, each given as the file `render` makes (the original file when None)."""
    rng = np.random.default_rng(seed)
    correct = 0
    for class_name, path, waveform in clips:
        source: Path | bytes = path if render is None else render(rng, waveform)
        correct += predictor(source, top_k=1)[0]["label"] == class_name
    return correct / max(len(clips), 1)


def held_out_clips(bundle_dir: Path, data_dir: Path, limit: int | None, split: str = "held-out") -> list[Clip]:
    """(class name, file, waveform at RENDER_RATE) of the bundle's held-out files (or of another split, "all":
    every file), at most `limit` per class."""
    metadata = read_metadata(bundle_dir)
    settings = split_settings(metadata, {"validation_percent": 0.0, "test_percent": 0.0} if split == "all" else {})
    if split == "all":
        settings.update(validation_groups=[], test_groups=[])
    files = split_files(data_dir, metadata, "train" if split == "all" else split, settings)
    taken: dict[str, int] = {}
    clips: list[Clip] = []
    for class_name, path in files:
        if limit is not None and taken.get(class_name, 0) >= limit:
            continue
        taken[class_name] = taken.get(class_name, 0) + 1
        clips.append((class_name, path, decode_audio(path, RENDER_RATE)))
    return clips


def grid(
    bundle_dir: Path,
    data_dir: Path,
    data_root: Path,
    groups: Sequence[str],
    limit: int | None,
    seed: int,
    split: str = "held-out",
) -> dict[str, Any]:
    """The robustness grid of one bundle on its held-out clips of data_dir."""
    metadata = read_metadata(bundle_dir)
    if metadata["kind"] != "audio":
        raise OnePipeError(f"{bundle_dir} is an {metadata['kind']} bundle; the grid is for audio bundles")
    predictor = Predictor.load(bundle_dir)
    clips = held_out_clips(bundle_dir, data_dir, limit, split)
    if not clips:
        raise OnePipeError(f"{bundle_dir} has no {split} files in {data_dir}")
    started = time.perf_counter()
    clean = accuracy_of(predictor, clips, None, seed)
    unavailable = [name for name, (_, encoder, _) in CODECS.items() if not encoder_available(encoder)]
    bank = noise_recordings(data_root, data_dir, metadata)
    cells: dict[str, dict[str, float]] = {}
    for name, render in conditions(groups, average_spectrum(clips), bank).items():
        group, condition = name.split("/")
        if group == "codec" and condition in unavailable:
            continue
        cells.setdefault(group, {})[condition] = round(accuracy_of(predictor, clips, render, seed), 4)
    flat = {f"{group}/{condition}": value for group, row in cells.items() for condition, value in row.items()}
    worst = min(flat, key=flat.__getitem__) if flat else None
    failing = {
        name: value
        for name, value in flat.items()
        if not name.endswith("_10dB") and (clean - value) * 100 > FAILING_POINTS
    }
    return {
        "bundle": str(bundle_dir),
        "data": str(data_dir),
        "split": split,
        "count": len(clips),
        "clean": round(clean, 4),
        "cells": cells,
        "worst_cell": {"cell": worst, "accuracy": flat[worst]} if worst else None,
        "failing_cells": failing,
        "unavailable": unavailable,
        "recorded_noise_files": len(bank),
        "seconds": round(time.perf_counter() - started, 1),
    }


def bundles_to_measure(args: argparse.Namespace) -> list[tuple[Path, Path]]:
    """(bundle folder, data folder) pairs: --bundle with --data (or its training data, or its BUNDLE_FOLDERS
    folder under DATA_ROOT), else every shipped audio bundle under --models-dir."""
    if args.bundle:
        pairs = []
        for bundle_dir in args.bundle:
            data_dir = args.data
            if data_dir is None and bundle_dir.name in BUNDLE_FOLDERS:
                data_dir = args.data_root / BUNDLE_FOLDERS[bundle_dir.name]
            if data_dir is None:
                data_dir = Path(read_metadata(bundle_dir).get("data", {}).get("root", ""))
            pairs.append((bundle_dir, data_dir))
        return pairs
    return [
        (args.models_dir / name, args.data_root / BUNDLE_FOLDERS[name]) for name in ("speech-commands", "spoken-digits")
    ]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("data_root", type=Path, help="folder holding speech_commands/ and fsdd/")
    default_models = Path(os.environ.get("ONEPIPE_MODELS_DIR") or Path(__file__).resolve().parents[1] / "models")
    parser.add_argument("--models-dir", type=Path, default=default_models, help="folder of bundles (default: models)")
    parser.add_argument("--bundle", type=Path, action="append", help="a bundle folder (repeatable)")
    parser.add_argument("--data", type=Path, help="its class folders (default: the folder it trained on)")
    parser.add_argument("--groups", default=",".join(GROUPS), help=f"comma-separated, of {', '.join(GROUPS)}")
    parser.add_argument("--limit", type=int, help="at most this many clips per class")
    parser.add_argument("--seed", type=int, default=0, help="random draws of noise, rooms and placements")
    parser.add_argument(
        "--split",
        choices=("held-out", "validation", "test", "all"),
        default="held-out",
        help="the bundle's held-out files (default), one part of them, or every file of --data (for a folder it "
        "never trained on)",
    )
    args = parser.parse_args(argv)
    groups = [group.strip() for group in args.groups.split(",") if group.strip()]
    if unknown := set(groups) - set(GROUPS):
        parser.error(f"unknown groups {sorted(unknown)}; expected some of {', '.join(GROUPS)}")
    results: dict[str, Any] = {}
    for bundle_dir, data_dir in bundles_to_measure(args):
        if not (bundle_dir / "metadata.json").is_file() or not data_dir.is_dir():
            print(f"skipped {bundle_dir}: no bundle, or no folder {data_dir}", file=sys.stderr)
            continue
        try:
            results[bundle_dir.name] = grid(
                bundle_dir, data_dir, args.data_root, groups, args.limit, args.seed, args.split
            )
        except OnePipeError as error:
            print(f"skipped {bundle_dir}: {error}", file=sys.stderr)
    print(json.dumps(results))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
