"""`python -m app train` options as the shipped recipes use them, turned into configs and serving views."""

from __future__ import annotations

import pytest

from app.cli import build_parser, preprocessing_from_args, train_config_from_args
from app.config import AudioConfig, ImageConfig
from app.errors import InputError


def preprocessing_for(*options: str, data="data"):
    return preprocessing_from_args(build_parser().parse_args(["train", str(data), "--out", "never", *options]))


def test_no_options_leave_the_defaults_to_training():
    assert preprocessing_for() is None


def test_sample_rate_keeps_frame_and_hop_durations_and_stays_below_nyquist():
    config = preprocessing_for("--sample-rate", "8000")  # the spoken-digits recipe
    assert isinstance(config, AudioConfig)
    assert (config.sample_rate, config.n_fft, config.hop_length) == (8000, 256, 80)  # 32 ms, 10 ms
    assert config.f_max == 3800.0 and config.input_shape == AudioConfig().input_shape  # 97 frames, 40 bands
    assert preprocessing_for("--sample-rate", "8000", "--n-fft", "200").n_fft == 200  # an explicit value wins
    assert preprocessing_for("--subtract-band-mean").subtract_band_mean is True


def test_image_options_override_what_the_data_shows(shape_dataset):
    inferred_only = preprocessing_for("--background", "none", data=shape_dataset)
    assert isinstance(inferred_only, ImageConfig) and inferred_only.background is None
    config = preprocessing_for(
        "--image-size", "48x48", "--channels", "1", "--background", "dark", "--center-content", data=shape_dataset
    )
    assert config.image_size == (48, 48) and config.channels == 1
    assert config.background == "dark" and config.center_content is True


def test_options_that_do_not_fit_together_say_so():
    with pytest.raises(InputError, match="do not fit together"):
        preprocessing_for("--sample-rate", "8000", "--n-fft", "9000")  # a frame longer than the 1 s window


def test_the_views_a_bundle_averages_follow_its_training_augmentation(shape_dataset):
    from app.train import serving_views

    audio = preprocessing_for("--sample-rate", "8000")
    image = preprocessing_for("--image-size", "48x48", data=shape_dataset)

    def views(config, *options):
        args = build_parser().parse_args(["train", "data", "--out", "never", *options])
        return serving_views(config, train_config_from_args(args))

    assert views(audio)["time_shift_frames"] == [-10, -5, 5, 10]  # 50 and 100 ms of 10 ms hops
    assert views(audio, "--no-augment")["time_shift_frames"] == []
    assert views(image)["pixel_shifts"] and not views(image)["average_mirrored"]
    assert views(image, "--horizontal-flip")["average_mirrored"]  # mirrors only when trained on mirrors
    assert views(image, "--horizontal-flip", "--no-augment") == {
        "average_mirrored": False,
        "time_shift_frames": [],
        "pixel_shifts": [],
    }
