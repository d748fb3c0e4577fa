"""`python -m app data …`: make, download and convert datasets, and write the dashboard's samples.

python -m app data synth-speech data/synthetic --per-class 300 --silence 300
python -m app data download fsdd                      # -> data/fsdd/<digit>/*.wav
python -m app data download cifar10 --samples          # -> data/samples/cifar10/<class>/ (dashboard)
python -m app data digits data/digits
python -m app data samples                             # -> models/<bundle>/samples/<class>/
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from app.datasets.target_folder import DATA_MARKER, check_target_folder
from app.paths import DOWNLOADED_SAMPLES_DIR, MODELS_DIR
from app.staging import replace_when_complete

REPLACE_HELP = f"rewrite OUT_DIR if an earlier run of this command made it (it holds a {DATA_MARKER} file naming it)"
_DOWNLOAD_EPILOG = """\
datasets:
  speech-commands       Speech Commands v0.02 training archive (2.4 GB), CC BY 4.0
  speech-commands-v1    Speech Commands v0.01 (1.4 GB), CC BY 4.0
  speech-commands-test  official Speech Commands v0.02 test archive (112 MB), CC BY 4.0
  fsdd                  Free Spoken Digit Dataset v1.0.10 (16 MB), CC BY-SA 4.0
  mnist                 MNIST (11 MB), CC BY-SA 3.0
  cifar10               CIFAR-10 python version (163 MB), cite Krizhevsky 2009

