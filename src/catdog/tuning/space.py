"""The search space: checking it, and turning it into Keras Tuner hyperparameters."""

from __future__ import annotations

from catdog import CatdogError

TUNER_NAMES = ("random", "bayesian", "hyperband")


def check_space(cfg) -> None:
    """Refuse impossible search settings before anything trains or is logged."""
    search, tuner = cfg.search, cfg.tuner
    for name, low, high in (("dropout", 0.0, 1.0), ("rotation_factor", 0.0, None)):
        space = search[name]
        if space.min is None or space.max is None or space.min > space.max:
            raise CatdogError(f"search.{name}: min ({space.min}) must not exceed max ({space.max})")
        if space.min < low or (high is not None and space.max >= high):
            raise CatdogError(f"search.{name} must lie in [{low}, {high or 'inf'}), got [{space.min}, {space.max}]")
        if space.step is not None and space.step <= 0:
            raise CatdogError(f"search.{name}.step must be positive or null, got {space.step}")
    units = list(search.dense_units or [])
    if not units or any(not isinstance(u, int) or u < 1 for u in units):
        raise CatdogError(f"search.dense_units must be a non-empty list of positive integers, got {units}")
    if tuner.name not in TUNER_NAMES:
        raise CatdogError(f"tuner.name {tuner.name!r} is not one of {', '.join(TUNER_NAMES)}")
    for key in ("max_trials", "epochs", "executions_per_trial"):
        if tuner[key] is None or tuner[key] < 1:
            raise CatdogError(f"tuner.{key} must be at least 1, got {tuner[key]}")
    if search.retrain_seeds < 0:
        raise CatdogError(f"search.retrain_seeds must be >= 0, got {search.retrain_seeds}")


def hp_names(model_cfg) -> list[str]:
    """The model settings a search varies: rotation only for variants that rotate."""
    return ["dropout", "dense_units"] + (["rotation_factor"] if model_cfg.rotation_factor is not None else [])


def plain(value):
    """Keras Tuner's Bayesian oracle proposes numpy scalars, which OmegaConf refuses."""
    return value.item() if hasattr(value, "item") else value


def model_values(hp, cfg) -> dict:
    """The trial's values of `hp_names`, declared in HP from `cfg.search` on first use."""
    search = cfg.search
    values = {
        "dropout": _float(hp, "dropout", search.dropout),
        "dense_units": hp.Choice("dense_units", list(search.dense_units)),
    }
    if "rotation_factor" in hp_names(cfg.model):
        values["rotation_factor"] = _float(hp, "rotation_factor", search.rotation_factor)
    return {k: plain(v) for k, v in values.items()}


def _float(hp, name: str, space):
    if space.min == space.max:
        return hp.Fixed(name, float(space.min))
    return hp.Float(name, float(space.min), float(space.max), step=space.step)
