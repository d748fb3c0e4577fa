"""Decoding every supported format, the bad-input table, windowing and the log-mel spectrogram."""

from __future__ import annotations

import io
import struct

import av
import numpy as np
import pytest
import scipy.io.wavfile
from fixtures_data import tone

from app.audio import audio_features, decode_audio, fit_window, log_mel_spectrogram, mel_filterbank, validate_waveform
from app.config import AudioConfig
from app.errors import InputError

RATE = 16000


def dominant_frequency(waveform: np.ndarray, sample_rate: int = RATE) -> float:
    spectrum = np.abs(np.fft.rfft(waveform))
    return float(np.argmax(spectrum) * sample_rate / waveform.size)


def wav_bytes(samples: np.ndarray, sample_rate: int = RATE) -> bytes:
    buffer = io.BytesIO()
    scipy.io.wavfile.write(buffer, sample_rate, samples)
    return buffer.getvalue()


def encode_with_pyav(waveform: np.ndarray, container_format: str, codec: str, rate: int, channels: int = 1) -> bytes:
    """Encode a float waveform (at `rate`) with FFmpeg: (samples,) mono, duplicated when channels > 1, or
    (channels, samples)."""
    planar = np.repeat(waveform[None, :], channels, axis=0) if waveform.ndim == 1 else waveform
    planar = planar.astype(np.float32)
    layout = {1: "mono", 2: "stereo", 3: "2.1"}[planar.shape[0]]
    buffer = io.BytesIO()
    with av.open(buffer, mode="w", format=container_format) as container:
        stream = container.add_stream(codec, rate=rate)
        stream.layout = layout
        frame = av.AudioFrame.from_ndarray(planar, format="fltp", layout=layout)
        frame.sample_rate = rate
        for packet in stream.encode(frame):
            container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)
    return buffer.getvalue()


A440 = tone(440.0, seconds=1.0, sample_rate=RATE)


@pytest.mark.parametrize(
    "dtype, scale",
    [(np.uint8, None), (np.int16, 32767), (np.int32, 2**31 - 1), (np.float32, 1.0), (np.float64, 1.0)],
)
def test_wav_sample_formats_decode_to_the_same_tone(dtype, scale):
    if dtype == np.uint8:
        samples = (A440 * 127 + 128).astype(np.uint8)
    else:
        samples = (A440 * scale).astype(dtype)
    waveform = decode_audio(wav_bytes(samples), RATE)
    assert waveform.dtype == np.float32 and waveform.shape == A440.shape
    assert np.max(np.abs(waveform - A440)) < 0.02
    assert abs(dominant_frequency(waveform) - 440) < 20


def test_24_bit_and_extensible_wav_with_three_channels_mixes_to_mono():
    data = encode_with_pyav(A440, "wav", "pcm_s24le", RATE, channels=3)
    assert struct.unpack("<H", data[20:22])[0] == 0xFFFE  # WAVE_FORMAT_EXTENSIBLE
    waveform = decode_audio(data, RATE)
    assert abs(waveform.size - A440.size) < 10
    assert abs(dominant_frequency(waveform) - 440) < 20


def test_stereo_wav_at_44100_is_resampled_and_mixed():
    left = tone(440.0, 1.0, 44100)
    stereo = np.stack([left, left], axis=1)
    waveform = decode_audio(wav_bytes((stereo * 32767).astype(np.int16), 44100), RATE)
    assert abs(waveform.size - RATE) <= 1
    assert abs(dominant_frequency(waveform) - 440) < 20


def test_loud_stereo_is_averaged_the_same_way_from_wav_and_flac():
    channels = np.stack([0.95 * A440 / np.abs(A440).max(), 0.25 * A440 / np.abs(A440).max()])
    from_wav = decode_audio(wav_bytes((channels.T * 32767).astype(np.int16)), RATE)
    from_flac = decode_audio(encode_with_pyav(channels, "flac", "flac", RATE), RATE)
    assert abs(np.abs(from_wav).max() - 0.6) < 0.01  # the mean of the channels: no +3 dB downmix, no clipping
    assert np.max(np.abs(from_flac - from_wav)) < 0.001


