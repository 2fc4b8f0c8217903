"""Style and structure are kept by the tools: ruff, mypy and import-linter run as part of the test suite."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# Top-level source folders that install as `harness.<folder>` (pyproject.toml, [tool.setuptools.package-dir]).
MAPPED_FOLDERS = ("tasks", "metrics", "fairness", "leaderboard")
# Type-checked with the package, under the same configuration (pyproject.toml, [tool.mypy]).
CHECKED_BESIDE_THE_PACKAGE = ("tests", "benchmarks")


def _run(*command: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(command, cwd=ROOT, capture_output=True, text=True, check=False)


def test_ruff_lint() -> None:
    result = _run(sys.executable, "-m", "ruff", "check", ".")
    assert result.returncode == 0, result.stdout + result.stderr


def test_ruff_format() -> None:
    result = _run(sys.executable, "-m", "ruff", "format", "--check", ".")
    assert result.returncode == 0, result.stdout + result.stderr


def _namespace_tree(root: Path) -> Path:
    """The source folders linked into the one `harness` package as the build configuration maps them.

    mypy resolves modules from folders, not from the build's package mapping, so it checks this mirror.
    """
    package = root / "harness"
    package.mkdir(parents=True)
    for entry in (ROOT / "harness").iterdir():
        if entry.name != "__pycache__":
            (package / entry.name).symlink_to(entry)
    for folder in MAPPED_FOLDERS:
        (package / folder).symlink_to(ROOT / folder, target_is_directory=True)
    return root


def _python_files(tree: Path, folders: tuple[str, ...]) -> int:
    """How many modules mypy should find under these folders of the tree, following its links."""
    count = 0
    for folder in folders:
        for _, directories, files in os.walk(tree / folder, followlinks=True):
            directories[:] = [name for name in directories if name != "__pycache__"]
            count += sum(name.endswith((".py", ".pyi")) for name in files)
    return count


def test_mypy(tmp_path: Path) -> None:
    """The package (its mapped folders as `harness.*`), the tests and the benchmarks: one mypy run, one
    configuration. Test folders have no `__init__.py`; with explicit package bases they are the namespace
    packages `tests.ratings` and so on, as the tests import each other."""
    tree = _namespace_tree(tmp_path / "tree")
    for folder in CHECKED_BESIDE_THE_PACKAGE:
        (tree / folder).symlink_to(ROOT / folder, target_is_directory=True)
    targets = ("harness", *CHECKED_BESIDE_THE_PACKAGE)
    # The cache outlives the temporary tree (mypy keys it by module, not by path): a warm run takes seconds.
    # It has its own folder: a plain `mypy` in the repository sees `harness` without its mapped folders.
    cache = ROOT / ".mypy_cache" / "linked-tree"
    config = str(ROOT / "pyproject.toml")
    result = subprocess.run(
        [sys.executable, "-m", "mypy", "--config-file", config, "--cache-dir", str(cache), *targets],
        cwd=tree,
        env={**os.environ, "MYPYPATH": str(tree)},
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    # A run that missed a folder (a link not followed, a package base wrong) would pass without checking it.
    expected = _python_files(tree, targets)
    assert f"no issues found in {expected} source files" in result.stdout, (expected, result.stdout)


# Run in the linked tree, where grimp (import-linter's graph builder) finds the mapped packages: it walks the
# folder of the top-level package, so from the repository it would see harness/ alone and check nothing else.
_IMPORT_GRAPH = textwrap.dedent(
    """
    import json
    import sys

    import grimp

    graph = grimp.build_graph("harness", cache_dir=None)
    index, low, stack, on_stack, cycles = {}, {}, [], set(), []


    def visit(module):  # Tarjan's strongly connected components, iteratively
        work = [(module, iter(sorted(graph.find_modules_directly_imported_by(module))))]
        index[module] = low[module] = len(index)
        stack.append(module)
        on_stack.add(module)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph.find_modules_directly_imported_by(child)))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    cycles.append(sorted(component))


    for module in sorted(graph.modules):
        if module not in index:
            visit(module)
    json.dump(
        {
            "modules": sorted(graph.modules),
            "importers_of_root": sorted(graph.find_modules_that_directly_import("harness")),
            "cycles": cycles,
        },
        sys.stdout,
    )
    """
)


def _in_tree(tree: Path, *command: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        command,
        cwd=tree,
        env={**os.environ, "PYTHONPATH": str(tree)},
        capture_output=True,
        text=True,
        check=False,
    )


def test_import_graph_has_no_cycles(tmp_path: Path) -> None:
    """Module by module, which also catches a package and its own submodule importing each other (the
    acyclic_siblings contract compares siblings only); and nothing inside imports the `harness` facade."""
    tree = _namespace_tree(tmp_path / "tree")
    result = _in_tree(tree, sys.executable, "-c", _IMPORT_GRAPH)
    assert result.returncode == 0, result.stdout + result.stderr
    graph = json.loads(result.stdout)
    # A graph that misses the mapped folders would pass every check below without looking at them.
    for module in ("tasks.task", "metrics.base", "fairness.scores", "leaderboard.app"):
        assert f"harness.{module}" in graph["modules"], f"harness.{module} is not in the import graph"
    assert graph["cycles"] == [], f"import cycles: {graph['cycles']}"
    assert graph["importers_of_root"] == [], "the `harness` facade is for users; import the module itself"


def test_import_layers(tmp_path: Path) -> None:
    """The contracts in pyproject.toml ([tool.importlinter]): layers one way, no cycles between siblings."""
    tree = _namespace_tree(tmp_path / "tree")
    lint = "import sys; from importlinter.cli import lint_imports_command; sys.exit(lint_imports_command())"
    config = str(ROOT / "pyproject.toml")
    result = _in_tree(tree, sys.executable, "-c", lint, "--config", config, "--no-cache", "--no-logo")
    assert result.returncode == 0, result.stdout + result.stderr
    # Every layer is required, so a graph without the mapped packages breaks the contracts instead of passing.
    assert "Contracts: 5 kept, 0 broken." in result.stdout, result.stdout
