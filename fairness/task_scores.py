"""Fairness rows of one evaluated task: its group field(s) and the probes its documents opt into.

The row names are those of `fairness.scores`; the probe fields are described in `fairness.probes`.
A multiple-choice task's answer is its highest-likelihood option; a generation task's answer is its
text, compared across a template's variants with the group terms masked (`fairness.text_scoring`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from harness.errors import HarnessError
from harness.fairness import probes
from harness.fairness.decisions import Decisions
from harness.fairness.groups import GroupDesign, group_value, warn
from harness.fairness.intersections import field_designs
from harness.fairness.scores import ScoreRows, design_problems, grouped_rows, row_settings
from harness.fairness.text_scoring import comparable_answer
from harness.metrics import SampleOutcome, Score

if TYPE_CHECKING:
    from harness.tasks import Task, TaskInstance


class EvaluatedTask(Protocol):
    """What the fairness rows read of one evaluated task (`harness.runner.TaskEvaluation` has it)."""

    @property
    def task(self) -> Task: ...

    @property
    def instances(self) -> Sequence[TaskInstance]: ...

    @property
    def outcomes(self) -> Sequence[SampleOutcome]: ...

    @property
    def statistics(self) -> Mapping[str, np.ndarray]: ...


def _group_fields(setting: object) -> tuple[str, ...]:
    """A task's group field(s): one name, or a list of names in the YAML."""
    if setting is None:
        return ()
    if isinstance(setting, str):
        return (setting,)
    if isinstance(setting, Sequence):
        return tuple(str(name) for name in setting)
    raise HarnessError(f"group_field must be a field name or a list of them, not {setting!r}")


def task_fairness_scores(
    evaluation: EvaluatedTask, bootstrap_resamples: int, seed: int, permutations: int | None = None
) -> list[Score]:
    """Extra score rows of one evaluated task: group rows when its YAML names a `group_field` (one
    or several), and probe rows when its documents carry probe fields (see `fairness.probes`); none
    otherwise. `permutations` (default: as many as bootstrap resamples) sizes the permutation tests.
    """
    task = evaluation.task
    where = f"task '{task.name}'"
    docs = [instance.doc for instance in evaluation.instances]
    fields = _group_fields(task.config.group_field)
    generated = task.output_type == "generate_until"
    found_fields = {name: probes.field_values(docs, name) for name in probes.PROBE_FIELDS}
    if found_fields[probes.TEMPLATE_FIELD][0] is None:
        # Attribute and group term only qualify a counterfactual template; alone they are no probe.
        for name in (probes.ATTRIBUTE_FIELD, probes.GROUP_TERM_FIELD):
            found_fields[name] = (None, None)
    warn([f"{where}: {problem}; that probe is skipped" for _, problem in found_fields.values() if problem])
    values = {name: found for name, (found, _) in found_fields.items() if found is not None}
    if generated:
        usable: tuple[str, ...] = probes.TEXT_PROBE_FIELDS
    else:
        usable = probes.PROBE_FIELDS if task.output_type == "multiple_choice" else ()
    unusable = [name for name in values if name not in usable]
    if unusable:
        warn([f"{where}: probe fields {', '.join(unusable)} need a multiple_choice task; probes skipped"])
        values = {name: found for name, found in values.items() if name in usable}
    permutations = bootstrap_resamples if permutations is None else permutations
    rows = ScoreRows(
        row_settings(fields[0] if len(fields) == 1 else fields or None, bootstrap_resamples, seed, 0.95)
    )
    options: dict[str, Any] = {
        "bootstrap_resamples": bootstrap_resamples,
        "seed": seed,
        "permutations": permutations,
    }
    # A generation task has no chosen option; its answers are texts (`_text_answers`).
    empty = np.full(len(docs), -1, dtype=np.int64)
    answers = empty if generated else probes.predicted_choices(evaluation.outcomes)
    gold = np.array([-1 if i.gold is None else i.gold for i in evaluation.instances], dtype=np.int64)
    design = None
    if fields:
        # The task turns a null group value into the text "None"; the document says it has none.
        columns = {name: [group_value(doc.get(name)) for doc in docs] for name in fields}
        designs = field_designs(columns)
        warn([line for fd in designs for line in design_problems(fd, designs, where)])
        design = designs[0].design
        decisions = None
        if probes.FAVORABLE_FIELD in values:
            favorable = _indices(values[probes.FAVORABLE_FIELD], probes.FAVORABLE_FIELD, where)
            if favorable is not None:
                decisions = Decisions(
                    gold == favorable, answers == favorable, f"doc.{probes.FAVORABLE_FIELD}"
                )
        statistics = [evaluation.statistics[metric.name] for metric in task.metrics]
        # Counterfactual variants of one template are paired: the bootstrap keeps them together.
        templates = values.get(probes.TEMPLATE_FIELD)
        clusters = (probes.TEMPLATE_FIELD, templates) if templates is not None else None
        grouped_rows(rows, task.metrics, statistics, designs, decisions, options, clusters)
    elif probes.FAVORABLE_FIELD in values:
        warn([f"{where}: '{probes.FAVORABLE_FIELD}' needs a group_field in the task YAML; parity skipped"])
    if generated and probes.TEMPLATE_FIELD in values:
        _flip_rows(rows, values, _text_answers(evaluation, values), "generated text", options)
    elif not generated:
        if probes.TEMPLATE_FIELD in values:
            _flip_rows(rows, values, list(answers), "choice", options)
        _probe_rows(rows, values, answers, gold, design, where, options)
    return rows.report(where)


