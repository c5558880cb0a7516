"""The training phases: sandbox (phase 1), CNN head (phase 2), frozen-CNN LSTM (phase 3),
and the single-phase `direct` baseline. Each builds, compiles and fits Keras 3 models."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from gesturekit.errors import SandboxGateFailed
from gesturekit.train.config import SandboxConfig, TrainConfig
from gesturekit.train.datasets import balanced_subset
from gesturekit.train.fit import Arrays, PhaseBudget, fit_phase
from gesturekit.train.imbalance import class_weights, make_loss
from gesturekit.train.metrics import scores
from gesturekit.train.model import build_cnn_head, build_cnn_lstm, copy_weights_by_name, feature_layers


@dataclass
class Context:
    """What every phase needs: data, shapes, preprocessing, the distribution scope, output."""

    keras: object
    cfg: TrainConfig
    train: Arrays
    val: Arrays
    labels: list[str]
    normalize: Callable[[np.ndarray], np.ndarray]
    scope: Callable  # () -> context manager for building and compiling models
    aug_context: tuple  # (triads, channel_std) for augmentation
    progress: Callable[[str], None]
    watch: Arrays | None = None  # test windows scored every epoch with `trace_test`, never chosen by

    @property
    def shape(self) -> tuple[int, int, int]:
        return self.train.x.shape[1], self.train.x.shape[2], len(self.labels)


def _compile(ctx: Context, model, learning_rate: float) -> None:
    k = ctx.keras
    model.compile(optimizer=k.optimizers.Adam(learning_rate),
                  loss=make_loss(k, ctx.cfg.loss, ctx.cfg.gamma), metrics=["accuracy"])


def _weights(ctx: Context, mode: str) -> np.ndarray:
    counts = np.bincount(ctx.train.y, minlength=len(ctx.labels))
    return class_weights(counts, mode, ctx.cfg.beta)


def _fit(ctx: Context, model, name: str, budget: PhaseBudget, mode: str) -> dict:
    weights = _weights(ctx, mode)
    ctx.progress(f"{name}: {len(ctx.train.y)} training windows, class weights {mode} "
                 f"({weights.min():.2f} to {weights.max():.2f}), loss {ctx.cfg.loss}")
    result = fit_phase(model, name, ctx.train, ctx.val, ctx.normalize, len(ctx.labels), budget,
                       weights, ctx.cfg.seed, ctx.cfg.augment, ctx.aug_context, ctx.progress,
                       ctx.watch)
    result["class_weights"] = weights.tolist()
    result["weight_mode"] = mode
    return result


def sandbox(ctx: Context) -> dict:
    """Phase 1: can the CNN-LSTM learn a small balanced subset at all (no class weights)?

    Raises SandboxGateFailed, with a diagnosis, when it cannot fit the subset or does not beat
    chance on balanced validation windows of unseen subjects.
    """
    sc: SandboxConfig = ctx.cfg.sandbox_phase
    window, channels, k = ctx.shape
    train_idx = balanced_subset(ctx.train.y, sc.windows_per_class, ctx.cfg.seed)
    val_idx = balanced_subset(ctx.val.y, sc.windows_per_class, ctx.cfg.seed + 1)
    x, y = ctx.normalize(ctx.train.x[train_idx]), ctx.train.y[train_idx]
    with ctx.scope():
        model = build_cnn_lstm(ctx.keras, ctx.cfg.model, window, channels, k)
        model.compile(optimizer=ctx.keras.optimizers.Adam(sc.learning_rate),
                      loss="categorical_crossentropy", metrics=["accuracy"])
    fit = model.fit(x, np.eye(k, dtype=np.float32)[y], batch_size=sc.batch_size, epochs=sc.epochs,
                    shuffle=True, verbose=0)
    train_acc = float((model.predict(x, verbose=0).argmax(1) == y).mean())
    val_scores = scores(ctx.val.y[val_idx],
                        model.predict(ctx.normalize(ctx.val.x[val_idx]), verbose=0).argmax(1),
                        ctx.labels)
    chance = 1.0 / len(np.unique(y))
    min_val = sc.min_val_balanced_accuracy_x_chance * chance
    val_bal = val_scores["balanced_accuracy"]
    result = {
        "passed": bool(train_acc >= sc.min_train_accuracy and val_bal >= min_val),
        "train_windows": len(train_idx), "val_windows": len(val_idx),
        "train_accuracy": train_acc, "val_balanced_accuracy": val_bal,
        "thresholds": {"train_accuracy": sc.min_train_accuracy, "val_balanced_accuracy": min_val},
        "history": {"loss": [float(v) for v in fit.history["loss"]]},
    }
    ctx.progress(f"sandbox: {len(train_idx)} balanced windows, {sc.epochs} epochs: training "
                 f"accuracy {train_acc:.2f} (need {sc.min_train_accuracy:.2f}), validation "
                 f"balanced accuracy {val_bal:.2f} (need {min_val:.2f}, chance {chance:.2f})")
    if not result["passed"]:
        if train_acc < sc.min_train_accuracy:
            why = (f"the model reached only {train_acc:.2f} training accuracy on "
                   f"{len(train_idx)} balanced windows (need {sc.min_train_accuracy:.2f}): check "
                   "that labels match the signals, that channels are normalised (no constant or "
                   "huge channels), that the window covers a whole gesture, and the learning rate")
        else:
            why = (f"the model fits the subset ({train_acc:.2f}) but validation balanced accuracy "
                   f"is {val_bal:.2f}, need {min_val:.2f} (chance {chance:.2f}): check label "
                   "consistency across subjects, the window length and the sample rate")
        raise SandboxGateFailed(f"sandbox gate failed: {why}; --skip-sandbox overrides")
    return result


def train_cnn_head(ctx: Context):
    """Phase 2: CNN -> pool -> dense on the full training split with `cnn_weights`."""
    window, channels, k = ctx.shape
    with ctx.scope():
        head = build_cnn_head(ctx.keras, ctx.cfg.model, window, channels, k)
        _compile(ctx, head, ctx.cfg.cnn.learning_rate)
    return head, _fit(ctx, head, "cnn", ctx.cfg.cnn, ctx.cfg.cnn_weights)


def train_lstm(ctx: Context, head):
    """Phase 3: the CNN-LSTM with the head's CNN weights frozen; LSTM + dense with
    `lstm_weights`. Compiled after freezing, so the frozen layers really stay still."""
    window, channels, k = ctx.shape
    with ctx.scope():
        model = build_cnn_lstm(ctx.keras, ctx.cfg.model, window, channels, k)
        copy_weights_by_name(head, model)
        for layer in feature_layers(model):
            layer.trainable = False
        _compile(ctx, model, ctx.cfg.lstm.learning_rate)
    result = _fit(ctx, model, "lstm", ctx.cfg.lstm, ctx.cfg.lstm_weights)
    for layer in feature_layers(model):
        layer.trainable = True  # the saved model is an ordinary, fully trainable CNN-LSTM
    return model, result


def train_direct(ctx: Context):
    """The baseline: the whole CNN-LSTM from scratch with `direct_weights`."""
    window, channels, k = ctx.shape
    with ctx.scope():
        model = build_cnn_lstm(ctx.keras, ctx.cfg.model, window, channels, k)
        _compile(ctx, model, ctx.cfg.direct.learning_rate)
    return model, _fit(ctx, model, "direct", ctx.cfg.direct, ctx.cfg.direct_weights)
