"""Load benchmark of the public dashboard: many visitors at once, page requests without a browser, one warm visit.

Each part starts its own Voila server on 127.0.0.1 (from the project root, so voila.json applies) and stops it
at the end. Chromium is Debian's, driven by Playwright; nothing but 127.0.0.1 is reached. Prints one JSON object:

- single: one visitor with a warm kernel pool, several times, each in a fresh browser context (nothing cached):
  `predict_clickable_ms` (navigation start → the audio tab's Predict button is enabled), and on the way `html_ms`
  (the page's HTML has arrived), `dom_content_loaded_ms` and `load_event_ms`, all in the page's own clock; the
  scripts it fetched; and the same for Voila's own page with nothing but one Predict button, served with the same
  settings (`voila_one_button`: the floor under any dashboard this Voila serves);
- visitors: `--visitors` browsers arriving within `--arrival-s` seconds; each waits for Predict, clicks an
  example clip and Predict, and must show the label the Predictor gives for that clip: `clickable_s` and
  `label_s` (arrival → Predict clickable, arrival → label shown) as p50, p95 and max, `busy` (visitors who got
  the busy page), `wrong` (a wrong or missing label), `cpu_s` (of the server with its kernels, of the browsers);
- requests: `--requests` plain HTTP GETs of the page (no browser, so no kernel connection), `--concurrency` at a
  time; the status codes, then the server's kernel count and resident memory (server plus kernels, from /proc)
  every second until both are back to the baseline measured before: `seconds_to_baseline` (target ≤ 90 s).

Usage:
    python benchmarks/load.py [--parts single,visitors,requests] [--visitors 10] [--requests 100]
    python benchmarks/load.py --voila-json OTHER.json   # the same with other server settings
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from urllib.error import HTTPError, URLError
from urllib.request import urlopen

PROJECT_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(PROJECT_ROOT))

from benchmarks.browser_harness import CHROMIUM, CHROMIUM_ARGS, start_voila, stop_process, write_code_notebook  # noqa: E402

PAGE_SIZE = os.sysconf("SC_PAGE_SIZE")
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
TIMEOUT_MS = 90_000  # per step of a visit; a page that never becomes usable fails after it
# Resolves with performance.now() (ms since navigation start) once the audio tab's Predict button is enabled.
PREDICT_CLICKABLE_JS = """() => {
  const button = document.querySelector('.onepipe-tab .onepipe-predict');
  return button && !button.disabled && button.offsetParent !== null ? performance.now() : false;
}"""
# Where a warm visit's time goes, in ms since navigation start, and the scripts it fetched (decoded bytes).
PAGE_TIMING_JS = """() => {
  const navigation = performance.getEntriesByType('navigation')[0];
  const scripts = performance.getEntriesByType('resource').filter((entry) => entry.initiatorType === 'script');
  return {html: navigation.responseEnd, dom_content_loaded: navigation.domContentLoadedEventEnd,
          load_event: navigation.loadEventEnd, scripts: scripts.length,
          script_bytes: scripts.reduce((sum, entry) => sum + entry.decodedBodySize, 0)};
}"""
RSS_TOLERANCE_BYTES = 50 * 2**20  # "back to baseline": within this much of the resident memory before the requests


# ---------------------------------------------------------------------------------------------
# The server's processes, from /proc


def _stat_fields(pid: int) -> list[str]:
    """Fields of /proc/PID/stat after the command name (index 0 = state, 1 = ppid, 11 = utime, 12 = stime)."""
    text = Path(f"/proc/{pid}/stat").read_text()
    return text[text.rindex(")") + 2 :].split()


def process_tree(root: int) -> list[int]:
    """`root` and all its living descendants."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                children.setdefault(int(_stat_fields(int(entry))[1]), []).append(int(entry))
            except (OSError, ValueError, IndexError):
                continue  # gone meanwhile
    tree, pending = [], [root]
    while pending:
        pid = pending.pop()
        tree.append(pid)
        pending.extend(children.get(pid, []))
    return tree