Each becomes DIR/NAME/<class>/<file>. Interrupted downloads resume when run again.
Dashboard samples: `download cifar10 --samples` keeps 4 CIFAR-10 test images per class in the
project's data/samples/cifar10/<class>/, where the dashboard looks for them (CIFAR-10 has no offline
substitute; the shipped bundle learned from most of the test set too, so upload a photo of your own
to test it). Set ONEPIPE_DOWNLOAD_BASE_URL to use a mirror.
"""


def register(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Add the `data` command and its subcommands; each sets `func(args) -> exit code`."""
    data = subparsers.add_parser("data", help="make, download and convert datasets; write dashboard samples")
    commands = data.add_subparsers(dest="data_command", required=True, metavar="COMMAND")

    synth_parser = commands.add_parser(
        "synth-speech",
        help="synthetic spoken words made offline with eSpeak NG",
        description="Write OUT_DIR/<word>/<voice>_nohash_<n>.wav: 1 s 16 kHz clips of many voices, rates, "
        "pitches, loudness, positions and background noises. Deterministic for a seed.",
    )
    synth_parser.add_argument("out_dir", type=Path, metavar="OUT_DIR", help="a new or empty folder to write")
    synth_parser.add_argument(
        "--words",
        nargs="+",
        default=None,
        help="words to say, or LABEL=TEXT such as 7=seven (default: the 30 of Speech Commands v0.01)",
    )
    synth_parser.add_argument("--per-class", type=int, default=100, help="clips per word (default 100)")
    synth_parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    synth_parser.add_argument("--silence", type=int, default=0, help="also write N noise-only `_silence_` clips")
    synth_parser.add_argument("--replace", action="store_true", help=REPLACE_HELP)
    synth_parser.set_defaults(func=_synth_speech)

    download_parser = commands.add_parser(
        "download",
        help="download a public dataset as class folders",
        description="Download a dataset, check it against the publisher's checksum where one is published "
        "(MNIST, CIFAR-10), and convert it to DIR/NAME/<class>/<file>.",
        epilog=_DOWNLOAD_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    download_parser.add_argument("name", metavar="NAME", help="see the list below")
    download_parser.add_argument("--dir", type=Path, default=None, help="parent folder (default: data/ in the project)")
    download_parser.add_argument("--limit-per-class", type=int, default=None, help="keep only N files per class")
    download_parser.add_argument(
        "--samples",
        action="store_true",
        help="dashboard samples: keep a few files per class (4 unless --limit-per-class) in the project's "
        "data/samples/<bundle>/ (mnist: training-set images, which the shipped bundle never saw; cifar10: test-set "
        "images)",
    )
    download_parser.add_argument(
        "--replace", action="store_true", help="replace a dataset folder an earlier download wrote"
    )
    download_parser.add_argument("--keep-archives", action="store_true", help="keep the downloaded archives")
    download_parser.add_argument("--base-url", default=None, help="mirror URL prefix (also ONEPIPE_DOWNLOAD_BASE_URL)")
    download_parser.set_defaults(func=_download)

    digits_parser = commands.add_parser(
        "digits",
        help="scikit-learn's handwritten digits as 28x28 PNG class folders (offline)",
        description="Write OUT_DIR/<digit>/*.png: scikit-learn's 1,797 8x8 digits drawn MNIST-style.",
    )
    digits_parser.add_argument("out_dir", type=Path, metavar="OUT_DIR", help="a new or empty folder to write")
    digits_parser.add_argument("--limit-per-class", type=int, default=None, help="keep only N digits per class")
    digits_parser.add_argument("--replace", action="store_true", help=REPLACE_HELP)
    digits_parser.set_defaults(func=_digits)

    samples_parser = commands.add_parser(
        "samples",
        help="write the dashboard's example inputs into each bundle folder",
        description="Replace <models-dir>/<bundle>/samples/<class>/ for speech-commands, spoken-digits "
        "and mnist with synthesised speech and drawn digits. For cifar10: `data download cifar10 --samples`.",
    )
    samples_parser.add_argument(
        "--models-dir",
        type=Path,
        default=MODELS_DIR,
        help="folder of bundles (default: the project's models/, or $ONEPIPE_MODELS_DIR when set)",
    )
    samples_parser.add_argument("--per-class", type=int, default=4, help="samples per class (default 4)")
    samples_parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    samples_parser.set_defaults(func=_samples)
    return data


def _print_counts(counts: dict, where: Path) -> None:
    total = sum(value if isinstance(value, int) else sum(value.values()) for value in counts.values())
    print(f"wrote {total} files to {where}")
    print(json.dumps(counts))


@contextmanager
def _dataset_folder(out_dir: Path, replace: bool, command: str, extension: str) -> Iterator[Path]:
    """A staging folder beside OUT_DIR to write a dataset into; when the block ends without error it becomes
    OUT_DIR, marked as made by `command`. OUT_DIR must be new or empty, or, with replace, one an earlier run of
    `command` made holding only class folders of `extension` files (app.datasets.target_folder). On error
    OUT_DIR is untouched and the staging folder removed."""
    marker = (DATA_MARKER, command)
    out_dir = check_target_folder(out_dir, marker, command, extension, replace)
    with replace_when_complete(out_dir, marker) as staging:
        yield staging


def _synth_speech(args: argparse.Namespace) -> int:
    from app.datasets.synth import SPEECH_COMMANDS_WORDS, synthesize_dataset

    with _dataset_folder(args.out_dir, args.replace, "synth-speech", ".wav") as staging:
        counts = synthesize_dataset(
            staging,
            words=args.words or SPEECH_COMMANDS_WORDS,
            per_class=args.per_class,
            seed=args.seed,
            silence=args.silence,
        )
    _print_counts(counts, args.out_dir)
    return 0


def _download(args: argparse.Namespace) -> int:
    from app.datasets.download import DEFAULT_DIR, download_dataset, download_samples, resolve_source

    source = resolve_source(args.name)
    if args.samples:
        if args.dir is not None:
            from app.errors import InputError

            raise InputError(f"--samples writes to {DOWNLOADED_SAMPLES_DIR}, where the dashboard looks; drop --dir")
        per_class = 4 if args.limit_per_class is None else args.limit_per_class
        counts = download_samples(source.name, per_class=per_class, base_url=args.base_url)
        _print_counts(counts, DOWNLOADED_SAMPLES_DIR / source.bundle)
        return 0
    directory = args.dir or DEFAULT_DIR
    counts = download_dataset(
        source,
        directory,
        limit_per_class=args.limit_per_class,
        base_url=args.base_url,
        replace=args.replace,
        keep_archives=args.keep_archives,
    )
    _print_counts(counts, directory / source.name)
    print(f"licence: {source.licence}")
    return 0


def _digits(args: argparse.Namespace) -> int:
    from app.datasets.digits import write_digits
    from app.errors import InputError

    if args.limit_per_class is not None and args.limit_per_class < 1:
        raise InputError(f"received --limit-per-class {args.limit_per_class}; expected a positive number")
    with _dataset_folder(args.out_dir, args.replace, "digits", ".png") as staging:
        counts = write_digits(staging, args.limit_per_class)
    _print_counts(counts, args.out_dir)
    return 0


def _samples(args: argparse.Namespace) -> int:
    from app.datasets.samples import write_samples
    from app.errors import InputError

    if args.per_class < 1:
        raise InputError(f"received --per-class {args.per_class}; expected a positive number")
    written = write_samples(args.models_dir, per_class=args.per_class, seed=args.seed)
    if not written:
        print(f"no bundle folder (speech-commands, spoken-digits, mnist) in {args.models_dir}; nothing written")
    else:
        _print_counts(written, args.models_dir)
    if not (DOWNLOADED_SAMPLES_DIR / "cifar10").is_dir():
        print("cifar10 samples: run `python -m app data download cifar10 --samples` when online")
    return 0
