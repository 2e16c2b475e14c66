"""The search space: checking it, and turning it into Keras Tuner hyperparameters."""

from __future__ import annotations

from omegaconf import OmegaConf

from catdog import CatdogError
from catdog.training.plan import fit_plan


def check_space(cfg) -> None:
    """What the search schema cannot know alone: a linear head (no dense units) is only for
    backbones, and the variant must use one of the settings left to search."""
    units = cfg.search.dense_units
    if units is not None and not cfg.model.backbone and min(units) < 1:
        raise CatdogError(
            f"search.dense_units: a linear head needs a backbone; "
            f"{cfg.model.name} needs integers >= 1, got {list(units)}"
        )
    if not hp_names(cfg):
        raise CatdogError(f"nothing to search: every setting {cfg.model.name} uses is fixed (search.<name>=null)")


# Each searched hyperparameter and the config value it sets.
PATHS = {
    "dropout": "model.dropout",
    "dense_units": "model.dense_units",
    "rotation_factor": "model.rotation_factor",
    "learning_rate": "train.learning_rate",
    "pooling": "model.pooling",
    "fine_tune_at": "model.backbone.fine_tune_at",
    "fine_tune_learning_rate": "train.fine_tune.learning_rate",
}


def hp_names(cfg) -> list[str]:
    """The settings a search varies, each only where the variant uses it: rotation for
    variants that rotate, pooling for backbones, the fine-tuning cut and rate for `finetuned`.
    A `search.<name>: null` leaves that setting at the configured value."""
    model = cfg.model
    names = ["dropout", "dense_units"]
    if model.rotation_factor is not None:
        names.append("rotation_factor")
    names.append("learning_rate")
    if model.backbone:
        names.append("pooling")
    if fit_plan(cfg).fine_tune_at is not None:
        names += ["fine_tune_at", "fine_tune_learning_rate"]
    return [n for n in names if cfg.search[n] is not None]


def configured(cfg) -> dict:
    """The config's own values of the searched settings (the 'reference' point)."""
    return {name: OmegaConf.select(cfg, PATHS[name]) for name in hp_names(cfg)}


def with_values(cfg, values: dict):
    """CFG with VALUES (by hyperparameter name) in place."""
    cfg = OmegaConf.merge(cfg, {})
    for name, value in values.items():
        OmegaConf.update(cfg, PATHS[name], value)
    return cfg


def plain(value):
    """Keras Tuner's Bayesian oracle proposes numpy scalars, which OmegaConf refuses."""
    return value.item() if hasattr(value, "item") else value


def trial_values(hp, cfg) -> dict:
    """The trial's values of `hp_names`, declared in HP from `cfg.search` on first use."""
    search = cfg.search
    values = {}
    for name in hp_names(cfg):
        space = search[name]
        if name in ("dense_units", "pooling", "fine_tune_at"):
            values[name] = hp.Choice(name, list(space))
        else:
            values[name] = _float(hp, name, space, log=name.endswith("learning_rate"))
    return {k: plain(v) for k, v in values.items()}


def _float(hp, name: str, space, log: bool = False):
    if space.min == space.max:
        return hp.Fixed(name, float(space.min))
    sampling = "log" if log else "linear"
    return hp.Float(name, float(space.min), float(space.max), step=space.get("step"), sampling=sampling)
