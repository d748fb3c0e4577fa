"""An offline synthetic spoken-word dataset made with eSpeak NG (from the `espeakng-loader` wheel).

Every clip is one word spoken by a random English voice (accent × voice variant) at a random rate,
pitch and pitch range, slightly sped up or slowed down, scaled to a random loudness, placed at a
random position in a 1 s window and mixed with generated background noise (white, pink, brown or
mains hum). Clips are 16 kHz PCM16 mono WAV files named `<voice>_nohash_<n>.wav`, so a split that
hashes the part before `_nohash_` keeps each synthetic speaker on one side, as in Speech Commands.

eSpeak NG is not thread-safe: one engine per process, used under a lock, clips made one by one.

Example:
    >>> import tempfile
    >>> with tempfile.TemporaryDirectory() as folder:
    ...     synthesize_dataset(folder, words=["yes", "no"], per_class=2, seed=0, progress=False)
    {'yes': 2, 'no': 2}
"""

from __future__ import annotations

import ctypes
import shutil
import sys
import tempfile
import threading
import zlib
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import numpy as np
from scipy.signal import resample_poly

from app.audio import loudest_window_start
from app.datasets.wav_files import write_wav
from app.errors import InputError
from app.noise import NOISE_KINDS, add_at_snr, make_noise
from app.step_progress import step_progress

# The 30 words of Speech Commands v0.01 (v0.02 adds backward forward follow learn visual).
SPEECH_COMMANDS_WORDS = (
    *("bed", "bird", "cat", "dog", "down", "eight", "five", "four", "go", "happy", "house", "left", "marvin"),
    *("nine", "no", "off", "on", "one", "right", "seven", "sheila", "six", "stop", "three", "tree", "two"),
    *("up", "wow", "yes", "zero"),
)
SILENCE_LABEL = "_silence_"

# English accents shipped in espeak-ng-data/lang/gmw (the name espeak_SetVoiceByName accepts).
ENGLISH_LANGUAGES = (
    "en",  # Great Britain
    "en-us",
    "en-us-nyc",
    "en-029",  # Caribbean
    "en-gb-scotland",
    "en-gb-x-gbclan",  # Lancaster
    "en-gb-x-gbcwmd",  # West Midlands
    "en-gb-x-rp",  # Received Pronunciation
)
# Voice variants from espeak-ng-data/voices/!v that sound like people (robots and monsters left out).
VOICE_VARIANTS = (
    *(f"m{number}" for number in range(1, 8)),
    *(f"f{number}" for number in range(1, 6)),
    *("klatt", "klatt2", "klatt3", "klatt4"),
    *("Alex", "Andrea", "Annie", "Jacky", "Michael", "adam", "anika", "aunty", "belinda", "caleb"),
    *("david", "ed", "edward", "grandma", "grandpa", "iven", "linda", "paul", "quincy", "robert"),
    *("shelby", "steph", "travis"),
)

# espeak_PARAMETER values from speak_lib.h.
_RATE, _VOLUME, _PITCH, _RANGE = 1, 2, 3, 4
_AUDIO_OUTPUT_SYNCHRONOUS = 2
_CHARS_UTF8 = 1
_SynthCallback = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.c_void_p)


@dataclass(frozen=True)
class Voice:
    """How eSpeak speaks one clip."""

    language: str = "en-us"  # one of ENGLISH_LANGUAGES
    variant: str = "m1"  # one of VOICE_VARIANTS
    rate: int = 175  # words per minute (eSpeak accepts 80–450)
    pitch: int = 50  # base pitch, 0–100
    pitch_range: int = 50  # intonation, 0 (monotone) – 100

    @property
    def name(self) -> str:
        """The name espeak_SetVoiceByName takes, e.g. "en-us+f3"."""
        return f"{self.language}+{self.variant}"

    @property
    def speaker_id(self) -> str:
        """A file-name-safe speaker id, e.g. "espeak-en-us-f3"."""
        return f"espeak-{self.language}-{self.variant}".lower()


