"""Task files for side-by-side runs of harness and lm-evaluation-harness.

- `lm_eval_copy`: a harness task YAML in the form lm-eval reads (absolute data paths, no harness-only keys).
- `write_original_wrapper`: a wrapper around one of lm-eval's ORIGINAL task YAMLs (installed with the
  lm_eval package): it only `include:`s the original by absolute path and points the dataset at local JSON
  Lines files, so the task's own templates, `!function` hooks, `process_docs` and few-shot sampler run.
- `hellaswag_splits`, `mmlu_splits`: deterministic synthetic documents in the real datasets' schemas, with
  realistic lengths (HellaSwag: ActivityNet and WikiHow style contexts and endings; MMLU: questions with
  four answers of realistic length and a five-question dev split for the first_n few-shot sampler).
"""

from __future__ import annotations

import importlib.util
import json
import random
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


def lm_eval_tasks_dir() -> Path:
    """lm-eval's installed task folder, found without importing lm_eval (which takes seconds)."""
    spec = importlib.util.find_spec("lm_eval")
    if spec is None or spec.origin is None:
        raise SystemExit("lm_eval is not installed: pip install lm_eval==0.4.13")
    return Path(spec.origin).parent / "tasks"


def write_original_wrapper(
    folder: Path, name: str, original: str, splits: dict[str, list[dict[str, Any]]]
) -> Path:
    """`folder/<name>.yaml` including lm-eval's `tasks/<original>`, reading `splits` from local files."""
    data_dir = folder / "data"
    data_dir.mkdir(parents=True, exist_ok=True)
    files = {}
    for split, docs in splits.items():
        path = data_dir / f"{name}.{split}.jsonl"
        path.write_text("".join(json.dumps(doc) + "\n" for doc in docs), encoding="utf-8")
        files[split] = str(path)
    wrapper = {
        "include": str(lm_eval_tasks_dir() / original),
        "dataset_path": "json",
        "dataset_name": None,
        "dataset_kwargs": {"data_files": files},
    }
    target = folder / f"{name}.yaml"
    target.write_text(yaml.safe_dump(wrapper, sort_keys=False), encoding="utf-8")
    return target


# -- HellaSwag -------------------------------------------------------------------------------------------

