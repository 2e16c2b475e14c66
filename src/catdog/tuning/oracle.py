"""The search's oracles: Keras Tuner's own (random, Bayesian, Hyperband, grid), each with
what it does not know mixed in by an ordinary subclass, living where the oracle lives (this
process, or a distributed search's chief):
- a wall-clock budget for the whole search (`search.budget_minutes`, counted across resumes
  in the oracle's own saved state);
- the search's policy over seeds (`search.policy`): `racing` stops once what is left is
  noise; `intensify` re-issues earlier settings with their next seed, as Keras Tuner's own
  Hyperband oracle re-issues earlier trials, under tuning.intensify's rules, and teaches the
  proposing oracle each setting's mean over its seeds (the Bayesian one with the seed
  variance it measured as the noise of each mean);
- why the search stopped (`stop_reason`): `budget`, `settled`, `schedule` (Hyperband ran its
  brackets, or the space is spent), or none of these: `max_trials`."""

from __future__ import annotations

import contextlib
import time

import keras_tuner as kt
import numpy as np
from keras_tuner.engine import trial as trial_module

from catdog import private_api
from catdog.tuning.intensify import Intensifier

RUNNING, STOPPED = trial_module.TrialStatus.RUNNING, trial_module.TrialStatus.STOPPED
COMPLETED, FAILED = trial_module.TrialStatus.COMPLETED, trial_module.TrialStatus.FAILED
# The hyperparameter values that tie an intensifying search's trial (one fit) to its
# setting and seed; like Hyperband's `tuner/...` values, they are not part of the space.
SETTING, SEED_INDEX = "intensify/setting", "intensify/seed"


class SearchOracle:
    """Mixed into each Keras Tuner oracle class below; Keras Tuner calls it as ever."""

    def __init__(self, *args, budget_minutes: float | None = None, race=None, intensify_cap: int | None = None,
                 **kwargs):  # fmt: skip
        super().__init__(*args, **kwargs)
        self.budget_s = None if budget_minutes is None else 60 * budget_minutes
        self.race = race
        self.intensifier = Intensifier(intensify_cap) if intensify_cap else None
        self.stop_reason: str | None = None
        self._elapsed_before = 0.0
        self._started: float | None = None  # this launch's clock starts with its first request for a trial

    def elapsed(self) -> float:
        """Seconds this search has run, this launch and every earlier one."""
        running = time.monotonic() - self._started if self._started is not None else 0.0
        return self._elapsed_before + running

    def budget_spent(self) -> bool:
        return self.budget_s is not None and self.elapsed() >= self.budget_s

    def populate_space(self, trial_id):
        # Keras Tuner asks here only for a new trial: a running or interrupted one is
        # handed out first, whatever the budget; a full search stops before asking.
        if self._started is None:
            self._started = time.monotonic()
        if self.budget_spent():
            return self._stop("budget")
        if self.race is not None and self.race.settled():
            return self._stop("settled")
        if self.intensifier is not None:
            step = self.intensifier.next()
            if step is not None:
                key, seed = step
                return {"status": RUNNING, "values": {**self.intensifier.settings[key].values, SETTING: key,
                                                      SEED_INDEX: seed}}  # fmt: skip
        with self._settings_view():
            response = super().populate_space(trial_id)
        if response["status"] == STOPPED:
            return self._stop("schedule")
        if self.intensifier is not None and response["status"] == RUNNING:
            values = dict(response["values"])
            seed = self.intensifier.add(trial_id, values)
            response = {**response, "values": {**values, SETTING: trial_id, SEED_INDEX: seed}}
        return response

    def _stop(self, reason: str) -> dict:
        self.stop_reason = reason
        return {"status": STOPPED}

    @contextlib.contextmanager
    def _settings_view(self):
        """While the proposing oracle decides, it sees one finished trial per setting
        scored by the setting's mean over its seeds, not one trial per fit."""
        if self.intensifier is None:
            yield
            return
        view = {}
        for key, setting in self.intensifier.settings.items():
            if setting.scores and key in self.trials:
                view[key] = trial_module.Trial(self.trials[key].hyperparameters, trial_id=key, status=COMPLETED)
                view[key].score = setting.mean
        with private_api.trials_seen(self, view):
            yield

    # Locked with the base class's own lock: a distributed search's chief serves workers on
    # several threads, and another one's create_trial swaps `self.trials` for the settings view.
    @kt.synchronized
    def end_trial(self, trial):
        super().end_trial(trial)
        ended = self.trials[trial.trial_id]
        values = ended.hyperparameters.values
        if self.intensifier is not None and SETTING in values and ended.status in (COMPLETED, FAILED):
            score = ended.score if ended.status == COMPLETED else None
            self.intensifier.finished(values[SETTING], int(values[SEED_INDEX]), score)
            self.save()

    def get_state(self):
        state = {**super().get_state(), "catdog_elapsed": self.elapsed()}
        if self.intensifier is not None:
            state["catdog_intensify"] = self.intensifier.state()
        return state

    def set_state(self, state):
        super().set_state(state)
        self._elapsed_before = float(state.get("catdog_elapsed", 0.0))
        self._started = None
        if self.intensifier is not None and "catdog_intensify" in state:
            self.intensifier = Intensifier.from_state(state["catdog_intensify"])


class RandomSearchOracle(SearchOracle, kt.oracles.RandomSearchOracle):
    """Keras Tuner's random search, with the search's budget and policy."""


class BayesianOptimizationOracle(SearchOracle, kt.oracles.BayesianOptimizationOracle):
    """Keras Tuner's Gaussian-process search, with the search's budget and policy. Keras
    Tuner fits its process as if scores had no noise (alpha 1e-4 on normalized scores);
    once the search has measured the seed variance (settings with two or more seeds), each
    setting's mean gets its own noise, that variance over its seeds."""

    def populate_space(self, trial_id):
        noise = self._noise()
        with private_api.gp_noise(self, noise) if noise is not None else contextlib.nullcontext():
            return super().populate_space(trial_id)

    def _noise(self) -> np.ndarray | None:
        """Each setting's noise on Keras Tuner's normalized scale, in the order the settings
        view lists them; None until the search has measured the seed variance."""
        if self.intensifier is None:
            return None
        seed_var = self.intensifier.seed_variance()
        scored = [s for s in self.intensifier.settings.values() if s.scores and s.key in self.trials]
        spread = float(np.var([s.mean for s in scored])) if len(scored) > 1 else 0.0
        if seed_var is None or spread <= 0:
            return None
        return np.maximum(np.array([seed_var / len(s.scores) for s in scored]) / spread, self.alpha)


class HyperbandOracle(SearchOracle, kt.oracles.HyperbandOracle):
    """Keras Tuner's Hyperband, with the search's budget (racing aside, its brackets decide
    which settings train longer: it does not intensify over seeds)."""


class GridSearchOracle(SearchOracle, kt.oracles.GridSearchOracle):
    """Keras Tuner's grid search, with the search's budget and policy."""
