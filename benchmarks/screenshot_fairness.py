"""The README's Fairness-page screenshot: a small store, `harness leaderboard`, headless Chromium.

Builds a store with a mock-model run of the fairness probes and a `harness audit` run over a
generated applicant file (gender x age, with older women deliberately rare and approved less
often); serves it with `harness leaderboard`; opens the Fairness page in headless Chromium (Debian's
chromium and chromium-driver, through selenium, as `screenshot_leaderboard.py` does); waits until the
per-group chart and the intersection heat map have drawn; and saves the screenshot.

    python -m benchmarks.screenshot_fairness [--out docs/fairness.png] [--store DIR]

With `--store DIR` holding runs already, the newest run is shown as it is.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

import harness
from benchmarks.screenshot_leaderboard import chromium, serve_leaderboard
from harness.audit import audit

ROOT = Path(__file__).resolve().parents[1]
WINDOW = (1400, 1900)
RENDER_TIMEOUT = 90.0
# Charts Streamlit has drawn (vega-embed renders each into a canvas or an svg).
_CHARTS_JS = "return document.querySelectorAll('.vega-embed canvas, .vega-embed svg').length;"


def write_applicants(path: Path, rows: int = 1200, seed: int = 0) -> Path:
    """Applicants with gender, age group and a decision; older women are rare and approved less."""
    rng = np.random.default_rng(seed)
    records = []
    for index in range(rows):
        gender = str(rng.choice(["woman", "man"]))
        age = str(rng.choice(["18-34", "35-54", "55+"], p=[0.4, 0.35, 0.25]))
        if gender == "woman" and age == "55+" and rng.random() < 0.7:
            age = "35-54"
        approve = (
            0.62 - (0.2 if (gender, age) == ("woman", "55+") else 0.0) - (0.05 if gender == "woman" else 0)
        )
        label = "approve" if rng.random() < approve else "deny"
        records.append({"id": index, "gender": gender, "age": age, "decision": label})
    path.write_text("".join(json.dumps(record) + "\n" for record in records), encoding="utf-8")
    return path


def build_store(root: Path, scratch: Path) -> None:
    harness.evaluate(
        "mock:0",
        "fairness_counterfactual_decisions,fairness_free_text",
        store=root,
        bootstrap_resamples=200,
        use_cache=False,
    )
    data = write_applicants(scratch / "applicants.jsonl")
    audit(data, ["gender", "age"], "decision", store=root, bootstrap_resamples=500, permutations=500)


def wait_for_charts(driver: Any, url: str, charts: int = 2) -> int:
    driver.get(url)
    deadline = time.monotonic() + RENDER_TIMEOUT
    found = 0
    while time.monotonic() < deadline:
        found = int(driver.execute_script(_CHARTS_JS))
        if found >= charts:
            break
        time.sleep(0.3)
    if found < charts:
        raise RuntimeError(f"the Fairness page drew {found} of {charts} charts")
    time.sleep(1.5)  # let fonts and the sidebar settle before the picture
    return found


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "fairness.png")
    parser.add_argument("--store", type=Path, default=None, help="use or build the store here")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="screenshot-fairness-") as folder:
        scratch = Path(folder)
        store = args.store or scratch / "store"
        if not store.exists():
            started = time.perf_counter()
            build_store(store, scratch)
            print(f"built {store} in {time.perf_counter() - started:.1f} s", file=sys.stderr)
        with (
            serve_leaderboard(store, scratch / "server.log") as url,
            chromium(scratch / "profile", WINDOW) as driver,
        ):
            charts = wait_for_charts(driver, url + "fairness")
            args.out.parent.mkdir(parents=True, exist_ok=True)
            driver.save_screenshot(str(args.out))
    print(json.dumps({"charts": charts, "screenshot": str(args.out)}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