def is_kernel(pid: int) -> bool:
    try:
        return b"ipykernel_launcher" in Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False


def server_usage(root: int) -> dict:
    """Kernel count, total resident memory (bytes) and total CPU seconds of the server and its descendants."""
    kernels, rss, cpu = 0, 0, 0.0
    for pid in process_tree(root):
        try:
            rss += int(Path(f"/proc/{pid}/statm").read_text().split()[1]) * PAGE_SIZE
            fields = _stat_fields(pid)
            cpu += (int(fields[11]) + int(fields[12])) / CLOCK_TICKS
        except (OSError, ValueError, IndexError):
            continue
        kernels += is_kernel(pid)
    return {"kernels": kernels, "rss_bytes": rss, "cpu_s": cpu}


def cpu_split(server: int) -> dict[str, float]:
    """CPU seconds used so far by the server with its kernels, and by the browser (every other descendant of this
    process that is still alive: Playwright's driver and Chromium)."""
    server_cpu = server_usage(server)["cpu_s"]
    own = {os.getpid(), *process_tree(server)}
    browser_cpu = 0.0
    for pid in process_tree(os.getpid()):
        if pid not in own:
            try:
                fields = _stat_fields(pid)
                browser_cpu += (int(fields[11]) + int(fields[12])) / CLOCK_TICKS
            except (OSError, ValueError, IndexError):
                continue
    return {"server": server_cpu, "browser": browser_cpu}


def wait_until_quiet(root: int, kernels: int | None = None, timeout: float = 90.0, window: float = 2.0) -> dict:
    """Wait until the server used under 5 % of a core over `window` seconds (the preheated kernel has run the
    notebook) with a steady kernel count: exactly `kernels` when given, else at least one. Returns the usage."""
    deadline = time.monotonic() + timeout
    previous = server_usage(root)
    while time.monotonic() < deadline:
        time.sleep(window)
        usage = server_usage(root)
        steady = usage["kernels"] == (previous["kernels"] if kernels is None else kernels) >= 1
        if steady and usage["cpu_s"] - previous["cpu_s"] < 0.05 * window:
            return usage
        previous = usage
    raise RuntimeError(f"the server did not settle with {kernels} kernel(s) within {timeout:.0f} s: {previous}")


def megabytes(value: float) -> float:
    return round(value / 2**20, 1)


def percentile(values: list[float], fraction: float) -> float | None:
    """The `fraction` quantile (nearest rank) of `values`, None when empty."""
    if not values:
        return None
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, max(0, round(fraction * len(ordered) + 0.5) - 1))], 2)


def summary(values: list[float]) -> dict:
    return {
        "p50": round(statistics.median(values), 2) if values else None,
        "p95": percentile(values, 0.95),
        "max": round(max(values), 2) if values else None,
    }


# ---------------------------------------------------------------------------------------------
# The parts


def expected_labels(models_dir: Path) -> dict[tuple[str, str], list[tuple[str, str]]]:
    """{(audio bundle, class): [(file name, label the Predictor gives it), …]} for the dashboard's examples."""
    from app.predict import Predictor
    from app.ui.bundles import list_bundle_infos, sample_files

    table = {}
    for info in list_bundle_infos("audio", models_dir):
        groups = sample_files(info)
        if not groups:
            continue
        predictor = Predictor.load(info.path)
        for class_name, files in groups.items():
            table[(info.name, class_name)] = [(path.name, predictor(path, top_k=1)[0]["label"]) for path in files]
    return table


# The floor under the dashboard: Voila's own page with one button where the dashboard's Predict is, on the same
# server settings. What the page costs beyond it is the dashboard's share; the rest is Voila's front end.
ONE_BUTTON_CODE = """\
import ipywidgets as widgets

predict = widgets.Button(description="Predict")
predict.add_class("onepipe-predict")
tab = widgets.VBox([predict])
tab.add_class("onepipe-tab")
tab
"""


