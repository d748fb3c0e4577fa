"""Command line: `python -m app train | evaluate | predict | calibrate | data`.

Results go to stdout (JSON lines, the evaluation table); progress, log lines and errors to stderr. Exit codes:
0 on success, 1 on an unexpected error, 2 with a one-line message on bad input or arguments, 130 when
interrupted. `--verbose` shows debug lines and the native libraries' start-up lines (app.logs).

Example:
    python -m app train data/fsdd --out models/my-digits --group-pattern '^[^_]+_([^_]+)_'
    python -m app evaluate models/my-digits data/fsdd --json
    python -m app predict models/my-digits clip.wav --top-k 3
"""

from __future__ import annotations

import argparse
import contextlib
import json
import re
import shlex
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from app.config import MAX_SAMPLE_RATE, MIN_SAMPLE_RATE, AudioConfig, ImageConfig, TrainConfig
from app.errors import InputError, OnePipeError
from app.model import MIN_INPUT_SIZE, NETWORKS

USAGE_ERROR = 2
EXIT_CODES = """\
exit codes: 0 done; 1 an unexpected error (predict still answers for the other files); 2 bad input or
arguments, with a one-line message; 130 interrupted with Ctrl-C.
results go to stdout (JSON lines, the evaluation table); progress, log lines and errors to stderr."""
VERBOSE_HELP = "also show debug lines and what TensorFlow, absl, oneDNN and LiteRT print as they start"
QUIET_HELP = "no progress bars or per-epoch lines: only warnings and errors on stderr"


