"""Run every exported model on the same windows and compare it with Keras.

The bundle's files run through `gesturekit.device.core.backends.Classifier`, as `gesturekit run`
runs them: one window per invoke at batch size 1 with the variables reset first (the fused
LSTM keeps its state between invokes; the deployed model sees each window fresh).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from gesturekit.device.core.backends import Classifier
from gesturekit.device.core.bundle import Bundle
from gesturekit.train.metrics import macro_f1


def keras_probabilities(model, x: np.ndarray) -> np.ndarray:
    """(W, K) softmax outputs of a Keras model."""
    return np.asarray(model.predict(x, batch_size=256, verbose=0), dtype=np.float32)


def bundle_probabilities(bundle: Bundle, backend: str, kind: str, x: np.ndarray,
                         xnnpack: bool = True) -> np.ndarray:
    """(W, K) outputs of one of a bundle's model files on normalised windows, through the
    runner's own `Classifier`: the same quantisation, state reset and dequantisation as
    `gesturekit run`, so the parity figures are the deployed path's."""
    classifier = Classifier(bundle, backend, kind, xnnpack=xnnpack)
    probs = np.empty((len(x), len(bundle.labels)), dtype=np.float32)
    for i, window in enumerate(x):
        probs[i] = classifier.run_normalized(window)
    return probs


@dataclass
class Agreement:
    max_abs_diff: float  # largest |p_model - p_keras| over all windows and classes
    argmax_agreement: float  # fraction of windows with the same top class as Keras
    macro_f1: float  # against the true labels
    macro_f1_delta: float  # macro_f1 - Keras macro_f1 (negative = loss)

    def to_dict(self) -> dict:
        return {k: round(v, 8) for k, v in asdict(self).items()}


def compare(reference: np.ndarray, other: np.ndarray, y: np.ndarray, n_classes: int) -> Agreement:
    """How closely `other` follows the Keras `reference` probabilities on labelled windows."""
    ref_f1 = macro_f1(y, reference.argmax(1), n_classes)
    f1 = macro_f1(y, other.argmax(1), n_classes)
    return Agreement(float(np.abs(other - reference).max()) if len(y) else 0.0,
                     float((other.argmax(1) == reference.argmax(1)).mean()) if len(y) else 1.0,
                     f1, f1 - ref_f1)
