"""promote -> predict on real images, and one real request to `mlflow models serve`."""

import json
import os
import sys
import urllib.request
from pathlib import Path

import mlflow
import numpy as np
import pytest
from mlflow.tracking import MlflowClient

from catdog import training
from catdog.cli import main as catdog_main
from catdog.data import load_folder
from helpers import free_port, start_server, stop_server, store_overrides, write_images


@pytest.fixture(scope="module")
def promoted(make_cfg, tmp_path_factory):
    root = tmp_path_factory.mktemp("registry")
    store = [*store_overrides(root), "tracking.experiment=registry"]
    runs = [training.train(make_cfg("transfer", store, f"seed={seed}", "train.epochs=2")) for seed in (0, 1)]
    uri = ["--tracking-uri", f"sqlite:///{root}/mlflow.db"]
    catdog_main([*uri, "promote", "--experiment", "registry"])
    return {"root": root, "runs": runs, "uri": uri}


def test_promote_registers_the_best_by_validation_as_champion(promoted):
    client = MlflowClient()
    version = client.get_model_version_by_alias("catdog-classifier", "champion")
    best = max(promoted["runs"], key=lambda r: r.val_accuracy)
    assert version.run_id == best.run_id and str(version.version) == "1"
    assert version.tags["val_accuracy"] == f"{best.val_accuracy:.4f}"
    assert version.tags["test_accuracy"] == f"{best.test_accuracy:.4f}"
    assert version.tags["data_hash"] == client.get_run(best.run_id).data.params["data_hash"]
    assert len(version.tags["code_version"]) == 40 and "95% Wilson interval" in version.description


def test_predict_classifies_images_and_folders_and_refuses_the_rest(promoted, small_data, tmp_path, capsys):
    odd = write_images(tmp_path / "odd", {"cats": 2}, size=(300, 200))  # another size and source
    (odd / "cats" / "note.jpg").write_text("not an image")
    folder = small_data / "validation"
    with pytest.raises(SystemExit) as exit_info:
        catdog_main([*promoted["uri"], "predict", str(folder), str(odd), str(tmp_path / "missing.png"), "--json"])
    assert exit_info.value.code == 1  # some inputs were refused; the rest were still classified
    out, err = capsys.readouterr()
    rows = [json.loads(line) for line in out.splitlines()]
    assert len(rows) == len(load_folder(folder, (160, 160), ["cats", "dogs"])) + 2
    for row in rows:
        assert row["class"] in ("cats", "dogs") and set(row["probabilities"]) == {"cats", "dogs"}
        assert sum(row["probabilities"].values()) == pytest.approx(1.0, abs=1e-5)
        assert row["probability"] == max(row["probabilities"].values())
    assert len(err.splitlines()) == 2
    assert f"{tmp_path / 'missing.png'}: no such file or folder" in err and "note.jpg: not used" in err


def test_the_champion_serves_with_mlflow_models_serve(promoted, small_data):
    port = free_port()
    bin_dir = Path(sys.executable).parent  # the server execs uvicorn from the environment's PATH
    env = {
        **os.environ,
        "MLFLOW_TRACKING_URI": f"sqlite:///{promoted['root']}/mlflow.db",
        "TF_CPP_MIN_LOG_LEVEL": "2",
        "PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}",
    }
    command = [
        str(Path(sys.executable).parent / "mlflow"),
        "models",
        "serve",
        "-m",
        "models:/catdog-classifier@champion",
        "--env-manager",
        "local",
        "-h",
        "127.0.0.1",
        "-p",
        str(port),
    ]
    proc = start_server(command, f"http://127.0.0.1:{port}/ping", env)
    try:
        images = load_folder(small_data / "validation", (160, 160), ["cats", "dogs"]).images[:3].astype("float32")
        request = urllib.request.Request(
            f"http://127.0.0.1:{port}/invocations",
            data=json.dumps({"inputs": images.tolist()}).encode(),
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=60) as response:
            logits = np.asarray(json.loads(response.read())["predictions"])
        expected = mlflow.keras.load_model("models:/catdog-classifier@champion").predict(images, verbose=0)
        assert logits.shape == (3, 2) and np.allclose(logits, expected, atol=1e-4)
    finally:
        stop_server(proc)
