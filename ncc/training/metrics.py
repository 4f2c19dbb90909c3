"""Metrics of whole splits, from scikit-learn (no torch)."""

from __future__ import annotations

import numpy as np

__all__ = ["classification_metrics", "binary_metrics"]


def classification_metrics(logits: np.ndarray, targets: np.ndarray, num_classes: int) -> dict[str, float]:
    """Accuracy and macro-averaged F1 of class predictions.

    Args:
        logits: ``float [M, C]``.
        targets: ``int [M]``.
        num_classes: C (classes never seen and never predicted are left out of the F1 average).

    Returns:
        ``{"accuracy": ..., "f1": ...}``; both 0 for no examples.
    """
    from sklearn.metrics import accuracy_score, f1_score

    targets = np.asarray(targets).reshape(-1)
    if len(targets) == 0:
        return {"accuracy": 0.0, "f1": 0.0}
    predictions = np.asarray(logits).argmax(axis=1)
    present = np.union1d(predictions, targets)
    return {"accuracy": float(accuracy_score(targets, predictions)),
            "f1": float(f1_score(targets, predictions, labels=present[present < num_classes], average="macro",
                                 zero_division=0))}


def binary_metrics(logits: np.ndarray, targets: np.ndarray, num_classes: int = 2) -> dict[str, float]:
    """Accuracy, and precision, recall and F1 of the positive class (ProGraML's data-flow metrics).

    Args:
        logits: ``float [M, 2]``.
        targets: ``int [M]`` of 0 / 1.

    Returns:
        ``{"accuracy", "precision", "recall", "f1"}``; all 0 for no examples.
    """
    from sklearn.metrics import accuracy_score, precision_recall_fscore_support

    targets = np.asarray(targets).reshape(-1)
    if len(targets) == 0:
        return {"accuracy": 0.0, "precision": 0.0, "recall": 0.0, "f1": 0.0}
    predictions = np.asarray(logits).argmax(axis=1)
    precision, recall, f1, _ = precision_recall_fscore_support(targets, predictions, labels=[1], average="binary",
                                                               pos_label=1, zero_division=0)
    return {"accuracy": float(accuracy_score(targets, predictions)), "precision": float(precision),
            "recall": float(recall), "f1": float(f1)}
