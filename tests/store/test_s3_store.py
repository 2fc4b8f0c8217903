"""The results store in object storage, against a real S3-compatible server (moto's server mode) on
loopback: the same commands, the same commit rule, the request cache on local disk, and one clear
line (never a secret) when the bucket, the credentials or the endpoint are wrong."""

from __future__ import annotations

import dataclasses
import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path

import pyarrow.fs as pafs
import pytest
from moto.server import ThreadedMotoServer

from harness.cli import main
from harness.store import ResultStore, list_store, load_store

SECRET = "harness-test-secret-4f1d2c"  # must never appear in anything harness prints


@pytest.fixture(scope="module")
def s3_endpoint() -> Iterator[str]:
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


def _environment(endpoint: str, cache_home: Path) -> dict[str, str]:
    return {
        "AWS_ACCESS_KEY_ID": "harness-test-key",
        "AWS_SECRET_ACCESS_KEY": SECRET,
        "AWS_ENDPOINT_URL": endpoint,
        "AWS_REGION": "us-east-1",
        "XDG_CACHE_HOME": str(cache_home),
        "HF_HUB_OFFLINE": "1",
        "HF_DATASETS_OFFLINE": "1",
        "TOKENIZERS_PARALLELISM": "false",
    }


def _filesystem(endpoint: str) -> pafs.S3FileSystem:
    address = endpoint.removeprefix("http://")
    return pafs.S3FileSystem(
        endpoint_override=address, scheme="http", region="us-east-1", allow_bucket_creation=True
    )


@pytest.fixture
def s3_store(s3_endpoint: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[str, dict[str, str]]:
    """A fresh bucket; the store URI inside it, and the environment that reaches it."""
    environment = _environment(s3_endpoint, tmp_path / "cache-home")
    for name, value in environment.items():
        monkeypatch.setenv(name, value)
    bucket = f"harness-{uuid.uuid4().hex[:12]}"
    _filesystem(s3_endpoint).create_dir(bucket)
    return f"s3://{bucket}/team/results", {**os.environ, **environment}


def _harness(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "harness.cli", *args], capture_output=True, text=True, env=env, timeout=300
    )


def _objects(endpoint: str, store: str) -> list[str]:
    selector = pafs.FileSelector(store.removeprefix("s3://"), recursive=True, allow_not_found=True)
    infos = _filesystem(endpoint).get_file_info(selector)
    return sorted(info.path for info in infos if info.type == pafs.FileType.File)


def test_two_writers_scores_gate_and_leaderboard_on_s3(
    s3_endpoint: str, s3_store: tuple[str, dict[str, str]], tiny_model_dir: Path, tmp_path: Path
) -> None:
    store, env = s3_store
    command = [
        sys.executable, "-m", "harness.cli", "run", "--model", f"hf:{tiny_model_dir}",
        "--model-args", "batch_size=2", "--tasks", "harness_tone", "--limit", "4", "--store", store,
        "--quiet", "--format", "json",
    ]  # fmt: skip
    writers = [
        subprocess.Popen(
            [*command, "--experiment", name], stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env
        )
        for name in ("left", "right")
    ]
    outputs = [writer.communicate(timeout=300) for writer in writers]
    for writer, (_, err) in zip(writers, outputs, strict=True):
        assert writer.returncode == 0, err.decode()

    listed = _harness("scores", "--store", store, "--format", "json", env=env)
    assert listed.returncode == 0, listed.stderr
    rows = json.loads(listed.stdout)
    run_ids = sorted({row["run_id"] for row in rows})
    assert len(run_ids) == 2 and {row["task"] for row in rows} == {"harness_tone"}
    assert len(rows) == 2 * len({(row["metric"]) for row in rows})

    gate = _harness(
        "gate", "--store", store, "--baseline", "latest:left", "--candidate", "latest:right",
        "--json", str(tmp_path / "gate.json"), env=env,
    )  # fmt: skip
    assert gate.returncode in (0, 1), gate.stderr
    assert json.loads((tmp_path / "gate.json").read_text(encoding="utf-8"))
    compared = _harness(
        "compare", "latest:left", "latest:right", "--format", "json", env={**env, "HARNESS_STORE": store}
    )
    assert compared.returncode == 0, compared.stderr
    assert json.loads(compared.stdout)

    # The request cache lives on local disk; the bucket holds the store's tables only.
    objects = _objects(s3_endpoint, store)
    assert not any("cache.sqlite" in name for name in objects)
    assert list((tmp_path / "cache-home" / "harness" / "s3").rglob("cache.sqlite"))
    assert sum("/runs/part-" in name for name in objects) == 2

    from streamlit.testing.v1 import AppTest

    from harness.leaderboard.ui import STORE_KEY

    app = AppTest.from_file(str(Path(__file__).parents[2] / "leaderboard" / "app.py"), default_timeout=120)
    app.session_state[STORE_KEY] = store
    app.run()
    assert not app.exception
    captions = " ".join(str(caption.value) for caption in app.caption)
    assert "2 runs" in captions
    printed = (listed.stdout, listed.stderr, gate.stdout, gate.stderr, compared.stdout, compared.stderr)
    for text in (*printed, *(output[1].decode() for output in outputs)):
        assert SECRET not in text