@pytest.mark.parametrize(
    "container_format, codec, rate",
    [
        ("flac", "flac", 16000),
        ("ogg", "libopus", 48000),
        ("ogg", "libvorbis", 44100),
        ("mp3", "libmp3lame", 44100),
        ("ipod", "aac", 44100),  # .m4a
        ("webm", "libopus", 48000),  # what browsers record
    ],
)
def test_compressed_formats_decode_with_pyav(container_format, codec, rate):
    if codec not in av.codecs_available:
        pytest.skip(f"this FFmpeg build has no {codec} encoder")
    source = tone(440.0, 1.0, rate)
    waveform = decode_audio(encode_with_pyav(source, container_format, codec, rate), RATE)
    assert 0.9 * RATE < waveform.size < 1.2 * RATE
    assert abs(dominant_frequency(waveform) - 440) < 20


def test_decoding_a_path_and_bytes_agree(tmp_path):
    path = tmp_path / "a.wav"
    path.write_bytes(wav_bytes((A440 * 32767).astype(np.int16)))
    assert np.array_equal(decode_audio(path, RATE), decode_audio(path.read_bytes(), RATE))


def _truncated_wav() -> bytes:
    return wav_bytes((A440 * 32767).astype(np.int16))[:30]


def _zero_channel_wav() -> bytes:
    header = b"RIFF" + struct.pack("<I", 36) + b"WAVE"
    fmt = b"fmt " + struct.pack("<IHHIIHH", 16, 1, 0, RATE, 0, 0, 16)
    return header + fmt + b"data" + struct.pack("<I", 0)


def _absurd_rate_wav() -> bytes:
    data = bytearray(wav_bytes((A440[:100] * 32767).astype(np.int16)))
    struct.pack_into("<I", data, 24, 16_000_001)  # a 2 kB file that would resample to gigabytes
    return bytes(data)


def _nan_wav() -> bytes:
    samples = A440.copy()
    samples[100] = np.nan
    return wav_bytes(samples)


@pytest.mark.parametrize(
    "data, message",
    [
        (b"", "0-byte"),
        (_truncated_wav(), "WAV"),
        (_zero_channel_wav(), "channel"),
        (_nan_wav(), "NaN"),
        (b"%PDF-1.7\n" + bytes(range(256)) * 40, "could not be decoded as audio"),
        (wav_bytes(np.zeros(0, np.int16)), "no audio samples"),
        (_absurd_rate_wav(), "sample rate of 16,000,001 Hz"),
        (b"RIFF\0\0\0\0WAVE" + b"junk" * 12, "damaged WAV file \\(its header or chunks are broken\\)"),
    ],
    ids=["empty", "truncated-header", "zero-channels", "nan-samples", "pdf", "no-samples", "absurd-rate", "no-fmt"],
)
def test_bad_audio_gives_a_clear_input_error(data, message):
    with pytest.raises(InputError, match=message) as raised:
        decode_audio(data, RATE)
    assert "expected" in str(raised.value) or "invalid" in str(raised.value)


def test_integer_waveform_arrays_keep_their_level():
    config = AudioConfig()
    as_int64 = (A440 * 1000).astype(np.int64)
    difference = np.abs(audio_features(as_int64, config) - audio_features(A440, config))
    assert difference.mean() < 0.25 and difference.max() < 3.0  # only rounding to integers differs
    assert np.max(np.abs(validate_waveform(as_int64))) > 0.9  # not mistaken for silence


def test_unsigned_waveform_arrays_are_centred_on_their_middle_value():
    for dtype in (np.uint8, np.uint16, np.uint32):
        middle = 2 ** (8 * np.dtype(dtype).itemsize - 1)
        samples = (middle + A440 * (middle - 1)).astype(dtype)
        assert np.max(np.abs(validate_waveform(samples) - A440)) < 0.02  # uint8 steps are 1/128


