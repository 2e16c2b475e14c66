"""Cutting a backbone for fine-tuning: a frozen bottom whose outputs can be cached, and a
top that trains from them.

Fine-tuning unfreezes `layers[fine_tune_at:]`. The cache is cut a little lower, where exactly
one tensor crosses (MobileNetV2's residual connections make two cross most cuts, and caching
both would take several times the memory) and that tensor is small (see `boundary`). The few
frozen layers between that boundary and `fine_tune_at` run in the top, still frozen, which
computes exactly what the whole backbone computes."""

from __future__ import annotations

import math

import keras
from keras import tree

from catdog import CatdogError, private_api


def check_fine_tune_at(backbone: keras.Model, fine_tune_at) -> int:
    """FINE_TUNE_AT as an index into BACKBONE's layers, refused (one line) when out of range."""
    n = len(backbone.layers)
    if isinstance(fine_tune_at, bool) or not isinstance(fine_tune_at, int) or not 1 <= fine_tune_at < n:
        raise CatdogError(f"model.backbone.fine_tune_at must be an integer in [1, {n - 1}], got {fine_tune_at!r}")
    return fine_tune_at


def _crossing(backbone: keras.Model, index: int) -> list:
    """The tensors made below layer INDEX that layers from INDEX up consume."""
    position = {layer.name: i for i, layer in enumerate(backbone.layers)}
    found = {
        id(tensor): tensor
        for layer in backbone.layers[index:]
        for tensor in private_api.call_inputs(layer)
        if position[private_api.producer(tensor)] < index
    }
    return list(found.values())


def boundary(backbone: keras.Model, fine_tune_at: int) -> int:
    """The index of the first layer of the top: at or below FINE_TUNE_AT, where one tensor
    crosses, and of those the one with the smallest tensor before they grow again going
    down (the highest on ties). Inside a MobileNetV2 block that is the block's narrow
    input: from 120 (a 15x15x576 padded expansion at 224 px) the cut goes down to
    block 13's 14x14x96 input, 7x less to cache, with 4 frozen layers more in the top."""
    best, best_size = None, None
    for index in range(check_fine_tune_at(backbone, fine_tune_at), 0, -1):
        crossing = _crossing(backbone, index)
        if len(crossing) != 1:
            continue
        size = math.prod(crossing[0].shape[1:])
        if best is not None and size > best_size:
            break
        if best is None or size < best_size:
            best, best_size = index, size
    return best or 1


def bottom_model(backbone: keras.Model, index: int) -> keras.Model:
    """Images -> the activation that enters layer INDEX (frozen; the cache's extractor)."""
    [tensor] = private_api.call_inputs(backbone.layers[index])
    return keras.Model(backbone.input, tensor, name="backbone_bottom")


def top_model(backbone: keras.Model, index: int) -> keras.Model:
    """The activation entering layer INDEX -> the backbone's output, built by calling
    `layers[INDEX:]` again on a new input: the top shares those layers (and their weights)
    with BACKBONE."""
    [entering] = private_api.call_inputs(backbone.layers[index])
    inputs = keras.Input(shape=entering.shape[1:], name="cached_activations")
    tensors = {id(entering): inputs}
    for layer in backbone.layers[index:]:
        node = private_api.first_call(layer)  # the call inside BACKBONE; later calls add nodes after it
        args, kwargs = node.arguments.fill_in(tensors)
        outputs = layer(*args, **kwargs)
        for old, new in zip(tree.flatten(node.outputs), tree.flatten(outputs), strict=True):
            tensors[id(old)] = new
    return keras.Model(inputs, tensors[id(backbone.output)], name="backbone_top")


def unfreeze(part: keras.Model, first_trainable: str) -> None:
    """Make PART's layers from the one named FIRST_TRAINABLE upward trainable, those below
    frozen. PART is a backbone or a top built from one (same layer names, same order).

    Batch-norm layers stay frozen: in Keras 3 a model called with training=True passes it
    on to a part called with training=False inside it, and a trainable batch-norm layer
    then normalises with each batch's statistics and moves its running ones. A frozen one
    runs in inference mode, as fine-tuning wants (its scale and offset stay fixed too)."""
    part.trainable = True
    reached = False
    for layer in part.layers:
        reached = reached or layer.name == first_trainable
        layer.trainable = reached and not isinstance(layer, keras.layers.BatchNormalization)
