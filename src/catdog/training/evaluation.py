"""Scoring a model on inputs in memory, image by image, and what a run logs of it."""

from __future__ import annotations

import keras
import numpy as np

from catdog.data import Split, batches


def evaluate(model: keras.Model, inputs: np.ndarray, labels: np.ndarray, batch_size: int = 32) -> dict:
    """Accuracy, loss, confusion counts and per-image class probabilities from one pass of
    MODEL over INPUTS (images, or the cached features a head was fitted on)."""
    logits = model.predict(batches(inputs, labels, batch_size), verbose=0).astype("float32")
    predicted = logits.argmax(axis=1)
    n_classes = logits.shape[1]
    # Per image: log loss is additive over images, so a loss difference gets an interval too.
    losses = keras.ops.convert_to_numpy(keras.losses.sparse_categorical_crossentropy(labels, logits, from_logits=True))
    matrix = np.zeros((n_classes, n_classes), dtype=int)
    np.add.at(matrix, (labels, predicted), 1)
    return {
        "accuracy": float((predicted == labels).mean()),
        "loss": float(losses.mean()),
        "losses": losses,
        "confusion": matrix,
        "predicted": predicted,
        "probabilities": keras.ops.convert_to_numpy(keras.ops.softmax(logits, axis=1)),
    }


def evaluate_split(model: keras.Model, split: Split, batch_size: int = 32) -> dict:
    """`evaluate` on a split's images."""
    return evaluate(model, split.images, split.labels, batch_size)


def predictions_table(split: Split, scores: dict, class_names) -> dict[str, list]:
    """One row per image: file, true and predicted class, probability of each class."""
    table = {
        "image": [str(i) for i in split.ids] if split.ids is not None else list(range(len(split))),
        "label": [class_names[i] for i in split.labels],
        "predicted": [class_names[i] for i in scores["predicted"]],
        "correct": (scores["predicted"] == split.labels).tolist(),
    }
    for i, name in enumerate(class_names):
        table[f"p_{name}"] = [round(float(p), 6) for p in scores["probabilities"][:, i]]
    table["loss"] = [float(f"{loss:.6g}") for loss in scores["losses"]]
    return table


def thumbnails(split: Split, rows, size: int = 96) -> np.ndarray:
    """Small uint8 copies of some images, for galleries that must not need the data."""
    if len(rows) == 0:
        return np.zeros((0, size, size, 3), np.uint8)
    resized = keras.ops.image.resize(split.images[rows].astype("float32"), (size, size), antialias=True)
    return np.clip(np.rint(keras.ops.convert_to_numpy(resized)), 0, 255).astype(np.uint8)
