"""One training phase: epochs of `model.fit`; the last epoch's weights kept, or (`keep="best"`)
early stopping and checkpointing on validation macro-F1 after a minimum number of epochs."""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from gesturekit.options import AT_LEAST_ONE, NON_NEGATIVE, POSITIVE, in_range
from gesturekit.train.augment import AugmentConfig, augment
from gesturekit.train.metrics import macro_f1


@dataclass
class Arrays:
    """Raw-unit windows and class ids of one split subset."""

    x: np.ndarray  # (W, T, C) float32, raw units
    y: np.ndarray  # (W,) int64
    subjects: np.ndarray | None = None  # (W,) str, whose window it is
    sessions: np.ndarray | None = None  # (W,) str, the session it was cut from


KEEP = ("last", "best")
SCHEDULES = ("constant", "cosine")


@dataclass
class PhaseBudget:
    epochs: int = field(metadata=in_range(AT_LEAST_ONE))  # at most
    min_epochs: int = field(metadata=in_range(NON_NEGATIVE))  # no early stop before this many
    # epochs without a better validation macro-F1 before stopping
    patience: int = field(metadata=in_range(AT_LEAST_ONE))
    batch_size: int = field(metadata=in_range(AT_LEAST_ONE))
    learning_rate: float = field(metadata=in_range(POSITIVE))
    # "last": every epoch runs and the last one's weights are kept (validation is reported, and
    # its best epoch is what --folds goes by); "best": stop `patience` epochs after the best
    # validation macro-F1 (not before `min_epochs`) and keep that epoch's weights.
    keep: str = "best"
    # "cosine": the learning rate falls from `learning_rate` to 0 over `epochs` (half a cosine);
    # "constant": it stays. Not the default: on HAPT no better than constant (docs/generalization.md)
    schedule: str = "constant"


def mixup(x: np.ndarray, targets: np.ndarray, weights: np.ndarray, alpha: float,
          rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Mixup (Zhang et al. 2018): each window blended with a random partner, lambda ~
    Beta(alpha, alpha) kept >= 0.5 so the window stays mostly itself; targets and sample weights
    blend alike. Inputs are normalised windows (W, T, C), targets (W, K), weights (W,)."""
    lam = rng.beta(alpha, alpha, len(x)).astype(np.float32)
    lam = np.maximum(lam, 1 - lam)
    partner = rng.permutation(len(x))
    mix = lam[:, None, None]
    return (mix * x + (1 - mix) * x[partner],
            lam[:, None] * targets + (1 - lam[:, None]) * targets[partner],
            lam * weights + (1 - lam) * weights[partner])


def fit_phase(model, name: str, train: Arrays, val: Arrays | None, normalize: Callable, n_classes: int,
              budget: PhaseBudget, class_weight: np.ndarray, seed: int,
              aug: AugmentConfig | None = None, aug_context: tuple = (),
              progress: Callable[[str], None] = print, watch: Arrays | None = None) -> dict:
    """Train a compiled `model`; returns the history, the best validation epoch and the epoch
    whose weights the model keeps.

    `normalize` maps raw windows to model input; augmentation (if any) is applied to raw
    windows with a generator seeded per epoch, so runs repeat exactly. Without `val` every
    epoch of the budget runs and the last one's weights are kept.
    """
    x_val = normalize(val.x) if val is not None else None
    x_train = normalize(train.x)
    targets = np.eye(n_classes, dtype=np.float32)[train.y]  # (W, K)
    sample_weight = np.asarray(class_weight, np.float32)[train.y]  # (W,)
    history: dict[str, list[float]] = {"loss": [], "train_accuracy": [], "val_macro_f1": [],
                                       "val_accuracy": [], "val_loss": [], "seconds": []}
    if watch is not None:
        history["test_macro_f1"] = []
    best_f1, best_epoch, best_weights = -1.0, 0, None
    for epoch in range(1, budget.epochs + 1):
        start = time.perf_counter()
        if budget.schedule == "cosine":
            model.optimizer.learning_rate.assign(
                budget.learning_rate * 0.5 * (1 + math.cos(math.pi * (epoch - 1) / budget.epochs)))
        x_epoch, y_epoch, w_epoch = _epoch_inputs(x_train, targets, sample_weight, train, normalize,
                                                  aug, aug_context, np.random.default_rng([seed, epoch]))
        fit = model.fit(x_epoch, y_epoch, batch_size=budget.batch_size, epochs=1, verbose=0,
                        sample_weight=w_epoch, shuffle=True)
        if x_val is not None:
            f1, accuracy, loss = _scores(model, x_val, val.y, n_classes)
        else:  # no validation subjects (the final fit after cross-validation): the last epoch
            f1, accuracy, loss = float(epoch), float("nan"), float("nan")
        if watch is not None:
            history["test_macro_f1"].append(_scores(model, normalize(watch.x), watch.y, n_classes)[0])
        history["loss"].append(float(fit.history["loss"][0]))
        history["train_accuracy"].append(float(fit.history.get("accuracy", [np.nan])[0]))
        history["val_macro_f1"].append(f1 if x_val is not None else float("nan"))
        history["val_accuracy"].append(accuracy)
        history["val_loss"].append(loss)
        history["seconds"].append(time.perf_counter() - start)
        improved = f1 > best_f1
        if improved:
            best_f1, best_epoch = f1, epoch
            best_weights = model.get_weights() if budget.keep == "best" else None
        progress(f"  {name} epoch {epoch:3d}/{budget.epochs}  loss {history['loss'][-1]:.4f}  "
                 + (f"val macro-F1 {f1:.3f}{' *' if improved else ''}  " if x_val is not None else "")
                 + f"({history['seconds'][-1]:.1f} s)")
        if (budget.keep == "best" and epoch >= budget.min_epochs
                and epoch - best_epoch >= budget.patience):
            break
    if budget.keep == "best":
        model.set_weights(best_weights)
    return {"history": history, "best_epoch": best_epoch,
            "best_val_macro_f1": best_f1 if x_val is not None else None,
            "epochs": len(history["loss"]), "keep": budget.keep,
            "kept_epoch": best_epoch if budget.keep == "best" else len(history["loss"])}


def _epoch_inputs(x: np.ndarray, targets: np.ndarray, weights: np.ndarray, train: Arrays,
                  normalize: Callable, aug: AugmentConfig | None, aug_context: tuple,
                  rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One epoch's (windows, targets, sample weights): the raw windows augmented and mixed up
    when `aug` asks, with this epoch's generator."""
    if aug is not None and aug.enabled:
        x = normalize(augment(train.x, aug, rng, *aug_context))
    if aug is not None and aug.mixup_alpha > 0:
        x, targets, weights = mixup(x, targets, weights, aug.mixup_alpha, rng)
    return x, targets, weights


def _scores(model, x: np.ndarray, y: np.ndarray, n_classes: int) -> tuple[float, float, float]:
    """Macro-F1, accuracy and mean cross-entropy of the model on normalised windows `x`."""
    prob = model.predict(x, batch_size=512, verbose=0)  # (W, K)
    pred = prob.argmax(axis=1)
    loss = float(-np.log(np.maximum(prob[np.arange(len(y)), y], 1e-7)).mean())
    return macro_f1(y, pred, n_classes), float((pred == y).mean()), loss
