"""The configured variant as a Keras Tuner HyperModel."""

from __future__ import annotations

import keras_tuner as kt
from omegaconf import OmegaConf

from catdog.data import StudyData
from catdog.schema import SearchRunConfig
from catdog.training import features, fitting, seeding
from catdog.training.plan import FitPlan, fit_plan
from catdog.tuning.space import trial_values, with_values


class VariantHyperModel(kt.HyperModel):
    """Builds and fits the configured variant with a trial's hyperparameters and seed.

    `seed` is set by the tuner before each execution of a trial (see tracked.py)."""

    def __init__(self, cfg: SearchRunConfig, data: StudyData, cache):
        super().__init__(name=cfg.model.name)
        self.cfg, self.data, self.cache = cfg, data, cache
        self.seed = cfg.seed
        self._other = cache
        self._trainable = None
        self._plan, self._cached = None, None  # the trial being fitted: how, and on what
        self.validation = None  # the latest fit's per-image validation scores (fitting.validate)

    def run_cfg(self, hp):
        """The search's config with the trial's values and seed in place."""
        return OmegaConf.merge(with_values(self.cfg, trial_values(hp, self.cfg)), {"seed": self.seed})

    def cache_serving(self, cfg: SearchRunConfig, plan: FitPlan) -> features.FeatureCache | None:
        """The feature cache a run of CFG fitting by PLAN trains on. A trial that pools or
        cuts otherwise needs other features; the latest such cache is kept for the trials
        (and retrains) that follow."""
        if self._other is None or not self._other.serves(plan):
            self._other = features.cache_for(self.cache, self.data, cfg, plan)
        return self._other

    def build(self, hp):
        # Keras Tuner clears the session just before building: the trial's run starts here.
        seeding.seed_run(self.seed)
        cfg = self.run_cfg(hp)
        # How this trial fits, decided once; Keras Tuner hands fit() the model build() made.
        self._plan = fit_plan(cfg)
        cache = self.cache_serving(cfg, self._plan)
        self._cached = cache.features(cfg) if cache is not None else None
        self._trainable = fitting.build(cfg, self.data, self._plan, self._cached)
        return self._trainable.model

    def fit(self, hp, model, *args, **kwargs):
        """Fit, score the kept weights on validation image by image (`self.validation`), and
        report the kept epoch's metrics: the weights a run keeps, not the best epoch of a
        history that no kept model has."""
        cfg = self.run_cfg(hp)
        history = fitting.fit(cfg, self.data, self._plan, self._trainable, self._cached, **kwargs).history
        self.validation = fitting.validate(cfg, self.data, self._trainable, self._cached)
        epoch = fitting.kept_epoch(history, cfg.train)
        return {key: values[epoch] for key, values in history.items() if key != "stage"}