_KILLED_WRITER = """
import os, signal, sys
import harness.store.result_store as result_store
from harness.store import ResultStore
from test_compaction import _write

real = result_store.write_part

def write_then_die(root, table, key, data):
    target = real(root, table, key, data)
    if table == "scores":  # samples and scores are uploaded, the runs part that commits them is not
        os.kill(os.getpid(), signal.SIGKILL)
    return target

result_store.write_part = write_then_die
_write(ResultStore(sys.argv[1]), "killed-run", 1)
"""


def test_a_writer_killed_mid_run_leaves_no_visible_run(
    s3_endpoint: str, s3_store: tuple[str, dict[str, str]]
) -> None:
    store, env = s3_store
    sys.path.insert(0, str(Path(__file__).parent))
    from test_compaction import _write

    _write(ResultStore(store), "whole-run", 0)
    killed = subprocess.run(
        [sys.executable, "-c", _KILLED_WRITER, store],
        env={**env, "PYTHONPATH": str(Path(__file__).parent)},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert killed.returncode == -9, killed.stderr
    objects = _objects(s3_endpoint, store)
    assert any("samples/part-killed-run" in name for name in objects)
    assert not any("runs/part-killed-run" in name for name in objects)

    assert list(ResultStore(store).runs()["run_id"]) == ["whole-run"]
    assert set(ResultStore(store).scores()["run_id"]) == {"whole-run"}
    data = load_store(list_store(store))
    assert list(data.runs["run_id"]) == ["whole-run"] and not data.problems
    shown = _harness("scores", "--store", store, "--format", "json", env=env)
    assert shown.returncode == 0 and {row["run_id"] for row in json.loads(shown.stdout)} == {"whole-run"}


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture(scope="module")
def s3_endpoint_with_auth() -> Iterator[str]:
    """A second server, in a process of its own, that checks credentials (moto accepts any by default,
    and the switch is per process); none given here are valid."""
    port = _free_port()
    endpoint = f"http://127.0.0.1:{port}"
    server = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                _filesystem(endpoint).create_dir("locked")
                break
            except OSError:
                if time.monotonic() > deadline or server.poll() is not None:
                    raise
                time.sleep(0.2)
        request = urllib.request.Request(
            f"{endpoint}/moto-api/reset-auth",
            data=b"0",
            method="POST",
            headers={"Content-Type": "application/octet-stream"},
        )
        with urllib.request.urlopen(request, timeout=10) as reply:
            assert reply.status == 200
        yield endpoint
    finally:
        server.terminate()
        server.wait(timeout=30)


@dataclasses.dataclass(frozen=True)
class BadObjectStore:
    problem: str  # an unreachable endpoint, a missing bucket or wrong credentials
    endpoint: str
    store: str


@pytest.fixture(params=["unreachable endpoint", "missing bucket", "wrong credentials"])
def bad_object_store(
    request: pytest.FixtureRequest, s3_endpoint: str, s3_endpoint_with_auth: str, refused_port: int
) -> BadObjectStore:
    """An endpoint and store URL that make one of the problems a user meets."""
    problem = request.param
    if problem == "unreachable endpoint":
        return BadObjectStore(problem, f"http://127.0.0.1:{refused_port}", "s3://anything/results")
    if problem == "wrong credentials":
        return BadObjectStore(problem, s3_endpoint_with_auth, "s3://locked/results")
    return BadObjectStore(problem, s3_endpoint, f"s3://missing-{uuid.uuid4().hex[:8]}/results")


def _assert_one_bad_store_line(problem: str, out: str, err: str) -> None:
    """Besides warnings, one `harness: error:` line naming `problem` (see `bad_object_store`), no
    traceback, and the secret nowhere."""
    errors = [line for line in err.splitlines() if not line.startswith("harness: warning:")]
    assert len(errors) == 1 and errors[0].startswith("harness: error:"), err
    expected = {
        "unreachable endpoint": "cannot reach the object store",
        "missing bucket": "does not exist",
        "wrong credentials": "was denied",
    }[problem]
    assert expected in errors[0]
    assert SECRET not in out + err and "Traceback" not in err


@pytest.mark.parametrize("command", ["scores", "run"])
def test_bad_object_storage_is_one_line_without_secrets(
    command: str, bad_object_store: BadObjectStore, tmp_path: Path
) -> None:
    problem, store = bad_object_store.problem, bad_object_store.store
    env = {**os.environ, **_environment(bad_object_store.endpoint, tmp_path / "cache-home")}
    args = ["--store", store]
    if command == "run":
        args += ["--model", "mock:0", "--tasks", "harness_tone", "--limit", "2", "--quiet"]
    done = _harness(command, *args, env=env)
    assert done.returncode == 2, done.stderr
    _assert_one_bad_store_line(problem, done.stdout, done.stderr)
    if problem == "missing bucket":
        bucket = store.removeprefix("s3://").split("/")[0]
        assert _filesystem(bad_object_store.endpoint).get_file_info(bucket).type == pafs.FileType.NotFound


def _checkpoints(folder: Path, *names: str) -> Path:
    """Checkpoint folders the mock adapter loads: a config and a whole safetensors file each."""
    header = json.dumps({"w": {"dtype": "F32", "shape": [4], "data_offsets": [0, 16]}}).encode()
    for name in names:
        (folder / name).mkdir(parents=True)
        (folder / name / "config.json").write_text('{"model_type": "llama"}', encoding="utf-8")
        weights = len(header).to_bytes(8, "little") + header + bytes(16)
        (folder / name / "model.safetensors").write_bytes(weights + name.encode())  # distinct weights
    return folder


def test_run_watch_and_score_on_s3(
    s3_endpoint: str, s3_store: tuple[str, dict[str, str]], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    store, _ = s3_store
    run = ["run", "--model", "mock:0", "--tasks", "harness_tone", "--limit", "2", "--quiet", "--store", store]
    assert main([*run, "--bootstrap-resamples", "0"]) == 0
    assert f"stored in {store}\n" in capsys.readouterr().err  # the URI as given, not folded by Path

    checkpoints = _checkpoints(tmp_path / "sft", "checkpoint-10", "checkpoint-20")
    watch = ["watch", str(checkpoints), "--adapter", "mock", "--tasks", "harness_tone", "--limit", "2"]
    watch += ["--store", store, "--once", "--settle-seconds", "0"]
    assert main(watch) == 0
    log = capsys.readouterr().err
    assert "evaluated checkpoint-10" in log and "evaluated checkpoint-20" in log
    assert main(watch) == 0  # a restarted watcher finds both runs in the bucket
    log = capsys.readouterr().err
    assert "skipped checkpoint-10" in log and "skipped checkpoint-20" in log

    predictions = tmp_path / "outputs.jsonl"
    rows = [{"prediction": "a cat", "reference": "a cat"}, {"prediction": "dog", "reference": "a dog"}]
    predictions.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    score = ["score", "--predictions", str(predictions), "--metrics", "exact_match,token_f1"]
    assert main([*score, "--store", store, "--experiment", "offline", "--format", "json"]) == 0
    capsys.readouterr()

    runs = ResultStore(store).run_records()
    assert [(run.experiment, run.step) for run in runs][1:] == [("sft", 10), ("sft", 20), ("offline", None)]
    scored = ResultStore(store).scores(runs[-1].run_id)
    assert set(scored["metric"]) >= {"exact_match", "token_f1"} and set(scored["n"]) == {2}
    objects = _objects(s3_endpoint, store)
    assert sum("/runs/part-" in name for name in objects) == 4
    assert not any(name.endswith(".sqlite") for name in objects)


def test_ratings_on_s3_keep_the_database_local_and_export_into_the_bucket(
    s3_endpoint: str, s3_store: tuple[str, dict[str, str]], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from harness.leaderboard.human import cached_human_by_run, human_by_run
    from harness.ratings import RatingsDB, RatingsError, export_ratings, read_ratings
    from tests.ratings.test_ratings_support import two_run_store

    store, _ = s3_store
    good, bad = two_run_store(Path(store), documents=3)  # Path folds s3://; the store restores it
    campaign = ["ratings", "campaign", "pw", "--mode", "pairwise", "--runs", good, bad, "--store", store]
    assert main([*campaign, "--overlap", "1"]) == 0
    assert f"--store {store}`" in capsys.readouterr().out

    db = RatingsDB.for_store(store)
    local = tmp_path / "cache-home" / "harness" / "s3" / store.removeprefix("s3://") / "ratings.sqlite"
    assert db.path == local and db.exists()
    rater = db.register_rater("pw", "ann")
    served = db.next_item("pw", rater)
    assert served is not None
    db.submit("pw", rater, served.item.item_id, {"preference": "A"}, display_order=served.display_order)

    assert main(["ratings", "export", "--store", store]) == 0
    assert capsys.readouterr().out == f"{store}/ratings/part-pw.parquet: 1 rating(s)\n"
    objects = _objects(s3_endpoint, store)
    assert f"{store.removeprefix('s3://')}/ratings/part-pw.parquet" in objects
    assert not any(name.endswith((".sqlite", ".lock")) for name in objects)  # both stay on this machine

    exported = read_ratings(store)
    assert list(exported["rater"]) == ["ann"] and list(exported["winner_run"]) == [served.display_order[0]]
    assert set(human_by_run(exported)["run_id"]) == {good, bad}
    assert set(cached_human_by_run(store)["run_id"]) == {good, bad}  # the leaderboard's human columns
    assert main(["ratings", "summary", "pw", "--store", store, "--resamples", "20"]) == 0
    elsewhere = store.rsplit("/", 1)[0] + "/elsewhere"  # same bucket, a prefix holding no store
    with pytest.raises(RatingsError, match="no results store at s3://"):
        export_ratings(db, elsewhere)


@pytest.mark.parametrize("command", ["watch", "score", "ratings campaign", "ratings export"])
def test_bad_object_storage_for_watch_score_and_ratings(
    command: str,
    bad_object_store: BadObjectStore,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """The same one line as `run` and `scores` (in this process: the commands share one code path)."""
    problem, store = bad_object_store.problem, bad_object_store.store
    for name, value in _environment(bad_object_store.endpoint, tmp_path / "cache-home").items():
        monkeypatch.setenv(name, value)
    predictions = tmp_path / "outputs.jsonl"
    predictions.write_text('{"prediction": "a", "reference": "a"}\n', encoding="utf-8")
    checkpoints = str(_checkpoints(tmp_path / "ckpts", "checkpoint-1"))
    args = {
        "watch": ["watch", checkpoints, "--adapter", "mock", "--tasks", "harness_tone", "--once"],
        "score": ["score", "--predictions", str(predictions), "--metrics", "exact_match"],
        "ratings campaign": ["ratings", "campaign", "pw", "--mode", "pairwise", "--runs", "a", "b"],
        "ratings export": ["ratings", "export"],
    }[command]
    assert main([*args, "--store", store]) == 2
    out, err = capsys.readouterr()
    _assert_one_bad_store_line(problem, out, err)
    if command.startswith("ratings"):  # refused before any local database was made for the store
        assert not (tmp_path / "cache-home" / "harness" / "s3").exists()
    if problem == "missing bucket":
        bucket = store.removeprefix("s3://").split("/")[0]
        assert _filesystem(bad_object_store.endpoint).get_file_info(bucket).type == pafs.FileType.NotFound