class _Parser(argparse.ArgumentParser):
    """argparse that exits with code 2 and a one-line message (its default prints usage, also code 2)."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(USAGE_ERROR, f"error: {message} (see `{self.prog} --help`)\n")


def _image_size(text: str) -> tuple[int, int]:
    try:
        parts = [int(p) for p in text.lower().replace("x", ",").split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected HEIGHTxWIDTH such as 28x28; received {text!r}") from None
    if len(parts) == 1:
        parts *= 2
    if len(parts) != 2 or min(parts) < MIN_INPUT_SIZE or max(parts) > 512:
        raise argparse.ArgumentTypeError(f"expected HEIGHTxWIDTH between {MIN_INPUT_SIZE} and 512; received {text!r}")
    return parts[0], parts[1]


def _bounded(parse, low: float, below: float | None, expected: str):
    """An argparse type: `parse(text)` within [low, below), else a message saying what was expected."""

    def convert(text: str):
        try:
            value = parse(text)
        except ValueError:
            value = None
        if value is None or not low <= value or (below is not None and not value < below):  # NaN fails too
            raise argparse.ArgumentTypeError(f"expected {expected}; received {text!r}")
        return value

    return convert


_positive_int = _bounded(int, 1, None, "a whole number of at least 1")
_non_negative_int = _bounded(int, 0, None, "a whole number of at least 0")
_warp_fraction = _bounded(float, 0.0, 0.5, "a fraction from 0 to below 0.5 such as 0.1")
_percent = _bounded(float, 0.0, 100.0, "a percentage from 0 to below 100")
_degrees = _bounded(float, 0.0, 180.0, "an angle in degrees from 0 to below 180 such as 10")
_probability = _bounded(float, 0.0, 1.0, "a probability from 0 to below 1 such as 0.5")
_seed = _bounded(int, 0, 2**32, "a whole number from 0 to 4294967295")
_sample_rate = _bounded(
    int, MIN_SAMPLE_RATE, MAX_SAMPLE_RATE + 1, f"a rate in Hz from {MIN_SAMPLE_RATE} to {MAX_SAMPLE_RATE} such as 16000"
)
_clip_seconds = _bounded(float, 0.1, 30.0, "seconds from 0.1 to below 30 such as 1.0")
_temperature = _bounded(float, 0.1, 100.0, "a temperature from 0.1 to below 100 such as 2")
_learning_rate = _bounded(float, 1e-7, 10.0, "a positive rate below 10 such as 0.002")
_mixup_alpha = _bounded(float, 0.0, 10.0, "a Beta distribution parameter from 0 to below 10 such as 0.2")
_DEFAULTS = TrainConfig()  # what an option left out means, for the help texts


def _names(text: str) -> tuple[str, ...]:
    names = tuple(name.strip() for name in text.split(",") if name.strip())
    if not names:
        raise argparse.ArgumentTypeError(f"expected comma-separated names such as lucas,theo; received {text!r}")
    return names


def _folder_class(text: str) -> tuple[str, str]:
    folder, _, class_name = text.partition("=")
    if not folder.strip() or not class_name.strip():
        raise argparse.ArgumentTypeError(f"expected FOLDER=CLASS such as zero=0; received {text!r}")
    return folder.strip(), class_name.strip()


def _group_pattern(text: str) -> str:
    try:
        groups = re.compile(text).groups
    except re.error as error:
        raise argparse.ArgumentTypeError(f"{text!r} is not a regular expression ({error})") from None
    if groups < 1:
        raise argparse.ArgumentTypeError(f"{text!r} needs a (group) around the speaker part of the name")
    return text


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="python -m app",
        description="Train, evaluate and use OnePipe models; make, download and convert datasets.",
        epilog=EXIT_CODES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("-v", "--verbose", action="store_true", help=VERBOSE_HELP)
    commands = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    train = commands.add_parser(
        "train",
        help="train the CNN on DATA_DIR/<class>/<files> and write a bundle",
        description="Train the CNN on a folder of class folders of audio clips or images and write a bundle "
        "(model.keras, model.tflite, metadata.json, report.png). Prints one JSON line with the accuracies "
        "on stdout. Example: python -m app train my_data --out models/my-model",
    )
    train.add_argument("data_dir", type=Path, help="class-folder dataset: DATA_DIR/<class>/<file>")
    train.add_argument(
        "--out",
        type=Path,
        required=True,
        help="bundle folder to write, e.g. models/my-model (the dashboard lists the bundles in models/)",
    )
    train.add_argument("--kind", choices=("audio", "image"), help="force the data kind (default: detect)")
    train.add_argument(
        "--extra-train-data",
        type=Path,
        action="append",
        default=[],
        metavar="DIR",
        help="another class-folder dataset used for training only (repeatable), e.g. synthetic speech",
    )
    train.add_argument(
        "--extra-folder-classes",
        type=_folder_class,
        nargs="+",
        default=[],
        metavar="FOLDER=CLASS",
        help="in the extra training data, read folder FOLDER as class CLASS, e.g. zero=0 one=1",
    )
    train.add_argument(
        "--epochs",
        type=_positive_int,
        help=f"maximum epochs (early stopping may end sooner; default {_DEFAULTS.epochs})",
    )
    train.add_argument("--batch-size", type=_positive_int, help=f"default {_DEFAULTS.batch_size}")
    train.add_argument("--seed", type=_seed, help=f"default {_DEFAULTS.seed}")
    train.add_argument(
        "--learning-rate",
        type=_learning_rate,
        help=f"peak of the cosine schedule (default {_DEFAULTS.learning_rate:g})",
    )
    train.add_argument(
        "--patience",
        type=_positive_int,
        help=f"epochs without validation gain before stopping (default {_DEFAULTS.patience})",
    )
    train.add_argument(
        "--validation-percent",
        type=_percent,
        help="share of speakers (or files) that chooses the best epoch (default 10; a validation_list.txt wins); "
        "0: train for all --epochs and keep the last weights; with --test-percent 0 as well, on every file "
        "(list files ignored), for a final model once the recipe is measured",
    )
    train.add_argument(
        "--test-percent", type=_percent, help="share of speakers (or files) scored at the end (default 10)"
    )
    train.add_argument(
        "--split-salt",
        metavar="TEXT",
        help="text mixed into the hash that splits the files, so that other speakers are drawn for validation "
        "and test; needed when DATA_DIR is itself one set of that split, as Speech Commands' official test set "
        "is (e.g. --split-salt onepipe). Default: none, which reproduces Speech Commands' own split",
    )
    train.add_argument(
        "--validation-groups",
        type=_names,
        metavar="NAME[,NAME…]",
        help="speakers (as --group-pattern finds them) held out whole for validation; the rest train",
    )
    train.add_argument("--test-groups", type=_names, metavar="NAME[,NAME…]", help="speakers held out whole for test")
    train.add_argument("--no-augment", action="store_true", help="turn off augmentation")
    train.add_argument(
        "--augment-copies",
        type=_non_negative_int,
        help=f"audio: waveform variants per training clip (default {_DEFAULTS.augment_copies})",
    )
    train.add_argument(
        "--noise-from-silence", action="store_true", help="audio: mix `_silence_` training clips in as background noise"
    )
    train.add_argument(
        "--reverberation",
        type=_probability,
        metavar="P",
        help="audio: play a share P of the waveform variants in a random synthetic room (echo; e.g. 0.5)",
    )
    train.add_argument(
        "--frequency-warp",
        type=_warp_fraction,
        metavar="FRACTION",
        help="audio: scale each spectrogram's frequencies by up to ±FRACTION per epoch (e.g. 0.1)",
    )
    train.add_argument(
        "--time-stretch",
        type=_warp_fraction,
        metavar="FRACTION",
        help="audio: make each spectrogram up to (1 + FRACTION) times longer or shorter per epoch (e.g. 0.3)",
    )
    train.add_argument(
        "--weight-averaging", action="store_true", help="keep a moving average of the weights (EMA) and ship it"
    )
    train.add_argument("--horizontal-flip", action="store_true", help="images: random left-right flips")
    train.add_argument(
        "--rotation", type=_degrees, metavar="DEGREES", help="images: largest random rotation (default 10)"
    )
    train.add_argument(
        "--zoom", type=_warp_fraction, metavar="FRACTION", help="images: largest random scaling ±FRACTION (default 0.1)"
    )
    train.add_argument(
        "--translation",
        type=_warp_fraction,
        metavar="FRACTION",
        help="images: largest random move, as a fraction of the size in each direction (default 0.125)",
    )
    train.add_argument(
        "--random-erasing",
        type=_probability,
        metavar="P",
        help="images: fill one random patch of a training image with noise, with probability P (e.g. 0.5)",
    )
    train.add_argument(
        "--mixup",
        type=_mixup_alpha,
        metavar="ALPHA",
        help="blend training examples in pairs by a Beta(ALPHA, ALPHA) weight, inputs and targets (e.g. 0.2)",
    )
    train.add_argument(
        "--group-pattern",
        type=_group_pattern,
        metavar="REGEX",
        help="regular expression whose first (group) is the speaker or source in a file name, so that one "
        "speaker's files stay in one set; e.g. '^[^_]+_([^_]+)_' takes 'george' from 7_george_12.wav "
        "(default: the text before _nohash_, as in Speech Commands, else the whole name)",
    )
    train.add_argument("--image-size", type=_image_size, help="images: HEIGHTxWIDTH (default: from the data)")
    train.add_argument("--channels", type=int, choices=(1, 3), help="images: 1 grey or 3 RGB (default: from the data)")
    train.add_argument("--background", choices=("dark", "light", "none"), help="images: background of the data")
    train.add_argument("--center-content", action="store_true", help="images: crop and centre strokes (digits)")
    train.add_argument("--sample-rate", type=_sample_rate, help="audio: Hz (default 16000)")
    train.add_argument("--clip-seconds", type=_clip_seconds, help="audio: window length (default 1.0)")
    train.add_argument("--n-mels", type=_positive_int, help="audio: mel bands (default 40)")
    train.add_argument("--n-fft", type=_positive_int, help="audio: samples per STFT frame (default 512 at 16 kHz)")
    train.add_argument("--hop-length", type=_positive_int, help="audio: samples between frames (default 160 at 16 kHz)")
    train.add_argument(
        "--subtract-band-mean", action="store_true", help="audio: remove each mel band's mean (microphone colour)"
    )
    train.add_argument(
        "--window-past-edges",
        action="store_true",
        help="audio: centre a word near either end of a long recording in its window, as a short clip is "
        "(the window reaches past the end into silence)",
    )
    train.add_argument("--force", action="store_true", help="replace an existing bundle")
    train.add_argument(
        "--resume",
        action="store_true",
        help="continue a killed run of this same command from its last completed epoch (its checkpoint is kept in "
        "a hidden .NAME.checkpoint folder beside --out until the bundle is written); without it a run starts afresh",
    )
    train.add_argument(
        "--init-from",
        type=Path,
        metavar="BUNDLE",
        help="start from the trained layers of BUNDLE (e.g. models/speech-commands), with a new output layer for "
        "these classes: few examples then reach voices or scenes they lack; BUNDLE must be of the same kind, "
        "preprocessing and input shape (refused otherwise)",
    )
    train.add_argument(
        "--network",
        choices=NETWORKS,
        help="article: the CNN every shipped bundle is (two 32-filter convolutions, a 64-unit layer; default); "
        "teacher: a larger network (six convolutions, about six times the work) whose bundle teaches the first "
        "one through --distill-from",
    )
    train.add_argument(
        "--distill-from",
        type=Path,
        metavar="BUNDLE",
        help="mix what BUNDLE (trained with --network teacher) answers for each training example into its target: "
        "a small network that underfits learns more from a larger one's answers than from the labels alone; BUNDLE "
        "must have the same kind, classes and preprocessing (its image size may differ)",
    )
    train.add_argument(
        "--distill-weight",
        type=_probability,
        help=f"with --distill-from: the teacher's share of each target (default {_DEFAULTS.distill_weight:g})",
    )
    train.add_argument(
        "--distill-temperature",
        type=_temperature,
        help="with --distill-from: softens the teacher's answers, p to the power 1/T renormalised (default "
        f"{_DEFAULTS.distill_temperature:g})",
    )
    train.add_argument(
        "--distribute",
        choices=("none", "mirrored", "multi-worker"),
        default="none",
        help="none: this process (default); mirrored: every local GPU; multi-worker: one process per machine, "
        "each started with the same command and its own TF_CONFIG (README: Training on more machines)",
    )
    train.add_argument("-q", "--quiet", action="store_true", help=QUIET_HELP)
    train.add_argument(
        "--progress",
        choices=("auto", "jsonl"),
        default="auto",
        help="auto: progress for people, on stderr (default); jsonl: also, before the summary line on stdout, one "
        'JSON object per line for a program that watches the run: {"event": "phase", …} and {"event": "epoch", …} '
        "with each epoch's loss and accuracy and an ETA",
    )
    train.set_defaults(func=_train)

    evaluate = commands.add_parser(
        "evaluate",
        help="evaluate a bundle on every file under DATA_DIR",
        description="Score a bundle on every file of DATA_DIR/<class>/<file> whose class it knows, with the "
        "bundle's own preprocessing, and print the accuracy overall and per class (it notes when the bundle "
        "trained on that folder). Example: python -m app evaluate models/my-model my_data",
    )
    evaluate.add_argument("bundle_dir", type=Path, help="a bundle folder, e.g. models/spoken-digits")
    evaluate.add_argument("data_dir", type=Path, help="class-folder dataset: DATA_DIR/<class>/<file>")
    evaluate.add_argument("--json", action="store_true", help="print one JSON object instead of the table")
    evaluate.add_argument("-q", "--quiet", action="store_true", help=QUIET_HELP)
    evaluate.set_defaults(func=_evaluate)

    predict = commands.add_parser(
        "predict",
        help="predict files; one JSON line per file",
        description="Print one JSON line per file on stdout: {file, predictions: [{label, score}, …]} with the "
        "highest score first (and familiar: false when the file is unlike the bundle's training data, true "
        "otherwise, for bundles with a familiarity threshold), or {file, error}. Example: python -m app predict "
        "models/spoken-digits clip.wav",
    )
    predict.add_argument("bundle_dir", type=Path, help="a bundle folder, e.g. models/spoken-digits")
    predict.add_argument("files", type=Path, nargs="+", help="audio clips or images, in any common format")
    predict.add_argument("--top-k", type=_positive_int, default=5, help="labels per file (default 5)")
    predict.add_argument(
        "--explain",
        type=Path,
        metavar="OUT_DIR",
        help="also write, per file, OUT_DIR/<file name>.png: the spectrogram or picture the model saw, brighter "
        "where masking a part lowered the top label's score most (its path is the JSON line's explanation)",
    )
    predict.set_defaults(func=_predict)

    calibrate = commands.add_parser(
        "calibrate",
        help="fit a bundle's calibration and familiarity threshold on files it did not train on",
        description="Fit the temperature that makes a bundle's scores calibrated probabilities, and the familiarity "
        "threshold below which an input is said to be unlike its training data, on labelled files the bundle did "
        "not train on, and write both into its metadata.json (the model files stay as they are). DATA_DIR is the "
        "bundle's own training folder (its held-out split is used) or another class-folder dataset; --from copies "
        "them from a bundle of the same recipe instead, or, given several, fits them on the held-out files of all "
        "of them. Prints one JSON line. Example: python -m app calibrate models/my-model my_data",
    )
    calibrate.add_argument("bundle_dir", type=Path, help="the bundle to calibrate, e.g. models/my-model")
    calibrate.add_argument(
        "data_dir",
        type=Path,
        nargs="?",
        help="class-folder dataset: DATA_DIR/<class>/<file>; with several --from bundles, where the folder they "
        "trained on is now (default: where they recorded it)",
    )
    calibrate.add_argument(
        "--from",
        dest="from_bundles",
        type=Path,
        nargs="+",
        metavar="OTHER_BUNDLE",
        help="copy the calibration and threshold of OTHER_BUNDLE, of the same classes, kind and preprocessing "
        "(e.g. the measured run of a bundle that trained on every file); given several such runs that held out "
        "different files, fit them anew on all their held-out files, each scored by its own run, and report "
        "ece_cross_fitted",
    )
    calibrate.add_argument(
        "--familiarity",
        choices=("auto", "max_score", "first_layer_mahalanobis"),
        default="auto",
        help="what the familiarity threshold measures: max_score, the top calibrated probability; "
        "first_layer_mahalanobis, the distance from the classes' own files in the statistics of the model's first "
        "layer (needs 40 files of every class); auto (default), the second for pictures when it can be fitted",
    )
    calibrate.add_argument("-q", "--quiet", action="store_true", help=QUIET_HELP)
    calibrate.set_defaults(func=_calibrate)

    from app.datasets import cli as data_cli

    data_cli.register(commands)
    for command in _leaf_parsers(parser):
        if "--verbose" not in command._option_string_actions:
            command.add_argument("-v", "--verbose", action="store_true", default=argparse.SUPPRESS, help=VERBOSE_HELP)
    return parser


def _leaf_parsers(parser: argparse.ArgumentParser) -> list[argparse.ArgumentParser]:
    """The parsers of the commands a user runs (train, data download …), below `parser`'s subcommands."""
    subcommands = [action for action in parser._actions if isinstance(action, argparse._SubParsersAction)]
    if not subcommands:
        return [parser]
    leaves = {}
    for action in subcommands:
        for command in action.choices.values():
            leaves.update({id(leaf): leaf for leaf in _leaf_parsers(command)})
    return list(leaves.values())


