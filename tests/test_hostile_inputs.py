"""Hostile and careless input: FFmpeg opens only audio formats, from memory; Pillow only the accepted image formats;
one input's memory has a ceiling (the bombs run in a subprocess under an address-space cap, so that a regression
fails instead of filling the machine); special files get their own message and never block; what `predict`
refuses, training and evaluation skip and list with the reason."""

from __future__ import annotations

import io
import json
import os
import socket
import struct
import subprocess
import sys
import threading
import zlib
from pathlib import Path

import av
import av.logging
import numpy as np
import pytest
from fixtures_data import shape_image, tone, write_wav
from PIL import Image

from app.audio import decode_audio
from app.config import AudioConfig, ImageConfig
from app.errors import InputError, UndecodableError
from app.evaluate import evaluate_bundle
from app.features import extract_features
from app.images import load_image
from app.limits import MAX_FILE_BYTES
from app.paths import PROJECT_ROOT

RATE = 16000
MODELS = PROJECT_ROOT / "models"
# The address space a `predict` run may take: a normal one peaks at 320–450 MB here (the 16-megapixel picture
# below), and each bomb of issue 20 took 740 MB (the 383,999 Hz WAV) to 1.3 GB before it was bounded.
ADDRESS_SPACE_CAP = 640 * 2**20
PEAK_RSS_BYTES = 300 * 10**6  # what issue 20 allows `predict` for any input of up to 20 MB
SDP = "v=0\no=- 0 0 IN IP4 127.0.0.1\ns=x\nc=IN IP4 127.0.0.1\nt=0 0\nm=audio 9 RTP/AVP 0\n"


# ---------------------------------------------------------------------------------------------
# Files made for the tests: large pictures made without holding them in memory


def repeated_deflate(prefix: bytes, unit: bytes, count: int) -> bytes:
    """A zlib stream of `prefix + unit * count`, made by compressing `unit` once (after a full flush a compressed
    block does not refer back, so the same bytes can be repeated): hundreds of megabytes in milliseconds."""
    compressor = zlib.compressobj(9, zlib.DEFLATED, -15)
    head = compressor.compress(prefix) + compressor.flush(zlib.Z_FULL_FLUSH)
    block = compressor.compress(unit) + compressor.flush(zlib.Z_FULL_FLUSH)
    checksum = zlib.adler32(prefix)
    for _ in range(count):
        checksum = zlib.adler32(unit, checksum)
    return b"\x78\xda" + head + block * count + compressor.flush() + struct.pack(">I", checksum)


