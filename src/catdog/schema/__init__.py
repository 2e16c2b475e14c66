"""The config groups' schemas: Hydra rejects unknown keys and wrongly typed values with
them, and each group's `__post_init__` refuses values out of range (run by `validate`).
Registered in Hydra's ConfigStore as `schema/<group>`; each group's options start from it
(`defaults: [/schema/<group>@_here_, _self_]`)."""

from __future__ import annotations

from dataclasses import dataclass

from hydra.core.config_store import ConfigStore
from omegaconf import OmegaConf

from catdog.schema.run import (
    POOLINGS,
    BackboneConfig,
    DataConfig,
    FeaturesConfig,
    FineTuneConfig,
    ModelConfig,
    PathsConfig,
    StudyConfig,
    TrackingConfig,
    TrainConfig,
)
from catdog.schema.search import (
    CHOICE,
    LINEAR,
    LOG,
    SEARCHED,
    SET_BY_THE_SEARCH,
    LogRange,
    Range,
    SearchConfig,
    Searched,
    TunerConfig,
    check_search,
    hp_names,
    policy,
)


@dataclass
class RunConfig:
    """A composed `catdog-train` config (conf/train.yaml): one field per config group. For
    annotations: at run time it is Hydra's DictConfig with these keys and types."""

    paths: PathsConfig
    data: DataConfig
    model: ModelConfig
    train: TrainConfig
    features: FeaturesConfig
    tracking: TrackingConfig
    study: StudyConfig
    task: str
    seed: int


@dataclass
class SearchRunConfig(RunConfig):
    """A composed `catdog-tune` config (conf/tune.yaml): a run's groups and the search's."""

    tuner: TunerConfig
    search: SearchConfig


SCHEMAS = {
    "model": ModelConfig,
    "train": TrainConfig,
    "data": DataConfig,
    "features": FeaturesConfig,
    "tracking": TrackingConfig,
    "paths": PathsConfig,
    "study": StudyConfig,
    "search": SearchConfig,
    "tuner": TunerConfig,
}


def register() -> None:
    """Every group's schema in Hydra's ConfigStore, as `schema/<group>`."""
    store = ConfigStore.instance()
    for group, schema in SCHEMAS.items():
        store.store(group="schema", name=group, node=schema)


def validate(cfg: RunConfig) -> None:
    """Every group's range checks (its `__post_init__`), before any work starts: Hydra has
    checked keys and types while composing. A search adds its checks across groups
    (`check_search`)."""
    for group in SCHEMAS:
        if group in cfg:
            OmegaConf.to_object(cfg[group])


__all__ = [
    "CHOICE",
    "LINEAR",
    "LOG",
    "POOLINGS",
    "SCHEMAS",
    "SEARCHED",
    "SET_BY_THE_SEARCH",
    "BackboneConfig",
    "DataConfig",
    "FeaturesConfig",
    "FineTuneConfig",
    "LogRange",
    "ModelConfig",
    "PathsConfig",
    "Range",
    "RunConfig",
    "SearchConfig",
    "SearchRunConfig",
    "Searched",
    "StudyConfig",
    "TrackingConfig",
    "TrainConfig",
    "TunerConfig",
    "check_search",
    "hp_names",
    "policy",
    "register",
    "validate",
]
