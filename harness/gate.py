"""Regression gates: rules per task and metric, checked on a paired comparison of two runs.

A rule fails when the candidate's drop (in quality: a rise for perplexities) exceeds the allowed
drop, and, when the rule requires significance (the default), the paired test finds the difference
significant at the rule's alpha. A rule also fails when the runs share fewer documents than its
`min_samples`: too little evidence must not pass a gate silently.

gates.yaml::

    defaults:                 # optional; every rule starts from these
      max_drop: 0.0           # absolute, in metric units; or max_relative_drop: 0.02 (2 %)
      require_significance: true
      alpha: 0.05
      min_samples: 1
    rules:                    # optional; without rules every shared task/metric is gated
      - {task: harness_reading_mc, metric: acc, max_drop: 0.02}
      - {task: "*", metric: "*perplexity", max_relative_drop: 0.05}

Task and metric may be glob patterns; when several rules match one task/metric the last one wins.

Runs are chosen with the store's selectors (`harness.store.resolve_run`, shared with `harness compare`):
a run id or a unique prefix, `latest`, `latest:EXPERIMENT`, `EXPERIMENT@STEP`,
`best:EXPERIMENT:TASK/METRIC` and `tag:NAME` (runs tagged with `harness run --tag NAME`, or of
experiment NAME).
"""

from __future__ import annotations

import fnmatch
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from harness.compare import MetricComparison, RunComparison, compare_runs
from harness.errors import HarnessError
from harness.files import load_yaml_file
from harness.metrics.base import is_derived_metric
from harness.store import SELECTOR_HELP, ResultStore, resolve_run

__all__ = [
    "SELECTOR_HELP",
    "GateCheck",
    "GateConfig",
    "GateResult",
    "GateRule",
    "check_rule",
    "expand_rules",
    "load_gate_config",
    "parse_gate_config",
    "resolve_run",
    "run_gate",
]

EXIT_PASS = 0
EXIT_REGRESSION = 1
# Float noise in a difference must not turn "exactly at the margin" into a failure.
_MARGIN_EPSILON = 1e-12
_SETTINGS = ("max_drop", "max_relative_drop", "require_significance", "alpha", "min_samples")
_RULE_KEYS = frozenset({"task", "metric", "name", *_SETTINGS})


@dataclass(frozen=True)
class GateRule:
    task: str = "*"  # a task name or glob pattern
    metric: str = "*"
    max_drop: float | None = 0.0  # absolute, in metric units
    max_relative_drop: float | None = None  # a fraction of the baseline value
    require_significance: bool = True
    alpha: float = 0.05
    min_samples: int = 1
    name: str | None = None

    def allowed_drop(self, baseline: float) -> float:
        if self.max_relative_drop is not None:
            return self.max_relative_drop * abs(baseline)
        return self.max_drop or 0.0

    def describe(self) -> str:
        """The rule in a few ASCII characters, for tables on any terminal."""
        if self.max_relative_drop is not None:
            margin = f"drop<={self.max_relative_drop:.2%}"
        else:
            margin = f"drop<={self.max_drop or 0.0:g}"
        significance = f", p<{self.alpha:g}" if self.require_significance else ", no test"
        samples = f", n>={self.min_samples}" if self.min_samples > 1 else ""
        return margin + significance + samples


@dataclass(frozen=True)
class GateConfig:
    defaults: GateRule = GateRule()
    rules: tuple[GateRule, ...] = ()


@dataclass(frozen=True)
class GateCheck:
    """One rule applied to one task/metric: a test case in the JUnit report."""

    rule: GateRule
    comparison: MetricComparison
    passed: bool
    reason: str
    allowed_drop: float

    @property
    def task(self) -> str:
        return self.comparison.task

    @property
    def metric(self) -> str:
        return self.comparison.metric

    @property
    def significant(self) -> bool:
        return self.comparison.p_value < self.rule.alpha


@dataclass(frozen=True)
class GateResult:
    baseline_run: str
    candidate_run: str
    baseline_selector: str
    candidate_selector: str
    checks: tuple[GateCheck, ...]
    comparison: RunComparison

    @property
    def passed(self) -> bool:
        return all(check.passed for check in self.checks)

    @property
    def failures(self) -> tuple[GateCheck, ...]:
        return tuple(check for check in self.checks if not check.passed)

    @property
    def exit_code(self) -> int:
        return EXIT_PASS if self.passed else EXIT_REGRESSION


