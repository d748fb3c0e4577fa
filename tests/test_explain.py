"""Where the model looked: occlusion maps (app.explain), their pictures (app.pictures), the result panel's
"Show where it looked" box, `predict --explain`, and the benchmark script.

Fast tests use a NumPy stand-in for the model and the shipped bundles in models/; the slow ones train tiny
models on data where one region decides the class and check that the map finds it.
"""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pytest
from fixtures_data import TONE_CLASSES, tone
from PIL import Image

from app import cli
from app.explain import LEGEND, Explanation, explain_input, occlusion_map, patch_starts
from app.paths import PROJECT_ROOT
from app.pictures import heat_rgb, overlay_layer, overlay_png, spectrogram_rgb
from app.predict import Predictor

MODELS = PROJECT_ROOT / "models"
MNIST_SEVEN = sorted((MODELS / "mnist" / "samples" / "7").iterdir())[0]
YES = sorted((MODELS / "speech-commands" / "samples" / "yes").iterdir())[0]


@pytest.fixture(scope="module")
def predictors() -> dict[str, Predictor]:
    return {name: Predictor.load(MODELS / name) for name in ("mnist", "cifar10", "speech-commands", "spoken-digits")}


def region_model(region: tuple[slice, slice], classes: int = 2):
    """A stand-in model: class 0's probability is the mean of `region` of the first channel (inputs 0..1), the
    other classes share the rest. It records the batches it is given."""
    batches = []

    def forward(batch: np.ndarray) -> np.ndarray:
        batches.append(batch.copy())
        score = batch[:, region[0], region[1], 0].mean(axis=(1, 2))
        return np.stack([score] + [(1 - score) / (classes - 1)] * (classes - 1), axis=1)

    forward.batches = batches
    return forward


# ---------------------------------------------------------------------------------------------
# The occlusion itself


