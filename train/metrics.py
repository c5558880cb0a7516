"""Classification metrics from integer labels (numpy only), and collapse detection."""

from __future__ import annotations

import numpy as np

COLLAPSE_SHARE = 0.95  # one class predicted for more than this share of windows = collapse


def confusion_matrix(y_true: np.ndarray, y_pred: np.ndarray, n_classes: int) -> np.ndarray:
    """(K, K) counts, rows = true class, columns = predicted class."""
    matrix = np.zeros((n_classes, n_classes), dtype=np.int64)
    np.add.at(matrix, (np.asarray(y_true, np.int64), np.asarray(y_pred, np.int64)), 1)
    return matrix


def scores(y_true: np.ndarray, y_pred: np.ndarray, labels: list[str]) -> dict:
    """Macro-F1, balanced accuracy, accuracy, per-class P/R/F1/support, confusion, collapse.

    Macro averages run over the classes present in `y_true` (a class with no windows has no
    recall to average); a present class that is never predicted scores 0 and counts as
    collapsed.
    """
    k = len(labels)
    matrix = confusion_matrix(y_true, y_pred, k)
    support = matrix.sum(axis=1)
    predicted = matrix.sum(axis=0)
    tp = np.diag(matrix).astype(np.float64)
    precision = np.divide(tp, predicted, out=np.zeros(k), where=predicted > 0)
    recall = np.divide(tp, support, out=np.zeros(k), where=support > 0)
    f1 = np.divide(2 * precision * recall, precision + recall, out=np.zeros(k),
                   where=precision + recall > 0)
    present = support > 0
    total = int(support.sum())
    top_share = float(predicted.max() / total) if total else 0.0
    return {
        "macro_f1": float(f1[present].mean()) if present.any() else 0.0,
        "balanced_accuracy": float(recall[present].mean()) if present.any() else 0.0,
        "accuracy": float(tp.sum() / total) if total else 0.0,
        "per_class": {
            name: {"precision": float(precision[i]), "recall": float(recall[i]),
                   "f1": float(f1[i]), "support": int(support[i])}
            for i, name in enumerate(labels)
        },
        "confusion": matrix.tolist(),
        "labels": list(labels),
        "collapsed_classes": [labels[i] for i in range(k) if present[i] and recall[i] == 0],
        "dominant_prediction": {"label": labels[int(predicted.argmax())], "share": top_share},
        "collapsed": bool(top_share > COLLAPSE_SHARE),
        "windows": total,
    }


def macro_f1(y_true: np.ndarray, y_pred: np.ndarray, n_classes: int) -> float:
    """Macro-F1 over the classes present in `y_true` (the early-stopping criterion)."""
    matrix = confusion_matrix(y_true, y_pred, n_classes)
    support, predicted, tp = matrix.sum(axis=1), matrix.sum(axis=0), np.diag(matrix)
    denom = support + predicted
    f1 = np.divide(2 * tp, denom, out=np.zeros(n_classes), where=denom > 0)
    return float(f1[support > 0].mean())