# -- configuration ----------------------------------------------------------------------------------


def _number(where: str, key: str, value: Any, *, low: float, high: float = math.inf) -> float:
    # bool is an int in Python, but `max_drop: true` is certainly a mistake.
    if isinstance(value, bool) or not isinstance(value, int | float) or not low <= value <= high:
        bounds = f"between {low:g} and {high:g}" if math.isfinite(high) else f"a number ≥ {low:g}"
        raise HarnessError(f"{where}: {key} must be {bounds}, got {value!r}")
    return float(value)


def _apply_settings(base: GateRule, raw: Mapping[str, Any], where: str) -> GateRule:
    unknown = sorted(set(raw) - _RULE_KEYS)
    if unknown:
        raise HarnessError(f"{where}: unknown key '{unknown[0]}' (known: {', '.join(sorted(_RULE_KEYS))})")
    if "max_drop" in raw and "max_relative_drop" in raw:
        raise HarnessError(f"{where}: give max_drop or max_relative_drop, not both")
    changes: dict[str, Any] = {}
    for key in ("task", "metric", "name"):
        if key in raw:
            if not isinstance(raw[key], str) or not raw[key]:
                raise HarnessError(f"{where}: {key} must be a non-empty string, got {raw[key]!r}")
            changes[key] = raw[key]
    if "max_drop" in raw:
        changes.update(max_drop=_number(where, "max_drop", raw["max_drop"], low=0), max_relative_drop=None)
    if "max_relative_drop" in raw:
        relative = _number(where, "max_relative_drop", raw["max_relative_drop"], low=0)
        changes.update(max_relative_drop=relative, max_drop=None)
    if "alpha" in raw:
        changes["alpha"] = _number(where, "alpha", raw["alpha"], low=1e-12, high=1 - 1e-12)
    if "min_samples" in raw:
        value = raw["min_samples"]
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise HarnessError(f"{where}: min_samples must be a whole number ≥ 1, got {value!r}")
        changes["min_samples"] = value
    if "require_significance" in raw:
        if not isinstance(raw["require_significance"], bool):
            raise HarnessError(f"{where}: require_significance must be true or false")
        changes["require_significance"] = raw["require_significance"]
    return replace(base, **changes)


def parse_gate_config(raw: Any, source: str = "gate config", defaults: GateRule | None = None) -> GateConfig:
    """Validate a parsed gates.yaml; every mistake is a HarnessError naming where it is."""
    base = defaults or GateRule()
    if raw is None:
        return GateConfig(defaults=base)
    if not isinstance(raw, Mapping):
        raise HarnessError(f"{source}: expected a mapping with 'defaults' and/or 'rules'")
    unknown = sorted(set(raw) - {"defaults", "rules"})
    if unknown:
        raise HarnessError(f"{source}: unknown key '{unknown[0]}' (known: defaults, rules)")
    raw_defaults = raw.get("defaults") or {}
    if not isinstance(raw_defaults, Mapping):
        raise HarnessError(f"{source}: 'defaults' must be a mapping of rule settings")
    if {"task", "metric"} & set(raw_defaults):
        raise HarnessError(f"{source}: 'defaults' takes rule settings, not task or metric")
    base = _apply_settings(base, raw_defaults, f"{source} defaults")
    raw_rules = raw.get("rules") or []
    if not isinstance(raw_rules, list):
        raise HarnessError(f"{source}: 'rules' must be a list of rules")
    rules = []
    for index, raw_rule in enumerate(raw_rules, start=1):
        where = f"{source} rule {index}"
        if not isinstance(raw_rule, Mapping):
            raise HarnessError(f"{where}: expected a mapping such as {{task: NAME, metric: NAME}}")
        missing = [key for key in ("task", "metric") if key not in raw_rule]
        if missing:
            raise HarnessError(f"{where}: missing '{missing[0]}' (use \"*\" for every one)")
        rules.append(_apply_settings(base, raw_rule, where))
    return GateConfig(defaults=base, rules=tuple(rules))


def load_gate_config(path: str | Path, defaults: GateRule | None = None) -> GateConfig:
    return parse_gate_config(load_yaml_file(path, "gate config"), str(path), defaults)


# -- evaluation -------------------------------------------------------------------------------------


def _is_pattern(text: str) -> bool:
    return any(char in text for char in "*?[")


