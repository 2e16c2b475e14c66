"""A model's augmentation, described once: each kind of augmentation layer, the `model`
config keys that decide it and how it is built. The layers a model trains with, the feature
cache's key for augmented views, the augmentation grids a run logs and the study's variant
order all read this table, so a new knob is one row here (and its key in the model schema):
no other room can forget it and serve a stale cache or mislabel a grid."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from catdog.schema import ModelConfig


@dataclass(frozen=True)
class Augmentation:
    """NAME (its grid's label), the config KEYS that decide it, whether MODEL_CFG uses it
    (ACTIVE) and its Keras layer (MAKE(model_cfg, seed))."""

    name: str
    keys: tuple[str, ...]
    active: Callable[[ModelConfig], bool]
    make: Callable[[ModelConfig, int | None], object]


def _flip(model_cfg: ModelConfig, seed: int | None):
    from keras import layers

    return layers.RandomFlip(model_cfg.flip_mode, seed=seed, name="random_flip")


def _rotation(model_cfg: ModelConfig, seed: int | None):
    from keras import layers

    return layers.RandomRotation(model_cfg.rotation_factor, fill_mode=model_cfg.fill_mode, seed=seed,
                                 name="random_rotation")  # fmt: skip


# In the order a model applies them.
AUGMENTATIONS = (
    Augmentation("flip", ("flip_mode",), lambda m: bool(m.flip_mode), _flip),
    Augmentation("rotation", ("rotation_factor", "fill_mode"), lambda m: bool(m.rotation_factor), _rotation),
)


def augments(model_cfg: ModelConfig) -> bool:
    """Whether MODEL_CFG augments its training images at all."""
    return any(a.active(model_cfg) for a in AUGMENTATIONS)


def layers_of(model_cfg: ModelConfig, seed: int | None = None) -> list[tuple[str, object]]:
    """The augmentation layers MODEL_CFG trains with, by name; SEED: the layers draw from
    their own seeded generators, not the global one."""
    return [(a.name, a.make(model_cfg, seed)) for a in AUGMENTATIONS if a.active(model_cfg)]


def key(model_cfg: ModelConfig) -> dict:
    """Every setting that decides what MODEL_CFG's augmentation draws: what cached views of
    augmented images are keyed on."""
    return {k: model_cfg.get(k) for a in AUGMENTATIONS for k in a.keys}
