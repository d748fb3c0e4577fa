"""`python -m app` options: the shipped recipes' turned into configs and serving views, bad ones refused in
one line before anything is written, and the output options (results on stdout, plain log lines on stderr,
native libraries' start-up lines held back unless --verbose). Run in-process, so these checks stay fast."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest

from app import logs
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
    from app.views import serving_views

    audio = preprocessing_for("--sample-rate", "8000")
    image = preprocessing_for("--image-size", "48x48", data=shape_dataset)

    def views(config, *options):
        args = build_parser().parse_args(["train", "data", "--out", "never", *options])
        return serving_views(config, train_config_from_args(args))

    assert views(audio)["time_shift_frames"] == [-10, -5, 5, 10]  # 50 and 100 ms of 10 ms hops
    assert views(audio, "--no-augment")["time_shift_frames"] == []
    assert views(image)["pixel_shifts"] and not views(image)["average_mirrored"]
    assert max(abs(move) for shift in views(image)["pixel_shifts"] for move in shift) == 3  # 1/16 of 48 pixels
    # never further than training moved its images: 1.5 pixels, so whole-pixel views of 1; none without moves
    assert max(abs(move) for shift in views(image, "--translation", "0.03125")["pixel_shifts"] for move in shift) == 1
    assert views(image, "--translation", "0")["pixel_shifts"] == []
    assert views(image, "--horizontal-flip")["average_mirrored"]  # mirrors only when trained on mirrors
    assert views(image, "--horizontal-flip", "--no-augment") == {
        "average_mirrored": False,
        "time_shift_frames": [],
        "pixel_shifts": [],
    }


def run_main(capsys, *argv) -> tuple[int, str, str]:
    """`python -m app ARGV…` in this process: (exit code, stdout, stderr)."""
    from app import cli

    try:
        code = cli.main([str(arg) for arg in argv])
    except SystemExit as exit_:  # argparse's own refusals
        code = exit_.code
    captured = capsys.readouterr()
    return code, captured.out, captured.err


@pytest.mark.parametrize(
    "bad",
    [
        ["--epochs", "0"],
        ["--frequency-warp", "0.7"],
        ["--frequency-warp", "nan"],
        ["--time-stretch", "-0.1"],
        ["--augment-copies", "-1"],
        ["--group-pattern", "("],
        ["--group-pattern", "no-group"],
        ["--clip-seconds", "0.01"],
        ["--sample-rate", "8"],
        ["--n-fft", "1"],
        ["--seed", "-1"],
        ["--mixup", "-0.1"],
        ["--random-erasing", "1"],
        ["--rotation", "-5"],
        ["--zoom", "0.5"],
        ["--translation", "0.6"],
        ["--translation", "0.1"],  # an image option on audio
        ["--validation-percent", "100"],
        ["--test-percent", "nan"],
        ["--learning-rate", "-1"],
        ["--clip-seconds", "0.1"],  # 7 frames: too short for the CNN
        ["--hop-length", "16000"],
        ["--n-mels", "8"],
        ["--image-size", "28x28"],  # an image option on audio
        ["--extra-folder-classes", "zero=0"],  # without --extra-train-data
        ["--horizontal-flip"],  # an image option on audio
    ],
)
def test_a_bad_train_option_is_one_line_naming_it_and_writes_nothing(capsys, tmp_path, tone_dataset, bad):
    code, _, stderr = run_main(capsys, "train", tone_dataset, "--out", tmp_path / "never", "--quiet", *bad)
    named = bad[0] in stderr or bad[0].lstrip("-").replace("-", "_") in stderr  # --n-fft, n_fft
    assert code == 2 and len(stderr.strip().splitlines()) == 1 and named, stderr
    assert not (tmp_path / "never").exists()


@pytest.mark.parametrize("option", [["--sample-rate", "8000"], ["--frequency-warp", "0.1"]])
def test_an_audio_option_on_images_is_refused(capsys, tmp_path, shape_dataset, option):
    code, _, stderr = run_main(capsys, "train", shape_dataset, "--out", tmp_path / "never", *option)
    assert code == 2 and option[0] in stderr and not (tmp_path / "never").exists()


def test_data_command_mistakes_name_the_command_and_the_file(capsys, tmp_path):
    code, _, stderr = run_main(capsys, "data", "synth-speech", tmp_path / "words", "--per-class", "x")
    assert code == 2 and "see `python -m app data synth-speech --help`" in stderr
    (tmp_path / "a-file").write_text("x")
    code, _, stderr = run_main(capsys, "data", "digits", tmp_path / "a-file")
    assert code == 2 and "is a file; expected a new or empty folder" in stderr


def test_training_on_files_none_of_which_can_be_read_says_so(capsys, tmp_path):
    for name in ("yes", "no"):
        (tmp_path / "data" / name).mkdir(parents=True)
        for n in range(3):
            (tmp_path / "data" / name / f"{n}.wav").write_bytes(b"RIFF\x00\x00\x00\x00WAVEnothing")
    code, _, stderr = run_main(capsys, "train", tmp_path / "data", "--out", tmp_path / "never", "--quiet")
    assert code == 2 and "no readable files left in the training or validation split" in stderr
    assert not (tmp_path / "never").exists()


@pytest.mark.parametrize(
    "command",
    [["train", "data", "--out", "never"], ["evaluate", "b", "d"], ["predict", "b", "f"], ["data", "samples"]],
)
def test_every_command_takes_verbose_before_or_after_its_name(command):
    parser = build_parser()
    assert parser.parse_args(command).verbose is False
    assert parser.parse_args([*command, "--verbose"]).verbose is True
    assert parser.parse_args(["--verbose", *command]).verbose is True


def test_log_lines_are_plain_on_stderr_and_leave_no_trace(capsys):
    app_logger, root = logging.getLogger("app.training"), logging.getLogger()
    handlers, levels = list(root.handlers), (root.level, logging.getLogger("app").level)
    with logs.cli_logging():
        app_logger.info("epoch 1/2: loss 0.5")
        app_logger.debug("not shown")
        logging.getLogger("some.library").info("not shown either")
    with logs.cli_logging(quiet=True):
        app_logger.info("hidden by --quiet")
        app_logger.warning("skipped 1 unreadable file")
    with logs.cli_logging(verbose=True):
        app_logger.debug("shown with --verbose")
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.splitlines() == [
        "epoch 1/2: loss 0.5",
        "skipped 1 unreadable file",
        "DEBUG app.training: shown with --verbose",
    ]
    assert root.handlers == handlers and (root.level, logging.getLogger("app").level) == levels


def write_noisy_module(folder: Path, name: str, fails: bool) -> None:
    """A module whose import writes to file descriptor 2 as native code does (and then fails, if asked)."""
    body = f"import os\nos.write(2, b'native start-up line of {name}\\n')\n"
    (folder / f"{name}.py").write_text(body + ("raise ImportError('broken library')\n" if fails else ""))


def test_native_start_up_lines_are_held_back_unless_verbose_or_failing(capfd, monkeypatch, tmp_path):
    monkeypatch.syspath_prepend(str(tmp_path))
    for name, fails in (("quiet_lib", False), ("broken_lib", True), ("loud_lib", False)):
        write_noisy_module(tmp_path, name, fails)
        monkeypatch.delitem(sys.modules, name, raising=False)
    monkeypatch.setattr(logs, "QUIETLY_IMPORTED", "quiet_lib")
    with logs.cli_logging():
        __import__("quiet_lib")
    assert capfd.readouterr().err == ""
    monkeypatch.setattr(logs, "QUIETLY_IMPORTED", "broken_lib")
    with logs.cli_logging(), pytest.raises(ImportError, match="broken library"):
        __import__("broken_lib")
    assert capfd.readouterr().err == "native start-up line of broken_lib\n"  # a failure keeps its message
    monkeypatch.setattr(logs, "QUIETLY_IMPORTED", "loud_lib")
    with logs.cli_logging(verbose=True):
        __import__("loud_lib")
    assert capfd.readouterr().err == "native start-up line of loud_lib\n"
    assert not any(isinstance(finder, logs._QuietFirstImport) for finder in sys.meta_path)


def test_quiet_native_output_holds_back_descriptor_2_and_gives_it_back_on_failure(capfd):
    with logs.quiet_native_output():
        os.write(2, b"INFO: Created TensorFlow Lite XNNPACK delegate for CPU.\n")
    with pytest.raises(ValueError), logs.quiet_native_output():
        os.write(2, b"ERROR: the model needs an operator this runtime lacks\n")
        raise ValueError("could not create the interpreter")
    os.write(2, b"after\n")
    assert capfd.readouterr().err == "ERROR: the model needs an operator this runtime lacks\nafter\n"


def test_predict_prints_results_only():
    """A fresh process, since LiteRT prints its XNNPACK notice once per process."""
    samples = sorted((Path(__file__).resolve().parent.parent / "models" / "mnist" / "samples").rglob("*.png"))[:2]
    bundle = samples[0].parent.parent.parent
    result = subprocess.run(
        [sys.executable, "-m", "app", "predict", bundle, *samples], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0 and result.stderr == ""
    assert [line.startswith('{"file": ') for line in result.stdout.splitlines()] == [True, True]
