"""Write harness task YAML files in the form lm-evaluation-harness reads, for side-by-side runs.

lm-eval resolves data paths against the working directory and rejects keys it does not know, so the
copies get absolute data paths and lose harness-only keys and metrics.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

HARNESS_ONLY_KEYS = ("group_field", "apply_chat_template")
HARNESS_ONLY_METRICS = ("token_perplexity",)


def lm_eval_copy(source: Path, destination_dir: Path) -> Path:
    raw: dict[str, Any] = yaml.safe_load(source.read_text(encoding="utf-8"))
    for key in HARNESS_ONLY_KEYS:
        raw.pop(key, None)
    files = raw.get("dataset_kwargs", {}).get("data_files", {})
    for split, name in list(files.items()):
        path = Path(name)
        files[split] = str(path if path.is_absolute() else (source.parent / path).resolve())
    if "metric_list" in raw:
        raw["metric_list"] = [m for m in raw["metric_list"] if m.get("metric") not in HARNESS_ONLY_METRICS]
    destination_dir.mkdir(parents=True, exist_ok=True)
    target = destination_dir / source.name
    target.write_text(yaml.safe_dump(raw, sort_keys=False, allow_unicode=True), encoding="utf-8")
    return target
