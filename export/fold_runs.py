"""Fold models for out-of-fold calibration (`gesturekit calibrate --folds K`).

The non-test subjects of a run are dealt into K folds as `train --folds` deals them
(`train.crossval.fold_subjects`, the run's seed). Fold I is a run trained exactly as the run
was (its config.json: strategy, budgets, seed, window, hops, dataset options) but with fold I
as its validation subjects, so it never trains on them; the run's test subjects stay out of
every fold. With the default keep-the-last-epoch budgets the validation subjects choose
nothing, so a fold model's outputs on its fold are those of a model like the bundle's on people
it never saw. Fold runs live in `RUN.folds/foldI` and are reused when their config matches
(a calibrate killed mid-way resumes with the folds it finished).
"""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path

from gesturekit.train.config import TrainConfig, apply_values
from gesturekit.train.crossval import fold_subjects
from gesturekit.train.datasets import subject_order
from gesturekit.train.runs import RunInfo, load_run

SUBJECT_KEYS = ("test_subjects", "val_subjects", "train_subjects")


def fold_config(run: RunInfo, held: list[str]) -> TrainConfig:
    """The run's training config with `held` as validation subjects and its test subjects fixed."""
    names = {f.name for f in dataclasses.fields(TrainConfig)}
    values = {k: v for k, v in run.config.items() if k in names and k not in SUBJECT_KEYS}
    cfg = apply_values(TrainConfig(), values, str(run.root / "config.json"))
    cfg.test_subjects, cfg.val_subjects = list(run.split["test"]), list(held)
    return cfg


def _matches(fold: Path, run: RunInfo, held: list[str]) -> bool:
    """A finished fold run trained like `run` with `held` as its validation subjects."""
    if not (fold / "metrics.json").is_file():
        return False
    other = load_run(fold)
    same = all(other.config.get(k) == v for k, v in run.config.items()
               if k not in (*SUBJECT_KEYS, "split", "normalization", "reference_pose",
                            "gesturekit_version"))
    return (same and set(other.split["val"]) == set(held)
            and set(other.split["test"]) == set(run.split["test"]))


def fold_runs(run_dir: Path, data: str, folds: int) -> list[tuple[RunInfo, list[str]]]:
    """(fold run, its held-out subjects) for each of `folds` folds; trains those missing."""
    from gesturekit.train.trainer import train_run

    run = load_run(run_dir)
    non_test = sorted(run.split["train"] + run.split["val"], key=subject_order)
    groups = fold_subjects(non_test, folds, run.config["seed"])
    root = run_dir.parent / f"{run_dir.name}.folds"
    out = []
    for i, held in enumerate(groups, start=1):
        fold = root / f"fold{i}"
        if not _matches(fold, run, held):
            print(f"fold {i}/{folds}: training without subjects {', '.join(held)} into {fold}",
                  file=sys.stderr, flush=True)
            train_run(data, fold, fold_config(run, held), run.config["dataset"].get("options", {}),
                      force=True, progress=lambda _: None)
        out.append((load_run(fold), held))
    return out
