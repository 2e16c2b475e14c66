"""The private Keras and Keras Tuner internals this project needs, in one place. Each is
checked by tests/test_private_api.py, which names what an upgrade broke.

- Keras' functional graph (a layer's first call inside a model, the layer that made a
  tensor): `backbone_cut` rebuilds the top of MobileNetV2 from a layer index up.
- Keras Tuner's distributed mode (roles from its environment variables, the chief's gRPC
  servicer): `tuning.distributed` serves the oracle itself to notice lost workers.
- Keras Tuner's oracles: the trials an oracle proposes from (`oracle.trials`), and the
  Bayesian oracle's Gaussian process noise (`gpr.alpha`): `tuning.oracle` shows an
  intensifying search's settings to the proposing oracle, each with its own noise.
- TensorFlow's own answer to whether its oneDNN kernels are on (`tracking.environment`)."""

from __future__ import annotations

import contextlib


def first_call(layer):
    """The node of LAYER's first call: inside the model it was built in."""
    return layer._inbound_nodes[0]


def call_inputs(layer) -> list:
    """The tensors LAYER's first call took."""
    return first_call(layer).input_tensors


def producer(tensor) -> str:
    """The name of the layer whose call made TENSOR."""
    return tensor._keras_history.operation.name


def tuner_role() -> str | None:
    """'chief', 'worker', or None (no chief oracle configured), from Keras Tuner's variables."""
    from keras_tuner.src.distribute import utils

    if not utils.has_chief_oracle():
        return None
    return "chief" if utils.is_chief_oracle() else "worker"


def serve_oracle_with_grpc(oracle, server):
    """Add Keras Tuner's chief servicer for ORACLE to a gRPC SERVER; returns the servicer
    (its `stop_triggered` says the search has handed out its last trial)."""
    from keras_tuner.src import protos
    from keras_tuner.src.distribute.oracle_chief import OracleServicer

    servicer = OracleServicer(oracle)
    protos.get_service_grpc().add_OracleServicer_to_server(servicer, server)
    return servicer


def onednn_enabled() -> bool:
    """Whether TensorFlow runs its oneDNN kernels in this process: its own decision (the
    CPU's instruction sets, or TF_ENABLE_ONEDNN_OPTS when TensorFlow was imported)."""
    from tensorflow.python.util import _pywrap_util_port

    return bool(_pywrap_util_port.IsMklEnabled())


@contextlib.contextmanager
def trials_seen(oracle, trials: dict):
    """While inside, ORACLE proposes from TRIALS (trial id -> Trial) instead of its own."""
    own = oracle.trials
    oracle.trials = trials
    try:
        yield
    finally:
        oracle.trials = own


@contextlib.contextmanager
def gp_noise(oracle, alpha):
    """While inside, a Bayesian ORACLE fits its Gaussian process with ALPHA (per trial, on
    its normalized scores) as the noise, instead of its fixed `alpha`."""
    oracle.gpr.alpha = alpha
    try:
        yield
    finally:
        oracle.gpr.alpha = oracle.alpha
