"""`catdog evaluate`: a logged run's model scored on any labelled folder (FOLDER/<class>/*),
the score logged back to that run."""

from __future__ import annotations

import re
from pathlib import Path

import mlflow

from catdog.data import load_folder
from catdog.serving.predict import load
from catdog.training.evaluation import evaluate_split


def evaluate_run(run_id: str, folder, batch_size: int = 32) -> dict:
    """Score run RUN_ID's logged model on FOLDER/<class>/* and log the result to that run."""
    model, class_names = load(f"runs:/{run_id}/model")
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
    client = mlflow.MlflowClient()
    client.log_metric(run_id, f"eval_{slug}_accuracy", scores["accuracy"])
    client.log_dict(run_id, result, f"evaluations/{slug}.json")
    return result
