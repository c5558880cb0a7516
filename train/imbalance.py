"""Class imbalance: class-weight modes, the loss, and seeded thinning of rare classes."""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from gesturekit.errors import UserError
from gesturekit.train.datasets import Dataset

WEIGHT_MODES = ("none", "inverse", "sqrt", "cbrt", "effective")
LOSSES = ("crossentropy", "focal")


def check_weight_mode(mode: str, where: str = "--weights") -> None:
    if mode not in WEIGHT_MODES:
        raise UserError(f"{where}: unknown class-weight mode {mode!r}; expected one of "
                        f"{', '.join(WEIGHT_MODES)}")


def class_weights(counts: np.ndarray, mode: str, beta: float = 0.999) -> np.ndarray:
    """Per-class weights from training-window counts (K,), scaled to a mean sample weight of 1.

    inverse: 1/n; sqrt and cbrt: the softened 1/n**(1/2), 1/n**(1/3); effective: the
    class-balanced (1 - beta) / (1 - beta**n) of Cui et al. 2019. Absent classes get 0.
    """
    check_weight_mode(mode)
    counts = np.asarray(counts, dtype=np.float64)
    present = counts > 0
    raw = np.zeros_like(counts)
    n = counts[present]
    if mode == "none":
        raw[present] = 1.0
    elif mode == "inverse":
        raw[present] = 1.0 / n
    elif mode == "sqrt":
        raw[present] = n ** -0.5
    elif mode == "cbrt":
        raw[present] = n ** (-1.0 / 3.0)
    else:
        if not 0.0 < beta < 1.0:
            raise UserError(f"effective class weights need 0 < beta < 1, got {beta}")
        raw[present] = (1.0 - beta) / (1.0 - beta ** n)
    return raw * counts.sum() / (raw * counts).sum()


def make_loss(keras, loss: str, gamma: float):
    """Cross-entropy or focal loss (Lin et al. 2017) on one-hot targets; both are Keras built-ins,
    so saved models load without custom objects."""
    if loss == "crossentropy":
        return keras.losses.CategoricalCrossentropy()
    if loss == "focal":
        # alpha=1: class balance comes from the class weights, not a constant factor.
        return keras.losses.CategoricalFocalCrossentropy(alpha=1.0, gamma=gamma)
    raise UserError(f"--loss: unknown loss {loss!r}; expected one of {', '.join(LOSSES)}")


def imbalance_ratio(dataset: Dataset, subjects: list[str]) -> float:
    """Largest / smallest labelled-sample count over the given subjects' present classes."""
    counts = np.zeros(len(dataset.labels), dtype=np.int64)
    for s in dataset.sessions:
        if s.subject in subjects:
            ids = s.label_ids[s.label_ids >= 0]
            counts += np.bincount(ids, minlength=len(dataset.labels))
    present = counts[counts > 0]
    return float(present.max() / present.min()) if len(present) else 0.0


def thin_segments(dataset: Dataset, classes: list[str], subjects: list[str], keep: float,
                  seed: int) -> Dataset:
    """A copy in which only a seeded `keep` fraction of the segments of `classes` in the given
    subjects' sessions stay labelled (the others become unlabelled, so no window uses them)."""
    unknown = [c for c in classes if c not in dataset.labels]
    if unknown:
        raise UserError(f"thin classes {', '.join(unknown)} are not in the dataset "
                        f"({', '.join(dataset.labels)})")
    rng = np.random.default_rng(seed)
    targets = {dataset.labels.index(c) for c in classes}
    wanted = set(subjects)
    sessions = []
    for s in dataset.sessions:
        ids = s.label_ids
        if s.subject in wanted:
            ids = ids.copy()
            starts = np.flatnonzero(np.diff(ids.astype(np.int64), prepend=-2) != 0)
            ends = np.append(starts[1:], len(ids))
            for a, b in zip(starts, ends, strict=True):
                if ids[a] in targets and rng.random() >= keep:
                    ids[a:b] = -1
        sessions.append(replace(s, label_ids=ids))
    return replace(dataset, sessions=sessions)


def thin_to_ratio(dataset: Dataset, classes: list[str], subjects: list[str], min_ratio: float,
                  seed: int) -> tuple[Dataset, float]:
    """Thin `classes` in `subjects` with the largest keep fraction (steps of 0.05) that makes
    largest/smallest class >= `min_ratio` there. Returns the thinned copy and the fraction."""
    for keep in np.arange(1.0, 0.0, -0.05):
        thinned = thin_segments(dataset, classes, subjects, float(keep), seed)
        if imbalance_ratio(thinned, subjects) >= min_ratio:
            return thinned, round(float(keep), 2)
    raise UserError(f"cannot reach a class ratio of {min_ratio} by thinning {', '.join(classes)}")


def thin_fit_subjects(dataset: Dataset, thin: dict, fit_subjects: list[str],
                      seed: int) -> tuple[Dataset, dict]:
    """The seeded extreme-imbalance thinning of the fitting subjects (never the test subjects),
    and what it did. `trainer.prepare_dataset` and `runs.run_windows` (with a run's saved split
    and seed) call it, so export and evaluation cut exactly the windows training saw."""
    before = imbalance_ratio(dataset, fit_subjects)
    dataset, keep = thin_to_ratio(dataset, thin["classes"], fit_subjects, thin["min_ratio"], seed)
    return dataset, {"keep_fraction": keep, "ratio_before": before,
                     "ratio_after": imbalance_ratio(dataset, fit_subjects)}
