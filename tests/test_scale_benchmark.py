"""benchmarks/scale.py on tiny generated data: the N-file sets it links, the figures it reads from a run's log
lines, and (slow) one whole measurement."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest
from fixtures_data import make_tone_dataset

from app.class_folders import find_dataset, speaker_key

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "scale.py"


@pytest.fixture(scope="module")
def scale():
    spec = importlib.util.spec_from_file_location("benchmark_scale", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def test_an_n_file_set_links_the_source_under_new_speakers_class_by_class(scale, tmp_path):
    source = make_tone_dataset(tmp_path / "source", per_class=4, speakers=2)
    classes = scale.build_dataset(source, tmp_path / "big", 30)
    dataset = find_dataset(tmp_path / "big")
    assert classes == 3 and len(dataset.files) == 30 and sorted(dataset.counts().values()) == [10, 10, 10]
    assert all(path.is_symlink() and path.resolve().is_relative_to(source.resolve()) for path in dataset.files)
    speakers = {speaker_key(path, None) for path in dataset.files}
    # 10 of 4 clips per class (two of each of two speakers): copies 0 and 1 of both speakers, then copy 2 of the
    # first two clips in name order, both the first speaker's
    assert len(speakers) == 5 and all("x" in speaker for speaker in speakers)


def test_the_figures_come_from_the_run_s_log_lines(scale):
    text = (
        "features: 10,000 files in 9.8 s\n"
        "variants: 100,000 examples of 10,000 clips in 419.2 s (23.9 clips/s), kept in /cache/variants-1\n"
        "epoch 1/1: loss 2.1000, accuracy 0.3100, 156.1 s, ETA 0 s\n"
        "\tMaximum resident set size (kbytes): 1248100\n"
    )
    assert scale.timings(text) == {"feature_s": 9.8, "variant_s": 419.2, "s_per_epoch": 156.1}
    assert scale.peak_from_time(text) == 1218.8
    assert scale.timings("") == {"feature_s": None, "variant_s": None, "s_per_epoch": None}


@pytest.mark.slow
def test_one_size_is_measured_and_printed_as_json(scale, tmp_path, capsys):
    source = make_tone_dataset(tmp_path / "source", per_class=4, speakers=2)
    assert scale.main([str(source), "--sizes", "24", "--work", str(tmp_path / "work")]) == 0
    import json

    result = json.loads(capsys.readouterr().out)
    assert result["files"] == 24 and result["examples"] == 24 * 11  # ten variants of each clip, and the clip
    assert result["peak_rss_mb"] is None or result["peak_rss_mb"] > 100
    assert result["s_per_epoch"] > 0 and result["examples_per_s"] > 0 and result["peak_tree_rss_mb"] > 100
    assert not (tmp_path / "work" / "speech-24").exists()  # removed without --keep
