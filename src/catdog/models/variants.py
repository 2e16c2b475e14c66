"""The study's models as plain functions of a `model` config: a CNN on pixels (with scaling
and augmentation as configured), or a pretrained backbone under a head."""

from __future__ import annotations

import keras
from keras import layers

from catdog import CatdogError
from catdog.models import augmentation
from catdog.schema import ModelConfig


def build_model(
    model_cfg,
    image_size,
    num_classes: int = 2,
    head: keras.Model | None = None,
    backbone: keras.Model | None = None,
    pooled_head: bool = False,
) -> keras.Model:
    """Input -> [scaling] -> [augmentation] -> conv body, or frozen backbone + head -> logits.

    `head`: an already trained head (from cached features) to put on the backbone, one that
    takes pooled features if `pooled_head`; `backbone`: an already built (say, fine-tuned)
    backbone instead of a fresh one."""
    inputs = keras.Input(shape=(*image_size, 3), name="image")
    x = inputs
    for layer in input_layers(model_cfg):
        x = layer(x)
    if model_cfg.backbone:
        backbone = backbone or build_backbone(model_cfg.backbone, image_size)
        # training=False: a frozen backbone runs in inference mode. Fit's training=True would
        # still reach its trainable layers, so fine-tuning keeps batch norm frozen
        # (backbone_cut.unfreeze).
        x = backbone(x, training=False)
        if pooled_head:
            x = layers.GlobalAveragePooling2D(name="avg_pool")(x)
        x = (head or build_head(model_cfg, backbone.output_shape[1:], num_classes))(x)
    else:
        for layer in cnn_layers(model_cfg, num_classes):
            x = layer(x)
    return keras.Model(inputs, x, name=model_cfg.name)


def input_layers(model_cfg: ModelConfig) -> list[layers.Layer]:
    """Scaling and augmentation; augmentation layers are identity at inference."""
    return scaling_layers(model_cfg) + augmentation_layers(model_cfg)


def scaling_layers(model_cfg: ModelConfig) -> list[layers.Layer]:
    """Pixels to [-1, 1] as MobileNetV2 expects, when `preprocess` is on; else nothing."""
    if not model_cfg.preprocess:
        return []
    # Same arithmetic as mobilenet_v2.preprocess_input (x / 127.5 - 1), as a layer so
    # saved models load without custom code.
    return [layers.Rescaling(1.0 / 127.5, offset=-1.0, name="scale_to_unit_range")]


def augmentation_layers(model_cfg: ModelConfig, seed: int | None = None) -> list[layers.Layer]:
    """The layers of `augmentation.AUGMENTATIONS` that MODEL_CFG uses; SEED: they draw from
    their own seeded generators, not the global one."""
    return [layer for _, layer in augmentation.layers_of(model_cfg, seed)]


def cnn_layers(model_cfg: ModelConfig, num_classes: int) -> list[layers.Layer]:
    """The reference CNN body and head: conv blocks of `conv_filters`, dropout, dense, logits."""
    out = []
    last = len(model_cfg.conv_filters) - 1
    for i, filters in enumerate(model_cfg.conv_filters):
        out += [layers.Conv2D(filters, 3, activation="relu"), layers.MaxPooling2D(2)]
        if i < last:
            out.append(layers.Dropout(model_cfg.dropout))
    out += [
        layers.Flatten(),
        layers.Dense(model_cfg.dense_units, activation="relu"),
        _logits(num_classes),
    ]
    return out


def build_head(model_cfg: ModelConfig, feature_shape, num_classes: int = 2, pooled_input: bool = False) -> keras.Model:
    """The trainable part on top of a frozen backbone, a model of its own. FEATURE_SHAPE:
    the backbone's feature map, or (`pooled_input`) the already pooled features of the cache."""
    features = keras.Input(shape=tuple(feature_shape), name="features")
    if model_cfg.pooling == "avg":  # the TensorFlow tutorial's head: 1,280 inputs
        pooled = features if pooled_input else layers.GlobalAveragePooling2D()(features)
        x = layers.Dropout(model_cfg.dropout)(pooled)
    else:  # the reference's: the whole 5x5x1280 map, 32,000 inputs at 160 px
        x = layers.Flatten()(layers.Dropout(model_cfg.dropout)(features))
    if model_cfg.dense_units:  # 0: logits straight from the features, the tutorial's head
        x = layers.Dense(model_cfg.dense_units, activation="relu")(x)
    return keras.Model(features, _logits(num_classes)(x), name="head")


def backbone_layer(model: keras.Model) -> keras.Model:
    """The backbone inside an image model built by `build_model`."""
    return next(layer for layer in model.layers if isinstance(layer, keras.Model) and layer.name != "head")


def _logits(num_classes: int) -> layers.Layer:
    # float32 whatever the precision policy: softmax and loss stay exact under mixed bf16.
    return layers.Dense(num_classes, name="logits", dtype="float32")


def build_backbone(backbone_cfg, image_size, pooling: str | None = None) -> keras.Model:
    """The backbone BACKBONE_CFG's `_target_` builds; POOLING: Keras' own `pooling` argument
    ("avg": pooled features, for the cache)."""
    from hydra.utils import get_method

    try:
        backbone = get_method(backbone_cfg._target_)((*image_size, 3), backbone_cfg.weights, pooling)
    except (OSError, ValueError) as exc:  # not HDF5, or weights of another network
        first = str(exc).splitlines()[0][:160] if str(exc) else type(exc).__name__
        raise CatdogError(
            f"model.backbone.weights {backbone_cfg.weights}: not {backbone_cfg.name} (no top) weights ({first})"
        ) from exc
    backbone.trainable = bool(backbone_cfg.trainable)
    return backbone
