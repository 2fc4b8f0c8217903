from __future__ import annotations

import json
import multiprocessing
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from harness.errors import HarnessError
from harness.metrics import get_metric
from harness.metrics.base import Score
from harness.store import (
    SCHEMA_VERSION,
    Document,
    Provenance,
    ResultStore,
    RunRecord,
    RunSettings,
    SampleRecord,
    ScoreRecord,
    TaskResults,
    Versions,
    assemble_run,
    default_store_path,
    list_store,
    load_samples,
    load_store,
    new_run_id,
    normalise_tags,
    resolve_run,
)
from harness.store.statistics import (
    decode_statistics,
    encode_statistics,
    metric_names,
    metric_of_key,
    statistic_keys,
    statistics_matrix,
)

T0 = datetime(2026, 11, 21, 13, 25, 1, tzinfo=UTC)


def sql(query: str) -> list[tuple[Any, ...]]:
    relation = duckdb.sql(query)
    assert relation is not None
    return relation.fetchall()


def make_run(
    run_id: str, *, offset_s: int = 0, step: int | None = None, experiment: str | None = None
) -> RunRecord:
    return RunRecord(
        run_id=run_id,
        created_at=T0 + timedelta(seconds=offset_s),
        model="mock",
        model_fingerprint="fp-mock",
        experiment=experiment,
        step=step,
        tasks=("arc_easy", "hellaswag"),
        provenance=Provenance.from_dict({"dtype": "float32", "batch_size": 8}),
        status="completed",
    )


def make_scores(run_id: str) -> list[ScoreRecord]:
    return [
        ScoreRecord(run_id, "arc_easy", "1", "acc", 0.5, 0.05, 0.4, 0.6, 100, True, "sig-a"),
        ScoreRecord(run_id, "hellaswag", "2", "acc_norm", 0.25, None, None, None, 40, True, "sig-h"),
    ]


def make_samples(run_id: str) -> list[SampleRecord]:
    return [
        SampleRecord(
            run_id=run_id,
            task="arc_easy",
            doc_id=0,
            prompt="Q: 2+2?\nA:",
            target="4",
            prediction="4",
            choice_logprobs=(-0.1, -2.5, -3.0),
            statistics={"acc": 1.0},
            group="math",
            metadata={"source": "unit", "tags": ["a"]},
        ),
        SampleRecord(run_id, "hellaswag", 7, "ctx", "end", None, None, {}, None, {}),
    ]


def write(
    store: ResultStore,
    run_id: str,
    *,
    offset_s: int = 0,
    step: int | None = None,
    experiment: str | None = None,
) -> None:
    run = make_run(run_id, offset_s=offset_s, step=step, experiment=experiment)
    store.write_run(run, make_scores(run_id), make_samples(run_id))


def test_missing_store_reads_as_empty(tmp_path: Path) -> None:
    store = ResultStore(tmp_path / "nowhere")
    assert not store.exists()
    assert store.runs().empty and "run_id" in store.runs().columns
    scores = store.scores()
    assert scores.empty and {"metric", "value", "model", "created_at"} <= set(scores.columns)
    assert store.samples().empty and "choice_logprobs" in store.samples().columns
    assert not (tmp_path / "nowhere").exists()


