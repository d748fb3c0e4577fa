"""Audio: decode any common format, mix to mono, resample, cut a window, compute a log-mel spectrogram.

Plain PCM/float WAV is read with SciPy (fast path); everything else (FLAC, OGG/Opus, MP3, M4A,
WebM/Opus as browsers record) is decoded by FFmpeg through PyAV, which may open only the audio formats of
AUDIO_DEMUXERS, from memory: FFmpeg also reads SDP session descriptions (which open network sockets), playlists
and concat lists (which read other files) and devices, and those are refused before anything is opened. What a
header declares (rate, channels, length) is checked against app.limits before the samples are decoded. The
spectrogram is NumPy/SciPy only, so serving never needs TensorFlow.

A path, the file's bytes or a waveform array all work. Example:
    >>> import io
    >>> import numpy as np
    >>> import scipy.io.wavfile
    >>> from app.config import AudioConfig
    >>> tone = (np.sin(2 * np.pi * 440 * np.arange(8000) / 16000) * 10000).astype(np.int16)  # 0.5 s at 16 kHz
    >>> wav = io.BytesIO()
    >>> scipy.io.wavfile.write(wav, 16000, tone)
    >>> audio_features(wav.getvalue(), AudioConfig()).shape  # 1 s window: 97 frames of 40 mel bands
    (97, 40)
"""

from __future__ import annotations

import io
import struct
import warnings
from fractions import Fraction
from functools import lru_cache

import numpy as np
import scipy.fft
import scipy.io.wavfile

from app.config import MAX_SAMPLE_RATE, MIN_SAMPLE_RATE, AudioConfig
from app.errors import InputError, UndecodableError
from app.limits import check_audio_size
from app.sources import Source, describe_source, read_source_bytes

EXPECTED_AUDIO = "expected audio: wav, flac, ogg, opus, mp3, m4a, aac, webm, aiff"
AudioSource = Source
MIN_DECODED_SECONDS = 0.05  # shorter input holds no word (the model would answer anyway)
# Compressed formats decode slightly longer than they were made (encoder padding): allowed past max_seconds.
PADDING_TOLERANCE_SECONDS = 0.1
# The FFmpeg demuxers PyAV may use, by FFmpeg's names: "mov" reads mp4 and m4a, "matroska" webm, "aac" ADTS
# streams, "ogg" Opus and Vorbis. FFmpeg refuses any other format it recognises before opening it.
AUDIO_DEMUXERS = ("wav", "flac", "ogg", "mp3", "mov", "aac", "matroska", "aiff")
NO_PROTOCOLS = "none"  # no FFmpeg protocol has this name: a demuxer may open no other file or URL
# WAV format tags of uncompressed samples, whose length the header gives: PCM, IEEE float, extensible.
UNCOMPRESSED_WAV_TAGS = (1, 3, 0xFFFE)
# A resampling ratio in lowest terms above this (as between 383,999 and 16,000 Hz) would need a filter of
# millions of taps; such a ratio is replaced by the nearest one within it (see resampling_ratio).
MAX_RESAMPLING_TERM = 2**14


class _DamagedWav(Exception):
    """SciPy could not parse a WAV file; FFmpeg gets a try before this becomes the user's message."""


def decode_audio(source: AudioSource, sample_rate: int, max_seconds: float = 60.0) -> np.ndarray:
    """Decode a file or byte string to a mono float32 waveform at `sample_rate`.

    Args:
        source: a path or the file's bytes, in any format FFmpeg reads.
        sample_rate: output rate in Hz.
        max_seconds: longer audio is rejected (a small compressed file must not expand into gigabytes).

    Returns:
        Waveform of shape (samples,), float32 in [-1, 1].

    Raises:
        InputError: empty, corrupt, not audio, no samples, non-finite samples, too short or too long.
    """
    data = read_source_bytes(source, EXPECTED_AUDIO)
    if data[:4] == b"RIFF" and data[8:12] == b"WAVE":
        try:
            waveform = _decode_wav(data, sample_rate, max_seconds, source)
        except _DamagedWav as damaged:  # FFmpeg reads some WAVs SciPy refuses (zero sizes from streaming)
            try:
                return _decode_with_pyav(data, sample_rate, max_seconds, source)
            except UndecodableError:
                raise UndecodableError(str(damaged)) from None
        if waveform is not None:
            return waveform
    return _decode_with_pyav(data, sample_rate, max_seconds, source)