class SpeechEngine:
    """eSpeak NG from the espeakng-loader wheel, through ctypes.

    eSpeak keeps state between utterances (glottal phase, flutter, its random generator), so the same
    call would sound slightly different each time. To make every clip a function of its text, voice
    and seed only, each `speak` loads a private copy of the library afresh and unloads it after
    (about 2 ms). Calls are serialised by a lock: eSpeak is not thread-safe.
    """

    def __init__(self) -> None:
        import espeakng_loader

        self._data_path = espeakng_loader.get_data_path().encode()
        source = Path(espeakng_loader.get_library_path())
        # A private file name, so handles others hold on the wheel's library never keep ours loaded.
        self._folder = tempfile.TemporaryDirectory(prefix="onepipe-espeak-")
        self._library_path = Path(self._folder.name) / f"private-{source.name}"
        shutil.copyfile(source, self._library_path)
        self._libc = ctypes.CDLL(None) if sys.platform != "win32" else ctypes.cdll.msvcrt
        self._lock = threading.Lock()
        self._chunks: list[np.ndarray] = []
        self._callback = _SynthCallback(self._collect)  # kept alive as long as the engine
        self.sample_rate = 22050  # Hz; confirmed by espeak_Initialize on each call

    def _collect(self, samples, sample_count: int, events) -> int:
        if sample_count > 0:
            self._chunks.append(np.ctypeslib.as_array(samples, shape=(sample_count,)).copy())
        return 0  # 0 = continue

    def _load(self) -> ctypes.CDLL:
        library = ctypes.CDLL(str(self._library_path))
        library.espeak_Initialize.restype = ctypes.c_int
        library.espeak_Initialize.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_char_p, ctypes.c_int]
        library.espeak_SetVoiceByName.argtypes = [ctypes.c_char_p]
        library.espeak_SetParameter.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int]
        library.espeak_ng_SetRandSeed.argtypes = [ctypes.c_long]
        library.espeak_Synth.argtypes = [
            ctypes.c_void_p,
            ctypes.c_size_t,
            ctypes.c_uint,
            ctypes.c_int,
            ctypes.c_uint,
            ctypes.c_uint,
            ctypes.c_void_p,
            ctypes.c_void_p,
        ]
        sample_rate = library.espeak_Initialize(_AUDIO_OUTPUT_SYNCHRONOUS, 0, self._data_path, 0)
        if sample_rate <= 0:
            _unload(library)
            raise RuntimeError(f"espeak_Initialize failed with {sample_rate} (data {self._data_path!r})")
        self.sample_rate = sample_rate
        library.espeak_SetSynthCallback(self._callback)
        return library

    def speak(self, text: str, voice: Voice = Voice(), seed: int = 0) -> np.ndarray:
        """Synthesise `text`; the same text, voice and seed always give the same samples.

        Returns:
            float32 waveform (samples,) in [-1, 1] at `self.sample_rate` Hz (22050).

        Raises:
            InputError: the voice name is unknown to eSpeak.
        """
        encoded = text.encode("utf-8") + b"\0"
        with self._lock:
            library = self._load()
            try:
                if library.espeak_SetVoiceByName(voice.name.encode()) != 0:
                    raise InputError(f"eSpeak has no voice {voice.name!r}; expected <language>+<variant>")
                for parameter, value in (
                    (_RATE, voice.rate),
                    (_PITCH, voice.pitch),
                    (_RANGE, voice.pitch_range),
                    (_VOLUME, 100),
                ):
                    library.espeak_SetParameter(parameter, int(value), 0)
                library.espeak_ng_SetRandSeed(seed)  # eSpeak's own generator
                self._libc.srand(seed)  # and libc's, which it also uses for breath noise
                self._chunks = []
                library.espeak_Synth(encoded, len(encoded), 0, 0, 0, _CHARS_UTF8, None, None)
                chunks, self._chunks = self._chunks, []
            finally:
                library.espeak_Terminate()
                _unload(library)
        if not chunks:
            return np.zeros(0, dtype=np.float32)
        return np.concatenate(chunks).astype(np.float32) / 32768.0


def _unload(library: ctypes.CDLL) -> None:
    import _ctypes

    close = getattr(_ctypes, "dlclose", None) or getattr(_ctypes, "FreeLibrary", None)
    if close is not None:
        close(library._handle)


_engine: SpeechEngine | None = None
_engine_lock = threading.Lock()


def engine() -> SpeechEngine:
    """The process-wide eSpeak engine (a private copy of the library in a temporary folder)."""
    global _engine
    with _engine_lock:
        if _engine is None:
            _engine = SpeechEngine()
        return _engine


def english_voices() -> list[tuple[str, str]]:
    """Every (language, variant) pair used for synthetic speakers (accents × variants)."""
    return [(language, variant) for language in ENGLISH_LANGUAGES for variant in VOICE_VARIANTS]


def random_voice(language: str, variant: str, rng: np.random.Generator) -> Voice:
    """A voice with random rate (130–240 wpm), pitch (15–85) and pitch range (10–90)."""
    return Voice(
        language=language,
        variant=variant,
        rate=int(rng.integers(130, 241)),
        pitch=int(rng.integers(15, 86)),
        pitch_range=int(rng.integers(10, 91)),
    )


def change_rate(waveform: np.ndarray, from_rate: int, to_rate: int, speed: float = 1.0) -> np.ndarray:
    """Resample (samples,) from `from_rate` to `to_rate` Hz, played `speed` times faster.

    A speed other than 1 shifts pitch and formants together, like a shorter or longer vocal tract.
    """
    ratio = Fraction(to_rate, from_rate) / Fraction(speed).limit_denominator(100)
    ratio = ratio.limit_denominator(2000)
    return resample_poly(waveform, ratio.numerator, ratio.denominator).astype(np.float32)


