"""What a run could not send because its tracking server stopped answering for longer than
MLflow's retries: kept on local disk (metrics history, scores, per-image predictions and the
trained model) and put into the run later by `catdog upload FOLDER`, which finishes it."""

from __future__ import annotations

import json
import time
from pathlib import Path

import mlflow
from mlflow.entities import Metric

from catdog.tracking import store


def keep(folder: Path, run_id: str, history: dict, scores: dict, tables: dict[str, dict], model) -> Path:
    """Write the run's results into FOLDER; TABLES: its per-image predictions by split
    ("val", "test"). Returns FOLDER."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "run.json").write_text(
        json.dumps({"run_id": run_id, "tracking_uri": store.redact(mlflow.get_tracking_uri())})
    )
    plain = {k: [float(v) for v in values] for k, values in history.items()}
    (folder / "history.json").write_text(json.dumps(plain))
    (folder / "scores.json").write_text(json.dumps({k: float(v) for k, v in scores.items()}))
    for split, table in tables.items():
        (folder / f"predictions-{split}.json").write_text(json.dumps(table))
    model.save(folder / "model.keras")
    return folder


def upload(folder) -> str:
    """Log what FOLDER keeps into its run (epochs the server already has are not logged
    twice), then end the run FINISHED. Returns the run id."""
    import keras

    folder = Path(folder)
    run_id = json.loads((folder / "run.json").read_text())["run_id"]
    client = mlflow.MlflowClient()
    now = int(time.time() * 1000)
    metrics = []
    for key, values in json.loads((folder / "history.json").read_text()).items():
        logged = {m.step for m in client.get_metric_history(run_id, key)}
        metrics += [Metric(key, value, now, step) for step, value in enumerate(values) if step not in logged]
    metrics += [Metric(k, v, now, 0) for k, v in json.loads((folder / "scores.json").read_text()).items()]
    for start in range(0, len(metrics), 1000):  # MLflow's limit per batch
        client.log_batch(run_id, metrics=metrics[start : start + 1000])
    with mlflow.start_run(run_id=run_id):
        for path in sorted(folder.glob("predictions-*.json")):
            split = path.stem.split("-", 1)[1]
            mlflow.log_table(json.loads(path.read_text()), f"predictions/{split}.json")
        model = keras.models.load_model(folder / "model.keras")
        mlflow.keras.log_model(model, name="model", pip_requirements=store.model_requirements())
    return run_id