def _train(args: argparse.Namespace) -> int:
    with _progress_events(args.progress):
        return _train_and_report(args)


def _progress_events(progress: str) -> contextlib.AbstractContextManager:
    """With `--progress jsonl`, every training event as one JSON line on stdout (app.training.events), before
    the summary line."""
    if progress != "jsonl":
        return contextlib.nullcontext()
    from app.training.events import jsonl_writer, listening

    return listening(jsonl_writer(sys.stdout))


def _train_and_report(args: argparse.Namespace) -> int:
    from app.training.train import train

    if args.extra_folder_classes and not args.extra_train_data:
        raise InputError("--extra-folder-classes names folders of the extra training data; add --extra-train-data DIR")
    dataset = None  # scanned here only when an option depends on what DATA_DIR holds
    if _kind_options_given(args) or _image_options_given(args):
        from app.class_folders import find_dataset

        dataset = find_dataset(args.data_dir, args.kind)
        _check_options_fit_the_data(args, dataset.kind)
    train_config = train_config_from_args(args)
    preprocessing = preprocessing_from_args(args, dataset)
    result = train(
        args.data_dir,
        args.out,
        kind=args.kind,
        train_config=train_config,
        preprocessing=preprocessing,
        force=args.force,
        command=shlex.join(["python", "-m", "app", *sys.argv[1:]]),
        group_pattern=args.group_pattern,
        progress=not args.quiet,
        extra_train_dirs=args.extra_train_data,
        extra_folder_classes=dict(args.extra_folder_classes),
        resume=args.resume,
        distribute=args.distribute,
        init_from=args.init_from,
        distill_from=args.distill_from,
    )
    print(json.dumps(result.summary))  # the result on stdout; the run's messages are log lines on stderr
    return 0


