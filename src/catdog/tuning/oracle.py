"""What the chosen Keras Tuner oracle does not know, mixed into it where it lives (this
process, or a distributed search's chief): a wall-clock budget for the whole search
(`search.budget_minutes`, counted across resumes in the oracle's own saved state) and, for a
racing search, stopping once what is left is noise. It records why the search stopped:
`max_trials`, `budget`, `settled`, or `schedule` (Hyperband ran its brackets)."""

from __future__ import annotations

import json
import os
import time

from keras_tuner.engine import trial as trial_module

STOPPED = trial_module.TrialStatus.STOPPED


class SearchOracle:
    """Mixed into the oracle's own class by `attach`; Keras Tuner calls it as ever."""

    budget_s: float | None = None
    race = None
    stop_reason: str | None = None
    _elapsed_before = 0.0
    _started = 0.0

    def elapsed(self) -> float:
        """Seconds this search has run, this launch and every earlier one."""
        return self._elapsed_before + time.monotonic() - self._started

    def budget_spent(self) -> bool:
        return self.budget_s is not None and self.elapsed() >= self.budget_s

    def _stop_now(self, tuner_id) -> str | None:
        if tuner_id in self.ongoing_trials or self._retry_queue:
            return None  # a running or interrupted trial is handed out whatever the budget
        if self.budget_spent():
            return "budget"
        if self.race is not None and self.race.settled():
            return "settled"
        return None

    def create_trial(self, tuner_id):
        reason = self._stop_now(tuner_id)
        if reason is None:
            trial = super().create_trial(tuner_id)
            if trial.status == STOPPED and self.stop_reason is None:
                full = self.max_trials and len(self.trials) >= self.max_trials
                self.stop_reason = "max_trials" if full else "schedule"
            return trial
        self.stop_reason = reason
        self.tuner_ids.discard(tuner_id)  # as Keras Tuner does for a tuner it stops
        return trial_module.Trial(self.hyperparameters.copy(), trial_id=str(len(self.trials)), status=STOPPED)

    def get_state(self):
        return {**super().get_state(), "catdog_elapsed": self.elapsed()}


def attach(oracle, budget_minutes: float | None, race) -> None:
    """Make ORACLE a SearchOracle (its class gains the mixin; its state is untouched), with
    BUDGET_MINUTES for the search and RACE (None: not racing)."""
    cls = type(oracle)
    if not issubclass(cls, SearchOracle):
        oracle.__class__ = type(f"Search{cls.__name__}", (SearchOracle, cls), {})
    oracle.budget_s = None if budget_minutes is None else 60 * budget_minutes
    oracle.race = race
    oracle.stop_reason = None
    oracle._elapsed_before = _saved_elapsed(oracle)
    oracle._started = time.monotonic()


def _saved_elapsed(oracle) -> float:
    """The elapsed seconds an earlier launch saved with the oracle (0 for a new search)."""
    path = oracle._get_oracle_fname()
    if not os.path.exists(path):
        return 0.0
    with open(path) as state:
        return float(json.load(state).get("catdog_elapsed", 0.0))
