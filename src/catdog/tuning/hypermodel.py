"""The configured variant as a Keras Tuner HyperModel."""

from __future__ import annotations

import keras_tuner as kt
from omegaconf import OmegaConf

from catdog import features, fitting, seeding
from catdog.data import StudyData
from catdog.tuning.space import trial_values, with_values


class VariantHyperModel(kt.HyperModel):
    """Builds and fits the configured variant with a trial's hyperparameters and seed.

    `seed` is set by the tuner before each execution of a trial (see tracked.py)."""

    def __init__(self, cfg, data: StudyData, cache):
        super().__init__(name=cfg.model.name)
        self.cfg, self.data, self.cache = cfg, data, cache
        self.seed = cfg.seed
        self._other = cache

    def run_cfg(self, hp):
        """The search's config with the trial's values and seed in place."""
        return OmegaConf.merge(with_values(self.cfg, trial_values(hp, self.cfg)), {"seed": self.seed})

    def cache_for(self, cfg):
        """The feature cache CFG trains on. A trial that pools or cuts otherwise needs other
        features; the latest such cache is kept for the trials (and retrains) that follow."""
        if self._other is None or not self._other.serves(cfg):
            self._other = features.cache_for(self.cache, self.data, cfg)
        return self._other

    def build(self, hp):
        # Keras Tuner clears the session just before building: the trial's run starts here.
        seeding.seed_run(self.seed)
        cfg = self.run_cfg(hp)
        return fitting.trainable_model(cfg, self.data, self.cache_for(cfg))

    def fit(self, hp, model, *args, **kwargs):
        cfg = self.run_cfg(hp)
        return fitting.fit_variant(cfg, self.data, model, self.cache_for(cfg), **kwargs)
