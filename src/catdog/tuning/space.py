"""The search space: checking it, and turning it into Keras Tuner hyperparameters."""

from __future__ import annotations

from omegaconf import OmegaConf

from catdog import CatdogError
from catdog.schema import CHOICE, LINEAR, SEARCHED, SearchRunConfig


def check_space(cfg: SearchRunConfig) -> None:
    """What the search schema cannot know alone: a linear head (no dense units) is only for
    backbones, the variant must use one of the settings left to search, and a policy over
    seeds ranks by validation accuracy with one fit per seed (intensify, at fixed epochs)."""
    units = cfg.search.dense_units
    if units is not None and not cfg.model.backbone and min(units) < 1:
        raise CatdogError(
            f"search.dense_units: a linear head needs a backbone; "
            f"{cfg.model.name} needs integers >= 1, got {list(units)}"
        )
    if not hp_names(cfg):
        raise CatdogError(f"nothing to search: every setting {cfg.model.name} uses is fixed (search.<name>=null)")
    chosen = policy(cfg)
    if chosen == "plain":
        return
    name = "search.racing" if cfg.search.racing else f"search.policy={chosen}"
    if cfg.tuner.objective != "val_accuracy":
        raise CatdogError(f"{name} ranks settings by validation accuracy; tuner.objective is {cfg.tuner.objective}")
    if cfg.tuner.executions_per_trial != 1:
        raise CatdogError(f"{name} decides how many seeds a setting gets: leave tuner.executions_per_trial at 1")
    if chosen == "intensify" and cfg.tuner._target_ == "keras_tuner.Hyperband":
        raise CatdogError(
            "search.policy=intensify re-runs settings at the same epochs, and Hyperband gives settings other "
            "epochs: use tuner=random or tuner=bayesian"
        )
    if chosen == "intensify" and cfg.tuner._target_ == "keras_tuner.GridSearch":
        # The grid walks its combinations from every ended trial, re-run seeds included,
        # which are not settings of its own.
        raise CatdogError("search.policy=intensify proposes settings with tuner=random or tuner=bayesian, not a grid")


def policy(cfg: SearchRunConfig) -> str:
    """How the search gives settings seeds: `search.policy`, or racing where `search.racing`
    says so (as stores and commands made before `search.policy` do)."""
    return "racing" if cfg.search.racing else cfg.search.policy


def hp_names(cfg: SearchRunConfig) -> list[str]:
    """The settings a search varies: each row of `schema.SEARCHED` that CFG's variant uses
    (rotation for variants that rotate, pooling for backbones, the fine-tuning cut and rate
    for fine-tuned ones), unless `search.<name>: null` keeps it at the configured value."""
    return [h.name for h in SEARCHED if h.applies(cfg) and cfg.search[h.name] is not None]


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