# Recipe options that only one kind of data uses: given for the other kind, they would be ignored.
KIND_OPTIONS = {
    "audio": {
        "augment_copies": "--augment-copies",
        "noise_from_silence": "--noise-from-silence",
        "reverberation": "--reverberation",
        "frequency_warp": "--frequency-warp",
        "time_stretch": "--time-stretch",
    },
    "image": {
        "horizontal_flip": "--horizontal-flip",
        "rotation": "--rotation",
        "zoom": "--zoom",
        "translation": "--translation",
        "random_erasing": "--random-erasing",
    },
}


def _kind_options_given(args: argparse.Namespace) -> dict[str, list[str]]:
    """{kind: the KIND_OPTIONS of that kind given on the command line}, kinds with none left out."""
    given = {
        kind: [option for name, option in options.items() if getattr(args, name) not in (None, False)]
        for kind, options in KIND_OPTIONS.items()
    }
    return {kind: options for kind, options in given.items() if options}


def _image_options_given(args: argparse.Namespace) -> bool:
    return any(getattr(args, name) for name in ("image_size", "channels", "center_content", "background"))


def _check_options_fit_the_data(args: argparse.Namespace, kind: str) -> None:
    """InputError when `train` is given recipe options for the other kind of data than DATA_DIR holds."""
    other = "image" if kind == "audio" else "audio"
    wrong = _kind_options_given(args).get(other)
    if wrong:
        raise InputError(f"{', '.join(wrong)} only apply to {other} data, and {args.data_dir} holds {kind}; drop them")