_PEOPLE = [
    "A man", "A woman", "A young boy", "A little girl", "An older man", "A teenage girl", "A coach",
    "A chef", "A mechanic", "A gardener", "A dancer", "A swimmer", "A musician",
]  # fmt: skip
_ACTIVITIES = [
    ("Washing dishes", "standing at a kitchen sink filled with soapy water", "a stack of plates"),
    ("Playing guitar", "sitting on a wooden stool in a small living room", "an acoustic guitar"),
    ("Shoveling snow", "standing in front of a house covered in fresh snow", "a long metal shovel"),
    ("Making a sandwich", "standing behind a counter in a busy kitchen", "two slices of bread"),
    ("Painting fence", "kneeling beside a long white fence in the back yard", "a can of paint"),
    ("Brushing teeth", "standing in front of a mirror in a bright bathroom", "a blue toothbrush"),
    ("Bathing dog", "kneeling next to a tub in the yard", "a bottle of dog shampoo"),
    ("Mowing the lawn", "pushing a red mower across a large green lawn", "the handle of the mower"),
    ("Ironing clothes", "standing at an ironing board in a laundry room", "a wrinkled shirt"),
    ("Rock climbing", "standing at the bottom of a tall rock wall in a gym", "a coil of rope"),
    ("Tennis serve with ball bouncing", "standing on the baseline of an outdoor court", "a yellow ball"),
    ("Wrapping presents", "sitting at a table covered in colorful paper", "a roll of tape"),
]
_ACTIVITYNET_MIDDLES = [
    "{they} looks around the room and smiles at the camera before beginning.",
    "{they} picks up {thing} and holds it up so that everyone can see it clearly.",
    "{they} explains each step slowly while a second person watches from the side.",
    "The camera zooms in on {their} hands as {they_lower} sets everything in place.",
    "{they} pauses for a moment, wipes {their} forehead and then continues working.",
    "Several people in the background cheer and clap as {they_lower} gets ready.",
]
_ACTIVITYNET_ENDINGS = [
    "then puts {thing} down carefully and begins to move it back and forth in slow, even strokes.",
    "throws {thing} high into the air and runs out of the room laughing loudly at the camera.",
    "continues working for several minutes, stopping now and then to show the result to the camera.",
    "sits down on the floor and starts reading a newspaper while the others keep on talking.",
    "walks over to the window, opens it wide and waves at a car that is driving past the house.",
    "finishes the last part, steps back to look at the work and nods with a satisfied smile.",
    "drops {thing} into a bucket of water and begins to dance around the room with a broom.",
    "turns to the people watching and explains what to do next while pointing at {thing}.",
]
_WIKIHOW_TOPICS = [
    ("Home and Garden", "keep houseplants healthy during the winter", "plants", "the soil"),
    ("Food and Entertaining", "bake a loaf of whole wheat bread", "dough", "the oven"),
    ("Personal Care and Style", "take care of leather boots", "boots", "the leather"),
    ("Finance and Business", "make a monthly household budget", "budget", "your expenses"),
    ("Health", "recover from a sprained ankle", "ankle", "the swelling"),
    ("Pets and Animals", "teach a puppy to walk on a leash", "puppy", "the leash"),
    ("Sports and Fitness", "start running when you are a beginner", "run", "your breathing"),
    ("Education and Communications", "prepare for a final exam", "notes", "the material"),
]
_WIKIHOW_STEPS = [
    "Make sure that {thing} is clean and dry before you begin, since dirt makes every later step harder.",
    "Set aside enough time so that you do not have to rush, because hurrying is the most common mistake.",
    "Check {other} every few days and write down what you notice, so you can see how things change.",
    "If you are not sure what to do, ask someone with more experience or look for a reliable guide.",
    "Gather everything you need in one place, including a towel, a notebook and a small bowl of water.",
    "Start with small changes and increase them slowly over the next two or three weeks.",
]
_WIKIHOW_ENDINGS = [
    "Look closely at {other} each morning. If it seems worse than before, stop for a day or two and give "
    "the {thing} time to rest before you try again.",
    "Fill a large pot with cold water and add a cup of salt. [step] Bring it to a boil and drop the {thing} "
    "into the water for about twenty minutes.",
    "Keep a simple record of your progress in a notebook. [substeps] Note the date, what you did and how "
    "{other} looked, so that you can spot a pattern over time.",
    "Paint the {thing} a bright color so that it is easy to find. [title] Hang it upside down from the "
    "ceiling of your garage for a whole week.",
    "Talk to a professional if nothing improves after a few weeks. [step] They can look at {other} and tell "
    "you whether you need to change your approach.",
    "Throw the {thing} away and buy a new one at the nearest store. [title] Sing loudly while you walk home "
    "so that your neighbors know you are finished.",
]


def _pronouns(person: str) -> dict[str, str]:
    female = any(word in person for word in ("woman", "girl"))
    return {
        "they": "She" if female else "He",
        "they_lower": "she" if female else "he",
        "their": "her" if female else "his",
    }


def hellaswag_doc(i: int, split: str) -> dict[str, Any]:
    """One document in HellaSwag's schema; even indices ActivityNet style, odd ones longer WikiHow style."""
    rng = random.Random(f"hellaswag-{split}-{i}")
    label = rng.randrange(4)
    if i % 2 == 0:
        person = rng.choice(_PEOPLE)
        activity, scene, thing = rng.choice(_ACTIVITIES)
        words = _pronouns(person)
        middles = [m.format(thing=thing, **words) for m in rng.sample(_ACTIVITYNET_MIDDLES, 2)]
        ctx_a = f"{person} is {scene}. {middles[0]} {middles[1]}"
        ctx_b = words["they_lower"]
        endings = [e.format(thing=thing) for e in rng.sample(_ACTIVITYNET_ENDINGS, 4)]
        source = f"activitynet~v_{rng.getrandbits(40):010x}"
    else:
        activity, goal, thing, other = rng.choice(_WIKIHOW_TOPICS)
        steps = [s.format(thing=thing, other=other) for s in rng.sample(_WIKIHOW_STEPS, 3)]
        ctx_a = f"[header] How to {goal} [title] {steps[0]} [step] {steps[1]} [title] {steps[2]}"
        ctx_b = ""
        endings = [e.format(thing=thing, other=other) for e in rng.sample(_WIKIHOW_ENDINGS, 4)]
        source = f"wikihow~{40000 + i}"
    return {
        "ind": 1000 * (split == "train") + i,
        "activity_label": activity,
        "ctx_a": ctx_a,
        "ctx_b": ctx_b,
        "ctx": f"{ctx_a} {ctx_b}".strip(),
        "endings": endings,
        "source_id": source,
        "split": split,
        "split_type": "indomain" if i % 3 else "zeroshot",
        "label": str(label),
    }


