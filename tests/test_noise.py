"""Generated noise and mixing at a signal-to-noise ratio."""

from __future__ import annotations

import numpy as np
import pytest

from app import noise
from app.errors import InputError


@pytest.mark.parametrize("kind", noise.NOISE_KINDS)
def test_noise_has_unit_rms(kind):
    generated = noise.make_noise(kind, 16000, np.random.default_rng(0))
    assert generated.shape == (16000,) and generated.dtype == np.float32
    assert np.sqrt(np.mean(generated.astype(np.float64) ** 2)) == pytest.approx(1.0, rel=1e-3)


def test_coloured_noise_falls_with_frequency():
    def low_to_high_power(kind: str) -> float:
        power = np.abs(np.fft.rfft(noise.make_noise(kind, 16000, np.random.default_rng(1)))) ** 2
        return power[50:500].mean() / power[4000:7000].mean()  # 50–500 Hz against 4–7 kHz

    white, pink, brown = (low_to_high_power(kind) for kind in ("white", "pink", "brown"))
    assert white < 2 < pink < brown


def test_unknown_noise_kind():
    with pytest.raises(InputError, match="noise kind"):
        noise.make_noise("purple", 100, np.random.default_rng(0))


def test_add_at_snr_sets_the_ratio_of_rms():
    rng = np.random.default_rng(2)
    signal = np.sin(2 * np.pi * 440 * np.arange(16000) / 16000).astype(np.float32)
    background = noise.make_noise("pink", 16000, rng) * 7.0
    mixed = noise.add_at_snr(signal, background, 20.0)
    added = mixed - signal
    ratio_db = 10 * np.log10(np.mean(signal.astype(np.float64) ** 2) / np.mean(added.astype(np.float64) ** 2))
    assert mixed.dtype == np.float32 and ratio_db == pytest.approx(20.0, abs=0.01)


def test_brown_noise_rises_to_the_lowest_frequency_only_when_asked():
    def share_below_20_hz(flat_below_hz: float) -> float:
        power = np.abs(np.fft.rfft(noise.make_noise("brown", 8000, np.random.default_rng(0), 8000, flat_below_hz))) ** 2
        return float(power[:20].sum() / power.sum())  # 1 Hz bins

    assert share_below_20_hz(20.0) < 0.6 < 0.9 < share_below_20_hz(0.0)


def test_a_room_impulse_response_decays_by_60_db_over_its_rt60():
    rng = np.random.default_rng(0)
    impulse = noise.room_impulse_response(rng, 0.5, 16000, direct_to_reverberant_db=6.0)
    assert impulse.shape == (8000,) and impulse[0] == 1.0
    tail = impulse[1:].astype(np.float64) ** 2
    assert 10 * np.log10(tail.sum()) == pytest.approx(-6.0, abs=1e-3)  # 6 dB below the direct sound
    first, last = tail[:800].mean(), tail[-800:].mean()  # the first and last 50 ms
    assert 10 * np.log10(first / last) == pytest.approx(60.0 * 0.9, abs=4.0)  # 60 dB per RT60, 0.45 s apart


def test_reverberation_keeps_length_and_peak_and_smears_a_click():
    click = np.zeros(4000, np.float32)
    click[100] = 0.5
    impulse = noise.room_impulse_response(np.random.default_rng(1), 0.1, 16000)
    wet = noise.reverberate(click, impulse)
    assert wet.shape == click.shape and np.max(np.abs(wet)) == pytest.approx(0.5, rel=1e-5)
    assert np.count_nonzero(np.abs(wet[101:]) > 1e-4) > 500  # a tail after the click
    assert np.max(np.abs(wet[:100])) < 1e-6  # nothing before it (but rounding)
