"""The search's Keras Tuner tuners: every trial a nested, seeded MLflow run, and Ctrl-C that
never corrupts the tuner's state files. One class per Keras Tuner tuner the search offers,
each built with its oracle from tuning.oracle."""

from __future__ import annotations

import time

import keras_tuner as kt
import mlflow
import numpy as np

from catdog import tracking
from catdog.tracking import record
from catdog.training import seeding, stopping
from catdog.training.run import log_validation
from catdog.tuning import distributed, oracle
from catdog.tuning.oracle import SEED_INDEX, SETTING


class TrackedTrials:
    """Mixed into each Keras Tuner tuner class below: each trial is a nested MLflow run
    under the search's parent run, trains with a seed derived from the search's seed and the
    trial (recorded as the run's `seed` tag), and prints one progress line. A trial re-run
    after an interruption reopens its earlier run instead of adding a duplicate. Racing, a
    trial is a setting whose seeds are runs under it; intensifying, a trial is one seed of a
    setting, and its run goes under the setting's run (search -> setting -> seed).

    Ctrl-C (or SIGTERM) stops the search at the next safe point (training.stopping): a
    training step, a racing setting's next seed, the end of a trial; never while Keras
    Tuner writes its state files, which it does not write atomically (an interrupt there
    leaves an unreadable oracle.json and a search that cannot resume)."""

    def __init__(self, *args, parent_run_id: str, search_seed: int, race=None, **kwargs):
        super().__init__(*args, **kwargs)
        self.parent_run_id = parent_run_id
        self.search_seed = search_seed
        self.race = race  # a tuning.race.Race when settings race over seeds
        self._common_seed = None
        self.started = time.perf_counter()
        self._execution = 0
        self.workers = {}  # local worker processes when this tuner is a distributed search's chief
        self.wait_s = 600.0

    def trial_seed(self, trial_id: str, execution: int = 0) -> int:
        """The seed of a plain trial's EXECUTION-th fit: derived from the search's seed and the trial."""
        return seeding.derive(self.search_seed, int(trial_id), execution)

    def search(self, *args, **kwargs):
        with stopping.deferred():
            self._search(*args, **kwargs)

    def _search(self, *args, **kwargs):
        if distributed.role() != "chief":
            return super().search(*args, **kwargs)
        # Keras Tuner's own chief loop waits for ever on a lost worker: serve the oracle here.
        self.save()
        distributed.serve_oracle(self.oracle, self.workers, self.wait_s, self._fail_lost_trial, stopping.requested)
        return None

    def _trial_run_id(self, trial_id: str, parent: str | None = None) -> str | None:
        runs = record.children(parent or self.parent_run_id, trial_id=trial_id)
        return runs[0].info.run_id if runs else None

    def _fail_lost_trial(self, trial_id: str, reason: str) -> None:
        trial = self.oracle.trials.get(trial_id)
        setting = trial.hyperparameters.values.get(SETTING) if trial is not None else None
        # An intensifying search's trial is one seed, its run under its setting's run.
        parent = self._trial_run_id(setting) if setting is not None else self.parent_run_id
        run_id = self._trial_run_id(trial_id, parent) if parent else None
        client = mlflow.MlflowClient()
        if run_id and client.get_run(run_id).info.status == "RUNNING":
            client.set_tag(run_id, "mlflow.note.content", f"Ended FAILED by the search's chief: {reason}.")
            client.set_terminated(run_id, status="FAILED")

    def run_trial(self, trial, *args, **kwargs):
        """One trial as a nested run: a setting with one seeded fit per execution; racing, a
        setting with a nested run per seed until the race drops it or it has every seed;
        intensifying, one seed of a setting (`_intensify_trial`)."""
        stopping.check()
        self._execution = 0
        if SETTING in trial.hyperparameters.values:
            return self._intensify_trial(trial, *args, **kwargs)
        tags = tracking.run_tags("trial", variant=self.hypermodel.name, trial_id=trial.trial_id, tuner_id=self.tuner_id)
        if self.race is None:
            seeds = [self.trial_seed(trial.trial_id, e) for e in range(self.executions_per_trial)]
            tags["seed"] = str(seeds[0])
            if len(seeds) > 1:
                tags["execution_seeds"] = ",".join(map(str, seeds))
        with tracking.tracked_run(
            run_id=self._trial_run_id(trial.trial_id),
            run_name=f"trial-{trial.trial_id}",
            parent_run_id=self.parent_run_id,
            nested=True,
            tags=tags,
        ) as setting:
            mlflow.log_params(trial.hyperparameters.values)
            if self.race is None:
                return super().run_trial(trial, *args, **kwargs)
            fit_seed = lambda index, seed: self._fit_seed(trial, setting.info.run_id, index, seed, *args, **kwargs)
            budget_spent = getattr(self.oracle, "budget_spent", lambda: False)  # a worker's oracle is the chief's
            return self.race.run(trial, setting.info.run_id, fit_seed, budget_spent)

    def _intensify_trial(self, trial, *args, **kwargs):
        """One seed of a setting (an intensifying search's trial): its run goes under the
        setting's run, which the setting's first trial made."""
        values = trial.hyperparameters.values
        key, index = values[SETTING], int(values[SEED_INDEX])
        setting_values = {k: v for k, v in values.items() if k not in (SETTING, SEED_INDEX)}
        setting_id = self._trial_run_id(key)
        # Every setting's INDEX-th fit has the same seed, as in a race (Race.seed): settings
        # are compared on common random numbers.
        self._common_seed = seeding.derive(self.search_seed, index)
        setting_tags = tracking.run_tags("trial", variant=self.hypermodel.name, trial_id=key, tuner_id=self.tuner_id)
        seed_tags = tracking.run_tags("seed", variant=self.hypermodel.name, trial_id=trial.trial_id, setting=key,
                                      seed=self._common_seed, seed_index=index)  # fmt: skip
        with tracking.tracked_run(
            run_id=setting_id,
            run_name=f"setting-{key}",
            parent_run_id=self.parent_run_id,
            nested=True,
            tags=None if setting_id else setting_tags,
        ) as setting:
            if setting_id is None:
                mlflow.log_params(setting_values)
            with tracking.tracked_run(
                run_id=self._trial_run_id(trial.trial_id, setting.info.run_id),
                run_name=f"setting-{key}-seed{index}",
                parent_run_id=setting.info.run_id,
                nested=True,
                tags=seed_tags,
            ):
                mlflow.log_params(setting_values)
                return super().run_trial(trial, *args, **kwargs)

    def _fit_seed(self, trial, setting_id: str, index: int, seed: int, *args, **kwargs):
        """The INDEX-th seed of a racing setting, in a run of its own under the setting's:
        returns its 0/1 validation results, ordered by image as the race keeps them."""
        stopping.check()  # a stop that came between two seeds
        self._common_seed = seed
        tags = tracking.run_tags(
            "seed", variant=self.hypermodel.name, trial_id=trial.trial_id, seed=seed, seed_index=index
        )
        with tracking.tracked_run(
            run_name=f"trial-{trial.trial_id}-seed{index}", parent_run_id=setting_id, nested=True, tags=tags
        ):
            mlflow.log_params(trial.hyperparameters.values)
            self._execution = 0
            super().run_trial(trial, *args, **kwargs)
        val, data = self.hypermodel.validation, self.hypermodel.data
        return (val["predicted"] == data.val.labels).astype(float)[np.argsort(data.val.ids)]

    def _build_and_fit_model(self, trial, *args, **kwargs):
        # Keras Tuner's per-execution hook: each repeated fit of a trial gets its own seed
        # (racing and intensifying: the seed of this round, the same for every setting).
        common = self.race is not None or SETTING in trial.hyperparameters.values
        self.hypermodel.seed = self._common_seed if common else self.trial_seed(trial.trial_id, self._execution)
        results = super()._build_and_fit_model(trial, *args, **kwargs)
        log_validation(self.hypermodel.data, self.hypermodel.validation, record.val_predictions(self._execution))
        self._execution += 1
        return results

    def on_trial_end(self, trial):
        super().on_trial_end(trial)
        trial = self.oracle.get_trial(trial.trial_id)
        values = trial.hyperparameters.values
        intensifier = getattr(self.oracle, "intensifier", None)  # a worker's oracle is the chief's
        setting = intensifier.settings[values[SETTING]] if intensifier and SETTING in values else None
        score = "failed" if trial.score is None else f"{trial.score:.4f}"
        if setting is not None:  # the setting's run shows its mean so far
            run_id, value = self._trial_run_id(setting.key), (setting.mean if setting.scores else None)
            score += f" (setting {setting.key}, seed {values[SEED_INDEX]}: {setting.status}, mean {setting.mean:.4f})"
            pick = intensifier.pick()
            best_score = pick.mean if pick and pick.scores else None
        else:
            run_id = None if SETTING in values else self._trial_run_id(trial.trial_id)
            value = trial.score
            best = self.oracle.get_best_trials(1)
            best_score = best[0].score if best else None
        if value is not None and run_id:
            mlflow.MlflowClient().log_metric(run_id, record.TRIAL_SCORE, value)
        shown = " ".join(f"{k}={_fmt(v)}" for k, v in values.items() if not k.startswith(("tuner/", "intensify/")))
        if self.race is not None and self.race.last is not None:
            seeds, status = self.race.last
            score += f" over {seeds} seed{'s' if seeds != 1 else ''} ({status})"
        best_text = "-" if best_score is None else f"{best_score:.4f}"
        elapsed = time.perf_counter() - self.started
        print(
            f"trial {int(trial.trial_id) + 1}/{self.oracle.max_trials or '?'}  {shown}  "
            f"{self.oracle.objective.name}={score}  best={best_text}  elapsed {elapsed / 60:.1f} min",
            flush=True,
        )
        stopping.check()