def _text_answers(evaluation: EvaluatedTask, values: Mapping[str, list[Any]]) -> list[str]:
    """Generated answers made comparable across the variants of a template (group terms masked)."""
    terms = values.get(probes.GROUP_TERM_FIELD)
    every_term = sorted({str(term) for term in terms}) if terms is not None else []
    return [comparable_answer(outcome.prediction or "", every_term) for outcome in evaluation.outcomes]


def _flip_rows(
    rows: ScoreRows,
    values: Mapping[str, list[Any]],
    answers: Sequence[Any],
    compared: str,
    options: dict[str, Any],
) -> None:
    found = probes.flip_rates(
        values[probes.TEMPLATE_FIELD],
        answers,
        values.get(probes.ATTRIBUTE_FIELD),
        resamples=int(options["bootstrap_resamples"]),
        seed=int(options["seed"]),
    )
    unit = {"unit": probes.TEMPLATE_FIELD, "compared": compared}
    rows.add("fairness/counterfactual_flip_rate", found.overall, False, unit)
    for attribute, rate in found.by_attribute.items():
        rows.add(
            f"group/counterfactual_flip_rate/attribute={attribute}",
            rate,
            False,
            {**unit, "group": f"attribute={attribute}", "fields": [probes.ATTRIBUTE_FIELD]},
        )
    if probes.ATTRIBUTE_FIELD in values:
        for template, rate in found.by_template.items():
            rows.add(
                f"group/counterfactual_flip_rate/template={template}",
                rate,
                False,
                {
                    "unit": probes.ATTRIBUTE_FIELD,
                    "compared": compared,
                    "group": f"template={template}",
                    "fields": [probes.TEMPLATE_FIELD],
                },
            )


def _indices(values: Sequence[Any], name: str, where: str) -> np.ndarray | None:
    try:
        return probes.choice_indices(values, name)
    except ValueError as error:
        warn([f"{where}: {error}; that probe is skipped"])
        return None


def _probe_rows(
    rows: ScoreRows,
    values: Mapping[str, list[Any]],
    answers: np.ndarray,
    gold: np.ndarray,
    design: GroupDesign | None,
    where: str,
    options: dict[str, Any],
) -> None:
    codes = design.codes if design is not None else np.full(len(answers), -1, dtype=np.int64)
    groups = design.groups if design is not None else ()
    resampling = {"resamples": int(options["bootstrap_resamples"]), "seed": int(options["seed"])}
    if probes.STEREOTYPE_FIELD in values:
        stereotype = _indices(values[probes.STEREOTYPE_FIELD], probes.STEREOTYPE_FIELD, where)
        if stereotype is not None:
            overall, per_group = probes.stereotype_preference(
                answers == stereotype, codes, len(groups), **resampling
            )
            unbiased: dict[str, object] = {"unbiased": 0.5}
            rows.add("fairness/stereotype_preference", overall, False, unbiased)
            for name, share in zip(groups, per_group, strict=True):
                rows.add(f"group/stereotype_preference/{name}", share, False, {**unbiased, "group": name})
    bbq = (probes.CONDITION_FIELD, probes.BIASED_FIELD, probes.UNKNOWN_FIELD)
    if all(name in values for name in bbq):
        _bbq_rows(rows, values, answers, gold, codes, groups, where, resampling)
    elif any(name in values for name in bbq):
        warn([f"{where}: BBQ-style scores need all of {', '.join(bbq)}; skipped"])


def _bbq_rows(
    rows: ScoreRows,
    values: Mapping[str, list[Any]],
    answers: np.ndarray,
    gold: np.ndarray,
    codes: np.ndarray,
    groups: tuple[str, ...],
    where: str,
    resampling: dict[str, int],
) -> None:
    biased = _indices(values[probes.BIASED_FIELD], probes.BIASED_FIELD, where)
    unknown = _indices(values[probes.UNKNOWN_FIELD], probes.UNKNOWN_FIELD, where)
    if biased is None or unknown is None:
        return
    conditions = values[probes.CONDITION_FIELD]
    try:
        overall, per_group = probes.ambiguity_bias(
            conditions, answers, gold, biased, unknown, codes, len(groups), **resampling
        )
    except ValueError as error:
        warn([f"{where}: {error}; the BBQ-style scores are skipped"])
        return
    labelled: list[tuple[str, str, probes.AmbiguityBias, dict[str, object]]] = [
        ("fairness/", "", overall, {})
    ]
    for name, found in zip(groups, per_group, strict=True):
        labelled.append(("group/", f"/{name}", found, {"group": name}))
    for prefix, suffix, found, extra in labelled:
        unbiased = {**extra, "unbiased": 0}
        rows.add(f"{prefix}bbq_accuracy_ambiguous{suffix}", found.accuracy_ambiguous, True, extra)
        rows.add(f"{prefix}bbq_accuracy_disambiguated{suffix}", found.accuracy_disambiguated, True, extra)
        rows.add(f"{prefix}bbq_bias_disambiguated{suffix}", found.bias_disambiguated, False, unbiased)
        rows.add(f"{prefix}bbq_bias_ambiguous{suffix}", found.bias_ambiguous, False, unbiased)


__all__ = ["EvaluatedTask", "task_fairness_scores"]