def png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def striped_png(width: int, height: int, palette: bool = False) -> bytes:
    """A width × height 8-bit grey (or two-colour palette) PNG of vertical stripes, one pixel in 50 lit."""

    def stripes(count: int) -> bytes:
        return bytes((1 if palette else 255) if x % 50 == 0 else 0 for x in range(count))

    if height == 1 and width % 1000 == 0:  # one very long row: repeat a 1,000-pixel piece of it
        data = repeated_deflate(b"\x00", stripes(1000), width // 1000)
    else:  # identical rows: repeat a block of about 1 MB of them
        rows = max(n for n in range(1, max(1, 2**20 // (width + 1)) + 1) if height % n == 0)
        data = repeated_deflate(b"", (b"\x00" + stripes(width)) * rows, height // rows)
    chunks = png_chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 3 if palette else 0, 0, 0, 0))
    if palette:
        chunks += png_chunk(b"PLTE", bytes([0, 0, 0, 255, 255, 255]))
    return b"\x89PNG\r\n\x1a\n" + chunks + png_chunk(b"IDAT", data) + png_chunk(b"IEND", b"")


def mp3_with_cover(picture: bytes) -> bytes:
    """A 1 s MP3 tone with `picture` as its ID3v2.4 cover (an APIC frame)."""
    buffer = io.BytesIO()
    with av.open(buffer, mode="w", format="mp3") as container:
        stream = container.add_stream("libmp3lame", rate=RATE)
        frame = av.AudioFrame.from_ndarray(tone(440.0, 1.0)[None], format="fltp", layout="mono")
        frame.sample_rate = RATE
        for packet in [*stream.encode(frame), *stream.encode(None)]:
            container.mux(packet)
    audio = buffer.getvalue()
    if audio[:3] == b"ID3":  # replace the encoder's own tag
        audio = audio[10 + _synchsafe_value(audio[6:10]) :]
    frame_body = b"\x00image/png\x00\x03\x00" + picture
    frame = b"APIC" + _synchsafe(len(frame_body)) + b"\x00\x00" + frame_body
    return b"ID3\x04\x00\x00" + _synchsafe(len(frame)) + frame + audio


def _synchsafe(value: int) -> bytes:
    return bytes((value >> shift) & 0x7F for shift in (21, 14, 7, 0))


def _synchsafe_value(data: bytes) -> int:
    return (data[0] << 21) | (data[1] << 14) | (data[2] << 7) | data[3]


def wav_header(rate: int, frames: int, channels: int = 1) -> bytes:
    """The 44-byte header of a PCM16 WAV of `frames` frames at `rate` Hz."""
    size = frames * channels * 2
    fmt = struct.pack("<HHIIHH", 1, channels, rate, rate * channels * 2, channels * 2, 16)
    return (
        b"RIFF"
        + struct.pack("<I", 36 + size)
        + b"WAVEfmt "
        + struct.pack("<I", 16)
        + fmt
        + b"data"
        + struct.pack("<I", size)
    )


def wav_at_rate(rate: int, seconds: float) -> bytes:
    """A PCM16 WAV of a 440 Hz tone whose header declares `rate` Hz."""
    count = int(rate * seconds)
    samples = (0.3 * np.sin(2 * np.pi * 440 * np.arange(count) / rate) * 32767).astype("<i2")
    return wav_header(rate, count) + samples.tobytes()


def capped_predict(bundle: Path, files: list[Path]) -> list[dict]:
    """`python -m app predict BUNDLE FILES…` in a subprocess whose address space is capped at ADDRESS_SPACE_CAP;
    its JSON line per file, once its peak resident memory is checked to stay within PEAK_RSS_BYTES."""
    script = (
        "import resource, sys\n"
        f"resource.setrlimit(resource.RLIMIT_AS, ({ADDRESS_SPACE_CAP}, {ADDRESS_SPACE_CAP}))\n"
        "from app.cli import main\n"
        "code = main(sys.argv[1:])\n"
        # VmHWM is this program's peak (ru_maxrss would include the forking test process's, kept across exec)
        "print(*[line for line in open('/proc/self/status') if line.startswith('VmHWM')], file=sys.stderr)\n"
        "sys.exit(code)\n"
    )
    # One BLAS thread and two malloc arenas: the address space then does not grow with the machine's cores.
    env = {**os.environ, "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1", "MALLOC_ARENA_MAX": "2"}
    result = subprocess.run(
        [sys.executable, "-c", script, "predict", str(bundle), *map(str, files)],
        capture_output=True,
        text=True,
        env=env,
        cwd=PROJECT_ROOT,
        timeout=300,
    )
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert len(lines) == len(files), result.stderr[-3000:]
    assert "unexpected" not in result.stderr, result.stderr[-3000:]  # a MemoryError under the cap says "unexpected"
    peak_kb = int(result.stderr.split("VmHWM:")[-1].split()[0])
    assert peak_kb * 1024 <= PEAK_RSS_BYTES, f"predict peaked at {peak_kb // 1024} MB"
    return lines


# ---------------------------------------------------------------------------------------------
# FFmpeg opens audio formats only, from memory; Pillow the accepted image formats only


def ffmpeg_refusals(data: bytes) -> list[str]:
    """Decode `data` (an UndecodableError is expected) and return FFmpeg's log lines about formats it refused."""
    previous = av.logging.get_level()
    av.logging.set_level(av.logging.VERBOSE)
    try:
        with av.logging.Capture() as logs, pytest.raises(UndecodableError, match="not a recognised audio format"):
            decode_audio(data, RATE)
    finally:
        av.logging.set_level(previous)
    return [f"{name}: {message.strip()}" for _, name, message in logs if "whitelist" in message]


def test_an_sdp_text_named_wav_is_refused_before_ffmpeg_opens_a_socket(tmp_path):
    path = tmp_path / "clip.wav"
    path.write_text(SDP)
    refusals = ffmpeg_refusals(path.read_bytes())
    assert [line.split(":")[0] for line in refusals] == ["sdp"]  # recognised, and refused before it was opened
    with pytest.raises(UndecodableError, match=r"'clip.wav' could not be decoded as audio .*; expected audio: wav"):
        decode_audio(path, RATE)


def test_an_ffconcat_list_is_refused_and_the_file_it_names_is_never_read(tmp_path, monkeypatch):
    write_wav(tmp_path / "some" / "other.wav", tone(440.0, 1.0))
    listing = tmp_path / "list.wav"
    listing.write_text("ffconcat version 1.0\nfile some/other.wav\n")
    monkeypatch.chdir(tmp_path)  # where FFmpeg would look for some/other.wav
    assert [line.split(":")[0] for line in ffmpeg_refusals(listing.read_bytes())] == ["concat"]
    with pytest.raises(UndecodableError, match=r"'list\.wav' could not be decoded as audio"):
        decode_audio(listing, RATE)


def test_audio_formats_beyond_the_list_are_refused_and_a_video_file_s_sound_is_heard():
    def encode(container_format: str, codec: str, video: bool = False) -> bytes:
        buffer = io.BytesIO()
        with av.open(buffer, mode="w", format=container_format) as container:
            stream = container.add_stream(codec, rate=RATE)
            picture = container.add_stream("mpeg4", rate=1) if video else None
            if picture is not None:
                picture.width = picture.height = 32
                frame = av.VideoFrame.from_ndarray(np.zeros((32, 32, 3), np.uint8), format="rgb24")
                for packet in [*picture.encode(frame.reformat(format="yuv420p")), *picture.encode(None)]:
                    container.mux(packet)
            sound = av.AudioFrame.from_ndarray(tone(440.0, 1.0)[None], format="fltp", layout="mono")
            sound.sample_rate = RATE
            for packet in [*stream.encode(sound), *stream.encode(None)]:
                container.mux(packet)
        return buffer.getvalue()

    with pytest.raises(UndecodableError, match="not a recognised audio format"):
        decode_audio(encode("caf", "pcm_s16le"), RATE)  # Apple's CAF: FFmpeg reads it, the list does not name it
    assert decode_audio(encode("mp4", "aac", video=True), RATE).size > 0.9 * RATE


@pytest.mark.parametrize("fmt", ["ICO", "TGA", "PCX", "SGI"])
def test_image_formats_beyond_the_list_are_refused(fmt):
    buffer = io.BytesIO()
    shape_image("circle").convert("RGB").save(buffer, format=fmt)
    with pytest.raises(InputError, match="is not an image Pillow can read; expected an image: png, jpeg"):
        load_image(buffer.getvalue(), ImageConfig(image_size=(28, 28), channels=1))


# ---------------------------------------------------------------------------------------------
# One input's memory has a ceiling: the cases of issue 20 under an address-space cap


def test_picture_bombs_are_refused_or_reduced_within_the_memory_cap(tmp_path):
    files = {
        "palette.png": striped_png(7000, 7000, palette=True),  # 47 KB that expanded to 1 GB
        "strip.png": striped_png(49_000_000, 1),  # a 49,000,000 × 1 strip
        "grey.png": striped_png(7000, 7000),  # 49 megapixels of grey: within the limits, reduced as it is read
    }
    for name, data in files.items():
        (tmp_path / name).write_bytes(data)
    palette, strip, grey = capped_predict(MODELS / "mnist", [tmp_path / name for name in files])
    assert (
        palette["error"]
        == "'palette.png' is 7,000×7,000 pixels; colour, palette or 16-bit images are accepted up to 16.8 megapixels"
    )
    assert strip["error"].startswith("'strip.png' is 49,000,000×1 pixels; expected an image at most 50 times as wide")
    assert len(grey["predictions"]) == 5


def test_sound_bombs_are_refused_or_decoded_within_the_memory_cap(tmp_path):
    (tmp_path / "fast.wav").write_bytes(wav_at_rate(383_999, 16_000 / 383_999))  # 32 KB that resampled in 480 MB
    (tmp_path / "fast-second.wav").write_bytes(wav_at_rate(383_999, 1.0))
    (tmp_path / "covered.mp3").write_bytes(mp3_with_cover(striped_png(16000, 16000)))  # 256 megapixels of cover
    short, second, covered = capped_predict(
        MODELS / "speech-commands", [tmp_path / name for name in ("fast.wav", "fast-second.wav", "covered.mp3")]
    )
    assert short["error"] == "'fast.wav' lasts 0.042 s; expected at least 0.05 s of sound"
    assert len(second["predictions"]) == len(covered["predictions"]) == 5


def test_an_odd_rate_is_resampled_with_a_small_filter_to_the_right_length_and_pitch():
    waveform = decode_audio(wav_at_rate(383_999, 1.0), RATE)
    assert abs(waveform.size - RATE) <= 1
    spectrum = np.abs(np.fft.rfft(waveform))
    assert abs(np.argmax(spectrum) * RATE / waveform.size - 440) < 2


def test_a_wav_header_is_checked_before_its_samples_are_read(monkeypatch):
    import scipy.io.wavfile

    lying = wav_header(RATE, RATE * 3600) + wav_at_rate(RATE, 0.5)[44:]  # declares an hour, holds half a second
    assert decode_audio(lying, RATE).size == RATE // 2  # what is there counts

    def no_parsing(*args, **kwargs):
        raise AssertionError("SciPy read a WAV whose header refuses it")

    monkeypatch.setattr(scipy.io.wavfile, "read", no_parsing)
    with pytest.raises(InputError, match=r"bytes lasts 600 s; the limit is 60 s"):
        decode_audio(wav_header(8000, 8000 * 600) + bytes(8000 * 600 * 2), RATE)
    with pytest.raises(InputError, match=r"holds 11,520,000 frames of 1 channel\(s\) at 384,000 Hz \(30 s\)"):
        decode_audio(wav_header(384_000, 384_000 * 30) + bytes(384_000 * 30 * 2), RATE)


# ---------------------------------------------------------------------------------------------
# Special files: their own message, never a wait


def make_fifo(path: Path) -> None:
    os.mkfifo(path)


def make_socket(path: Path) -> None:
    server = socket.socket(socket.AF_UNIX)
    server.bind(str(path))
    server.close()  # the socket file stays


def make_loop(path: Path) -> None:
    path.symlink_to(path)


def make_broken_link(path: Path) -> None:
    path.symlink_to(path.parent / "gone.wav")


def make_device_link(path: Path) -> None:
    path.symlink_to("/dev/zero")  # read whole, it would never end


def make_folder(path: Path) -> None:
    path.mkdir()


SPECIAL_FILES = {
    "fifo": (make_fifo, "'special.wav' is a FIFO, not a regular file; expected audio"),
    "socket": (make_socket, "'special.wav' is a socket, not a regular file; expected audio"),
    "symlink-loop": (make_loop, "'special.wav' is a symbolic link loop, not a regular file; expected audio"),
    "broken-link": (make_broken_link, "'special.wav' is a broken symbolic link"),
    "device": (make_device_link, "'special.wav' is a character device, not a regular file"),
    "folder": (make_folder, "special.wav is a folder; expected audio"),
}


def decode_without_blocking(path: Path) -> BaseException | None:
    """decode_audio(path) on a thread; what it raised. A call still waiting after 20 s fails the test (a FIFO is
    then opened for writing, which releases it)."""
    outcome: list[BaseException | None] = []

    def decode() -> None:
        try:
            decode_audio(path, RATE)
            outcome.append(None)
        except BaseException as error:  # handed to the test
            outcome.append(error)

    thread = threading.Thread(target=decode, daemon=True)
    thread.start()
    thread.join(20)
    if thread.is_alive():
        if path.is_fifo():
            os.close(os.open(path, os.O_WRONLY | os.O_NONBLOCK))
        pytest.fail(f"reading {path.name} waited instead of refusing it")
    return outcome[0]


@pytest.mark.parametrize("kind", sorted(SPECIAL_FILES))
def test_a_special_file_gets_its_own_message_and_never_blocks(tmp_path, kind):
    make, message = SPECIAL_FILES[kind]
    path = tmp_path / "special.wav"
    make(path)
    error = decode_without_blocking(path)
    assert isinstance(error, InputError) and str(error).startswith(message.replace("special.wav is", f"{path} is"))


def test_evaluate_lists_every_file_it_leaves_out_with_the_reason(tmp_path, caplog):
    folder = tmp_path / "data" / "yes"
    write_wav(folder / "word.wav", tone(700.0, 0.8))
    make_fifo(folder / "pipe.wav")
    make_loop(folder / "loop.wav")
    make_socket(folder / "socket.wav")
    write_wav(folder / "silent.wav", np.zeros(RATE, np.float32))
    write_wav(folder / "offset.wav", np.full(RATE, 0.25, np.float32))  # a constant offset: silence too
    write_wav(folder / "click.wav", tone(700.0, 0.01))
    with open(folder / "huge.wav", "wb") as handle:  # sparse: no disk or memory used
        handle.truncate(MAX_FILE_BYTES + 1)
    metrics = evaluate_bundle(MODELS / "speech-commands", tmp_path / "data", progress=False)
    reasons = {Path(entry["file"]).name: entry["reason"] for entry in metrics["skipped"]}
    assert metrics["count"] == 1 and sorted(reasons) == [
        "click.wav", "huge.wav", "loop.wav", "offset.wav", "pipe.wav", "silent.wav", "socket.wav",
    ]  # fmt: skip
    assert "is a FIFO, not a regular file" in reasons["pipe.wav"]
    assert "is a socket" in reasons["socket.wav"] and "symbolic link loop" in reasons["loop.wav"]
    assert (
        reasons["silent.wav"]
        == reasons["offset.wav"]
        == ("the audio is silent (no sound above the noise floor); check the microphone")
    )
    assert "expected at least 0.05 s" in reasons["click.wav"] and "are refused" in reasons["huge.wav"]
    assert "skipped 7 file(s) that could not be used" in caplog.text and "pipe.wav" in caplog.text


def test_feature_extraction_skips_what_predict_refuses(tmp_path):
    for n in range(2):
        shape_image("circle", seed=n).save(tmp_path / f"circle-{n}.png")
    Image.new("L", (28, 28), 0).save(tmp_path / "black.png")
    make_fifo(tmp_path / "pipe.png")
    files = sorted(tmp_path.glob("*.png"))  # black, circle-0, circle-1, pipe
    extraction = extract_features(files, ImageConfig((28, 28), 1), cache_dir=tmp_path / "cache", progress=False)
    assert extraction.kept.tolist() == [1, 2]
    assert [(Path(file).name, reason.split(";")[0]) for file, reason in extraction.skipped] == [
        ("black.png", "the image is one flat colour"),
        ("pipe.png", "'pipe.png' is a FIFO, not a regular file"),
    ]


def test_special_files_in_class_folders_are_found_and_then_skipped(tmp_path):
    from app.class_folders import find_dataset

    for name in ("a", "b"):
        write_wav(tmp_path / name / "clip.wav", tone(440.0, 0.5))
    make_fifo(tmp_path / "a" / "pipe.wav")
    make_broken_link(tmp_path / "b" / "link.wav")
    dataset = find_dataset(tmp_path)
    assert sorted(path.name for path in dataset.files) == ["clip.wav", "clip.wav", "link.wav", "pipe.wav"]
    extraction = extract_features(dataset.files, AudioConfig(), cache_dir=tmp_path / "cache", progress=False)
    assert sorted(Path(file).name for file, _ in extraction.skipped) == ["link.wav", "pipe.wav"]


@pytest.mark.slow
def test_training_skips_special_and_one_colour_files_and_lists_them(tmp_path, shape_dataset):
    import shutil

    from app.bundle import read_metadata
    from app.config import TrainConfig
    from app.training.train import train

    data = tmp_path / "data"
    for name in ("circle", "square"):
        shutil.copytree(shape_dataset / name, data / name)
    make_fifo(data / "circle" / "pipe.png")
    Image.new("L", (28, 28), 0).save(data / "square" / "black.png")
    recipe = TrainConfig(epochs=1, batch_size=16, validation_percent=0, test_percent=0)
    result = train(data, tmp_path / "model", train_config=recipe, progress=False, cache_dir=tmp_path / "cache")
    skipped = read_metadata(result.bundle)["data"]["skipped"]
    assert sorted(Path(entry["file"]).name for entry in skipped) == ["black.png", "pipe.png"]
    assert result.summary["train_files"] == 50  # 48 pictures and the two files left out