def _fmt(value) -> str:
    return f"{value:.3g}" if isinstance(value, float) else str(value)


class RandomSearch(TrackedTrials, kt.Tuner):
    """Keras Tuner's random search (its oracle: oracle.RandomSearchOracle), tracked."""


class BayesianOptimization(TrackedTrials, kt.Tuner):
    """Keras Tuner's Gaussian-process search (oracle.BayesianOptimizationOracle), tracked."""


class GridSearch(TrackedTrials, kt.Tuner):
    """Keras Tuner's grid search (oracle.GridSearchOracle), tracked."""


class Hyperband(TrackedTrials, kt.Hyperband):
    """Keras Tuner's Hyperband, tracked: its trials' epochs and the weights they go on from
    are kt.Hyperband's; its oracle, oracle.HyperbandOracle, is given, not built here."""

    def __init__(self, oracle, hypermodel, **kwargs):
        kt.Tuner.__init__(self, oracle, hypermodel, **kwargs)  # kt.Hyperband's own would build its oracle


# The Keras Tuner class a config names (`tuner._target_`) -> the tracked tuner and its oracle.
TUNERS = {
    "keras_tuner.RandomSearch": (RandomSearch, oracle.RandomSearchOracle),
    "keras_tuner.BayesianOptimization": (BayesianOptimization, oracle.BayesianOptimizationOracle),
    "keras_tuner.GridSearch": (GridSearch, oracle.GridSearchOracle),
    "keras_tuner.Hyperband": (Hyperband, oracle.HyperbandOracle),
}