def test_round_trip(tmp_path: Path) -> None:
    store = ResultStore(tmp_path / "store")
    write(store, "r1", offset_s=0, step=100, experiment="exp")
    write(store, "r2", offset_s=10)
    assert store.exists()
    marker = json.loads((tmp_path / "store" / "_harness_store.json").read_text())
    assert marker == {"schema_version": SCHEMA_VERSION, "format": "harness-store"}
    assert (tmp_path / "store" / "ratings").is_dir()

    runs = store.runs()
    assert runs["run_id"].tolist() == ["r1", "r2"]
    first = runs.iloc[0]
    assert first["created_at"] == pd.Timestamp(T0)
    assert str(runs["created_at"].dt.tz) == "UTC"
    assert first["model"] == "mock" and first["model_fingerprint"] == "fp-mock"
    assert first["experiment"] == "exp" and pd.isna(runs.iloc[1]["experiment"])
    assert runs["step"].tolist()[0] == 100 and pd.isna(runs["step"].tolist()[1])
    assert list(first["tasks"]) == ["arc_easy", "hellaswag"]
    assert json.loads(first["provenance"]) == {"dtype": "float32", "batch_size": 8}
    assert first["status"] == "completed"

    scores = store.scores("r1")
    assert len(scores) == 2 and set(scores["run_id"]) == {"r1"}
    acc = scores[scores["metric"] == "acc"].iloc[0]
    assert (acc["task"], acc["task_version"], acc["value"], acc["stderr"]) == ("arc_easy", "1", 0.5, 0.05)
    assert (acc["ci_low"], acc["ci_high"], acc["n"], acc["signature"]) == (0.4, 0.6, 100, "sig-a")
    assert bool(acc["higher_is_better"]) is True
    assert (acc["model"], acc["experiment"], acc["step"]) == ("mock", "exp", 100)
    assert acc["created_at"] == pd.Timestamp(T0)
    assert pd.isna(scores[scores["metric"] == "acc_norm"].iloc[0]["stderr"])
    assert len(store.scores()) == 4

    samples = store.samples("r1")
    assert len(samples) == 2
    s0 = samples[samples["doc_id"] == 0].iloc[0]
    assert (s0["prompt"], s0["target"], s0["prediction"], s0["group"]) == ("Q: 2+2?\nA:", "4", "4", "math")
    assert list(s0["choice_logprobs"]) == [-0.1, -2.5, -3.0]
    assert json.loads(s0["statistics"]) == {"acc": 1.0}
    assert json.loads(s0["metadata"]) == {"source": "unit", "tags": ["a"]}
    s7 = samples[samples["doc_id"] == 7].iloc[0]
    assert pd.isna(s7["prediction"])  # stored as null (None and NaN both read as missing)
    assert s7["choice_logprobs"] is None
    assert len(store.samples()) == 4
    assert store.samples(task="hellaswag")["run_id"].tolist() == ["r1", "r2"]
    assert store.samples("r2", task="arc_easy")["doc_id"].tolist() == [0]
    assert store.samples("missing").empty and store.scores("missing").empty


def test_readable_without_harness(tmp_path: Path) -> None:
    root = tmp_path / "store"
    store = ResultStore(root)
    write(store, "r1")
    write(store, "r2", offset_s=5)

    scores = pd.read_parquet(root / "scores")
    assert len(scores) == 4 and set(scores["run_id"]) == {"r1", "r2"}
    assert len(pd.read_parquet(root / "runs")) == 2
    assert len(pd.read_parquet(root / "samples")) == 4

    rows = sql(
        f"SELECT run_id, count(*) AS n, avg(value) AS mean "
        f"FROM read_parquet('{root}/scores/*.parquet') GROUP BY run_id ORDER BY run_id"
    )
    assert rows == [("r1", 2, 0.375), ("r2", 2, 0.375)]
    runs = sql(f"SELECT run_id, created_at FROM read_parquet('{root}/runs/*.parquet')")
    assert sorted(r[0] for r in runs) == ["r1", "r2"]

    for table in ("runs", "scores", "samples"):
        meta = pq.read_schema(root / table / "part-r1.parquet").metadata
        assert meta[b"harness.schema_version"] == str(SCHEMA_VERSION).encode()


def test_orphan_parts_are_invisible(tmp_path: Path) -> None:
    root = tmp_path / "store"
    store = ResultStore(root)
    write(store, "good")
    # A process killed before its runs row leaves only scores and samples behind.
    write(store, "orphan", offset_s=1)
    (root / "runs" / "part-orphan.parquet").unlink()

    assert store.runs()["run_id"].tolist() == ["good"]
    assert set(store.scores()["run_id"]) == {"good"}
    assert set(store.samples()["run_id"]) == {"good"}
    assert store.scores("orphan").empty and store.samples("orphan").empty


def test_leftover_temp_file_does_not_break_reading(tmp_path: Path) -> None:
    root = tmp_path / "store"
    store = ResultStore(root)
    write(store, "r1")
    for table in ("runs", "scores", "samples"):
        (root / table / ".part-r9.parquet.x1y2.tmp").write_bytes(b"half-written garbage")

    assert store.runs()["run_id"].tolist() == ["r1"]
    assert len(store.scores()) == 2 and len(store.samples()) == 2
    assert len(pd.read_parquet(root / "scores")) == 2
    count = sql(f"SELECT count(*) FROM read_parquet('{root}/scores/*.parquet')")
    assert count == [(2,)]
    write(store, "r2", offset_s=1)
    assert store.runs()["run_id"].tolist() == ["r1", "r2"]


def test_writes_leave_no_temp_files(tmp_path: Path) -> None:
    root = tmp_path / "store"
    write(ResultStore(root), "r1")
    assert not [p for p in root.rglob(".*")]
    assert sorted(p.name for p in (root / "scores").iterdir()) == ["part-r1.parquet"]


