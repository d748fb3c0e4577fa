"""Cost of "Show where it looked": `Predictor.explain` on each bundle against a plain prediction, in one process.

For every bundle in the models folder, on up to `--inputs` of its example files (`<bundle>/samples/<class>/…`;
a bundle without any gets generated inputs: a noisy tone for audio, random pixels for images): one prediction
and one explanation to warm up (the first explanation's time is `first_explain_ms`), then `--repeat` rounds of
`predictor(file)` and `predictor.explain(file)` on each input, each timed on the wall clock and in process CPU
time. Both start from the file, as the dashboard and `predict --explain` do, so an explanation's time includes
decoding the input again. Prints one JSON object:

- per bundle: `explain_ms` (median, p95 and max over all runs), `explain_cpu_ms` (median), `masked_inputs`
  (model inputs per explanation, the unmasked one not counted), `patch` and `stride` (input values),
  `overlay_png_ms` (median time to draw the map as the dashboard's see-through PNG layer),
  `predict_ms` (median of the plain predictions, the in-run reference), `extra_ms_p95` (p95 of explain plus
  layer, run by run: what ticking the box adds after a prediction) and `meets_target`
  (`extra_ms_p95` ≤ `target_ms`);
- `target_ms` (250), `cpu_count`, `load_average` before and after, `threads` (the LiteRT interpreter's: 1).

Usage:
    python benchmarks/explain.py [--models-dir models] [--inputs 8] [--repeat 5] [--bundles mnist,cifar10]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np

PROJECT_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(PROJECT_ROOT))

from app.bundle import list_bundles  # noqa: E402
from app.config import AUDIO_EXTENSIONS, IMAGE_EXTENSIONS, AudioConfig  # noqa: E402
from app.pictures import overlay_layer_png  # noqa: E402
from app.predict import Predictor  # noqa: E402

TARGET_MS = 250.0


def example_inputs(predictor: Predictor, count: int) -> tuple[list, str]:
    """Up to `count` example files of the bundle, one class after another; generated arrays if it has none.

    Returns:
        (inputs, "samples" or "generated").
    """
    extensions = AUDIO_EXTENSIONS if predictor.kind == "audio" else IMAGE_EXTENSIONS
    by_class = [
        sorted(p for p in folder.iterdir() if p.suffix.lower() in extensions)
        for folder in sorted(predictor.samples_dir.glob("*"))
        if folder.is_dir()
    ]
    files = [files[i] for i in range(max(map(len, by_class), default=0)) for files in by_class if i < len(files)]
    if files:
        return files[:count], "samples"
    rng = np.random.default_rng(0)
    if isinstance(predictor.config, AudioConfig):
        rate = predictor.config.sample_rate
        t = np.arange(predictor.config.clip_samples) / rate
        made = [
            (0.3 * np.sin(2 * np.pi * rng.uniform(200, rate / 4) * t) + 0.02 * rng.standard_normal(t.size)).astype(
                np.float32
            )
            for _ in range(count)
        ]
    else:
        made = [rng.integers(0, 256, predictor.config.input_shape, dtype=np.uint8) for _ in range(count)]
    return made, "generated"


def timed(call) -> tuple[float, float, object]:
    """(wall ms, process CPU ms, result) of call()."""
    wall, cpu = time.perf_counter(), time.process_time()
    result = call()
    return (time.perf_counter() - wall) * 1000, (time.process_time() - cpu) * 1000, result


def percentile(values: list[float], share: float) -> float:
    return float(np.percentile(values, share * 100))


def measure_bundle(bundle_dir: Path, inputs: int, repeat: int) -> dict:
    """The timings of one bundle (see the module docstring)."""
    predictor = Predictor.load(bundle_dir)
    sources, origin = example_inputs(predictor, inputs)
    predictor(sources[0])
    first_ms, _, explanation = timed(lambda: predictor.explain(sources[0]))
    explain_wall, explain_cpu, predict_wall, layer_wall = [], [], [], []
    for _ in range(repeat):
        for source in sources:
            wall, _, _ = timed(lambda source=source: predictor(source))
            predict_wall.append(wall)
            wall, cpu, explanation = timed(lambda source=source: predictor.explain(source))
            explain_wall.append(wall)
            explain_cpu.append(cpu)
            wall, _, _ = timed(lambda e=explanation: overlay_layer_png(e.map, e.kind == "audio"))
            layer_wall.append(wall)
    extra_p95 = percentile([a + b for a, b in zip(explain_wall, layer_wall, strict=True)], 0.95)
    return {
        "kind": predictor.kind,
        "input_shape": list(predictor.config.input_shape),
        "inputs": len(sources),
        "input_origin": origin,
        "runs": len(explain_wall),
        "masked_inputs": explanation.masked_inputs,
        "patch": list(explanation.patch),
        "stride": list(explanation.stride),
        "first_explain_ms": round(first_ms, 1),
        "explain_ms": {
            "median": round(statistics.median(explain_wall), 1),
            "p95": round(percentile(explain_wall, 0.95), 1),
            "max": round(max(explain_wall), 1),
        },
        "explain_cpu_ms": round(statistics.median(explain_cpu), 1),
        "overlay_png_ms": round(statistics.median(layer_wall), 2),
        "predict_ms": round(statistics.median(predict_wall), 2),
        "extra_ms_p95": round(extra_p95, 1),
        "meets_target": extra_p95 <= TARGET_MS,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models-dir", type=Path, default=PROJECT_ROOT / "models", help="default: models/")
    parser.add_argument("--bundles", help="comma-separated bundle names (default: every bundle)")
    parser.add_argument("--inputs", type=int, default=8, help="example inputs per bundle (default 8)")
    parser.add_argument("--repeat", type=int, default=5, help="rounds over the inputs (default 5)")
    args = parser.parse_args(argv)
    if not args.models_dir.is_dir():
        parser.error(f"{args.models_dir} is not a folder")
    wanted = set(args.bundles.split(",")) if args.bundles else None
    bundles = [path for path in list_bundles(models_dir=args.models_dir) if wanted is None or path.name in wanted]
    load_before = list(os.getloadavg())
    results = {}
    for bundle_dir in bundles:
        print(f"measuring {bundle_dir.name} …", file=sys.stderr)
        results[bundle_dir.name] = measure_bundle(bundle_dir, max(1, args.inputs), max(1, args.repeat))
    print(
        json.dumps(
            {
                "bundles": results,
                "target_ms": TARGET_MS,
                "all_meet_target": all(result["meets_target"] for result in results.values()),
                "threads": 1,
                "cpu_count": os.cpu_count(),
                "load_average": load_before,
                "load_average_after": list(os.getloadavg()),
            },
            indent=2,
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
