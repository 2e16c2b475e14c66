"""The pretrained backbones a variant can stand on, each a function of its input shape,
weights and pooling that returns a Keras model without its classification top. A config
names one by `model.backbone._target_`; adding another is a function here (or in any
importable module) and a config that names it. The feature cache is keyed on the target."""

from __future__ import annotations


def mobilenet_v2(input_shape: tuple[int, int, int], weights: str | None, pooling: str | None = None):
    """Keras' MobileNetV2 (alpha 1.0) without its top; WEIGHTS "imagenet" or a .h5 file."""
    import keras

    return keras.applications.MobileNetV2(input_shape=input_shape, include_top=False, weights=weights, pooling=pooling)