def _decode_wav(data: bytes, sample_rate: int, max_seconds: float, source: AudioSource) -> np.ndarray | None:
    """SciPy's WAV reader for PCM and float WAV; None for WAV codecs it does not know (PyAV then)."""
    _check_declared_length(data, max_seconds, source)
    samples = _canonical_pcm16(data, max_seconds)
    if samples is not None:  # the common case (Speech Commands, FSDD, most recorders): no parsing needed
        file_rate, channels = struct.unpack_from("<I", data, 24)[0], samples.shape[1]
        _check_rate(file_rate, source)
        waveform = samples[:, 0].astype(np.float32) if channels == 1 else samples.mean(axis=1, dtype=np.float32)
        waveform *= 1.0 / 32768.0
        if file_rate != sample_rate:
            return _finish(resample(waveform, file_rate, sample_rate), source, sample_rate)
        _check_length(waveform, source, sample_rate)  # 16-bit samples are finite and within [-1, 1)
        return waveform
    fmt_chunk = data.find(b"fmt ", 12)
    if 0 < fmt_chunk <= len(data) - 12 and struct.unpack_from("<H", data, fmt_chunk + 10)[0] == 0:
        raise InputError(f"{describe_source(source)} declares zero audio channels; {EXPECTED_AUDIO}")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", scipy.io.wavfile.WavFileWarning)  # unknown chunks (LIST, bext …)
            file_rate, samples = scipy.io.wavfile.read(io.BytesIO(data))
    except ValueError as error:  # unknown codec (ADPCM, µ-law …) or malformed chunk: let FFmpeg try
        if "Unknown wave file format" in str(error) or "not supported" in str(error):
            return None
        raise _DamagedWav(f"{describe_source(source)} is not a readable WAV file ({error}); {EXPECTED_AUDIO}") from None
    except Exception:  # SciPy fails in many ways on a damaged header; its messages name its internals
        raise _DamagedWav(
            f"{describe_source(source)} is a damaged WAV file (its header or chunks are broken); {EXPECTED_AUDIO}"
        ) from None
    if samples.ndim == 2 and samples.shape[1] == 0:
        raise InputError(f"{describe_source(source)} has zero audio channels; {EXPECTED_AUDIO}")
    _check_rate(file_rate, source)
    if samples.shape[0] > max_seconds * file_rate:
        raise InputError(
            f"{describe_source(source)} lasts {samples.shape[0] / file_rate:.0f} s; the limit is {max_seconds:.0f} s"
        )
    return _finish(resample(_to_mono_float(samples), file_rate, sample_rate), source, sample_rate)


def _check_declared_length(data: bytes, max_seconds: float, source: AudioSource) -> None:
    """InputError, before any sample is read, for an uncompressed WAV whose header declares an impossible rate, more
    than `max_seconds` or more samples than app.limits allows (see declared_wav_length)."""
    declared = declared_wav_length(data)
    if declared is None:
        return
    frames, channels, file_rate = declared
    _check_rate(file_rate, source)
    if frames > max_seconds * file_rate:
        seconds = frames / file_rate
        raise InputError(f"{describe_source(source)} lasts {seconds:.0f} s; the limit is {max_seconds:.0f} s")
    check_audio_size(frames, channels, file_rate, describe_source(source))