def warm_visits(browser_factory, models_dir: Path, server: dict, visits: int) -> dict:
    """One visitor at a time on a warm pool, each in a fresh browser context: HTML arrival and Predict clickable,
    in the page's own clock."""
    process, url = start_voila(models_dir, **server)
    try:
        wait_until_quiet(process.pid, kernels=1)
        timings, clickable_ms = [], []

        async def visit() -> None:
            async with browser_factory() as browser:
                for _ in range(visits):
                    context = await browser.new_context(viewport={"width": 1200, "height": 900})
                    page = await context.new_page()
                    await page.goto(url, timeout=TIMEOUT_MS)
                    handle = await page.wait_for_function(PREDICT_CLICKABLE_JS, polling="raf", timeout=TIMEOUT_MS)
                    clickable_ms.append(round(await handle.json_value(), 1))
                    timings.append(await page.evaluate(PAGE_TIMING_JS))
                    await page.close(run_before_unload=True)  # the page's beacon shuts its kernel down
                    await context.close()
                    await asyncio.to_thread(wait_until_quiet, process.pid)  # the pool is warm again

        asyncio.run(visit())
    finally:
        stop_process(process)
    return {
        "visits": visits,
        "html_ms": [round(timing["html"], 1) for timing in timings],
        "dom_content_loaded_ms": [round(timing["dom_content_loaded"], 1) for timing in timings],
        "load_event_ms": [round(timing["load_event"], 1) for timing in timings],
        "predict_clickable_ms": clickable_ms,
        "predict_clickable_median_ms": round(statistics.median(clickable_ms), 1),
        "scripts": timings[-1]["scripts"],
        "script_megabytes": round(timings[-1]["script_bytes"] / 2**20, 2),
    }


def measure_single(browser_factory, models_dir: Path, server: dict, visits: int, scratch: Path) -> dict:
    """warm_visits of the dashboard, then of Voila's one-button page on the same settings (`voila_one_button`):
    the floor that no dashboard served by this Voila can go below on this machine."""
    report = warm_visits(browser_factory, models_dir, server, visits)
    reference = {
        **server,
        "notebook": write_code_notebook(scratch / "one_button.ipynb", ONE_BUTTON_CODE),
        "cwd": server.get("cwd", PROJECT_ROOT),  # the same voila.json
        "log_path": scratch / "one_button.log",
    }
    report["voila_one_button"] = warm_visits(browser_factory, models_dir, reference, visits)
    report["dashboard_over_one_button_ms"] = round(
        report["predict_clickable_median_ms"] - report["voila_one_button"]["predict_clickable_median_ms"], 1
    )
    report["target_ms"] = 1000
    return report


async def _visitor(browser, url: str, delay: float, index: int, expected: dict) -> dict:
    await asyncio.sleep(delay)
    context = await browser.new_context(viewport={"width": 1200, "height": 900})
    page = await context.new_page()
    start = time.perf_counter()
    record: dict = {"index": index, "arrival_s": round(delay, 2)}
    try:
        response = await page.goto(url, timeout=TIMEOUT_MS)
        record["status"] = response.status if response else None
        if record["status"] != 200:
            return record
        audio = page.locator(".onepipe-tab").first
        await page.wait_for_function(PREDICT_CLICKABLE_JS, polling="raf", timeout=TIMEOUT_MS)
        record["clickable_s"] = round(time.perf_counter() - start, 2)
        selects = audio.locator("select")
        bundle, class_name = await selects.nth(0).input_value(), await selects.nth(1).input_value()
        files = expected[(bundle, class_name)]
        clip = index % len(files)
        await audio.locator(".onepipe-clips button").nth(clip).click()
        await page.wait_for_timeout(200)  # the selection reaches the kernel before Predict
        await audio.locator(".onepipe-predict").click()
        label = audio.locator(".onepipe-result .onepipe-top-label")
        await label.wait_for(timeout=TIMEOUT_MS)
        record["label_s"] = round(time.perf_counter() - start, 2)
        record["clip"] = f"{bundle}/{class_name}/{files[clip][0]}"
        record["label"], record["expected"] = (await label.inner_text()).strip(), files[clip][1]
    except Exception as error:  # a visitor's failure is reported, the others go on
        record["error"] = f"{type(error).__name__}: {str(error).splitlines()[0][:200]}"
    finally:
        await page.close(run_before_unload=True)
        await context.close()
    return record


