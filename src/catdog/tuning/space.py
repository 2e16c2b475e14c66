"""The search space as Keras Tuner hyperparameters, and a config with chosen values in place."""

from __future__ import annotations

from omegaconf import OmegaConf

from catdog.schema import CHOICE, LINEAR, SEARCHED, SearchRunConfig, hp_names


def _path(name: str) -> str:
    return next(h.path for h in SEARCHED if h.name == name)


def configured(cfg: SearchRunConfig) -> dict:
    """The config's own values of the searched settings (the 'reference' point)."""
    return {name: OmegaConf.select(cfg, _path(name)) for name in hp_names(cfg)}


def with_values(cfg: SearchRunConfig, values: dict):
    """CFG with VALUES (by hyperparameter name) in place."""
    cfg = OmegaConf.merge(cfg, {})
    for name, value in values.items():
        OmegaConf.update(cfg, _path(name), value)
    return cfg


def plain(value):
    """Keras Tuner's Bayesian oracle proposes numpy scalars, which OmegaConf refuses."""
    return value.item() if hasattr(value, "item") else value


def trial_values(hp, cfg: SearchRunConfig) -> dict:
    """The trial's values of `hp_names`, declared in HP from `cfg.search` on first use."""
    kinds = {h.name: h.kind for h in SEARCHED}
    values = {}
    for name in hp_names(cfg):
        space = cfg.search[name]
        if kinds[name] == CHOICE:
            values[name] = hp.Choice(name, list(space))
        elif space.min == space.max:
            values[name] = hp.Fixed(name, float(space.min))
        else:
            step = space.get("step") if kinds[name] == LINEAR else None
            values[name] = hp.Float(name, float(space.min), float(space.max), step=step, sampling=kinds[name])
    return {k: plain(v) for k, v in values.items()}
