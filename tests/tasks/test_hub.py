"""harness.tasks.hub against a real `datasets` cache, filled by a real online load from a local fake Hub.

The fake Hub (127.0.0.1) serves two dataset repositories over the HTTP routes `datasets` and
`huggingface_hub` use: `resolve/` for files, `api/datasets/<repo>` for the commit, `tree/` for listings.
A subprocess with HF_ENDPOINT pointing at it runs `datasets.load_dataset` online, which leaves the cache
exactly as a download from huggingface.co would; every other test then reads that cache offline.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import socket
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar
from urllib.parse import parse_qs, unquote, urlsplit

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from harness.errors import HarnessError
from harness.tasks import hub
from harness.tasks.hub import hub_splits, load_hub_split

COMMIT = "5c2a5cf4a1f6a0b1d9e3c7f2e8b4a6d0c1e2f3a4"
ARC = "fake-org/TinyArc"  # CamelCase on purpose: the cache folder is `fake-org___tiny_arc`
PLAIN = "fake-org/plain_qa"
ARC_SPLITS = {"train": 3, "validation": 2, "test": 4}
ARC_README = """---
configs:
- config_name: ARC-Challenge
  data_files:
  - {split: train, path: ARC-Challenge/train-*}
  - {split: validation, path: ARC-Challenge/validation-*}
  - {split: test, path: ARC-Challenge/test-*}
- config_name: ARC-Easy
  data_files:
  - {split: train, path: ARC-Easy/train-*}
  - {split: validation, path: ARC-Easy/validation-*}
  - {split: test, path: ARC-Easy/test-*}