def measure_visitors(browser_factory, models_dir: Path, server: dict, count: int, arrival_s: float) -> dict:
    """`count` browsers arriving evenly spread over `arrival_s` seconds, each predicting an example clip."""
    expected = expected_labels(models_dir)
    process, url = start_voila(models_dir, **server)
    try:
        baseline = wait_until_quiet(process.pid, kernels=1)

        async def run() -> tuple[list[dict], dict, dict]:
            async with browser_factory() as browser:
                delays = [arrival_s * i / max(1, count - 1) for i in range(count)]
                cpu_before = cpu_split(process.pid)  # the browser's processes count while they live
                visits = [_visitor(browser, url, d, i, expected) for i, d in enumerate(delays)]
                records = await asyncio.gather(*visits)
                return records, cpu_before, cpu_split(process.pid)

        started = time.perf_counter()
        records, cpu_before, cpu_after = asyncio.run(run())
        elapsed = time.perf_counter() - started
        peak = server_usage(process.pid)
    finally:
        stop_process(process)
    served = [r for r in records if r.get("status") == 200]
    correct = [r for r in served if "label" in r and r["label"] == r["expected"]]
    return {
        "visitors": count,
        "arrival_s": arrival_s,
        "served": len(served),
        "busy": sum(r.get("status") == 503 for r in records),
        "correct": len(correct),
        "wrong": [r for r in served if r not in correct],
        "clickable_s": summary([r["clickable_s"] for r in served if "clickable_s" in r]),
        "label_s": summary([r["label_s"] for r in correct]),
        "elapsed_s": round(elapsed, 1),
        "cpu_s": {part: round(cpu_after[part] - cpu_before[part], 1) for part in cpu_before},
        "baseline_rss_mb": megabytes(baseline["rss_bytes"]),
        "rss_mb_at_end": megabytes(peak["rss_bytes"]),
        "kernels_at_end": peak["kernels"],
        "records": records,
    }


def _get(url: str) -> tuple[int | str, float]:
    start = time.perf_counter()
    try:
        with urlopen(url, timeout=120) as response:
            response.read()
            status: int | str = response.status
    except HTTPError as error:
        error.read()
        status = error.code
    except (URLError, OSError) as error:
        status = type(error).__name__
    return status, time.perf_counter() - start