def train_config_from_args(args: argparse.Namespace) -> TrainConfig:
    """The TrainConfig that `train`'s options ask for: the defaults, with every option given replacing its field."""
    from app.training.train import train_config_with

    return train_config_with(
        epochs=args.epochs,
        batch_size=args.batch_size,
        seed=args.seed,
        learning_rate=args.learning_rate,
        patience=args.patience,
        validation_percent=args.validation_percent,
        test_percent=args.test_percent,
        split_salt=args.split_salt,
        validation_groups=args.validation_groups,
        test_groups=args.test_groups,
        noise_from_silence=True if args.noise_from_silence else None,
        weight_averaging=True if args.weight_averaging else None,
        frequency_warp=args.frequency_warp,
        time_stretch=args.time_stretch,
        mixup=args.mixup,
        augment=False if args.no_augment else None,
        augment_copies=args.augment_copies,
        reverberation=args.reverberation,
        horizontal_flip=True if args.horizontal_flip else None,
        rotation_degrees=args.rotation,
        zoom=args.zoom,
        translation=args.translation,
        random_erasing=args.random_erasing,
        network=args.network,
        distill_weight=args.distill_weight,
        distill_temperature=args.distill_temperature,
    )


def preprocessing_from_args(args: argparse.Namespace, dataset=None) -> AudioConfig | ImageConfig | None:
    """The AudioConfig or ImageConfig that `train`'s options ask for, or None for the defaults.

    --sample-rate keeps the frames 32 ms and the hop 10 ms and f_max below Nyquist; image options start from
    what the data shows (size, channels; `dataset`, scanned here when not given) and override it. Options for
    the other kind of data than the dataset's are left for `train` to refuse.
    """
    preprocessing = None
    audio_options = {
        "sample_rate": args.sample_rate,
        "clip_seconds": args.clip_seconds,
        "n_mels": args.n_mels,
        "n_fft": args.n_fft,
        "hop_length": args.hop_length,
        "subtract_band_mean": True if args.subtract_band_mean else None,
        "window_past_edges": True if args.window_past_edges else None,
    }
    image_options = {
        "image_size": args.image_size,
        "channels": args.channels,
        "center_content": True if args.center_content else None,
    }
    if any(v is not None for v in audio_options.values()):
        options = {k: v for k, v in audio_options.items() if v is not None}
        if "sample_rate" in options:  # keep frame and hop durations (32 ms, 10 ms) and stay below Nyquist
            rate = options["sample_rate"]
            options.setdefault("n_fft", round(512 * rate / 16000))
            options.setdefault("hop_length", round(160 * rate / 16000))
            options.update(f_max=min(7600.0, rate * 0.475))
        preprocessing = _config(AudioConfig, options)
    if _image_options_given(args):
        from app.class_folders import find_dataset
        from app.training.preprocessing import infer_image_config

        dataset = dataset or find_dataset(args.data_dir, args.kind)
        inferred = infer_image_config(dataset).__dict__ if dataset.kind == "image" else {}
        options = {k: v for k, v in image_options.items() if v is not None}
        if args.background:
            options["background"] = None if args.background == "none" else args.background
        preprocessing = _config(ImageConfig, {**inferred, **options})
    return preprocessing


