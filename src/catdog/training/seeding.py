"""A run's seed, the one place that sets global random state, and seeds derived from it."""

from __future__ import annotations

import hashlib

import numpy as np


def seed_run(seed: int) -> None:
    """Seed Python, NumPy, TensorFlow and Keras at the start of a run (or a search trial),
    before any layer is built: Keras draws initializer and dropout seeds at construction."""
    import keras

    keras.utils.set_random_seed(int(seed))


def derive(*parts: int) -> int:
    """A seed for a sub-run (a search trial), fixed by its parents' seeds and its index."""
    return int(np.random.SeedSequence([int(p) for p in parts]).generate_state(1)[0] & 0x7FFFFFFF)


def weights_digest(model) -> str:
    """Short hash of a model's weights: tells at a glance whether two runs started alike."""
    digest = hashlib.sha256()
    for array in model.get_weights():
        digest.update(np.ascontiguousarray(array).tobytes())
    return digest.hexdigest()[:16]
