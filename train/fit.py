"""One training phase: epochs of `model.fit`, early stopping and checkpointing on validation
macro-F1 after a minimum number of epochs, the best weights restored at the end."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from gesturekit.train.augment import AugmentConfig, augment
from gesturekit.train.metrics import macro_f1


@dataclass
class Arrays:
    """Raw-unit windows and class ids of one split subset."""

    x: np.ndarray  # (W, T, C) float32, raw units
    y: np.ndarray  # (W,) int64


@dataclass
class PhaseBudget:
    epochs: int  # at most
    min_epochs: int  # no early stop before this many
    patience: int  # epochs without a better validation macro-F1 before stopping
    batch_size: int
    learning_rate: float


def fit_phase(model, name: str, train: Arrays, val: Arrays, normalize: Callable, n_classes: int,
              budget: PhaseBudget, class_weight: np.ndarray, seed: int,
              aug: AugmentConfig | None = None, aug_context: tuple = (),
              progress: Callable[[str], None] = print) -> dict:
    """Train a compiled `model`; returns the history and the best epoch.

    `normalize` maps raw windows to model input; augmentation (if any) is applied to raw
    windows with a generator seeded per epoch, so runs repeat exactly.
    """
    x_val = normalize(val.x)
    x_train = normalize(train.x)
    onehot = np.eye(n_classes, dtype=np.float32)[train.y]  # (W, K)
    weights = {i: float(w) for i, w in enumerate(class_weight)}
    history: dict[str, list[float]] = {"loss": [], "train_accuracy": [], "val_macro_f1": [],
                                       "val_accuracy": [], "seconds": []}
    best_f1, best_epoch, best_weights = -1.0, 0, model.get_weights()
    for epoch in range(1, budget.epochs + 1):
        start = time.perf_counter()
        x_epoch = x_train
        if aug is not None and aug.enabled:
            rng = np.random.default_rng([seed, epoch])
            x_epoch = normalize(augment(train.x, aug, rng, *aug_context))
        fit = model.fit(x_epoch, onehot, batch_size=budget.batch_size, epochs=1, verbose=0,
                        class_weight=weights, shuffle=True)
        pred = model.predict(x_val, batch_size=512, verbose=0).argmax(axis=1)
        f1 = macro_f1(val.y, pred, n_classes)
        history["loss"].append(float(fit.history["loss"][0]))
        history["train_accuracy"].append(float(fit.history.get("accuracy", [np.nan])[0]))
        history["val_macro_f1"].append(f1)
        history["val_accuracy"].append(float((pred == val.y).mean()))
        history["seconds"].append(time.perf_counter() - start)
        improved = f1 > best_f1
        if improved:
            best_f1, best_epoch, best_weights = f1, epoch, model.get_weights()
        progress(f"  {name} epoch {epoch:3d}/{budget.epochs}  loss {history['loss'][-1]:.4f}  "
                 f"val macro-F1 {f1:.3f}{' *' if improved else ''}  "
                 f"({history['seconds'][-1]:.1f} s)")
        if epoch >= budget.min_epochs and epoch - best_epoch >= budget.patience:
            break
    model.set_weights(best_weights)
    return {"history": history, "best_epoch": best_epoch, "best_val_macro_f1": best_f1,
            "epochs": len(history["loss"])}