def trim_silence(waveform: np.ndarray, threshold: float = 0.02) -> np.ndarray:
    """Drop leading and trailing samples quieter than `threshold` × the peak."""
    if waveform.size == 0:
        return waveform
    loud = np.flatnonzero(np.abs(waveform) > threshold * np.max(np.abs(waveform)))
    if loud.size == 0:
        return waveform[:0]
    return waveform[loud[0] : loud[-1] + 1]


def place_in_window(speech: np.ndarray, window_samples: int, rng: np.random.Generator) -> np.ndarray:
    """Put (samples,) speech at a random offset in a silent window; too long speech keeps its loudest part."""
    window = np.zeros(window_samples, dtype=np.float32)
    if speech.size > window_samples:
        start = loudest_window_start(speech, window_samples)
        speech = speech[start : start + window_samples]
    offset = int(rng.integers(0, window_samples - speech.size + 1))
    window[offset : offset + speech.size] = speech
    return window


def _decibels_to_gain(decibels: float) -> float:
    return float(10.0 ** (decibels / 20.0))


def add_generated_background_noise(
    clip: np.ndarray,
    rng: np.random.Generator,
    sample_rate: int,
    signal_to_noise_range: tuple[float, float] = (0.0, 40.0),
) -> np.ndarray:
    """A clip (samples,) plus generated background noise of a random kind (white, pink, brown or hum) at a
    random signal-to-noise ratio; one time in four the clip is returned as it is.

    Args:
        clip: float waveform (samples,).
        rng: the random generator.
        sample_rate: Hz.
        signal_to_noise_range: (lowest, highest) ratio of the clip's RMS to the noise's, in dB.
    """
    if rng.random() < 0.25:
        return clip
    kind = str(rng.choice(NOISE_KINDS))
    noise = make_noise(kind, clip.size, rng, sample_rate)
    return add_at_snr(clip, noise, rng.uniform(*signal_to_noise_range))


def to_pcm16(waveform: np.ndarray) -> np.ndarray:
    """Float (samples,) in [-1, 1] to int16, scaled down first if it would clip."""
    peak = float(np.max(np.abs(waveform))) if waveform.size else 0.0
    if peak > 0.99:
        waveform = waveform * (0.99 / peak)
    return np.round(waveform * 32767.0).astype(np.int16)


def synthesize_word(
    word: str,
    voice: Voice,
    rng: np.random.Generator,
    sample_rate: int = 16000,
    clip_seconds: float = 1.0,
    signal_to_noise_range: tuple[float, float] = (0.0, 40.0),
) -> np.ndarray:
    """One clip of `word`: speech at a random speed, loudness and position, plus background noise.

    Args:
        word: what to say.
        voice: accent, variant, rate and pitch.
        rng: the random generator (speed, loudness, position, noise, eSpeak's seed).
        sample_rate: Hz of the result.
        clip_seconds: window length.
        signal_to_noise_range: (lowest, highest) speech-to-noise ratio in dB.

    Returns:
        int16 waveform (sample_rate × clip_seconds,).
    """
    speech_engine = engine()
    speech = trim_silence(speech_engine.speak(word, voice, seed=int(rng.integers(0, 2**31))))
    speed = float(rng.uniform(0.9, 1.12))
    speech = change_rate(speech, speech_engine.sample_rate, sample_rate, speed)
    rms = np.sqrt(np.mean(speech.astype(np.float64) ** 2)) if speech.size else 0.0
    loudness = rng.uniform(-34.0, -12.0)  # dBFS RMS of the speech
    speech = speech * (_decibels_to_gain(loudness) / max(rms, 1e-9))
    clip = place_in_window(speech, round(sample_rate * clip_seconds), rng)
    return to_pcm16(add_generated_background_noise(clip, rng, sample_rate, signal_to_noise_range))


def synthesize_silence(rng: np.random.Generator, sample_rate: int = 16000, clip_seconds: float = 1.0) -> np.ndarray:
    """A `_silence_` clip: one or two generated noises from -75 to -25 dBFS RMS.

    Returns:
        int16 waveform (sample_rate × clip_seconds,).
    """
    sample_count = round(sample_rate * clip_seconds)
    clip = np.zeros(sample_count, dtype=np.float32)
    for _ in range(int(rng.integers(1, 3))):
        kind = str(rng.choice(NOISE_KINDS))
        level = _decibels_to_gain(rng.uniform(-75.0, -25.0))
        clip += level * make_noise(kind, sample_count, rng, sample_rate)
    return to_pcm16(clip)


