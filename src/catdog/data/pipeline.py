"""In-memory arrays as tf.data pipelines: fixed one-batch prefetch, no autotuning."""

from __future__ import annotations

import numpy as np

from catdog.data.decode import Split


def to_dataset(split: Split, batch_size: int, shuffle_seed: int | None = None):
    """Batches of a split's images as float32; reshuffled every epoch when a seed is given."""
    return batches(split.images, split.labels, batch_size, shuffle_seed)


def batches(inputs: np.ndarray, labels: np.ndarray, batch_size: int, shuffle_seed: int | None = None):
    """Batches of INPUTS (images, or cached features) as float32, with their LABELS."""
    import tensorflow as tf

    ds = tf.data.Dataset.from_tensor_slices((inputs, labels))
    if shuffle_seed is not None:
        ds = ds.shuffle(len(labels), seed=shuffle_seed, reshuffle_each_iteration=True)
    return no_autotune(ds.batch(batch_size).map(lambda x, y: (tf.cast(x, tf.float32), y)).prefetch(1))


def no_autotune(ds):
    """tf.data's autotuner stalls some epochs for seconds on small CPU machines; the data
    is already in memory, so a fixed one-batch prefetch is all a pipeline needs."""
    import tensorflow as tf

    options = tf.data.Options()
    options.autotune.enabled = False
    return ds.with_options(options)
