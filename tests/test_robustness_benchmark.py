"""The robustness benchmark's conditions on generated audio: each renders a file the pipeline decodes, and does
what its name says (codec, rate, level, noise at an SNR, room, placement)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest

from app.audio import decode_audio

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


def load_robustness():
    sys.path.insert(0, str(BENCHMARKS))
    spec = importlib.util.spec_from_file_location("benchmark_robustness", BENCHMARKS / "robustness.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


robustness = load_robustness()
RATE = robustness.RENDER_RATE


def word(seconds: float = 0.4) -> np.ndarray:
    """A vowel-like burst (200 Hz harmonics under an envelope) at RENDER_RATE, peak 0.5."""
    time_axis = np.arange(int(seconds * RATE)) / RATE
    tone = sum(np.sin(2 * np.pi * 200 * k * time_axis) / k for k in range(1, 8))
    wave = tone * np.hanning(time_axis.size)
    return (0.5 * wave / np.max(np.abs(wave))).astype(np.float32)


def test_every_condition_renders_a_file_the_pipeline_decodes():
    clip = word()
    bank = [np.random.default_rng(1).standard_normal(RATE).astype(np.float32) * 0.01]
    cells = robustness.conditions(robustness.GROUPS, robustness.average_spectrum([("a", Path("a.wav"), clip)]), bank)
    groups = {name.split("/")[0] for name in cells}
    assert groups == set(robustness.GROUPS)
    rng = np.random.default_rng(0)
    for name, render in cells.items():
        decoded = decode_audio(render(rng, clip), 16000)
        assert decoded.size >= 0.4 * 16000 - 200, name
        assert np.max(np.abs(decoded)) > 1e-3, name


@pytest.mark.parametrize("codec", ["webm_opus", "mp4_aac", "mp3_64k", "wav"])
def test_codecs_keep_the_sound(codec):
    if not robustness.encoder_available(robustness.CODECS[codec][1]):
        pytest.skip(f"no {codec} encoder")
    clip = word(0.5)
    decoded = decode_audio(robustness.encode(clip, codec), RATE)
    # lossy codecs delay the start a little: compare energies, not samples
    assert np.sqrt(np.mean(decoded**2)) == pytest.approx(np.sqrt(np.mean(clip**2)), rel=0.25)


def test_levels_noise_and_placement():
    clip = word()
    assert np.max(np.abs(robustness.at_peak(clip, -20.0))) == pytest.approx(0.1, rel=1e-4)
    spectrum = robustness.average_spectrum([("a", Path("a.wav"), clip)])
    noise = robustness.speech_shaped_noise(np.random.default_rng(0), RATE, spectrum)
    assert np.sqrt(np.mean(noise**2)) == pytest.approx(1.0, rel=1e-3)
    # speech-shaped: most of its power near the word's harmonics (200–1400 Hz), little above 4 kHz
    power = np.abs(np.fft.rfft(noise)) ** 2
    frequencies = np.fft.rfftfreq(noise.size, 1 / RATE)
    assert power[(frequencies > 150) & (frequencies < 1500)].sum() > 10 * power[frequencies > 4000].sum()
    for where, expected_start in (("start", 0), ("end", int(3 * RATE) - clip.size)):
        recording = robustness.placed(clip, where)
        assert recording.size == 3 * RATE
        assert np.flatnonzero(recording)[0] == pytest.approx(expected_start, abs=int(0.05 * RATE))


def test_reverberation_lasts_as_long_as_its_rt60():
    impulse = np.zeros(int(0.1 * RATE), np.float32)
    impulse[0] = 1.0
    for rt60 in (0.3, 0.7):
        room = robustness.reverberate(np.random.default_rng(0), impulse, rt60)
        assert room.size == impulse.size + int(rt60 * RATE) - 1
        energy = np.cumsum(room[::-1].astype(np.float64) ** 2)[::-1]  # Schroeder's backward integral
        decay = 10 * np.log10(np.maximum(energy / energy[1], 1e-30))  # the last samples' energy can be 0
        # after the direct sound, the tail falls by 60 dB over rt60 (20 dB over a third of it)
        third = int(rt60 / 3 * RATE)
        assert decay[1 + third] == pytest.approx(-20.0, abs=3.0)


def test_the_grid_of_a_bundle_on_its_held_out_clips(tmp_path, trained_models, tone_dataset, capsys):
    import json

    arguments = [str(tmp_path), "--bundle", str(trained_models / "tones"), "--data", str(tone_dataset)]
    assert robustness.main([*arguments, "--groups", "codec,placement,recording", "--limit", "2"]) == 0
    result = json.loads(capsys.readouterr().out)["tones"]
    assert set(result["cells"]) == {"codec", "placement", "recording"}
    assert set(result["cells"]["placement"]) == {"start", "middle", "end"}
    assert 0 < result["count"] <= 2 * 3 and 0.0 <= result["clean"] <= 1.0
    cells = [value for row in result["cells"].values() for value in row.values()]
    assert result["worst_cell"]["accuracy"] == min(cells)
    assert all(result["clean"] - value > 0.05 for value in result["failing_cells"].values())
    assert result["recorded_noise_files"] == 0  # no speech_commands/_silence_ under this DATA_ROOT