def expand_rules(
    config: GateConfig,
    baseline_pairs: Iterable[tuple[str, str]],
    candidate_pairs: Iterable[tuple[str, str]],
) -> dict[tuple[str, str], GateRule]:
    """The rule that applies to each gated (task, metric); the last matching rule wins."""
    base, cand = set(baseline_pairs), set(candidate_pairs)
    shared = sorted(base & cand)
    if not config.rules:
        return dict.fromkeys(shared, config.defaults)
    chosen: dict[tuple[str, str], GateRule] = {}
    for index, rule in enumerate(config.rules, start=1):
        if not _is_pattern(rule.task) and not _is_pattern(rule.metric):
            key = (rule.task, rule.metric)
            if key not in base | cand:
                tasks = {task for task, _ in base | cand}
                missing = f"task '{rule.task}'" if rule.task not in tasks else f"metric '{rule.metric}'"
                raise HarnessError(f"gate rule {index} names {missing}, which neither run has")
            if key not in shared:
                lacking = "candidate" if key in base else "baseline"
                raise HarnessError(f"gate rule {index}: the {lacking} run has no score for {key[0]}/{key[1]}")
            chosen[key] = rule
            continue
        matched = [
            key
            for key in shared
            if fnmatch.fnmatchcase(key[0], rule.task) and fnmatch.fnmatchcase(key[1], rule.metric)
        ]
        if not matched:
            raise HarnessError(
                f"gate rule {index} (task '{rule.task}', metric '{rule.metric}') matches no task and "
                f"metric that both runs have"
            )
        chosen.update(dict.fromkeys(matched, rule))
    return dict(sorted(chosen.items()))


def check_rule(rule: GateRule, comparison: MetricComparison) -> GateCheck:
    allowed = rule.allowed_drop(comparison.baseline)
    drop = comparison.drop
    significant = comparison.p_value < rule.alpha
    verdict = f"drop {drop:+.4g} vs allowed {allowed:.4g}, p={comparison.p_value:.3g}"
    if comparison.n_shared < rule.min_samples:
        reason = f"only {comparison.n_shared} shared samples; the rule needs at least {rule.min_samples}"
        return GateCheck(rule, comparison, False, reason, allowed)
    if math.isnan(drop):
        return GateCheck(rule, comparison, False, "the difference is not a number", allowed)
    exceeded = drop > allowed + _MARGIN_EPSILON
    if exceeded and (significant or not rule.require_significance):
        qualifier = f" (significant at {rule.alpha:g})" if rule.require_significance else ""
        return GateCheck(rule, comparison, False, f"regression: {verdict}{qualifier}", allowed)
    if exceeded:
        return GateCheck(rule, comparison, True, f"not significant: {verdict}", allowed)
    return GateCheck(rule, comparison, True, f"within margin: {verdict}", allowed)


def run_gate(
    store: ResultStore,
    baseline: str,
    candidate: str,
    config: GateConfig | None = None,
    *,
    resamples: int = 2000,
    seed: int = 0,
    ignore_harness_version: bool = False,
) -> GateResult:
    """Resolve both selectors, compare the gated task/metrics, and check every rule."""
    config = config or GateConfig()
    baseline_run = resolve_run(store, baseline)
    candidate_run = resolve_run(store, candidate)
    if baseline_run == candidate_run:
        raise HarnessError(f"baseline and candidate are the same run ({baseline_run})")
    base_pairs = _pairs(store, baseline_run)
    cand_pairs = _pairs(store, candidate_run)
    rules = expand_rules(config, base_pairs, cand_pairs)
    if not rules:
        raise HarnessError(f"runs {baseline_run} and {candidate_run} have no task and metric in common")
    comparison = compare_runs(
        store,
        baseline_run,
        candidate_run,
        pairs=list(rules),
        resamples=resamples,
        seed=seed,
        ignore_harness_version=ignore_harness_version,
    )
    checks = tuple(check_rule(rules[(c.task, c.metric)], c) for c in comparison.comparisons)
    return GateResult(baseline_run, candidate_run, baseline, candidate, checks, comparison)


def _pairs(store: ResultStore, run_id: str) -> Sequence[tuple[str, str]]:
    frame = store.scores(run_id)
    pairs = zip(frame["task"].astype(str), frame["metric"].astype(str), strict=True)
    # Gates judge task metrics; fairness and per-group rows have no per-document pairing.
    return [(task, metric) for task, metric in pairs if not is_derived_metric(metric)]
