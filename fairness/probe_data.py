"""Generate the documents of the built-in fairness probes from the templates in `probe_templates`.

    python -m harness.fairness.probe_data          # rewrites tasks/builtin/data/fairness_*.jsonl

Everything is deterministic (answer orders come from a fixed seed), so the shipped files can be
checked against this generator (tests/test_fairness_probes.py does). The fields that `fairness.probes`
reads are described there; the other fields are for reading and filtering.
"""

from __future__ import annotations

import importlib.resources
import json
import random
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from harness.fairness.free_text_probe import free_text_requests
from harness.fairness.probe_templates import (
    AMBIGUITY_TEMPLATES,
    COUNTERFACTUAL_GROUPS,
    DECISION_TEMPLATES,
    STEREOTYPE_PAIRS,
    UNKNOWN_ANSWERS,
)

# The probes read the built-in task data that the `harness.tasks` package ships.
DATA_DIR = Path(str(importlib.resources.files("harness.tasks"))) / "builtin" / "data"
# The answer order of the ambiguity probe is shuffled with this seed, so the right answer's position
# carries no signal.
SHUFFLE_SEED = 20240604


def counterfactual_decisions() -> Iterator[dict[str, Any]]:
    """Every decision template, strong and weak case, once per group term; a template's variants are
    adjacent, so `--limit N` keeps whole counterfactual sets."""
    for template in DECISION_TEMPLATES:
        for merit in ("strong", "weak"):
            for attribute, group, phrase in COUNTERFACTUAL_GROUPS:
                yield {
                    "template_id": f"{template.name}-{merit}",
                    "scenario": template.name,
                    "merit": merit,
                    "attribute": attribute,
                    "group": group,
                    "prompt": template.render(phrase, merit),
                    "choices": list(template.choices),
                    # The favourable option is always first; the strong case deserves it.
                    "label": 0 if merit == "strong" else 1,
                    "favorable_choice": 0,
                }


def stereotype_pairs() -> Iterator[dict[str, Any]]:
    """Each pair once; the stereotyping sentence alternates between first and second place."""
    for index, pair in enumerate(STEREOTYPE_PAIRS):
        stereotyping, contrasting = pair.sentences()
        first = index % 2 == 0
        yield {
            "bias_type": pair.bias_type,
            "stereotyped_group": pair.stereotyped,
            "contrast_group": pair.contrast,
            "sentences": [stereotyping, contrasting] if first else [contrasting, stereotyping],
            "stereotype_choice": 0 if first else 1,
        }


def ambiguous_questions() -> Iterator[dict[str, Any]]:
    """Per template: ambiguous contexts (both orders x both questions) and disambiguated ones (both
    orders x who did the negative thing x both questions)."""
    rng = random.Random(SHUFFLE_SEED)
    count = 0
    for template in AMBIGUITY_TEMPLATES:
        for condition in ("ambiguous", "disambiguated"):
            doers = ("target",) if condition == "ambiguous" else ("target", "other")
            for target_first in (True, False):
                for doer in doers:
                    for polarity in ("negative", "non-negative"):
                        unknown = UNKNOWN_ANSWERS[count % len(UNKNOWN_ANSWERS)]
                        count += 1
                        answers = [template.target.answer, template.other.answer, unknown]
                        rng.shuffle(answers)
                        if condition == "ambiguous":
                            gold = unknown
                        else:  # the negative question asks for the doer, the other one for the other
                            doer_answer = template.person(doer).answer
                            other_answer = template.person("other" if doer == "target" else "target").answer
                            gold = doer_answer if polarity == "negative" else other_answer
                        # The answer a stereotype would give: the target when the question is negative.
                        biased = template.target.answer if polarity == "negative" else template.other.answer
                        yield {
                            "category": template.category,
                            "bbq_template": template.name,
                            "context_condition": condition,
                            "question_polarity": polarity,
                            "context": template.context(condition, target_first, doer),
                            "question": template.question(polarity),
                            "answers": answers,
                            "label": answers.index(gold),
                            "biased_choice": answers.index(biased),
                            "unknown_choice": answers.index(unknown),
                        }


PROBES = {
    "fairness_counterfactual_decisions": counterfactual_decisions,
    "fairness_stereotype_pairs": stereotype_pairs,
    "fairness_ambiguous_questions": ambiguous_questions,
    "fairness_free_text": free_text_requests,
}


def render_probe(name: str) -> str:
    """The JSONL text of one probe's documents, each with an `id`."""
    lines = []
    for index, doc in enumerate(PROBES[name]()):
        lines.append(json.dumps({"id": index, **doc}, ensure_ascii=False))
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    target = Path(argv[0]) if argv else DATA_DIR
    for name in PROBES:
        path = target / f"{name}.jsonl"
        path.write_text(render_probe(name), encoding="utf-8")
        sys.stdout.write(f"{path}: {render_probe(name).count(chr(10))} documents\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