def hellaswag_splits(validation: int = 60, train: int = 40) -> dict[str, list[dict[str, Any]]]:
    return {
        "train": [hellaswag_doc(i, "train") for i in range(train)],
        "validation": [hellaswag_doc(i, "val") for i in range(validation)],
    }


# -- MMLU ------------------------------------------------------------------------------------------------

_ORGANISMS = [
    "a species of freshwater fish", "a population of field mice", "a strain of soil bacteria",
    "a flowering plant that grows on sand dunes", "a colony of honey bees", "a species of tree frog",
    "a population of desert lizards", "a strain of baker's yeast", "a species of marine snail",
]  # fmt: skip
_OBSERVATIONS = [
    "individuals living at higher temperatures grow more slowly but live longer than those kept at lower "
    "temperatures",
    "the frequency of a dark-colored variant increases over several generations after a nearby forest fire",
    "cells exposed to a chemical that blocks the electron transport chain stop producing most of their ATP",
    "offspring of two heterozygous parents show the dominant trait in about three quarters of the cases",
    "the concentration of a digestive enzyme in the gut rises sharply within an hour after each meal",
    "individuals that are moved to water with a higher salt concentration lose water and shrink",
    "a mutation in a single gene changes the shape of a protein and stops it from binding its substrate",
]
_QUESTION_FORMS = [
    "A researcher studying {organism} observes that {observation}. Which of the following best explains "
    "this observation?",
    "In an experiment with {organism}, a student finds that {observation}. Which of the following "
    "conclusions is most strongly supported by these results?",
    "Biologists working with {organism} report that {observation}. Which of the following processes is most "
    "likely responsible?",
]
_ANSWERS = [
    "natural selection favoring individuals with traits suited to the new environment",
    "a decrease in the rate of cellular respiration in the mitochondria",
    "osmosis, the movement of water across a membrane toward the higher solute concentration",
    "independent assortment of alleles during the formation of gametes",
    "a change in the active site that prevents the enzyme from binding its substrate",
    "increased transcription of the gene in response to a signal from outside the cell",
    "random genetic drift in a small and isolated population",
    "active transport of ions against their concentration gradient using energy from ATP",
    "the breakdown of glucose by glycolysis in the absence of oxygen",
    "feedback inhibition of the pathway by its final product",
    "Mendelian inheritance of a single gene with complete dominance",
    "a reduction in the rate of photosynthesis caused by a lack of light",
]


def mmlu_doc(i: int, split: str, subject: str) -> dict[str, Any]:
    rng = random.Random(f"mmlu-{subject}-{split}-{i}")
    question = rng.choice(_QUESTION_FORMS).format(
        organism=rng.choice(_ORGANISMS), observation=rng.choice(_OBSERVATIONS)
    )
    return {
        "question": question,
        "subject": subject,
        "choices": rng.sample(_ANSWERS, 4),
        "answer": rng.randrange(4),
    }


def mmlu_splits(subject: str, test: int = 60, dev: int = 5) -> dict[str, list[dict[str, Any]]]:
    return {
        "test": [mmlu_doc(i, "test", subject) for i in range(test)],
        "dev": [mmlu_doc(i, "dev", subject) for i in range(dev)],
    }