def _config(config_class, options: dict):
    """A preprocessing config from command-line options; InputError for impossible combinations."""
    try:
        return config_class(**options)
    except ValueError as error:
        raise InputError(f"these options do not fit together: {error}") from None


def _evaluate(args: argparse.Namespace) -> int:
    from app.evaluate import evaluate_bundle, trust_lines

    metrics = evaluate_bundle(args.bundle_dir, args.data_dir, progress=not (args.json or args.quiet))
    if args.json:
        print(json.dumps(metrics))
        return 0
    print(f"accuracy {metrics['accuracy']:.2%} on {metrics['count']} files")
    for name, accuracy in metrics["per_class"].items():
        print(f"  {name:>14}  {'—' if accuracy is None else f'{accuracy:.2%}'}")
    if metrics["skipped"]:
        print(f"skipped {len(metrics['skipped'])} unreadable file(s), e.g. {metrics['skipped'][0]['file']}")
    if metrics["ignored_folders"]:
        print(f"ignored folders the model has no class for: {', '.join(metrics['ignored_folders'])}")
    if metrics["training_data"]:
        print(
            f"note: the bundle trained on {metrics['training_data']}, so this score includes files it learned "
            "from (the accuracy on the files it held out, if it held any out, is in its metadata.json)"
        )
    print("\n".join(trust_lines(metrics)))
    return 0