---
# A tiny ARC look-alike
"""


def rows(config: str, split: str, count: int) -> list[dict[str, Any]]:
    """Nested, numeric and missing values, so that the plain-Python conversion is exercised."""
    return [
        {
            "id": f"{config}/{split}/{index}",
            "question": f"Which answer is number {index}?",
            "choices": {"text": ["one", "two", "three"], "label": ["A", "B", "C"]},
            "answerKey": "ABC"[index % 3],
            "difficulty": index * 0.5,
            "votes": [index, index + 1],
            "note": None if index % 2 else "checked",
        }
        for index in range(count)
    ]


def write_arc_repo(root: Path) -> Path:
    for config in ("ARC-Challenge", "ARC-Easy"):
        (root / config).mkdir(parents=True)
        for split, count in ARC_SPLITS.items():
            table = pa.Table.from_pylist(rows(config, split, count))
            pq.write_table(table, root / config / f"{split}-00000-of-00001.parquet")
    (root / "README.md").write_text(ARC_README, encoding="utf-8")
    return root


def write_plain_repo(root: Path) -> Path:
    (root / "data").mkdir(parents=True)
    for split, count in (("test", 5), ("validation", 2)):
        lines = "".join(json.dumps(row) + "\n" for row in rows("plain", split, count))
        (root / "data" / f"{split}.jsonl").write_text(lines, encoding="utf-8")
    return root


class FakeHubHandler(BaseHTTPRequestHandler):
    repos: ClassVar[dict[str, Path]] = {}

    def log_message(self, format: str, *args: Any) -> None:  # keep test output quiet
        pass

    def do_HEAD(self) -> None:
        self.route(send_body=False)

    def do_GET(self) -> None:
        self.route(send_body=True)

    def do_POST(self) -> None:
        self.route(send_body=True)

    def route(self, send_body: bool) -> None:
        url = urlsplit(self.path)
        parts = [unquote(part) for part in url.path.split("/") if part]
        if parts[:1] == ["datasets"] and len(parts) > 5 and parts[3] == "resolve":
            self.resolve("/".join(parts[1:3]), "/".join(parts[5:]), send_body)
        elif parts[:2] == ["api", "datasets"] and len(parts) >= 4 and "/".join(parts[2:4]) in self.repos:
            repo, kind = "/".join(parts[2:4]), (parts[4] if len(parts) > 4 else "revision")
            if kind == "revision":
                self.reply(200, json.dumps({"id": repo, "sha": COMMIT}).encode(), {}, send_body)
            elif kind == "tree":
                base = self.repos[repo] / "/".join(parts[6:])
                recursive = parse_qs(url.query).get("recursive") == ["True"]
                entries = [
                    self.entry(repo, path)
                    for path in sorted(base.rglob("*") if recursive else base.iterdir())
                ]
                self.reply(200, json.dumps(entries).encode(), {}, send_body)
            else:
                self.reply(404, b"", {}, send_body)
        else:
            self.reply(404, b"", {"X-Error-Code": "RepoNotFound"}, send_body)

    def entry(self, repo: str, path: Path) -> dict[str, Any]:
        relative = path.relative_to(self.repos[repo]).as_posix()
        if path.is_dir():
            return {"type": "directory", "path": relative, "oid": hashlib.sha1(relative.encode()).hexdigest()}
        data = path.read_bytes()
        return {"type": "file", "path": relative, "size": len(data), "oid": hashlib.sha1(data).hexdigest()}

    def resolve(self, repo: str, path: str, send_body: bool) -> None:
        if repo not in self.repos:
            self.reply(404, b"", {"X-Error-Code": "RepoNotFound"}, send_body)
        elif not (self.repos[repo] / path).is_file():
            self.reply(404, b"", {"X-Error-Code": "EntryNotFound", "X-Repo-Commit": COMMIT}, send_body)
        else:
            data = (self.repos[repo] / path).read_bytes()
            etag = f'"{hashlib.sha1(data).hexdigest()}"'
            self.reply(200, data, {"X-Repo-Commit": COMMIT, "ETag": etag}, send_body)

    def reply(self, status: int, body: bytes, headers: dict[str, str], send_body: bool) -> None:
        self.send_response(status)
        for name, value in {**headers, "Content-Length": str(len(body))}.items():
            self.send_header(name, value)
        self.end_headers()
        if send_body:
            self.wfile.write(body)


DOWNLOAD_SCRIPT = textwrap.dedent(
    """
    import json, sys
    import datasets
    from harness.tasks import hub
    from harness.tasks.hub import hub_splits, load_hub_split

    report = []
    for path, name in json.loads(sys.argv[1]):
        downloaded = datasets.load_dataset(path, name)  # the command our error lines recommend
        ours = {split: load_hub_split(path, name, None, split) for split in hub_splits(path, name, None)}
        report.append([{split: rows.to_list() for split, rows in downloaded.items()}, ours])
    assert list(hub._hub_probe_results.values()) == [True]  # the fake Hub answered: an online load
    print(json.dumps(report))
    """
)


@pytest.fixture(scope="session")
def hub_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An HF_HOME whose datasets cache holds TinyArc (both configs) and plain_qa, downloaded online."""
    root = tmp_path_factory.mktemp("fake-hub")
    FakeHubHandler.repos = {
        ARC: write_arc_repo(root / "repos" / "TinyArc"),
        PLAIN: write_plain_repo(root / "repos" / "plain_qa"),
    }
    server = ThreadingHTTPServer(("127.0.0.1", 0), FakeHubHandler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    home = root / "hf-home"
    env = {
        **os.environ,
        "HF_ENDPOINT": f"http://127.0.0.1:{server.server_address[1]}",
        "HF_HOME": str(home),
        "HF_HUB_OFFLINE": "0",
        "HF_DATASETS_OFFLINE": "0",
    }
    env.pop("HF_DATASETS_CACHE", None)
    loads = [[ARC, "ARC-Easy"], [ARC, "ARC-Challenge"], [PLAIN, None]]
    try:
        result = subprocess.run(
            [sys.executable, "-c", DOWNLOAD_SCRIPT, json.dumps(loads)],
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
    finally:
        server.shutdown()
    assert result.returncode == 0, result.stderr
    for downloaded, ours in json.loads(result.stdout):
        assert ours == downloaded  # the online path gives what `datasets` gives
    return home


@pytest.fixture(autouse=True)
def fresh_module_state(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each test loads afresh: the per-process memo and Hub probe would otherwise carry over."""
    monkeypatch.setattr(hub, "_loaded_splits", {})
    monkeypatch.setattr(hub, "_hub_probe_results", {})


def use_hf_home(monkeypatch: pytest.MonkeyPatch, home: Path) -> Path:
    """Point this process's `datasets` at `home`, offline. `datasets` reads its settings at import time,
    so the module constants are set along with the environment."""
    import datasets.config

    cache = home / "datasets"
    monkeypatch.setenv("HF_HOME", str(home))
    monkeypatch.setenv("HF_DATASETS_CACHE", str(cache))
    monkeypatch.setattr(datasets.config, "HF_CACHE_HOME", str(home))
    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", cache)
    monkeypatch.setattr(datasets.config, "HF_MODULES_CACHE", home / "modules")
    monkeypatch.setattr(datasets.config, "DOWNLOADED_DATASETS_PATH", cache / "downloads")
    monkeypatch.setattr(datasets.config, "EXTRACTED_DATASETS_PATH", cache / "downloads" / "extracted")
    monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", True)
    return cache


@pytest.fixture
def offline_cache(hub_home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A private copy of the downloaded cache, in use offline; returns the datasets cache folder."""
    home = tmp_path / "hf-home"
    shutil.copytree(hub_home, home)
    return use_hf_home(monkeypatch, home)


@pytest.fixture
def empty_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    return use_hf_home(monkeypatch, tmp_path / "empty-hf-home")


def is_plain(value: Any) -> bool:
    if isinstance(value, dict):
        return all(isinstance(key, str) and is_plain(item) for key, item in value.items())
    if isinstance(value, list):
        return all(is_plain(item) for item in value)
    return value is None or type(value) in (str, int, float, bool)


def datasets_documents(path: str, name: str | None, split: str) -> list[dict[str, Any]]:
    """What lm-eval 0.4.13 iterates over: `load_dataset(path=..., name=...)[split]`."""
    import datasets

    return list(datasets.load_dataset(path=path, name=name)[split])


@pytest.mark.usefixtures("offline_cache")
def test_cached_hub_dataset_with_a_config_reads_as_datasets_does() -> None:
    import datasets

    assert (
        hub_splits(ARC, "ARC-Easy", None)
        == tuple(datasets.load_dataset(ARC, "ARC-Easy"))
        == tuple(ARC_SPLITS)
    )
    for split, count in ARC_SPLITS.items():
        documents = load_hub_split(ARC, "ARC-Easy", {"trust_remote_code": True}, split)
        assert documents == datasets_documents(ARC, "ARC-Easy", split) == rows("ARC-Easy", split, count)
        assert is_plain(documents)
    assert load_hub_split(ARC, "ARC-Challenge", None, "test") == rows("ARC-Challenge", "test", 4)


@pytest.mark.usefixtures("offline_cache")
def test_cached_hub_dataset_without_a_config_reads_as_datasets_does() -> None:
    import datasets

    splits = hub_splits(PLAIN, None, None)
    assert splits == tuple(datasets.load_dataset(PLAIN)) and set(splits) == {"test", "validation"}
    documents = load_hub_split(PLAIN, None, None, "test")
    assert documents == datasets_documents(PLAIN, None, "test") == rows("plain", "test", 5)
    assert is_plain(documents)


@pytest.mark.usefixtures("offline_cache")
def test_the_splits_of_a_dataset_load_once(monkeypatch: pytest.MonkeyPatch) -> None:
    import datasets

    calls: list[tuple[Any, ...]] = []
    real_load_dataset = datasets.load_dataset

    def counting_load_dataset(*args: Any, **kwargs: Any) -> Any:
        calls.append(args)
        return real_load_dataset(*args, **kwargs)

    monkeypatch.setattr(datasets, "load_dataset", counting_load_dataset)
    kwargs = {"trust_remote_code": True}
    load_hub_split(ARC, "ARC-Easy", kwargs, "test")
    load_hub_split(ARC, "ARC-Easy", kwargs, "train")
    hub_splits(ARC, "ARC-Easy", None)  # lm-eval drops trust_remote_code: the same load
    assert calls == [(ARC, "ARC-Easy")] and kwargs == {"trust_remote_code": True}
    load_hub_split(ARC, "ARC-Challenge", None, "test")
    assert len(calls) == 2


def test_missing_from_the_cache_names_the_dataset_and_the_remedy(empty_cache: Path) -> None:
    source = Path("tasks/arc_easy.yaml")
    with pytest.raises(HarnessError) as raised:
        load_hub_split(ARC, "ARC-Easy", None, "test", source=source)
    message = str(raised.value)
    assert "\n" not in message
    assert message == (
        f"tasks/arc_easy.yaml: dataset '{ARC}' (ARC-Easy) is not in the local datasets cache ({empty_cache}) "
        "and the Hub is not reachable (offline mode is on: HF_HUB_OFFLINE or HF_DATASETS_OFFLINE): "
        f"run `python -c \"import datasets; datasets.load_dataset('{ARC}', 'ARC-Easy')\"` on a machine with "
        f"network and copy the fake-org___tiny_arc folder of its datasets cache into {empty_cache}, "
        "or point dataset_path at a local folder"
    )
    with pytest.raises(HarnessError) as raised:
        hub_splits(PLAIN, None, {"revision": "main"})
    assert str(raised.value).startswith(f"dataset '{PLAIN}' is not in the local datasets cache")
    assert f"datasets.load_dataset('{PLAIN}', revision='main')" in str(raised.value)


def test_an_unknown_or_uncached_config_names_the_cached_ones(offline_cache: Path) -> None:
    with pytest.raises(HarnessError) as raised:
        load_hub_split(ARC, "ARC-Medium", None, "test", source=Path("arc.yaml"))
    message = str(raised.value)
    assert "\n" not in message
    assert message.startswith(
        f"arc.yaml: dataset '{ARC}' (ARC-Medium): config 'ARC-Medium' is not in the local datasets cache "
        f"({offline_cache / 'fake-org___tiny_arc'} holds ARC-Challenge, ARC-Easy) "
        "and the Hub is not reachable"
    )
    assert "datasets.load_dataset('fake-org/TinyArc', 'ARC-Medium')" in message
    with pytest.raises(HarnessError) as raised:
        hub_splits(ARC, None, None)
    assert str(raised.value) == (
        f"dataset '{ARC}': the local datasets cache holds several configs (ARC-Challenge, ARC-Easy), "
        "so the task must set dataset_name"
    )


@pytest.mark.usefixtures("offline_cache")
def test_a_missing_split_lists_the_splits() -> None:
    with pytest.raises(HarnessError) as raised:
        load_hub_split(ARC, "ARC-Easy", None, "dev", source=Path("arc.yaml"))
    assert str(raised.value) == (
        f"arc.yaml: dataset '{ARC}' (ARC-Easy) has no split 'dev' (splits: train, validation, test)"
    )


@pytest.mark.usefixtures("empty_cache")
def test_a_local_folder_reads_as_datasets_does(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import datasets

    arc_folder = write_arc_repo(tmp_path / "task" / "tiny_arc")
    plain_folder = write_plain_repo(tmp_path / "plain_qa")
    expected = list(datasets.load_dataset(str(arc_folder), "ARC-Easy")["test"])
    assert expected == rows("ARC-Easy", "test", 4)
    assert load_hub_split(str(arc_folder), "ARC-Easy", None, "test") == expected
    # A relative path is read beside the task YAML first, then from the working directory (as datasets does).
    yaml_file = tmp_path / "task" / "arc.yaml"
    assert load_hub_split("tiny_arc", "ARC-Easy", None, "test", source=yaml_file) == expected
    monkeypatch.chdir(tmp_path)
    assert hub_splits("plain_qa", None, None) == tuple(datasets.load_dataset(str(plain_folder)))
    assert load_hub_split("./plain_qa", None, None, "validation") == rows("plain", "validation", 2)
    # dataset_kwargs reach load_dataset as they are.
    data_files = {"test": "ARC-Challenge/test-*"}
    chosen = load_hub_split("task/tiny_arc", None, {"data_files": data_files}, "test")
    assert chosen == list(datasets.load_dataset(str(arc_folder), data_files=data_files)["test"])
    assert chosen == rows("ARC-Challenge", "test", 4)


@pytest.mark.usefixtures("empty_cache")
def test_local_folder_errors_name_the_folder_and_the_configs(tmp_path: Path) -> None:
    folder = write_arc_repo(tmp_path / "tiny_arc")
    source = tmp_path / "arc.yaml"
    with pytest.raises(HarnessError) as raised:
        load_hub_split("tiny_arc", "ARC-Medium", None, "test", source=source)
    assert str(raised.value) == (
        f"{source}: dataset 'tiny_arc' (ARC-Medium) has no config 'ARC-Medium' "
        "(configs: ARC-Challenge, ARC-Easy)"
    )
    with pytest.raises(HarnessError) as raised:
        hub_splits(str(folder), None, None)
    assert str(raised.value) == (
        f"dataset '{folder}' has several configs, so the task must set dataset_name "
        "(configs: ARC-Challenge, ARC-Easy)"
    )
    with pytest.raises(HarnessError) as raised:
        load_hub_split(str(folder), "ARC-Easy", {"split": "test"}, "test")
    assert str(raised.value) == (
        f"dataset '{folder}' (ARC-Easy): dataset_kwargs must not pick a split (`split:`); "
        "name the splits in test_split, validation_split or fewshot_split"
    )
    with pytest.raises(HarnessError) as raised:
        load_hub_split("./no/such/folder", None, None, "test", source=source)
    assert str(raised.value) == (
        f"{source}: dataset folder './no/such/folder' not found (looked in {tmp_path} and {os.getcwd()})"
    )


NO_NETWORK_SCRIPT = textwrap.dedent(
    """
    import json, sys, time
    from harness.errors import HarnessError
    from harness.tasks.hub import load_hub_split

    started = time.monotonic()
    documents = load_hub_split(sys.argv[1], "ARC-Easy", None, "test")
    try:
        load_hub_split("fake-org/absent", None, None, "test")
        message = None
    except HarnessError as error:
        message = str(error)
    print(json.dumps({"documents": documents, "message": message, "seconds": time.monotonic() - started}))
    """
)


@pytest.fixture
def silent_endpoint() -> Iterator[str]:
    """A port that accepts no connection and refuses none: the queue of a never-accepting listener is
    kept full, so further connection attempts wait, as with a firewall that drops packets."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(0)
    address = listener.getsockname()
    fillers = []
    for _ in range(4):
        filler = socket.socket()
        filler.setblocking(False)
        filler.connect_ex(address)
        fillers.append(filler)
    time.sleep(0.2)
    yield f"http://127.0.0.1:{address[1]}"
    for filler in fillers:
        filler.close()
    listener.close()


@pytest.mark.parametrize("kind", ["refused", "silent"])
def test_without_network_or_offline_mode_the_cache_is_used_without_waiting(
    kind: str, hub_home: Path, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    endpoint = (
        f"http://127.0.0.1:{request.getfixturevalue('refused_port')}"
        if kind == "refused"
        else request.getfixturevalue("silent_endpoint")
    )
    home = tmp_path / "hf-home"
    shutil.copytree(hub_home, home)
    env = {**os.environ, "HF_ENDPOINT": endpoint, "HF_HOME": str(home), "HF_HUB_OFFLINE": "0"}
    env["HF_DATASETS_OFFLINE"] = "0"
    env.pop("HF_DATASETS_CACHE", None)
    result = subprocess.run(
        [sys.executable, "-c", NO_NETWORK_SCRIPT, ARC],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["documents"] == rows("ARC-Easy", "test", 4)
    assert report["message"].startswith(
        "dataset 'fake-org/absent' is not in the local datasets cache "
        f"({home / 'datasets'}) and the Hub is not reachable (no answer from {endpoint} within 5 s): run "
    )
    # One probe of at most HUB_PROBE_TIMEOUT_S, where the Hub client alone retries for 20 s or more.
    assert report["seconds"] < hub.HUB_PROBE_TIMEOUT_S + 3