def test_newer_schema_version_is_refused(tmp_path: Path) -> None:
    root = tmp_path / "store"
    store = ResultStore(root)
    write(store, "r1")
    marker = {"schema_version": SCHEMA_VERSION + 1, "format": "harness-store"}
    (root / "_harness_store.json").write_text(json.dumps(marker))
    with pytest.raises(HarnessError, match="schema version"):
        store.runs()
    with pytest.raises(HarnessError, match="schema version"):
        write(store, "r2")


def test_path_that_is_a_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "store"
    path.write_text("not a store")
    store = ResultStore(path)
    with pytest.raises(HarnessError, match="is a file"):
        store.scores()
    with pytest.raises(HarnessError, match="is a file"):
        write(store, "r1")


def test_non_empty_directory_without_marker_is_refused(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("hello")
    store = ResultStore(tmp_path)
    with pytest.raises(HarnessError, match="not a harness results store"):
        store.runs()
    with pytest.raises(HarnessError, match="not a harness results store"):
        write(store, "r1")
    assert not (tmp_path / "runs").exists()


def test_cache_file_created_first_does_not_block_the_store(tmp_path: Path) -> None:
    # The runner opens <store>/cache.sqlite before the first run is written.
    for name in ("cache.sqlite", "cache.sqlite-wal", "cache.sqlite-shm"):
        (tmp_path / name).write_bytes(b"")
    store = ResultStore(tmp_path)
    assert store.runs().empty
    write(store, "r1")
    assert len(store.runs()) == 1


def test_empty_directory_becomes_a_store(tmp_path: Path) -> None:
    store = ResultStore(tmp_path)
    assert store.runs().empty
    write(store, "r1")
    assert store.exists() and len(store.runs()) == 1


def test_bad_input_is_rejected_before_writing(tmp_path: Path) -> None:
    store = ResultStore(tmp_path / "store")
    with pytest.raises(ValueError, match="file name"):
        store.write_run(make_run("../evil"), [], [])
    with pytest.raises(ValueError, match="passed with run"):
        store.write_run(make_run("r1"), make_scores("other"), [])
    naive = RunRecord("r1", datetime(2026, 1, 1), "m", "fp", None, None, (), Provenance(), "completed")
    with pytest.raises(ValueError, match="timezone"):
        store.write_run(naive, [], [])
    assert not (tmp_path / "store").exists()


def test_duplicate_run_is_refused(tmp_path: Path) -> None:
    store = ResultStore(tmp_path / "store")
    write(store, "r1")
    with pytest.raises(HarnessError, match="already exists"):
        write(store, "r1")
    assert len(store.scores()) == 2


def test_run_without_scores_or_samples(tmp_path: Path) -> None:
    store = ResultStore(tmp_path / "store")
    store.write_run(make_run("r1"), [], [])
    assert len(store.runs()) == 1 and store.scores().empty and store.samples().empty


def test_new_run_id_sorts_by_time_and_is_unique() -> None:
    ids = {new_run_id() for _ in range(1000)}
    assert len(ids) == 1000
    stamp = next(iter(ids)).split("-")[0]
    assert datetime.strptime(stamp, "%Y%m%dT%H%M%S")
    assert new_run_id() >= min(ids)


def test_default_store_path(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("HARNESS_STORE", raising=False)
    assert default_store_path() == Path("harness_store")
    monkeypatch.setenv("HARNESS_STORE", str(tmp_path / "elsewhere"))
    assert default_store_path() == tmp_path / "elsewhere"


def _write_many(root: str, worker: int, count: int, barrier: Any) -> None:
    store = ResultStore(root)
    # Start together, so that creating the store and writing parts really overlap.
    barrier.wait()
    for i in range(count):
        run_id = new_run_id()
        store.write_run(make_run(run_id, offset_s=worker * 100 + i), make_scores(run_id), [])


def test_concurrent_writers_lose_nothing(tmp_path: Path) -> None:
    root = str(tmp_path / "store")
    ctx = multiprocessing.get_context("spawn")
    barrier = ctx.Barrier(4)
    procs = [ctx.Process(target=_write_many, args=(root, w, 10, barrier)) for w in range(4)]
    for proc in procs:
        proc.start()
    for proc in procs:
        proc.join(timeout=60)
        assert proc.exitcode == 0
    store = ResultStore(root)
    runs = store.runs()
    assert len(runs) == 40 and runs["run_id"].is_unique
    scores = store.scores()
    assert len(scores) == 80 and set(scores["run_id"]) == set(runs["run_id"])


# -- typed provenance, the statistics codec, run assembly, and parts written by older versions ------


def test_provenance_is_typed_and_stored_flat(tmp_path: Path) -> None:
    provenance = Provenance(
        versions=Versions(harness="0.1.0", python="3.11.9", libraries={"sacrebleu": "2.6.0"}),
        settings=RunSettings(seed=3, limit=20, bootstrap_resamples=100),
        model={"adapter": "mock", "dtype": "none", "seed": 99},
        host="box",
        tags=("baseline",),
        cost={"qa": {"wall_seconds": 1.5}},
        details={"argv": ["harness", "run"]},
    )
    flat = provenance.to_dict()
    assert flat == {
        "adapter": "mock",
        "dtype": "none",
        "seed": 3,  # the run's seed wins over the adapter's own
        "harness": "0.1.0",
        "python": "3.11.9",
        "libraries": {"sacrebleu": "2.6.0"},
        "limit": 20,
        "bootstrap_resamples": 100,
        "host": "box",
        "tags": ["baseline"],
        "cost": {"qa": {"wall_seconds": 1.5}},
        "argv": ["harness", "run"],
    }
    read = Provenance.from_dict(flat)
    assert read.settings == RunSettings(3, 20, 100) and read.tags == ("baseline",)
    assert read.versions.harness == "0.1.0" and read.model == {"adapter": "mock", "dtype": "none"}
    assert read.to_dict() == flat
    store = ResultStore(tmp_path / "store")
    run = RunRecord("r1", T0, "m", "fp", "exp", 5, ("qa",), provenance)
    store.write_run(run, [], [])
    assert json.loads(store.runs()["provenance"][0]) == flat
    (record,) = store.run_records()
    assert record.provenance == read and record.tags == ("baseline",)
    assert (record.run_id, record.created_at, record.experiment, record.step, record.tasks) == (
        "r1",
        T0,
        "exp",
        5,
        ("qa",),
    )


def test_provenance_of_any_json_reads_without_losing_anything() -> None:
    legacy = {"limit": None, "seed": 0, "git_revision": None, "tags": "not-a-list", "batch_size": 8, "x": [1]}
    read = Provenance.from_dict(legacy)
    assert read.settings.limit is None and read.settings.seed == 0 and read.tags == ()
    assert read.details == {"tags": "not-a-list", "x": [1]} and read.model == {"batch_size": 8}
    # RunRecord reads a plain mapping (the stored JSON's shape) the same way, though typed as Provenance.
    assert RunRecord("r1", T0, "m", "fp", None, None, (), legacy).provenance == read  # type: ignore[arg-type]
    assert Provenance.from_json("not json") == Provenance()
    assert Provenance.from_json("[1, 2]") == Provenance()


def test_statistics_codec_has_one_key_format() -> None:
    assert statistic_keys("acc", ("correct", "count")) == ("acc/correct", "acc/count")
    assert statistic_keys("token_perplexity", ("logprob",)) == ("token_perplexity",)
    assert metric_of_key("acc/correct") == "acc" and metric_of_key("acc") == "acc"
    assert metric_of_key("evaluate:org/metric/value") == "evaluate:org/metric"
    acc, ppl = get_metric("acc"), get_metric("word_perplexity")
    matrices = [np.array([[1.0, 1.0], [0.0, 1.0]]), np.array([[-10.0, 4.0], [-6.0, 3.0]])]
    encoded = encode_statistics([acc, ppl], matrices, 2)
    assert encoded[0] == {"acc/correct": 1.0, "acc/count": 1.0, "word_perplexity/logprob": -10.0,
                          "word_perplexity/words": 4.0}  # fmt: skip
    texts = [json.dumps(row) for row in encoded] + ['{"acc": 1.0}', "{}", "garbage"]
    assert metric_names(texts) == ["acc", "word_perplexity"]
    matrix, found = statistics_matrix(texts, acc)
    np.testing.assert_array_equal(matrix[:3], [[1.0, 1.0], [0.0, 1.0], [1.0, 1.0]])  # bare mean: count 1
    assert found.tolist() == [True, True, True, False, False] and np.isnan(matrix[3:]).all()
    _, found = statistics_matrix(texts, ppl)
    assert found.tolist() == [True, True, False, False, False]
    assert decode_statistics("garbage") == {} and decode_statistics(None) == {}
    with pytest.raises(ValueError, match="3 documents"):
        encode_statistics([acc], [np.ones((2, 2))], 3)


def test_assemble_run_puts_a_run_together() -> None:
    score = Score("acc", 0.5, 0.1, 0.3, 0.7, 2, True, "acc|harness:test")
    documents = [
        Document(doc, f"q{doc}", "a", "a", (-0.5, -2.0), {"acc/correct": 1.0, "acc/count": 1.0}, "g")
        for doc in range(2)
    ]
    group_score = Score("acc", 0.5, None, None, None, 2, True, "acc|harness:test")
    assembled = assemble_run(
        model="m",
        model_fingerprint="fp",
        results=[TaskResults("qa", "1", [score], documents)],
        aggregates=[TaskResults("qa_group", "1", [group_score])],
        provenance=Provenance(tags=("t",)),
        experiment="exp",
        run_id="run-1",
        created_at=T0,
    )
    assert assembled.run.tasks == ("qa",) and assembled.run.run_id == "run-1" and assembled.run.tags == ("t",)
    assert [(s.run_id, s.task, s.task_version) for s in assembled.scores] == [
        ("run-1", "qa", "1"),
        ("run-1", "qa_group", "1"),
    ]
    assert [s.choice_logprobs for s in assembled.samples] == [(-0.5, -2.0), (-0.5, -2.0)]
    assert {s.task for s in assembled.samples} == {"qa"}
    with pytest.raises(HarnessError, match="non-empty"):
        normalise_tags(["ok", " "])
    assert normalise_tags([" a", "b", "a"]) == ("a", "b")


def test_parts_written_by_older_versions_still_read(tmp_path: Path) -> None:
    """A store written before typed provenance and tags: plain Parquet parts, provenance as older runs
    wrote it, and a scores part from before `task_version` existed."""
    root = tmp_path / "store"
    for table in ("runs", "scores", "samples"):
        (root / table).mkdir(parents=True)
    (root / "_harness_store.json").write_text('{"schema_version": 1, "format": "harness-store"}')
    old_provenance = {"adapter": "hf", "dtype": "float32", "seed": 0, "limit": None, "harness": "0.0.9"}
    runs = pa.table(
        {
            "run_id": ["old-1"],
            "created_at": pa.array([T0], type=pa.timestamp("us", tz="UTC")),
            "model": ["m"],
            "model_fingerprint": ["fp"],
            "experiment": ["baseline"],
            "step": pa.array([None], type=pa.int64()),
            "tasks": [["qa"]],
            "provenance": [json.dumps(old_provenance)],
            "status": ["completed"],
        }
    )
    pq.write_table(runs, root / "runs" / "part-old-1.parquet")
    scores = pa.table(
        {"run_id": ["old-1"], "task": ["qa"], "metric": ["acc"], "value": [0.5], "stderr": [0.1],
         "ci_low": [0.3], "ci_high": [0.7], "n": [2], "higher_is_better": [True], "signature": ["acc"]}
    )  # fmt: skip
    pq.write_table(scores, root / "scores" / "part-old-1.parquet")
    samples = pa.table(
        {"run_id": ["old-1"] * 2, "task": ["qa"] * 2, "doc_id": [0, 1], "prompt": ["p", "q"],
         "target": ["a", "b"], "prediction": ["a", "c"], "choice_logprobs": [None, None],
         "statistics": ['{"acc": 1.0}', '{"acc": 0.0}'], "group": [None, None], "metadata": ["{}", "{}"]}
    )  # fmt: skip
    pq.write_table(samples, root / "samples" / "part-old-1.parquet")

    store = ResultStore(root)
    (run,) = store.run_records()
    assert run.tags == () and run.provenance.settings.seed == 0 and run.provenance.versions.harness == "0.0.9"
    assert run.provenance.model == {"adapter": "hf", "dtype": "float32"}
    frame = store.scores()
    assert frame["task_version"].isna().all() and frame["model"].tolist() == ["m"]
    assert resolve_run(store, "tag:baseline") == "old-1"  # the experiment name, as before tags
    data = load_store(list_store(root))
    assert data.error is None and not data.problems and len(data.scores) == 1
    matrix, found = statistics_matrix(load_samples(root, "old-1")["statistics"], get_metric("acc"))
    assert found.all() and matrix.tolist() == [[1.0, 1.0], [0.0, 1.0]]
    write(store, "new-1", offset_s=60)  # a new run next to the old ones
    assert store.runs()["run_id"].tolist() == ["old-1", "new-1"]
