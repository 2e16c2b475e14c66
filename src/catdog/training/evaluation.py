"""Scoring models: on a split in memory, or a logged run's model on any labeled folder."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import keras
import mlflow
import numpy as np
from mlflow.exceptions import MlflowException

from catdog import CatdogError
from catdog.data.loading import Split, batches, load_folder


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


def evaluate_run(run_id: str, folder, batch_size: int = 32) -> dict:
    """Score run RUN_ID's logged model on FOLDER/<class>/* and log the result to that run."""
    client = mlflow.MlflowClient()
    try:
        run = client.get_run(run_id)
        model = mlflow.keras.load_model(f"runs:/{run_id}/model")
    except (MlflowException, OSError) as exc:
        raise CatdogError(f"run {run_id}: no logged model ({str(exc).splitlines()[0]})") from exc
    class_names = ast.literal_eval(run.data.params.get("data.class_names", "['cats', 'dogs']"))
    split = load_folder(folder, model.input_shape[1:3], class_names, require_every_class=False)
    scores = evaluate_split(model, split, batch_size)
    matrix = scores["confusion"]
    per_class = {
        name: {
            "n": int(matrix[i].sum()),
            "correct": int(matrix[i, i]),
            "accuracy": float(matrix[i, i] / matrix[i].sum()) if matrix[i].sum() else None,
        }
        for i, name in enumerate(class_names)
    }
    result = {
        "run_id": run_id,
        "folder": str(Path(folder).resolve()),
        "n": len(split),
        "accuracy": scores["accuracy"],
        "loss": scores["loss"],
        "per_class": per_class,
    }
    slug = re.sub(r"[^A-Za-z0-9_-]+", "_", Path(folder).resolve().name)
    client.log_metric(run_id, f"eval_{slug}_accuracy", scores["accuracy"])
    client.log_dict(run_id, result, f"evaluations/{slug}.json")
    return result
