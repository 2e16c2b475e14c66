"""What the chosen Keras Tuner oracle does not know, mixed into it where it lives (this
process, or a distributed search's chief): a wall-clock budget for the whole search
(`search.budget_minutes`, counted across resumes in the oracle's own saved state) and, for a
racing search, stopping once what is left is noise. It records why the search stopped:
`budget`, `settled`, `schedule` (Hyperband ran its brackets, or the space is spent), or
none of these: `max_trials`."""

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

    def populate_space(self, trial_id):
        # Keras Tuner asks here only for a new trial: a running or interrupted one is
        # handed out first, whatever the budget; a full search stops before asking.
        if self.budget_spent():
            self.stop_reason = "budget"
        elif self.race is not None and self.race.settled():
            self.stop_reason = "settled"
        else:
            response = super().populate_space(trial_id)
            if response["status"] == STOPPED:
                self.stop_reason = "schedule"
            return response
        return {"status": STOPPED}

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
