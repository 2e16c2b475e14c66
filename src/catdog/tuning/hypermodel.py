"""The configured variant as a Keras Tuner HyperModel."""

from __future__ import annotations

import keras_tuner as kt
from omegaconf import OmegaConf

from catdog import seeding, training
from catdog.data import StudyData
from catdog.tuning.space import model_values


class VariantHyperModel(kt.HyperModel):
    """Builds and fits the configured variant with a trial's hyperparameters and seed.

    `seed` is set by the tuner before each execution of a trial (see tracked.py)."""

    def __init__(self, cfg, data: StudyData, cache):
        super().__init__(name=cfg.model.name)
        self.cfg, self.data, self.cache = cfg, data, cache
        self.seed = cfg.seed

    def run_cfg(self, hp):
        """The search's config with the trial's model values and seed in place."""
        return OmegaConf.merge(self.cfg, {"model": model_values(hp, self.cfg), "seed": self.seed})

    def build(self, hp):
        # Keras Tuner clears the session just before building: the trial's run starts here.
        seeding.seed_run(self.seed)
        return training.trainable_model(self.run_cfg(hp), self.data, self.cache)

    def fit(self, hp, model, *args, **kwargs):
        return training.fit_variant(self.run_cfg(hp), self.data, model, self.cache, **kwargs)