def measure_requests(models_dir: Path, server: dict, count: int, concurrency: int, settle_timeout: float) -> dict:
    """`count` GETs of the page without a browser, then seconds until kernels and memory are back to baseline."""
    process, url = start_voila(models_dir, **server)
    samples = []
    try:
        baseline = wait_until_quiet(process.pid, kernels=1)
        started = time.perf_counter()
        with ThreadPoolExecutor(concurrency) as pool:
            results = list(pool.map(_get, [url] * count))
        burst_s = time.perf_counter() - started
        after_burst = time.perf_counter()
        peak_kernels, peak_rss, back_s = 0, 0, None
        while time.perf_counter() - after_burst < settle_timeout:
            usage = server_usage(process.pid)
            elapsed = time.perf_counter() - after_burst
            samples.append(
                {"t": round(elapsed, 1), "kernels": usage["kernels"], "rss_mb": megabytes(usage["rss_bytes"])}
            )
            peak_kernels, peak_rss = max(peak_kernels, usage["kernels"]), max(peak_rss, usage["rss_bytes"])
            if (
                usage["kernels"] <= baseline["kernels"]
                and usage["rss_bytes"] <= baseline["rss_bytes"] + RSS_TOLERANCE_BYTES
            ):
                back_s = round(elapsed, 1)
                break
            time.sleep(1.0)
    finally:
        stop_process(process)
    statuses: dict[str, int] = {}
    for status, _ in results:
        statuses[str(status)] = statuses.get(str(status), 0) + 1
    by_status = {status: summary([seconds for code, seconds in results if str(code) == status]) for status in statuses}
    return {
        "requests": count,
        "concurrency": concurrency,
        "statuses": statuses,
        "response_s": by_status,
        "burst_s": round(burst_s, 1),
        "baseline": {"kernels": baseline["kernels"], "rss_mb": megabytes(baseline["rss_bytes"])},
        "peak_after_burst": {"kernels": peak_kernels, "rss_mb": megabytes(peak_rss)},
        "seconds_to_baseline": back_s,
        "settle_timeout_s": settle_timeout,
        "rss_tolerance_mb": megabytes(RSS_TOLERANCE_BYTES),
        "target_s": 90,
        "samples": samples,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models-dir", type=Path, default=None, help="default: the project's models/")
    parser.add_argument("--parts", default="single,visitors,requests", help="comma-separated, run in this order")
    parser.add_argument("--visits", type=int, default=3, help="single: warm-pool visits, one after the other")
    parser.add_argument("--visitors", type=int, default=10)
    parser.add_argument("--arrival-s", type=float, default=2.0, help="visitors arrive evenly over this many seconds")
    parser.add_argument("--requests", type=int, default=100)
    parser.add_argument("--concurrency", type=int, default=10, help="requests in flight at once")
    parser.add_argument(
        "--voila-json", type=Path, default=None, help="serve with these settings instead of the project's voila.json"
    )
    parser.add_argument("--settle-timeout", type=float, default=120.0, help="seconds to wait for the baseline")
    args = parser.parse_args(argv)

    parts = args.parts.split(",")
    if unknown := set(parts) - {"single", "visitors", "requests"}:
        parser.error(f"unknown part(s) {', '.join(sorted(unknown))}; expected single, visitors or requests")

    from playwright.async_api import async_playwright

    from app import paths

    models_dir = args.models_dir or paths.MODELS_DIR
    if not Path(CHROMIUM).exists():
        print(json.dumps({"error": f"needs Debian's chromium at {CHROMIUM}"}))
        return 2

    class BrowserFactory:
        """`async with BrowserFactory() as browser`: a Chromium launched for one part and closed after it."""

        async def __aenter__(self):
            self.playwright = await async_playwright().start()
            self.browser = await self.playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            return self.browser

        async def __aexit__(self, *exc_info) -> None:
            await self.browser.close()
            await self.playwright.stop()

    report: dict = {"cpu_count": os.cpu_count(), "load_average": os.getloadavg()}
    voila_json = args.voila_json or PROJECT_ROOT / "voila.json"
    settings = json.loads(voila_json.read_text())
    report["settings"] = {key: settings.get(key) for key in ("MappingKernelManager", "DashboardKernelManager")}
    report["settings"]["pool_size"] = settings.get("VoilaConfiguration", {}).get("default_pool_size")
    report["settings"]["voila_json"] = str(voila_json)
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as folder:
        served: dict = {}
        if args.voila_json:  # the notebook beside that file, which the server then reads as its voila.json
            shutil.copy(PROJECT_ROOT / "notebooks" / "app.ipynb", Path(folder) / "app.ipynb")
            shutil.copy(args.voila_json, Path(folder) / "voila.json")
            served = {"notebook": Path(folder) / "app.ipynb", "cwd": Path(folder)}
        for part in parts:
            server = {**served, "log_path": Path(folder) / f"{part}.log"}
            print(f"{part}…", file=sys.stderr)
            if part == "single":
                report[part] = measure_single(BrowserFactory, models_dir, server, args.visits, Path(folder))
            elif part == "visitors":
                report[part] = measure_visitors(BrowserFactory, models_dir, server, args.visitors, args.arrival_s)
            else:
                report[part] = measure_requests(
                    models_dir, server, args.requests, args.concurrency, args.settle_timeout
                )
    report["elapsed_s"] = round(time.perf_counter() - started, 1)
    report["load_average_after"] = os.getloadavg()
    print(json.dumps(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