def declared_wav_length(data: bytes) -> tuple[int, int, int] | None:
    """(frames, channels, sample rate) of an uncompressed RIFF/WAVE file, from its fmt chunk and the size of its
    data chunk (the bytes that follow it when that size is 0 or beyond the end, as a streaming recorder leaves it);
    None for compressed or unreadable headers.

    Example:
        >>> import scipy.io.wavfile
        >>> wav = io.BytesIO()
        >>> scipy.io.wavfile.write(wav, 8000, np.zeros((4000, 2), np.int16))  # 0.5 s of stereo
        >>> declared_wav_length(wav.getvalue())
        (4000, 2, 8000)
    """
    offset, layout = 12, None
    while offset + 8 <= len(data):
        chunk, size = data[offset : offset + 4], struct.unpack_from("<I", data, offset + 4)[0]
        body = offset + 8
        if chunk == b"fmt " and size >= 16 and body + 16 <= len(data):
            tag, channels, file_rate, _, block_align, bits = struct.unpack_from("<HHIIHH", data, body)
            if tag not in UNCOMPRESSED_WAV_TAGS or channels == 0 or block_align != channels * -(-bits // 8):
                return None
            layout = channels, file_rate, block_align
        elif chunk == b"data":
            if layout is None:
                return None
            channels, file_rate, block_align = layout
            available = len(data) - body
            return (available if size == 0 or size > available else size) // block_align, channels, file_rate
        offset = body + size + (size & 1)
    return None


def _check_rate(file_rate: int, source: AudioSource) -> None:
    """InputError for a declared sample rate no real recording has (it would make resampling explode)."""
    if not MIN_SAMPLE_RATE <= file_rate <= MAX_SAMPLE_RATE:
        raise InputError(
            f"{describe_source(source)} declares a sample rate of {file_rate:,} Hz; "
            f"expected {MIN_SAMPLE_RATE:,}–{MAX_SAMPLE_RATE:,} Hz"
        )


def _canonical_pcm16(data: bytes, max_seconds: float) -> np.ndarray | None:
    """(frames, channels) int16 samples of a 44-byte-header PCM16 WAV; None for anything else."""
    if len(data) <= 44 or data[12:20] != b"fmt \x10\x00\x00\x00" or data[36:40] != b"data":
        return None
    tag, channels, file_rate, _, _, bits = struct.unpack_from("<HHIIHH", data, 20)
    count = min(struct.unpack_from("<I", data, 40)[0], len(data) - 44) // 2
    count -= count % max(channels, 1)
    if tag != 1 or bits != 16 or channels == 0 or file_rate == 0 or not 0 < count <= max_seconds * file_rate * channels:
        return None
    return np.frombuffer(data, "<i2", count=count, offset=44).reshape(-1, channels)


def _to_mono_float(samples: np.ndarray) -> np.ndarray:
    """(frames,) or (frames, channels) integer or float PCM samples as a mono float32 (frames,) waveform at
    full scale 1 (8-bit WAV is unsigned: silence is 128). Channels are averaged before any full-size float
    copy is made. Float samples beyond ±1 (written at integer scale by some tools) are scaled by their peak."""
    mono = samples.mean(axis=1, dtype=np.float32) if samples.ndim == 2 else samples.astype(np.float32)
    if np.issubdtype(samples.dtype, np.unsignedinteger):
        middle = float(2 ** (8 * samples.dtype.itemsize - 1))
        mono -= middle
        mono /= middle
    elif np.issubdtype(samples.dtype, np.integer):
        mono /= float(-np.iinfo(samples.dtype).min)
    elif mono.size and (peak := float(np.max(np.abs(mono)))) > 1.0 and np.isfinite(peak):
        mono /= peak
    return mono


def _decode_with_pyav(data: bytes, sample_rate: int, max_seconds: float, source: AudioSource) -> np.ndarray:
    """Decode with FFmpeg (PyAV), which also resamples; channels are averaged to mono here, as for WAV
    (FFmpeg's own downmix adds stereo channels at +3 dB, which would clip loud recordings). The decoded length is
    checked as it grows."""
    import av  # PyAV loads FFmpeg's libraries; imported on first use only

    max_samples = int(max_seconds * sample_rate)
    try:
        with _open_container(data, source) as container:
            if not container.streams.audio:
                raise UndecodableError(f"{describe_source(source)} has no audio stream; {EXPECTED_AUDIO}")
            stream = container.streams.audio[0]
            if stream.codec_context.sample_rate:  # 0 when only decoding tells
                _check_rate(stream.codec_context.sample_rate, source)
            resampler = av.AudioResampler(format="fltp", rate=sample_rate)  # planar: (channels, samples)
            chunks: list[np.ndarray] = []
            total = 0
            for frame in container.decode(stream):
                for resampled in resampler.resample(frame):
                    chunk = resampled.to_ndarray().mean(axis=0, dtype=np.float32)
                    chunks.append(chunk)
                    total += chunk.size
                if total > max_samples + PADDING_TOLERANCE_SECONDS * sample_rate:
                    raise InputError(f"{describe_source(source)} lasts more than {max_seconds:.0f} s; shorten it")
            for resampled in resampler.resample(None):
                chunks.append(resampled.to_ndarray().mean(axis=0, dtype=np.float32))
    except InputError:
        raise
    except (av.FFmpegError, ValueError, IndexError, OSError, UnicodeDecodeError) as error:
        if isinstance(error, av.error.InvalidDataError):
            reason = "not a recognised audio format"
        else:
            reason = getattr(error, "strerror", None) or str(error)[:120]
        raise UndecodableError(
            f"{describe_source(source)} could not be decoded as audio ({reason}); {EXPECTED_AUDIO}"
        ) from None
    waveform = np.concatenate(chunks) if chunks else np.zeros(0, np.float32)
    return _finish(waveform.astype(np.float32, copy=False), source, sample_rate)


def _open_container(data: bytes, source: AudioSource):
    """A PyAV input container on `data`: only the formats of AUDIO_DEMUXERS open, from memory, with no other file
    or URL, and while the streams are probed only audio decoders run (a cover picture is not decoded).

    Raises:
        UndecodableError: another format, or none FFmpeg knows.
    """
    import av

    try:
        return av.open(io.BytesIO(data), mode="r", container_options=_container_options(), metadata_errors="replace")
    except (av.FFmpegError, ValueError, OSError):
        raise UndecodableError(
            f"{describe_source(source)} could not be decoded as audio (not a recognised audio format); {EXPECTED_AUDIO}"
        ) from None


def _container_options() -> dict[str, str]:
    """FFmpeg options for opening: the AUDIO_DEMUXERS, no protocol, audio decoders only while probing."""
    return {
        "format_whitelist": ",".join(AUDIO_DEMUXERS),
        "protocol_whitelist": NO_PROTOCOLS,
        "codec_whitelist": ",".join(_audio_decoders()),
    }


@lru_cache(maxsize=1)
def _audio_decoders() -> tuple[str, ...]:
    """The names of the audio decoders of PyAV's FFmpeg."""
    import av

    names = set()
    for name in av.codecs_available:
        try:
            codec = av.Codec(name, "r")
        except (av.FFmpegError, ValueError):  # an encoder only
            continue
        if codec.type == "audio":
            names.add(codec.name)
    return tuple(sorted(names))


def _finish(waveform: np.ndarray, source: AudioSource, sample_rate: int) -> np.ndarray:
    """The decoded (samples,) waveform at `sample_rate`, checked (samples, finite, long enough) and clipped
    to [-1, 1]."""
    if waveform.size == 0:
        raise UndecodableError(f"{describe_source(source)} contains no audio samples; {EXPECTED_AUDIO}")
    if not np.all(np.isfinite(waveform)):
        raise InputError(f"{describe_source(source)} contains invalid samples (NaN or infinity)")
    _check_length(waveform, source, sample_rate)
    return np.clip(waveform, -1.0, 1.0, out=waveform)


def _check_length(waveform: np.ndarray, source: AudioSource, sample_rate: int) -> None:
    """InputError for a (samples,) waveform shorter than MIN_DECODED_SECONDS at `sample_rate`."""
    if waveform.size < MIN_DECODED_SECONDS * sample_rate:
        raise InputError(
            f"{describe_source(source)} lasts {waveform.size / sample_rate:.3f} s; expected at least "
            f"{MIN_DECODED_SECONDS:g} s of sound"
        )


def resample(waveform: np.ndarray, from_rate: int, to_rate: int) -> np.ndarray:
    """Polyphase resampling of a (samples,) waveform from `from_rate` to `to_rate` Hz (see resampling_ratio)."""
    if from_rate == to_rate:
        return waveform.astype(np.float32, copy=False)
    import scipy.signal  # ~0.5 s to import: only when a clip needs resampling

    up, down = resampling_ratio(from_rate, to_rate)
    resampled = scipy.signal.resample_poly(waveform, up, down)
    return resampled.astype(np.float32)


def resampling_ratio(from_rate: int, to_rate: int) -> tuple[int, int]:
    """(up, down): to_rate / from_rate in lowest terms, or, when a term exceeds MAX_RESAMPLING_TERM, the nearest
    fraction whose terms do not (it changes the pitch by far less than anyone hears; the filter stays small).

    Example:
        >>> resampling_ratio(44100, 16000), resampling_ratio(383_999, 16000)
        ((160, 441), (1, 24))
    """
    ratio = Fraction(int(to_rate), int(from_rate))
    if max(ratio.numerator, ratio.denominator) > MAX_RESAMPLING_TERM:
        if ratio < 1:
            ratio = ratio.limit_denominator(MAX_RESAMPLING_TERM)
        else:
            ratio = 1 / (1 / ratio).limit_denominator(MAX_RESAMPLING_TERM)
    return ratio.numerator, ratio.denominator


def fit_window(waveform: np.ndarray, config: AudioConfig) -> np.ndarray:
    """A (clip_samples,) window: short clips are centred in silence; long ones are cut around their loudest
    part, centred on its energy (so a short word in a long recording sits mid-window, as in training).

    Near either end of a long recording the window stays inside it, so a word there is off-centre, unless
    config.window_past_edges: the window is then centred on the word and reaches past the end into silence,
    as a short clip's padding does.

    Example:
        >>> config = AudioConfig(sample_rate=1000, clip_seconds=1.0, n_fft=64, hop_length=10, f_max=450.0)
        >>> recording = np.zeros(3000, np.float32)
        >>> recording[:200] = 1.0  # a 0.2 s "word" at the very start of 3 s
        >>> int(np.flatnonzero(fit_window(recording, config))[0])  # kept inside: the word opens the window
        0
        >>> import dataclasses
        >>> int(np.flatnonzero(fit_window(recording, dataclasses.replace(config, window_past_edges=True)))[0])
        400
    """
    length = config.clip_samples
    if waveform.size == length:
        return waveform.astype(np.float32, copy=False)
    if waveform.size < length:
        padded = np.zeros(length, np.float32)
        start = (length - waveform.size) // 2
        padded[start : start + waveform.size] = waveform
        return padded
    best = loudest_window_start(waveform, length, step=max(1, config.hop_length))
    # A word shorter than the window fits in many equally loud windows; centre it, as in training.
    inside = waveform[best : best + length].astype(np.float64) ** 2
    centre = best + float(np.dot(np.arange(length), inside) / max(float(inside.sum()), 1e-20))
    if config.window_past_edges:
        return window_at(waveform, int(round(centre - length / 2)), length)
    start = int(np.clip(round(centre - length / 2), 0, waveform.size - length))
    return waveform[start : start + length].astype(np.float32, copy=False)


def window_at(waveform: np.ndarray, start: int, length: int) -> np.ndarray:
    """The float32 (length,) stretch of a (samples,) waveform from `start` (which may be negative or run past the
    end); samples outside the waveform are silence (0).

    Example:
        >>> window_at(np.array([1.0, 2.0, 3.0]), -1, 3).tolist(), window_at(np.array([1.0, 2.0, 3.0]), 2, 3).tolist()
        ([0.0, 1.0, 2.0], [3.0, 0.0, 0.0])
    """
    window = np.zeros(length, np.float32)
    first, last = max(start, 0), min(start + length, waveform.size)
    if first < last:
        window[first - start : last - start] = waveform[first:last]
    return window


def loudest_window_start(waveform: np.ndarray, window_samples: int, step: int = 1) -> int:
    """Where the `window_samples` long stretch of a (samples,) waveform with the most energy (sum of squares)
    starts, among the starts 0, step, 2·step, …; the earliest of equally loud ones.

    Example:
        >>> loudest_window_start(np.array([0.0, 0.1, 0.0, 0.9, 0.8, 0.0]), 2)
        3
    """
    energy = np.concatenate([[0.0], np.cumsum(waveform.astype(np.float64) ** 2)])
    starts = np.arange(0, waveform.size - window_samples + 1, step)
    return int(starts[np.argmax(energy[starts + window_samples] - energy[starts])])


def hertz_to_mel(frequency: np.ndarray | float) -> np.ndarray:
    """HTK mel scale: 1127 · ln(1 + f / 700)."""
    return 1127.0 * np.log1p(np.asarray(frequency, dtype=np.float64) / 700.0)


def mel_to_hertz(mel: np.ndarray | float) -> np.ndarray:
    """The inverse of hertz_to_mel: 700 · (exp(m / 1127) − 1) Hz."""
    return 700.0 * np.expm1(np.asarray(mel, dtype=np.float64) / 1127.0)


@lru_cache(maxsize=8)
def mel_filterbank(sample_rate: int, n_fft: int, n_mels: int, f_min: float, f_max: float) -> np.ndarray:
    """Triangular mel weights of shape (n_fft // 2 + 1, n_mels), interpolated on the mel scale.

    The same construction as `tf.signal.linear_to_mel_weight_matrix` (the DC bin gets no weight),
    so features match TensorFlow's audio tutorials; a test checks it against TensorFlow.
    """
    n_bins = n_fft // 2 + 1
    bin_mels = hertz_to_mel(np.linspace(0.0, sample_rate / 2.0, n_bins))[1:, None]
    edges = np.linspace(hertz_to_mel(f_min), hertz_to_mel(f_max), n_mels + 2)
    lower, center, upper = edges[:-2], edges[1:-1], edges[2:]
    rising = (bin_mels - lower) / (center - lower)
    falling = (upper - bin_mels) / (upper - center)
    weights = np.maximum(0.0, np.minimum(rising, falling))
    weights = np.vstack([np.zeros((1, n_mels)), weights]).astype(np.float32)
    weights.setflags(write=False)
    return weights


@lru_cache(maxsize=8)
def _window(n_fft: int) -> np.ndarray:
    """Periodic Hann window (n_fft,), as scipy.signal.get_window("hann", n_fft) gives."""
    return np.hanning(n_fft + 1)[:-1].astype(np.float32)


def log_mel_spectrogram(waveforms: np.ndarray, config: AudioConfig, chunk_size: int = 8) -> np.ndarray:
    """Log-mel spectrograms of one or many equal-length windows, vectorised over the batch.

    Args:
        waveforms: (samples,) or (batch, samples) float32 at `config.sample_rate`.
        config: STFT and mel settings.
        chunk_size: clips transformed together; small chunks stay in the CPU cache.

    Returns:
        (time, n_mels) or (batch, time, n_mels) float32 in dB relative to each clip's loudest
        bin: 0 at the maximum, floored at -top_db (then each band's mean removed if subtract_band_mean).
        A clip's level does not change its features.
    """
    single = np.ndim(waveforms) == 1
    batch = np.atleast_2d(np.asarray(waveforms, dtype=np.float32))
    output = np.empty(
        (batch.shape[0], 1 + (batch.shape[1] - config.n_fft) // config.hop_length, config.n_mels), np.float32
    )
    # Squared real and imaginary parts sit side by side, so one product sums them into mel power.
    weights = np.repeat(
        mel_filterbank(config.sample_rate, config.n_fft, config.n_mels, config.f_min, config.f_max), 2, 0
    )
    window = _window(config.n_fft)
    for start in range(0, batch.shape[0], chunk_size):
        chunk = batch[start : start + chunk_size]
        frames = np.lib.stride_tricks.sliding_window_view(chunk, config.n_fft, axis=-1)[:, :: config.hop_length]
        spectrum = scipy.fft.rfft(frames * window, axis=-1).view(np.float32)
        np.square(spectrum, out=spectrum)
        decibels = np.maximum(spectrum @ weights, 1e-10)
        np.log10(decibels, out=decibels)
        decibels *= 10.0
        decibels -= decibels.max(axis=(1, 2), keepdims=True)
        np.maximum(decibels, config.floor_db, out=output[start : start + chunk_size])
        if config.subtract_band_mean:
            output[start : start + chunk_size] -= output[start : start + chunk_size].mean(axis=1, keepdims=True)
    return output[0] if single else output


def load_waveform(source: AudioSource | np.ndarray, config: AudioConfig) -> np.ndarray:
    """A mono float32 waveform (samples,) at `config.sample_rate` from a file, bytes or an array
    (arrays are taken to be at `config.sample_rate` already)."""
    if isinstance(source, np.ndarray):
        return validate_waveform(source)
    return decode_audio(source, config.sample_rate, config.max_decoded_seconds)


def audio_features(source: AudioSource | np.ndarray, config: AudioConfig) -> np.ndarray:
    """Load, window and convert: the (time, n_mels) dB spectrogram a model sees."""
    return log_mel_spectrogram(fit_window(load_waveform(source, config), config), config)


def validate_waveform(waveform: np.ndarray) -> np.ndarray:
    """A user's array as a finite mono float32 waveform (samples,); InputError otherwise."""
    array = np.asarray(waveform)
    if array.ndim == 2 and 1 in array.shape:
        array = array.reshape(-1)
    if array.ndim != 1 or array.size == 0:
        raise InputError(f"expected a mono waveform of shape (samples,); received an array of shape {array.shape}")
    if not np.issubdtype(array.dtype, np.number):
        raise InputError(f"expected a numeric waveform; received dtype {array.dtype}")
    if array.dtype.kind in "iu" and array.dtype.itemsize > 4:  # int64 has no natural full scale: use the peak
        array = array.astype(np.float64) / max(1.0, float(np.max(np.abs(array))))
    array = _to_mono_float(array) if np.issubdtype(array.dtype, np.integer) else array.astype(np.float32)
    if not np.all(np.isfinite(array)):
        raise InputError("the waveform contains invalid samples (NaN or infinity)")
    return np.clip(array, -1.0, 1.0)
