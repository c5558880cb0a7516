"""Subject-wise cross-validation (`gesturekit train --folds K`).

The non-test subjects are dealt into K folds (seeded). Each fold trains the strategy on the
other folds, early-stopped on its own subjects, and is scored on them. The shipped model then
trains on every non-test subject for the epoch count the folds chose (their median best
epoch per phase), so no person is held back from it: on a small dataset, four people more in
training is worth more than an early-stopping signal from four people.
"""

from __future__ import annotations

import copy
import statistics
from collections.abc import Callable

import numpy as np

from gesturekit.errors import UserError
from gesturekit.train.config import TrainConfig
from gesturekit.train.datasets import subject_order

# The phases whose epoch count the folds choose, per strategy.
PHASES = {"direct": ("direct",), "three-phase": ("cnn", "lstm")}


def fold_subjects(subjects: list[str], folds: int, seed: int) -> list[list[str]]:
    """The subjects dealt into `folds` groups in a seeded order (sizes differ by at most 1)."""
    if not 2 <= folds <= len(subjects):
        raise UserError(f"--folds {folds}: expected 2 to {len(subjects)} (the number of "
                        "non-test subjects)")
    order = [subjects[i] for i in np.random.default_rng(seed).permutation(len(subjects))]
    return [sorted(order[i::folds], key=subject_order) for i in range(folds)]


def cross_validate(cfg: TrainConfig, subjects: list[str],
                   fit_fold: Callable[[list[str], list[str]], dict],
                   progress: Callable[[str], None]) -> dict:
    """Run `fit_fold(train_subjects, val_subjects)` for every fold; it returns the phases'
    results ({phase: {"best_epoch", "best_val_macro_f1", ...}}). Returns each fold's result
    and the mean ± std of the validation macro-F1 of the model each fold would ship."""
    subjects = sorted(subjects, key=subject_order)  # folds independent of split order
    groups = fold_subjects(subjects, cfg.folds, cfg.seed)
    chosen = PHASES[cfg.strategy]
    folds = []
    for i, val in enumerate(groups, start=1):
        train = [s for s in subjects if s not in set(val)]
        progress(f"fold {i}/{len(groups)}: validation subjects {', '.join(val)}")
        phases = fit_fold(train, val)
        folds.append({"val_subjects": val,
                      "val_macro_f1": phases[chosen[-1]]["best_val_macro_f1"],
                      "best_epochs": {p: phases[p]["best_epoch"] for p in chosen}})
        progress(f"fold {i}/{len(groups)}: validation macro-F1 {folds[-1]['val_macro_f1']:.3f}")
    f1 = [f["val_macro_f1"] for f in folds]
    return {"folds": folds, "val_macro_f1_mean": statistics.mean(f1),
            "val_macro_f1_std": statistics.stdev(f1),
            "epochs": {p: max(1, round(statistics.median(f["best_epochs"][p] for f in folds)))
                       for p in chosen}}


def final_config(cfg: TrainConfig, epochs: dict[str, int]) -> TrainConfig:
    """`cfg` with each phase's budget fixed at the chosen epochs (no validation to stop on)."""
    final = copy.deepcopy(cfg)
    for phase, n in epochs.items():
        budget = getattr(final, phase)
        budget.epochs = budget.min_epochs = n
    return final
