"""The study's four model variants as plain functions of a `model` config."""

from __future__ import annotations

from pathlib import Path

import keras
from keras import layers

from catdog import CatdogError


def build_model(model_cfg, image_size, num_classes: int = 2) -> keras.Model:
    """Input -> [scaling] -> [augmentation] -> conv body or frozen backbone + head -> logits."""
    inputs = keras.Input(shape=(*image_size, 3), name="image")
    x = inputs
    for layer in input_layers(model_cfg):
        x = layer(x)
    if model_cfg.backbone:
        # training=False keeps the frozen backbone's batch-norm statistics fixed.
        x = build_backbone(model_cfg.backbone, image_size)(x, training=False)
        head = head_layers(model_cfg, num_classes)
    else:
        head = cnn_layers(model_cfg, num_classes)
    for layer in head:
        x = layer(x)
    return keras.Model(inputs, x, name=model_cfg.name)


def input_layers(model_cfg) -> list[layers.Layer]:
    """Scaling and augmentation; augmentation layers are identity at inference."""
    out = []
    if model_cfg.preprocess:
        # Same arithmetic as mobilenet_v2.preprocess_input (x / 127.5 - 1), as a layer so
        # saved models load without custom code.
        out.append(layers.Rescaling(1.0 / 127.5, offset=-1.0, name="scale_to_unit_range"))
    out.extend(augmentation_layers(model_cfg))
    return out


def augmentation_layers(model_cfg) -> list[layers.Layer]:
    out = []
    if model_cfg.flip_mode:
        out.append(layers.RandomFlip(model_cfg.flip_mode, name="random_flip"))
    if model_cfg.rotation_factor:
        out.append(
            layers.RandomRotation(
                model_cfg.rotation_factor, fill_mode=model_cfg.fill_mode, name="random_rotation"
            )
        )
    return out


def cnn_layers(model_cfg, num_classes: int) -> list[layers.Layer]:
    out = []
    last = len(model_cfg.conv_filters) - 1
    for i, filters in enumerate(model_cfg.conv_filters):
        out += [layers.Conv2D(filters, 3, activation="relu"), layers.MaxPooling2D(2)]
        if i < last:
            out.append(layers.Dropout(model_cfg.dropout))
    out += [
        layers.Flatten(),
        layers.Dense(model_cfg.dense_units, activation="relu"),
        layers.Dense(num_classes, name="logits"),
    ]
    return out


def head_layers(model_cfg, num_classes: int) -> list[layers.Layer]:
    """The trainable part on top of a frozen backbone."""
    return [
        layers.Dropout(model_cfg.dropout),
        layers.Flatten(),
        layers.Dense(model_cfg.dense_units, activation="relu"),
        layers.Dense(num_classes, name="logits"),
    ]


def build_backbone(backbone_cfg, image_size) -> keras.Model:
    if backbone_cfg.name != "mobilenet_v2":
        raise CatdogError(f"model.backbone.name {backbone_cfg.name!r} is not supported (mobilenet_v2)")
    weights = backbone_cfg.weights
    if weights not in (None, "imagenet") and not Path(weights).is_file():
        raise CatdogError(f"model.backbone.weights {weights}: no such file (use 'imagenet' or a .h5 path)")
    backbone = keras.applications.MobileNetV2(
        input_shape=(*image_size, 3), include_top=False, weights=weights
    )
    backbone.trainable = bool(backbone_cfg.trainable)
    return backbone
