"""The private Keras and Keras Tuner internals the project uses (catdog.private_api) still
exist and mean what it expects: an upgrade that changes them fails here, by name."""

import os
import subprocess
import sys
from concurrent import futures

import grpc
import keras
import pytest

from catdog import private_api

pytestmark = pytest.mark.unit


def _explain(what: str):
    return f"{what} changed in keras {keras.__version__}: update catdog/private_api.py (and backbone_cut.py)"


def test_keras_functional_graph_internals():
    inputs = keras.Input((4,))
    hidden = keras.layers.Dense(3, name="hidden")(inputs)
    outputs = keras.layers.Add(name="sum")([hidden, keras.layers.Dense(3, name="side")(inputs)])
    model = keras.Model(inputs, outputs)
    try:
        node = private_api.first_call(model.get_layer("sum"))
        tensors = private_api.call_inputs(model.get_layer("sum"))
        names = [private_api.producer(t) for t in tensors]
        args, _ = node.arguments.fill_in({id(t): t for t in tensors})
    except (AttributeError, IndexError, TypeError) as exc:
        pytest.fail(f"{_explain('the layer node API')}: {exc!r}")
    assert names == ["hidden", "side"] and len(args[0]) == 2
    assert node.outputs[0] is outputs, _explain("Node.outputs")


def test_keras_tuner_distributed_internals(monkeypatch):
    import keras_tuner

    for var in ("KERASTUNER_TUNER_ID", "KERASTUNER_ORACLE_IP", "KERASTUNER_ORACLE_PORT"):
        monkeypatch.delenv(var, raising=False)
    try:
        assert private_api.tuner_role() is None
        monkeypatch.setenv("KERASTUNER_TUNER_ID", "chief")
        monkeypatch.setenv("KERASTUNER_ORACLE_IP", "127.0.0.1")
        monkeypatch.setenv("KERASTUNER_ORACLE_PORT", "8000")
        assert private_api.tuner_role() == "chief"
        oracle = keras_tuner.oracles.RandomSearchOracle(objective="val_accuracy", max_trials=1)
        server = grpc.server(futures.ThreadPoolExecutor(max_workers=1))
        servicer = private_api.serve_oracle_with_grpc(oracle, server)
    except (ImportError, AttributeError) as exc:
        pytest.fail(f"Keras Tuner {keras_tuner.__version__}'s distributed internals changed: {exc!r}")
    assert servicer.stop_triggered is False


@pytest.mark.parametrize("setting, expected", [(None, ["1", "on"]), ("0", ["0", "off"])])
def test_onednn_is_on_unless_the_user_said_otherwise(setting, expected):
    """Importing catdog before TensorFlow turns its oneDNN kernels on (TensorFlow leaves them
    off on AVX2-only CPUs); a value the user set, 0 included, stands; and what a run records
    is TensorFlow's own answer."""
    env = {k: v for k, v in os.environ.items() if k != "TF_ENABLE_ONEDNN_OPTS"}
    if setting is not None:
        env["TF_ENABLE_ONEDNN_OPTS"] = setting
    code = (
        "import os, catdog, tensorflow; from catdog.tracking.environment import onednn; "
        "print(os.environ['TF_ENABLE_ONEDNN_OPTS'], onednn())"
    )
    try:
        out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    except subprocess.CalledProcessError as exc:
        pytest.fail(f"TensorFlow's oneDNN switch changed: update catdog/private_api.py ({exc.stderr[-300:]})")
    assert out.stdout.split()[-2:] == expected


def test_keras_tuner_oracle_internals():
    """An oracle proposes from `oracle.trials` (the intensifying search shows it one trial
    per setting there), and the Bayesian one fits `gpr` with `alpha` as its noise."""
    import keras_tuner
    import numpy as np

    hp = keras_tuner.HyperParameters()
    hp.Float("x", 0.0, 1.0)
    oracle = keras_tuner.oracles.BayesianOptimizationOracle(
        objective="val_accuracy", max_trials=10, num_initial_points=1, hyperparameters=hp, seed=1
    )
    done = keras_tuner.engine.trial.Trial(hp.copy(), trial_id="a", status="COMPLETED")
    done.score = 0.9
    try:
        with private_api.trials_seen(oracle, {"a": done}):
            assert oracle.trials == {"a": done}
            with private_api.gp_noise(oracle, np.array([0.5])):
                assert list(oracle.gpr.alpha) == [0.5]
                proposed = oracle.populate_space("b")
        assert oracle.trials == {} and oracle.gpr.alpha == oracle.alpha
    except AttributeError as exc:
        pytest.fail(f"Keras Tuner {keras_tuner.__version__}'s oracle internals changed: {exc!r}")
    assert proposed["status"] == "RUNNING" and 0.0 <= proposed["values"]["x"] <= 1.0
