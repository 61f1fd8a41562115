"""Metrics embedded users compare between a float model and its int8 twin."""

from __future__ import annotations

import numpy as np


def _flat_rows(y: np.ndarray) -> np.ndarray:
    """(N, ..., C) -> (M, C) rows of class scores/outputs."""
    y = np.asarray(y, np.float64)
    return y.reshape(-1, y.shape[-1]) if y.ndim > 1 else y.reshape(-1, 1)


def output_agreement(ref: np.ndarray, test: np.ndarray) -> dict:
    """Error metrics between two output arrays of the same shape."""
    a, b = np.asarray(ref, np.float64), np.asarray(test, np.float64)
    err = b - a
    sig = float(np.sum(a * a))
    noise = float(np.sum(err * err))
    na, nb = np.linalg.norm(a), np.linalg.norm(b)
    return {
        "max_abs_error": float(np.max(np.abs(err))) if err.size else 0.0,
        "mean_abs_error": float(np.mean(np.abs(err))) if err.size else 0.0,
        "rmse": float(np.sqrt(np.mean(err * err))) if err.size else 0.0,
        "snr_db": float(10 * np.log10(sig / noise)) if noise > 0 else float("inf"),
        "cosine": float(np.dot(a.ravel(), b.ravel()) / (na * nb)) if na > 0 and nb > 0 else 1.0,
    }


def classification(y_true: np.ndarray, float_out: np.ndarray, int8_out: np.ndarray) -> dict:
    """Accuracy float and int8, the drop, top-1 agreement, per-class changes."""
    labels = np.asarray(y_true).reshape(-1)
    pf = _flat_rows(float_out).argmax(axis=1)
    pq = _flat_rows(int8_out).argmax(axis=1)
    acc_f = float(np.mean(pf == labels))
    acc_q = float(np.mean(pq == labels))
    per_class = {}
    for c in np.unique(labels):
        sel = labels == c
        per_class[int(c)] = {"n": int(sel.sum()), "accuracy_float": float(np.mean(pf[sel] == c)),
                             "accuracy_int8": float(np.mean(pq[sel] == c))}
    return {"accuracy_float": acc_f, "accuracy_int8": acc_q, "accuracy_drop": acc_f - acc_q,
            "top1_agreement": float(np.mean(pf == pq)), "per_class": per_class}


def regression(y_true: np.ndarray, float_out: np.ndarray, int8_out: np.ndarray) -> dict:
    t = np.asarray(y_true, np.float64).reshape(np.asarray(float_out).shape)
    f, q = np.asarray(float_out, np.float64), np.asarray(int8_out, np.float64)
    return {"rmse_float": float(np.sqrt(np.mean((f - t) ** 2))), "rmse_int8": float(np.sqrt(np.mean((q - t) ** 2))),
            "mae_float": float(np.mean(np.abs(f - t))), "mae_int8": float(np.mean(np.abs(q - t)))}