@pytest.mark.parametrize("size", [1, 2, 3, 7, 10, 20, 28, 40, 48, 97, 512])
def test_patches_cover_every_value_and_stay_inside(size):
    patch, stride, starts = patch_starts(size)
    covered = np.zeros(size, bool)
    for start in starts:
        assert start >= 0 and start + patch <= size
        covered[start : start + patch] = True
    assert covered.all()
    assert patch == max(1, round(size / 8)) and stride == max(1, -(-patch // 2))
    assert len(starts) <= 19  # the cost per input is bounded whatever its size


def test_the_map_falls_on_the_region_that_decides():
    image = np.ones((32, 32, 1), np.float32)
    forward = region_model((slice(4, 12), slice(20, 28)))
    occlusion = occlusion_map(forward, image, class_index=0, empty_value=0.0)
    inside = occlusion.map[4:12, 20:28].sum()
    assert occlusion.map.shape == (32, 32) and occlusion.map.dtype == np.float32
    assert occlusion.map.max() == pytest.approx(1.0) and occlusion.map.min() >= 0.0
    assert inside / occlusion.map.sum() > 0.75
    # the rest lies within a patch's reach of the region (patches that cover part of it), none farther away
    assert occlusion.map[1:15, 17:31].sum() == pytest.approx(occlusion.map.sum())
    assert occlusion.score == pytest.approx(1.0)
    assert occlusion.largest_drop == pytest.approx(16 / 64)  # a 4 × 4 patch of the 8 × 8 region
    assert occlusion.patch == (4, 4) and occlusion.stride == (2, 2) and occlusion.masked_inputs == 15 * 15


def test_batches_keep_one_size_and_hold_the_empty_value():
    image = np.full((16, 16, 3), 0.5, np.float32)
    forward = region_model((slice(0, 16), slice(0, 16)))
    occlusion = occlusion_map(forward, image, 0, empty_value=np.array([0.1, 0.2, 0.3], np.float32), batch_size=10)
    shapes = {batch.shape for batch in forward.batches}
    assert shapes == {(10, 16, 16, 3)}  # the last batch is padded: the interpreter is resized once
    first = forward.batches[0]
    assert np.array_equal(first[0], image)  # the unmasked input comes first
    assert np.allclose(first[1, 0:2, 0:2], [0.1, 0.2, 0.3]) and np.allclose(first[1, 2:, 2:], 0.5)
    assert sum(len(batch) for batch in forward.batches) >= occlusion.masked_inputs + 1


def test_no_fall_gives_an_empty_map_and_rises_count_as_nothing():
    image = np.zeros((20, 20, 1), np.float32)
    constant = occlusion_map(lambda batch: np.full((len(batch), 2), 0.5), image, 0, empty_value=1.0)
    assert constant.largest_drop == 0.0 and not constant.map.any()
    rising = occlusion_map(region_model((slice(0, 20), slice(0, 20))), image, 0, empty_value=1.0)
    assert rising.largest_drop == 0.0 and not rising.map.any()  # masking raised the score everywhere


def test_finish_runs_on_every_masked_copy():
    forward = region_model((slice(0, 8), slice(0, 8)))
    occlusion_map(forward, np.ones((8, 8, 1), np.float32), 0, -1.0, finish=lambda batch: batch * 2)
    assert all(batch.max() == 2.0 for batch in forward.batches)


# ---------------------------------------------------------------------------------------------
# Predictor.explain on the shipped bundles


def test_explain_an_image_of_the_shipped_mnist(predictors):
    predictor = predictors["mnist"]
    before = predictor(MNIST_SEVEN)
    explanation = predictor.explain(MNIST_SEVEN)
    assert isinstance(explanation, Explanation)
    assert explanation.label == before[0]["label"] == "7" and explanation.kind == "image"
    assert explanation.map.shape == (28, 28) and explanation.map.dtype == np.float32
    assert explanation.map.max() == pytest.approx(1.0) and explanation.map.min() >= 0
    assert np.array_equal(explanation.features, predictor.preprocess(MNIST_SEVEN))
    assert 0 < explanation.largest_drop <= explanation.score <= 1
    assert explanation.legend == LEGEND.format(label="7")
    # the digit's strokes matter, the empty corners do not
    strokes = explanation.features[:, :, 0] > 0
    assert explanation.map[strokes].mean() > 3 * explanation.map[~strokes].mean()
    assert predictor(MNIST_SEVEN) == before  # the interpreter's batch size is restored for predictions


@pytest.mark.parametrize("name", ["speech-commands", "spoken-digits"])
def test_explain_a_clip_with_and_without_band_means(predictors, name):
    predictor = predictors[name]
    clip = YES if name == "speech-commands" else sorted((MODELS / name / "samples" / "7").iterdir())[0]
    explanation = predictor.explain(clip)
    assert explanation.kind == "audio" and explanation.label == predictor(clip)[0]["label"]
    assert explanation.map.shape == explanation.features.shape == (97, 40)
    assert explanation.patch == (12, 5) and explanation.stride == (6, 3)
    assert explanation.masked_inputs == 16 * 13
    assert explanation.largest_drop > 0.05


def test_explain_another_label_or_a_wrong_one(predictors):
    predictor = predictors["mnist"]
    assert predictor.explain(MNIST_SEVEN, label="1").label == "1"
    with pytest.raises(ValueError, match="not a class of mnist"):
        predictor.explain(MNIST_SEVEN, label="cat")


def test_what_a_masked_patch_holds(predictors):
    """Silence for spectrograms (band means removed again where the bundle removes them), the background of a
    light-on-dark bundle, else the picture's own mean colour."""
    rng = np.random.default_rng(0)
    photo = rng.integers(0, 256, (48, 48, 3), dtype=np.uint8)
    cases = [
        ("cifar10", photo),
        ("mnist", MNIST_SEVEN),
        ("spoken-digits", tone(440, 1.0, 8000)),
        ("speech-commands", YES),
    ]
    for name, source in cases:
        predictor = predictors[name]
        spy = region_model((slice(0, 1), slice(0, 1)), classes=len(predictor.class_names))
        patch_height, patch_width = explain_input(predictor, source, spy).patch
        masked = spy.batches[0][1]  # the first masked copy: the patch at the top-left corner
        corner = masked[:patch_height, :patch_width]
        if name == "cifar10":
            assert np.allclose(corner, photo.reshape(-1, 3).mean(axis=0), atol=1e-3)
        elif name == "mnist":
            assert not corner.any()
        elif name == "spoken-digits":
            assert np.all(corner == predictor.config.floor_db)
        else:  # band means removed after masking: every band of the copy averages 0 over time
            assert np.allclose(masked.mean(axis=0), 0, atol=1e-3)
            assert np.ptp(corner, axis=0).max() < 1e-3  # silence is one level per band


def test_explaining_never_imports_tensorflow():
    import subprocess
    import sys

    code = (
        "import sys; from app.predict import Predictor; "
        f"Predictor.load({str(MODELS / 'mnist')!r}).explain({str(MNIST_SEVEN)!r}).overlay_png(); "
        "print(sorted(name for name in sys.modules if name.split('.')[0] in ('tensorflow', 'keras', 'ipywidgets')))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    assert result.stdout.strip() == "[]"


def test_explain_refuses_what_predict_refuses(predictors):
    from app.errors import InputError

    with pytest.raises(InputError):
        predictors["mnist"].explain(np.zeros((28, 28), np.uint8))


# ---------------------------------------------------------------------------------------------
# Pictures


def test_the_layer_is_oriented_like_the_spectrogram_picture():
    spectrogram = np.full((97, 40), -80.0, np.float32)
    spectrogram[0, 0] = 0.0  # the first frame's lowest band: bottom left in the picture
    sensitivity = np.zeros((97, 40), np.float32)
    sensitivity[0, 0] = 1.0
    picture, layer = spectrogram_rgb(spectrogram), overlay_layer(sensitivity, spectrogram=True)
    assert picture.shape[:2] == layer.shape[:2] == (40, 97)
    brightest = np.unravel_index(np.argmax(picture.sum(axis=2)), picture.shape[:2])
    hottest = np.unravel_index(np.argmax(layer[..., :3].astype(int).sum(axis=2)), layer.shape[:2])
    assert brightest == hottest == (39, 0)
    assert np.all(layer[..., 3] == layer[0, 0, 3]) and 0 < layer[0, 0, 3] < 255


def test_brighter_colours_mean_more():
    colours = heat_rgb(np.linspace(0, 1, 11)).astype(float)
    lightness = colours @ [0.2126, 0.7152, 0.0722]
    assert np.all(np.diff(lightness) > 0)


def test_a_written_overlay_is_enlarged_and_captioned():
    image = np.zeros((28, 28, 1), np.uint8)
    png = overlay_png(image, np.eye(28, dtype=np.float32), spectrogram=False, caption="Brighter: …")
    written = Image.open(io.BytesIO(png))
    assert written.mode == "RGB" and written.width == 28 * 12 and written.height > 28 * 12
    plain = Image.open(io.BytesIO(overlay_png(image, np.eye(28, dtype=np.float32), spectrogram=False)))
    assert plain.size == (336, 336)


# ---------------------------------------------------------------------------------------------
# The result panel's box


def panel_with_prediction(explain):
    from app.ui.render import image_png
    from app.ui.result_panel import ResultPanel

    panel = ResultPanel()
    picture = image_png(np.zeros((28, 28, 1), np.uint8))
    panel.show_predictions([{"label": "7", "score": 0.9}], picture, "caption", 1.0, "seven.png", True, explain)
    return panel


def counted(explanation):
    calls = []

    def explain():
        calls.append(1)
        return explanation

    explain.calls = calls
    return explain


@pytest.fixture(scope="module")
def seven_explanation(predictors) -> Explanation:
    return predictors["mnist"].explain(MNIST_SEVEN)


def test_the_box_computes_the_map_only_when_ticked_and_once(seven_explanation):
    from app.ui.result_panel import EXPLAIN_LABEL

    explain = counted(seven_explanation)
    panel = panel_with_prediction(explain)
    assert panel.explain_toggle.description == EXPLAIN_LABEL
    assert panel.explain_toggle.layout.display is None and not panel.explain_toggle.value
    assert explain.calls == [] and "onepipe-overlay" not in panel.view.value
    panel.explain_toggle.value = True
    assert explain.calls == [1] and panel.explanation is seven_explanation
    assert panel.view.value.count('class="onepipe-overlay"') == 1
    assert "Brighter: masking this part lowered the score of <b>7</b> most" in panel.view.value
    # the model's own picture is still the first picture, unchanged
    assert panel.view.value.index('class="onepipe-picture"') < panel.view.value.index('class="onepipe-overlay"')
    panel.explain_toggle.value = False
    assert "onepipe-overlay" not in panel.view.value and "onepipe-legend" not in panel.view.value
    panel.explain_toggle.value = True
    assert explain.calls == [1] and "onepipe-overlay" in panel.view.value  # cached for this input


def test_a_new_input_while_ticked_is_explained_at_once_and_a_message_hides_the_box(seven_explanation):
    explain = counted(seven_explanation)
    panel = panel_with_prediction(counted(seven_explanation))
    panel.explain_toggle.value = True
    panel.show_predictions([{"label": "7", "score": 0.8}], b"png", "caption", 1.0, "other.png", True, explain)
    assert explain.calls == [1] and "onepipe-overlay" in panel.view.value
    panel.show_message("The image is one flat colour")
    assert panel.explain_toggle.layout.display == "none" and panel.explanation is None
    panel.show_predictions([{"label": "7", "score": 0.8}], b"png", "caption", 1.0, "none.png", True, None)
    assert panel.explain_toggle.layout.display == "none"  # nothing to explain with


def test_a_failing_explanation_is_a_message_not_a_traceback(seven_explanation):
    def broken():
        raise RuntimeError("internal detail")

    panel = panel_with_prediction(broken)
    panel.explain_toggle.value = True
    assert "could not be worked out" in panel.view.value and "internal detail" not in panel.view.value
    assert "onepipe-top-label" in panel.view.value  # the prediction stays


def test_a_weak_map_says_so(seven_explanation):
    import dataclasses

    weak = dataclasses.replace(seven_explanation, largest_drop=0.001)
    panel = panel_with_prediction(lambda: weak)
    panel.explain_toggle.value = True
    assert "hardly changed the score" in panel.view.value


# ---------------------------------------------------------------------------------------------
# predict --explain


def predict_lines(capsys, *argv) -> tuple[int, list[dict]]:
    code = cli.main(["predict", *map(str, argv)])
    return code, [json.loads(line) for line in capsys.readouterr().out.splitlines()]


def test_predict_writes_one_overlay_per_file_inside_the_folder(tmp_path, capsys):
    other = tmp_path / "elsewhere"
    other.mkdir()
    copy = other / MNIST_SEVEN.name  # the same name from another folder
    copy.write_bytes(MNIST_SEVEN.read_bytes())
    odd = other / "..a 7?.png"
    odd.write_bytes(MNIST_SEVEN.read_bytes())
    out = tmp_path / "out" / "maps"
    code, lines = predict_lines(capsys, MODELS / "mnist", MNIST_SEVEN, copy, odd, "--explain", out, "--top-k", "2")
    assert code == 0 and [len(line["predictions"]) for line in lines] == [2, 2, 2]
    written = [Path(line["explanation"]) for line in lines]
    assert [path.name for path in written] == [f"{MNIST_SEVEN.name}.png", f"{MNIST_SEVEN.name}-2.png", "a_7_.png.png"]
    assert all(path.parent == out and path.is_file() for path in written)
    assert sorted(p.name for p in out.iterdir()) == sorted(path.name for path in written)  # no leftovers
    assert Image.open(written[0]).size[0] >= 336  # 28 px × 12, or wider for the legend under it


def test_predict_explain_never_overwrites_an_input_and_reports_bad_files(tmp_path, capsys):
    source = tmp_path / "7"  # no extension: its overlay would be "7.png"
    source.write_bytes(MNIST_SEVEN.read_bytes())
    victim = tmp_path / "7.png"
    victim.write_bytes(MNIST_SEVEN.read_bytes())
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"not a picture")
    code, lines = predict_lines(capsys, MODELS / "mnist", victim, source, broken, "--explain", tmp_path)
    assert code == 2 and "error" in lines[2] and "explanation" not in lines[2]
    assert victim.read_bytes() == MNIST_SEVEN.read_bytes()
    assert Path(lines[1]["explanation"]).name == "7-2.png"


def test_predict_explain_into_a_file_is_refused(tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    assert cli.main(["predict", str(MODELS / "mnist"), str(MNIST_SEVEN), "--explain", str(blocker)]) == 2
    assert "a file is in the way" in capsys.readouterr().err


def test_predict_explain_an_audio_clip(tmp_path, capsys):
    code, lines = predict_lines(capsys, MODELS / "speech-commands", YES, "--explain", tmp_path)
    assert code == 0 and lines[0]["predictions"][0]["label"] == "yes"
    assert Image.open(lines[0]["explanation"]).size[0] >= 97 * 4


# ---------------------------------------------------------------------------------------------
# The benchmark runs and prints its JSON


def test_explain_benchmark_on_one_bundle(capsys):
    import importlib.util

    spec = importlib.util.spec_from_file_location("benchmark_explain", PROJECT_ROOT / "benchmarks" / "explain.py")
    benchmark = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(benchmark)
    assert benchmark.main(["--bundles", "mnist", "--inputs", "2", "--repeat", "1"]) == 0
    result = json.loads(capsys.readouterr().out)
    mnist = result["bundles"]["mnist"]
    assert list(result["bundles"]) == ["mnist"] and mnist["runs"] == 2 and mnist["masked_inputs"] == 169
    assert mnist["explain_ms"]["median"] > 0 and mnist["predict_ms"] > 0 and result["target_ms"] == 250


# ---------------------------------------------------------------------------------------------
# Trained on data where one region decides: the map finds it (slow)

QUADRANTS = ("top-left", "bottom-right")
SQUARE = 5  # px, the bright square's side in a 32 × 32 noise picture


def quadrant_picture(where: str, seed: int, size: int = 32) -> np.ndarray:
    """Dark colour noise with one white SQUARE px square somewhere inside the top-left or bottom-right quadrant."""
    rng = np.random.default_rng(seed)
    image = rng.integers(0, 100, (size, size, 3), dtype=np.uint8)
    half = size // 2
    top, left = rng.integers(1, half - SQUARE, 2) + (half if where == "bottom-right" else 0)
    image[top : top + SQUARE, left : left + SQUARE] = 255
    return image


@pytest.fixture(scope="module")
def quadrant_bundle(tmp_path_factory) -> Path:
    from app.config import TrainConfig
    from app.training.train import train

    data = tmp_path_factory.mktemp("quadrants")
    for class_index, where in enumerate(QUADRANTS):
        (data / where).mkdir()
        for n in range(80):
            Image.fromarray(quadrant_picture(where, class_index * 10_000 + n)).save(data / where / f"{where}_{n}.png")
    recipe = TrainConfig(epochs=8, batch_size=16, patience=8, learning_rate=3e-3)
    return train(data, tmp_path_factory.mktemp("models") / "quadrants", train_config=recipe, progress=False).bundle


@pytest.mark.slow
def test_the_map_of_a_trained_image_model_falls_on_the_deciding_quadrant(quadrant_bundle):
    predictor = Predictor.load(quadrant_bundle)
    for where in QUADRANTS:
        for seed in range(50_000, 50_008):  # pictures it never saw
            picture = quadrant_picture(where, seed)
            assert predictor(picture)[0]["label"] == where
            explanation = predictor.explain(picture)
            rows = slice(0, 16) if where == "top-left" else slice(16, 32)
            share = explanation.map[rows, rows].sum() / explanation.map.sum()
            assert share >= 0.6, f"{where} seed {seed}: {share:.0%} of the map in the quadrant"


@pytest.mark.slow
def test_the_map_of_a_trained_audio_model_falls_on_the_tones_band(trained_models):
    predictor = Predictor.load(trained_models / "tones")  # low, mid and high tones: the frequency band decides
    for name, frequency in TONE_CLASSES.items():
        for seed in range(9_000, 9_004):
            clip = tone(frequency, 0.8, seed=seed)
            explanation = predictor.explain(clip)
            assert explanation.label == name
            band = int(np.argmax(explanation.features.mean(axis=0)))  # the tone's mel band
            near = slice(max(0, band - explanation.patch[1]), band + explanation.patch[1] + 1)
            share = explanation.map[:, near].sum() / explanation.map.sum()
            assert share >= 0.6, f"{name} seed {seed}: {share:.0%} of the map within a patch of band {band}"