def _calibrate(args: argparse.Namespace) -> int:
    from app import calibrate_bundle

    runs = args.from_bundles or []
    if len(runs) > 1:
        from app.pooled_calibration import calibrate_from_runs

        if args.familiarity == "first_layer_mahalanobis":
            raise InputError(
                "--familiarity first_layer_mahalanobis measures one model's inner features, which runs do not share; "
                "with several --from runs the threshold is on the top calibrated probability"
            )

        print(json.dumps(calibrate_from_runs(args.bundle_dir, runs, args.data_dir, progress=not args.quiet)))
    elif (args.data_dir is None) == (not runs):
        raise InputError("expected DATA_DIR (labelled files the bundle did not train on) or --from OTHER_BUNDLE: one")
    elif runs:
        print(json.dumps(calibrate_bundle.calibrate_from(args.bundle_dir, runs[0])))
    else:
        summary = calibrate_bundle.calibrate_on_data(
            args.bundle_dir, args.data_dir, progress=not args.quiet, familiarity=args.familiarity
        )
        print(json.dumps(summary))
    return 0


def _predict(args: argparse.Namespace) -> int:
    from app.predict import Predictor

    predictor = Predictor.load(args.bundle_dir)
    explain_dir = _explain_folder(args.explain) if args.explain else None
    # overlay names taken: those written by this run, and those of input files in OUT_DIR (never overwritten)
    written = {file.name for file in args.files if explain_dir and file.resolve().parent == explain_dir.resolve()}
    bad_input = unexpected = 0
    for file in args.files:
        try:
            assessed = predictor.assess(file, top_k=args.top_k)
            line: dict[str, Any] = {"file": str(file), "predictions": assessed.predictions}
            if assessed.familiar is not None:  # bundles with a familiarity threshold
                line["familiar"] = assessed.familiar
            if explain_dir is not None:
                explanation = predictor.explain(file, label=line["predictions"][0]["label"])
                line["explanation"] = str(_write_overlay(explanation, explain_dir, file, written))
            print(json.dumps(line), flush=True)
        except Exception as error:  # one file's failure never stops the others
            if isinstance(error, OnePipeError):
                bad_input, message = bad_input + 1, str(error)
            else:  # a bug rather than bad input: say what it was
                unexpected, message = unexpected + 1, f"unexpected {type(error).__name__}: {error}"
            print(json.dumps({"file": str(file), "error": message}), flush=True)
            print(f"error: {file}: {message}", file=sys.stderr)
    return 1 if unexpected else USAGE_ERROR if bad_input else 0


