"""The leaderboard's Fairness page, run headless (AppTest): it shows the stored fairness rows of a run
(probes and a data audit) as they were computed, with the intersection heat map."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from streamlit.testing.v1 import AppTest

import harness
from harness.audit import audit
from harness.leaderboard.ui import STORE_KEY
from harness.leaderboard.views import VIEWS_DIR
from harness.store import ResultStore

APP = Path(VIEWS_DIR).parent / "app.py"


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str, str]:
    folder = tmp_path_factory.mktemp("fairness-page")
    root = folder / "store"
    probes = harness.evaluate(
        "mock:0",
        "fairness_free_text,fairness_counterfactual_decisions",
        store=root,
        bootstrap_resamples=50,
        use_cache=False,
    )
    rng = np.random.default_rng(0)
    rows = []
    for index in range(400):
        gender, age = str(rng.choice(["woman", "man"])), str(rng.choice(["young", "old"]))
        if gender == "woman" and age == "old" and rng.random() < 0.9:
            age = "young"
        rows.append({"id": index, "gender": gender, "age": age, "label": str(rng.choice(["yes", "no"]))})
    data = folder / "people.jsonl"
    data.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    audited = audit(data, ["gender", "age"], "label", store=root, bootstrap_resamples=50, permutations=50)
    return root, probes.run_id, audited.run_id


def _page(root: Path) -> AppTest:
    app = AppTest.from_file(str(APP), default_timeout=30)
    app.session_state[STORE_KEY] = str(root)
    app.run()
    app.switch_page("views/fairness.py").run()
    assert not app.exception, [exception.value for exception in app.exception]
    return app


def test_audit_run_shows_stored_rows_and_an_intersection_heat_map(store: tuple[Path, str, str]) -> None:
    root, _, audit_run = store
    app = _page(root)
    assert app.selectbox(key="fair_run").value == audit_run  # newest first
    assert app.selectbox(key="fair_task").value == "audit/people.jsonl"
    app.selectbox(key="fair_metric").set_value("representation").run()
    design = app.selectbox(key="fair_design")
    assert list(design.options) == ["gender", "age", "gender&age"]
    design.set_value("gender&age").run()
    assert not app.exception, [exception.value for exception in app.exception]
    table = app.dataframe[0].value
    stored = ResultStore(root).scores(run_id=audit_run).set_index("metric")
    for row in table.itertuples():
        assert (
            row.value == stored.loc[f"group/representation/{row.group}", "value"]
        )  # as stored, not recomputed
    assert "under_represented" in set(table["flag"])
    charts = app.get("vega_lite_chart")
    assert len(charts) == 2  # the per-group intervals and the intersection heat map
    assert "Intersections" in [header.value for header in app.subheader]


def test_gap_card_is_the_stored_difference_with_its_p_value(store: tuple[Path, str, str]) -> None:
    root, _, audit_run = store
    app = _page(root)
    app.selectbox(key="fair_metric").set_value("label=yes").run()
    app.selectbox(key="fair_design").set_value("gender").run()
    stored = ResultStore(root).scores(run_id=audit_run).set_index("metric")
    gap = stored.loc["fairness/label=yes/difference/gender", "value"]
    labels = {metric.label: metric.value for metric in app.metric}
    assert labels["Gap (max − min)"] == f"{gap:.4g}"
    captions = " ".join(str(caption.value) for caption in app.caption)
    assert "permutation p = " in captions


def test_probe_run_shows_free_text_and_decision_rows(store: tuple[Path, str, str]) -> None:
    root, probe_run, _ = store
    app = _page(root)
    app.selectbox(key="fair_run").set_value(probe_run).run()
    assert list(app.selectbox(key="fair_task").options) == [
        "fairness_counterfactual_decisions",
        "fairness_free_text",
    ]
    app.selectbox(key="fair_task").set_value("fairness_free_text").run()
    assert "refusal_rate" in app.selectbox(key="fair_metric").options
    app.selectbox(key="fair_metric").set_value("answer_words").run()
    assert not app.exception, [exception.value for exception in app.exception]
    table = app.dataframe[0].value
    assert sorted(table["group"]) == sorted(["woman", "man", "age 25", "age 70", "Christian", "Muslim"])
    assert (table["n"] == 10).all()
    assert table["p_holm"].notna().all()