def stable_number(text: str) -> int:
    """A number from text that is the same in every process (unlike hash())."""
    return zlib.crc32(text.encode("utf-8"))


def synthesize_class(
    out_dir: str | Path,
    label: str,
    count: int,
    seed: int = 0,
    text: str | None = None,
    sample_rate: int = 16000,
    voices: Sequence[tuple[str, str]] | None = None,
    on_clip: Callable[[], None] | None = None,
    share_label: bool = False,
) -> list[Path]:
    """Write `count` clips of one class into `out_dir/label/`.

    Each class gets its own random stream (from the seed and the label), so adding a word does not
    change the clips of the others. Voices are dealt in a shuffled cycle, so a class covers as many
    speakers as it has clips.

    Args:
        out_dir: dataset root.
        label: class folder name; SILENCE_LABEL makes noise-only clips.
        count: clips to write.
        seed: random seed.
        text: what to say (default: the label).
        sample_rate: Hz of the written WAV files.
        voices: (language, variant) pairs to draw from (default: english_voices()).
        on_clip: called after each clip (progress bars).
        share_label: several texts share this label (e.g. `_unknown_`): the text gets its own random
            stream and prefixes the file names, `<text>_<voice>_nohash_<n>.wav`, as in Speech Commands.

    Returns:
        The written files.
    """
    stream = stable_number(f"{label}/{text}") if share_label else stable_number(label)
    prefix = f"{text}_" if share_label else ""
    rng = np.random.default_rng([seed, stream])
    voices = list(voices or english_voices())
    order = rng.permutation(len(voices))
    class_dir = Path(out_dir) / label
    written = []
    for index in range(count):
        clip_rng = np.random.default_rng([seed, stream, index])
        if label == SILENCE_LABEL:
            samples = synthesize_silence(clip_rng, sample_rate)
            path = class_dir / f"noise{index:05d}_nohash_0.wav"
        else:
            language, variant = voices[order[index % len(voices)]]
            voice = random_voice(language, variant, clip_rng)
            samples = synthesize_word(text or label, voice, clip_rng, sample_rate)
            path = class_dir / f"{prefix}{voice.speaker_id}_nohash_{index // len(voices)}.wav"
        write_wav(path, sample_rate, samples)
        written.append(path)
        if on_clip:
            on_clip()
    return written


def synthesize_dataset(
    out_dir: str | Path,
    words: Iterable[str] = SPEECH_COMMANDS_WORDS,
    per_class: int = 100,
    seed: int = 0,
    sample_rate: int = 16000,
    silence: int = 0,
    progress: bool = True,
) -> dict[str, int]:
    """Write a synthetic spoken-word dataset `out_dir/<word>/<voice>_nohash_<n>.wav`.

    Args:
        out_dir: dataset root (created).
        words: one class per word; letters, digits, spaces, apostrophes and hyphens only. "LABEL=TEXT"
            says TEXT into the folder LABEL (e.g. "7=seven").
        per_class: clips per word.
        seed: random seed; the same seed gives the same files.
        sample_rate: Hz of the 1 s PCM16 mono WAV files.
        silence: if > 0, also write that many noise-only clips into `_silence_/`.
        progress: show a progress bar.

    Returns:
        Clips written per class, e.g. {"yes": 100, ...}.

    Raises:
        InputError: a word is empty or not a plain word, or a count is negative.
    """
    texts: dict[str, list[str]] = {}
    for entry in dict.fromkeys(words):
        label, _, text = entry.partition("=") if "=" in entry else (entry, "", entry)
        for part in (label, text):
            if not part or not all(character.isalnum() or character in " '-_" for character in part):
                raise InputError(
                    f"cannot use {entry!r} as a word; expected letters, digits, spaces or hyphens, "
                    "optionally as LABEL=TEXT (e.g. 7=seven; repeat a LABEL to give it several words)"
                )
        texts.setdefault(label, []).append(text)
    if per_class < 0 or silence < 0:
        raise InputError(f"received per_class={per_class}, silence={silence}; expected counts ≥ 0")
    counts = {label: per_class for label in texts} | ({SILENCE_LABEL: silence} if silence else {})
    with step_progress(sum(counts.values()), "synthesis", "clip", progress) as bar:
        for label, label_texts in texts.items():
            shared = len(label_texts) > 1
            for number, text in enumerate(label_texts):  # per_class spread over the label's texts
                count = per_class // len(label_texts) + (number < per_class % len(label_texts))
                synthesize_class(
                    out_dir,
                    label,
                    count,
                    seed,
                    text=text,
                    sample_rate=sample_rate,
                    on_clip=bar.update,
                    share_label=shared,
                )
        if silence:
            synthesize_class(out_dir, SILENCE_LABEL, silence, seed, sample_rate=sample_rate, on_clip=bar.update)
    return counts