def test_too_long_audio_is_rejected_before_it_fills_memory():
    long_flac = encode_with_pyav(np.zeros(16000 * 5, np.float32), "flac", "flac", 16000)
    with pytest.raises(InputError, match="lasts more than 2 s"):
        decode_audio(long_flac, RATE, max_seconds=2.0)
    with pytest.raises(InputError, match="limit is 2 s"):
        decode_audio(wav_bytes(np.zeros(16000 * 5, np.int16)), RATE, max_seconds=2.0)


def test_missing_file_says_so(tmp_path):
    with pytest.raises(InputError, match="no such file"):
        decode_audio(tmp_path / "nothing.wav", RATE)


def test_a_huge_file_is_refused_before_it_is_read(tmp_path):
    from app.sources import MAX_FILE_BYTES

    huge = tmp_path / "huge.wav"
    with open(huge, "wb") as handle:  # sparse: no disk or memory is used
        handle.truncate(MAX_FILE_BYTES + 1)
    megabytes = MAX_FILE_BYTES // 2**20
    with pytest.raises(InputError, match=rf"'huge.wav' is {megabytes} MB; files over {megabytes} MB are refused \("):
        decode_audio(huge, RATE)


def test_fit_window_pads_short_clips_and_centres_the_loudest_second():
    config = AudioConfig()
    short = fit_window(np.ones(4000, np.float32), config)
    assert short.shape == (config.clip_samples,) and short.sum() == 4000
    long = np.zeros(3 * RATE, np.float32)
    long[int(1.7 * RATE) : int(2.2 * RATE)] = 0.5  # the word is between 1.7 s and 2.2 s
    window = fit_window(long, config)
    assert window.shape == (config.clip_samples,)
    assert np.count_nonzero(window) == int(0.5 * RATE)
    word = np.flatnonzero(window)
    assert abs((word[0] + word[-1]) / 2 - RATE / 2) <= 1  # centred, as short clips are in training
    noisy = long + 0.001 * np.random.default_rng(0).standard_normal(long.size).astype(np.float32)
    word = np.flatnonzero(np.abs(fit_window(noisy, config)) > 0.1)
    assert word.size == int(0.5 * RATE) and abs((word[0] + word[-1]) / 2 - RATE / 2) < 0.02 * RATE
    at_the_end = np.zeros(2 * RATE, np.float32)
    at_the_end[-RATE // 4 :] = 0.5  # cannot be centred: the window stops at the end of the recording
    assert np.count_nonzero(fit_window(at_the_end, config)[-RATE // 4 :]) == RATE // 4


@pytest.mark.parametrize("where", ["start", "end"])
def test_window_past_edges_centres_a_word_at_either_end_of_a_recording(where):
    recording = np.zeros(3 * RATE, np.float32)
    word = slice(0, RATE // 4) if where == "start" else slice(3 * RATE - RATE // 4, 3 * RATE)
    recording[word] = 0.5
    inside = fit_window(recording, AudioConfig())  # bundles made before the option: the window stays inside
    assert np.flatnonzero(inside)[0 if where == "start" else -1] == (0 if where == "start" else RATE - 1)
    centred = fit_window(recording, AudioConfig(window_past_edges=True))
    assert centred.shape == (RATE,) and np.count_nonzero(centred) == RATE // 4
    placed = np.flatnonzero(centred)
    assert abs((placed[0] + placed[-1]) / 2 - RATE / 2) <= 1  # as a short clip is padded
    assert np.array_equal(centred, fit_window(recording[word], AudioConfig(window_past_edges=True)))
    middle = np.roll(recording, RATE)  # away from the ends both ways agree
    assert np.array_equal(fit_window(middle, AudioConfig()), fit_window(middle, AudioConfig(window_past_edges=True)))


def test_bundles_made_before_window_past_edges_keep_the_window_inside():
    from app.config import audio_config_from_dict, to_dict

    assert audio_config_from_dict({"n_mels": 40}).window_past_edges is False
    assert audio_config_from_dict(to_dict(AudioConfig(window_past_edges=True))).window_past_edges is True


def test_log_mel_is_vectorised_and_level_independent():
    config = AudioConfig()
    clips = np.stack([fit_window(tone(f, 1.0), config) for f in (300.0, 1000.0, 3000.0)])
    batch = log_mel_spectrogram(clips, config)
    assert batch.shape == (3, config.n_frames, config.n_mels) and batch.dtype == np.float32
    for clip, spectrogram in zip(clips, batch, strict=True):
        np.testing.assert_allclose(log_mel_spectrogram(clip, config), spectrogram, atol=1e-4)
    np.testing.assert_allclose(log_mel_spectrogram(clips[0] * 0.01, config), batch[0], atol=1e-3)
    assert batch.max() == 0.0 and batch.min() >= -config.top_db
    low, high = batch[0].mean(axis=0), batch[2].mean(axis=0)
    assert np.argmax(low) < np.argmax(high)  # higher tones light up higher mel bands


def test_audio_features_accepts_an_array_or_a_file(tmp_path):
    config = AudioConfig()
    path = tmp_path / "t.wav"
    path.write_bytes(wav_bytes((A440 * 32767).astype(np.int16)))
    np.testing.assert_allclose(audio_features(path, config), audio_features(A440, config), atol=0.05)
    with pytest.raises(InputError, match="shape"):
        audio_features(np.zeros((2, 3, 4), np.float32), config)


@pytest.mark.slow
def test_mel_filterbank_matches_tensorflow():
    tf = pytest.importorskip("tensorflow")
    reference = tf.signal.linear_to_mel_weight_matrix(40, 257, 16000, 20.0, 7600.0).numpy()
    np.testing.assert_allclose(mel_filterbank(16000, 512, 40, 20.0, 7600.0), reference, atol=1e-4)


@pytest.mark.parametrize(
    "options, message",
    [
        ({"sample_rate": 8, "n_fft": 2, "hop_length": 1, "f_max": 4.0}, "outside 1000–384000 Hz"),
        ({"hop_length": 0}, "hop_length 0"),
        ({"f_min": 8000.0}, "below f_max"),
        ({"sample_rate": 8000}, "Nyquist"),
    ],
)
def test_impossible_audio_configs_are_refused(options, message):
    with pytest.raises(ValueError, match=message):
        AudioConfig(**options)


def test_a_wav_with_zero_size_fields_is_read_as_ffmpeg_reads_it():
    whole = wav_bytes((A440 * 32767).astype(np.int16))
    data = bytearray(whole)
    data[4:8] = data[40:44] = b"\0\0\0\0"  # what an interrupted or streaming recorder leaves
    np.testing.assert_allclose(decode_audio(bytes(data), RATE), decode_audio(whole, RATE), atol=1e-4)


def test_float_wav_written_at_integer_scale_is_heard_as_the_same_sound():
    config = AudioConfig()
    loud = wav_bytes((A440 * 32767).astype(np.float32))  # float samples up to 32767, not 1
    assert np.max(np.abs(decode_audio(loud, RATE))) == pytest.approx(1.0, abs=1e-6)
    np.testing.assert_allclose(audio_features(loud, config), audio_features(A440, config), atol=0.05)


def test_a_clip_too_short_to_hold_a_word_is_refused():
    with pytest.raises(InputError, match=r"lasts 0\.000 s; expected at least 0\.05 s of sound"):
        decode_audio(wav_bytes(np.array([16000], np.int16)), RATE)
    with pytest.raises(InputError, match=r"lasts 0\.010 s"):
        decode_audio(encode_with_pyav(A440[:160], "flac", "flac", RATE), RATE)
    assert decode_audio(wav_bytes((A440[:800] * 32767).astype(np.int16)), RATE).size == 800  # 0.05 s is enough


def test_encoder_padding_just_past_the_limit_is_allowed():
    just_over = encode_with_pyav(np.zeros(int(RATE * 2.05), np.float32) + 0.1, "flac", "flac", RATE)
    assert decode_audio(just_over, RATE, max_seconds=2.0).size == int(RATE * 2.05)
