"""The search space: checking it, and turning it into Keras Tuner hyperparameters."""

from __future__ import annotations

from omegaconf import OmegaConf

from catdog import CatdogError
from catdog.models import POOLINGS, fine_tune_at

TUNER_NAMES = ("random", "bayesian", "hyperband")


def check_space(cfg) -> None:
    """Refuse impossible search settings before anything trains or is logged."""
    search, tuner = cfg.search, cfg.tuner
    for name, low, high in (("dropout", 0.0, 1.0), ("rotation_factor", 0.0, None)):
        space = search.get(name)
        if space is None:  # kept at the configured value
            continue
        if space.min is None or space.max is None or space.min > space.max:
            raise CatdogError(f"search.{name}: min ({space.min}) must not exceed max ({space.max})")
        if space.min < low or (high is not None and space.max >= high):
            raise CatdogError(f"search.{name} must lie in [{low}, {high or 'inf'}), got [{space.min}, {space.max}]")
        if space.step is not None and space.step <= 0:
            raise CatdogError(f"search.{name}.step must be positive or null, got {space.step}")
    for name in ("learning_rate", "fine_tune_learning_rate"):
        space = search.get(name)
        if space is not None and not (space.min and space.max and 0 < space.min <= space.max):
            raise CatdogError(f"search.{name}: needs 0 < min <= max (a log scale), got [{space.min}, {space.max}]")
    if search.get("pooling") is not None and not set(search.pooling) <= set(POOLINGS):
        raise CatdogError(f"search.pooling: choose from {', '.join(POOLINGS)}, got {list(search.pooling)}")
    if search.get("fine_tune_at") is not None and not all(isinstance(c, int) and c > 0 for c in search.fine_tune_at):
        raise CatdogError(f"search.fine_tune_at must list positive layer indices, got {list(search.fine_tune_at)}")
    units = search.get("dense_units")
    least = 0 if cfg.model.backbone else 1  # 0: a linear head, which only a backbone can have
    if units is not None and (not units or any(not isinstance(u, int) or u < least for u in units)):
        raise CatdogError(f"search.dense_units must be a non-empty list of integers >= {least}, got {list(units)}")
    if not hp_names(cfg):
        raise CatdogError(f"nothing to search: every setting {cfg.model.name} uses is fixed (search.<name>=null)")
    if tuner.name not in TUNER_NAMES:
        raise CatdogError(f"tuner.name {tuner.name!r} is not one of {', '.join(TUNER_NAMES)}")
    for key in ("max_trials", "epochs", "executions_per_trial"):
        if tuner[key] is None or tuner[key] < 1:
            raise CatdogError(f"tuner.{key} must be at least 1, got {tuner[key]}")
    if search.retrain_seeds < 0:
        raise CatdogError(f"search.retrain_seeds must be >= 0, got {search.retrain_seeds}")


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
    if fine_tune_at(model) is not None:
        names += ["fine_tune_at", "fine_tune_learning_rate"]
    return [n for n in names if cfg.search.get(n) is not None]


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
