"""`catdog predict`: images or folders in, one class and probability per image out."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import keras
import mlflow
import numpy as np
from mlflow.exceptions import MlflowException

from catdog import CatdogError
from catdog.data.images import BadImage, decode, list_images
from catdog.serving import classes
from catdog.tracking import CHAMPION, REGISTERED_MODEL

DEFAULT_MODEL = f"models:/{REGISTERED_MODEL}@{CHAMPION}"


@dataclass(frozen=True)
class Prediction:
    file: str
    label: str
    probability: float
    probabilities: dict[str, float]


def expand(paths) -> tuple[list[Path], list[tuple[str, str]]]:
    """Files given, and the images under folders given; paths that do not exist are refused."""
    files, refused = [], []
    for given in map(Path, paths):
        if given.is_dir():
            files += list_images(given)
        elif given.is_file():
            files.append(given)
        else:
            refused.append((str(given), "no such file or folder"))
    return files, refused


def load(model_uri: str):
    """The Keras model at MODEL_URI and its class names (from the run that trained it)."""
    client = mlflow.MlflowClient()
    try:
        model = mlflow.keras.load_model(model_uri)
        if model_uri.startswith("models:/"):
            name, _, alias = model_uri[len("models:/") :].partition("@")
            run_id = client.get_model_version_by_alias(name, alias).run_id if alias else None
        else:
            run_id = model_uri.split("/")[1] if model_uri.startswith("runs:/") else None
    except (MlflowException, OSError) as exc:
        raise CatdogError(f"no model at {model_uri} ({str(exc).splitlines()[0][:160]})") from exc
    return model, classes.class_names(client.get_run(run_id)) if run_id else list(classes.DEFAULT)


def predict(model, class_names, files: list[Path], batch_size: int = 32):
    """Yield a Prediction, or (file, reason) for a file that is not a usable image."""
    size = model.input_shape[1:3]
    for start in range(0, len(files), batch_size):
        batch, kept = [], []
        for path in files[start : start + batch_size]:
            try:
                batch.append(decode(path, size))
                kept.append(path)
            except (BadImage, OSError) as exc:
                yield (str(path), str(exc))
        if not batch:
            continue
        logits = model.predict(np.stack(batch).astype("float32"), verbose=0)
        probabilities = keras.ops.convert_to_numpy(keras.ops.softmax(logits.astype("float32"), axis=1))
        for path, p in zip(kept, probabilities):
            best = int(p.argmax())
            yield Prediction(str(path), class_names[best], float(p[best]), dict(zip(class_names, map(float, p))))
