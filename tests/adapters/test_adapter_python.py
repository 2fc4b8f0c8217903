"""The `python` adapter (`python:package.module:factory`) and third-party adapters from entry points."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import harness
from harness.adapters import load_adapter
from harness.errors import HarnessError
from harness.requests import (
    GenerationRequest,
    LoglikelihoodRequest,
    LoglikelihoodResult,
    RollingLoglikelihoodRequest,
)

ROOT = Path(__file__).resolve().parents[2]

USER_MODULE = '''
from harness.adapters.mock import MockAdapter
from harness.requests import GenerationResult, LoglikelihoodResult


def build(seed="0"):
    """A full adapter, made by the user's own factory from --model-args."""
    return MockAdapter(seed=seed, name="my-model")


class ScoresOnly:
    """Only what the user needed: no name, fingerprint or generate."""

    def loglikelihood(self, requests, progress=None):
        return [LoglikelihoodResult(-float(len(r.continuation)), True, 1) for r in requests]


class Broken:
    def generate(self, requests, progress=None):
        return [GenerationResult("x", 1)] * (len(requests) + 1)

    def loglikelihood(self, requests, progress=None):
        return ["not a result" for _ in requests]


ready = ScoresOnly()
'''


@pytest.fixture
def user_module(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """A module in the working directory, as a user's project would have it."""
    name = f"user_models_{tmp_path.name.replace('-', '_')}"
    (tmp_path / f"{name}.py").write_text(USER_MODULE, encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", [p for p in sys.path if p not in ("", str(tmp_path))])
    return name


def test_a_factory_gets_the_model_args_and_its_object_runs_tasks(user_module: str, tmp_path: Path) -> None:
    report = harness.evaluate(
        f"python:{user_module}:build",
        ["harness_reading_mc"],
        model_args={"seed": "3"},
        limit=4,
        store=tmp_path / "store",
    )
    reference = harness.evaluate("mock:3", ["harness_reading_mc"], limit=4, write=False, use_cache=False)
    assert [s.value for s in report.scores] == [s.value for s in reference.scores]
    assert report.model == "my-model"


def test_an_object_with_only_some_methods_serves_those_and_names_the_missing_one(user_module: str) -> None:
    adapter = load_adapter(f"python:{user_module}:ready")
    assert adapter.loglikelihood([LoglikelihoodRequest("a", " bc")]) == [LoglikelihoodResult(-3.0, True, 1)]
    assert adapter.name == f"{user_module}:ready"
    assert adapter.provenance()["adapter"] == "python"
    with pytest.raises(HarnessError, match="ScoresOnly has no generate method, so it cannot serve"):
        adapter.generate([GenerationRequest("x")])
    with pytest.raises(HarnessError, match="no loglikelihood_rolling method"):
        adapter.loglikelihood_rolling([RollingLoglikelihoodRequest("x")])


def test_default_fingerprint_follows_target_arguments_and_module_source(
    user_module: str, tmp_path: Path
) -> None:
    first = load_adapter(f"python:{user_module}:ScoresOnly").fingerprint
    assert first == load_adapter(f"python:{user_module}:ScoresOnly").fingerprint
    assert first != load_adapter(f"python:{user_module}:ready").fingerprint
    assert load_adapter(f"python:{user_module}:build", {"seed": "1"}).fingerprint != (
        load_adapter(f"python:{user_module}:build", {"seed": "2"}).fingerprint
    )
    path = tmp_path / f"{user_module}.py"
    path.write_text(path.read_text(encoding="utf-8") + "\n# edited\n", encoding="utf-8")
    sys.modules.pop(user_module)
    assert load_adapter(f"python:{user_module}:ScoresOnly").fingerprint != first


def test_wrong_result_shapes_are_clear_errors(user_module: str) -> None:
    adapter = load_adapter(f"python:{user_module}:Broken")
    with pytest.raises(HarnessError, match="generate returned 2 results for 1 requests"):
        adapter.generate([GenerationRequest("x")])
    with pytest.raises(HarnessError, match="must return LoglikelihoodResult objects, got str"):
        adapter.loglikelihood([LoglikelihoodRequest("a", "b")])


@pytest.mark.parametrize(
    ("target", "model_args", "message"),
    [
        ("no_such_module_xyz:build", {}, "cannot import module 'no_such_module_xyz'"),
        ("{module}:nothing", {}, "has no attribute 'nothing'"),
        ("{module}", {}, "target must be package.module:factory"),
        ("{module}:build", {"colour": "red"}, "factory does not take these --model-args"),
        ("{module}:ready", {"seed": "1"}, "is an object, not a factory"),
    ],
)
def test_bad_targets_are_one_line_errors(
    user_module: str, target: str, model_args: dict[str, str], message: str
) -> None:
    with pytest.raises(HarnessError, match=message) as caught:
        load_adapter(f"python:{target.format(module=user_module)}", model_args)
    assert "\n" not in str(caught.value)


def test_an_object_without_any_protocol_method_is_refused(user_module: str) -> None:
    with pytest.raises(HarnessError, match="has none of the methods loglikelihood"):
        load_adapter("python:fractions:Fraction")


def test_a_third_party_package_adds_an_adapter_through_an_entry_point(tmp_path: Path) -> None:
    """An installed distribution declaring `[harness.adapters]` is found without editing harness."""
    (tmp_path / "thirdparty_models.py").write_text(
        textwrap.dedent(
            """
            from harness.adapters.mock import MockAdapter

            def load(target, model_args):
                return MockAdapter(seed=target, name="third-party:" + target)
            """
        ),
        encoding="utf-8",
    )
    info = tmp_path / "thirdparty_models-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: thirdparty-models\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text("[harness.adapters]\nthirdparty = thirdparty_models:load\n")
    code = "from harness.adapters import load_adapter; print(load_adapter('thirdparty:7').name)"
    completed = subprocess.run(
        [sys.executable, "-c", code],
        env={"PYTHONPATH": f"{tmp_path}:{ROOT}", "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert completed.stdout.strip() == "third-party:7", completed.stderr