def _explain_folder(out_dir: Path) -> Path:
    """`predict --explain`'s folder, made if missing; InputError if it cannot be."""
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except (FileExistsError, NotADirectoryError):
        raise InputError(f"--explain {out_dir}: a file is in the way; expected a folder for the overlays") from None
    except OSError as error:
        raise InputError(f"--explain {out_dir}: the folder cannot be made ({error.strerror or error})") from None
    return out_dir


def _write_overlay(explanation, out_dir: Path, file: Path, written: set[str]) -> Path:
    """Write `file`'s overlay as OUT_DIR/<file name>.png (clip.wav → clip.wav.png; a name in `written`, used
    earlier in the run or by an input file, gets -2, -3 …). The name keeps letters, digits, `.`, `-` and `_` of
    the file's own name, so it stays in OUT_DIR; the file is written beside it and renamed into place."""
    import os
    import secrets

    stem = re.sub(r"[^\w.-]", "_", file.name).lstrip(".")[:200] or "input"
    name, number = f"{stem}.png", 1
    while name in written:
        number += 1
        name = f"{stem}-{number}.png"
    written.add(name)
    png = explanation.overlay_png()
    temporary = out_dir / f".{name}.{secrets.token_hex(4)}.part"
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)  # never through a symlink
    try:
        with os.fdopen(descriptor, "wb") as stream:
            stream.write(png)
        os.replace(temporary, out_dir / name)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    return out_dir / name


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; returns the exit code."""
    from app.logs import cli_logging

    args = build_parser().parse_args(argv)
    with cli_logging(verbose=args.verbose, quiet=getattr(args, "quiet", False)):
        try:
            return args.func(args)
        except OnePipeError as error:
            print(f"error: {error}", file=sys.stderr)
            return USAGE_ERROR
        except KeyboardInterrupt:
            print("interrupted", file=sys.stderr)
            return 130
