"""Racing settings over seeds (search.racing): the chosen Keras Tuner oracle proposes a
setting; the race decides how many seeds it gets. Each setting starts with one seed; after
every seed it is compared with the leader (the best mean among settings that ran all
`search.max_seeds` seeds) on the same validation images, and on the same seeds where both
have them; a setting confidently worse (one-sided, at `search.race_alpha` split over the
max_seeds looks) is dropped, the others go on to max_seeds. The oracle learns each
setting's mean over the seeds it ran.

The race's record lives in the tracking store, so that a distributed search's workers and
a search resumed after SIGTERM race against the same leader: search run -> setting run
(a Keras Tuner trial, tag `race_status`) -> seed runs (each with its per-image validation
results)."""

from __future__ import annotations

import json
from dataclasses import dataclass

import mlflow
import numpy as np

from catdog import stats
from catdog.schema import SearchRunConfig
from catdog.tracking import record
from catdog.training import seeding

STATUS_TAG = "race_status"  # survivor | dropped | stopped (the budget ran out)
SURVIVOR, DROPPED, STOPPED = "survivor", "dropped", "stopped"


@dataclass(frozen=True)
class Look:
    """A setting against the leader after SEEDS seeds: its difference (setting minus leader,
    on validation accuracy) with the 95% interval, and the one-sided p that the leader is
    no better, against the level that drops it."""

    seeds: int
    leader: str  # the leader's trial id
    difference: float
    interval: stats.Interval
    p: float
    level: float

    @property
    def dropped(self) -> bool:
        return self.p < self.level


def look(setting: np.ndarray, leader: np.ndarray, level: float, leader_id: str = "") -> Look:
    """SETTING (j seeds x images, 0/1) against LEADER (k seeds x the same images): on the
    first j seeds of both, paired seed by seed, once j >= 2; after one seed, against all
    the leader's seeds, the setting taking the leader's seed variance."""
    j = len(setting)
    c = paired(leader, setting) if j >= 2 else stats.compare(leader, setting, list(range(len(leader))), ["only"])
    return Look(j, leader_id, -c.difference, -c.interval, c.p_greater, level)


def paired(a: np.ndarray, b: np.ndarray) -> stats.Comparison:
    """A minus B on their common seeds, paired seed by seed and image by image."""
    k = min(len(a), len(b))
    return stats.compare(a[:k], b[:k], list(range(k)), list(range(k)))


@dataclass(frozen=True)
class Setting:
    """A survivor: a setting that ran every seed, as the store has it."""

    trial_id: str
    correct: np.ndarray  # seeds x validation images, 0/1, in seed order

    @property
    def mean(self) -> float:
        return float(self.correct.mean()) if len(self.correct) else float("nan")


class Race:
    """The race of one search, read from and written to the tracking store."""

    def __init__(self, parent_run_id: str, search_seed: int, max_seeds: int, alpha: float, margin_points: float):
        self.parent_run_id = parent_run_id
        self.search_seed = search_seed
        self.max_seeds = max_seeds
        self.level = alpha / max_seeds  # one-sided, Bonferroni over the looks a setting can get
        self.margin = margin_points / 100
        self._survivors: dict[str, Setting] = {}  # setting run id -> the survivor it is (finished: unchanging)
        self.last: tuple[int, str] | None = None  # the latest setting's seeds and status, for its progress line

    @classmethod
    def of(cls, cfg: SearchRunConfig, parent_run_id: str) -> Race | None:
        s = cfg.search
        return cls(parent_run_id, cfg.seed, s.max_seeds, s.race_alpha, s.equivalence_margin) if s.racing else None

    def seed(self, index: int) -> int:
        """The seed of every setting's INDEX-th fit: the same for all settings, so that
        settings are compared on the same seeds (common random numbers)."""
        return seeding.derive(self.search_seed, index)

    # -- reading the store ------------------------------------------------------------
    def survivors(self) -> list[Setting]:
        """Every setting that ran all its seeds without being dropped, with its results."""
        for run in record.children(self.parent_run_id, record.TRIAL, **{STATUS_TAG: SURVIVOR}):
            if run.info.run_id not in self._survivors:
                seeds = record.seed_results(run.info.run_id)
                matrix = np.array([seeds[i] for i in sorted(seeds)])
                self._survivors[run.info.run_id] = Setting(run.data.tags.get("trial_id", "?"), matrix)
        return list(self._survivors.values())

    def leader(self, exclude: str | None = None) -> Setting | None:
        """The best mean among the survivors."""
        return max((s for s in self.survivors() if s.trial_id != exclude), key=lambda s: s.mean, default=None)

    def settled(self) -> bool:
        """Every survivor other than the leader is resolved from it (95% interval excludes 0)
        or equivalent within the margin; needs one survivor besides the leader."""
        best = self.recommendation()
        return len(self._survivors) >= 2 and set(best["untold"]) <= set(best["equivalent"])

    # -- running one setting ----------------------------------------------------------
    def run(self, trial, setting_run_id: str, fit_seed, budget_spent) -> float:
        """Race TRIAL (whose run is open): FIT_SEED(index, seed) fits one seed in a nested
        run and returns its 0/1 validation vector; finished seeds of an interrupted race are
        reused. Returns the mean validation accuracy over the seeds run."""
        done = record.seed_results(setting_run_id)
        rows, looks, status = [], [], SURVIVOR
        for index in range(self.max_seeds):
            rows.append(done[index] if index in done else fit_seed(index, self.seed(index)))
            leader = self.leader(exclude=trial.trial_id)
            if leader is not None:
                looks.append(look(np.array(rows), leader.correct, self.level, leader.trial_id))
                if looks[-1].dropped:
                    status = DROPPED
                    break
            if index + 1 < self.max_seeds and budget_spent():
                status = STOPPED
                break
        matrix = np.array(rows)
        self._record(setting_run_id, matrix, looks, status)
        self.last = (len(matrix), status)
        return float(matrix.mean())

    def _record(self, run_id: str, matrix: np.ndarray, looks: list[Look], status: str) -> None:
        """The race's outcome on the setting run: tags, metrics and race.json (every look,
        and the running mean with its interval seed by seed, for the review page)."""
        tags = {STATUS_TAG: status, "race_seeds": str(len(matrix))}
        if looks:
            last = looks[-1]
            mlflow.log_metrics(
                {"race_difference": last.difference, "race_low": last.interval.low, "race_high": last.interval.high,
                 "race_p": last.p}
            )  # fmt: skip
        mlflow.set_tags(tags)
        mlflow.log_metric(record.TRIAL_SCORE, float(matrix.mean()))
        running = []
        for j in range(1, len(matrix) + 1):
            e = stats.estimate(matrix[:j])
            running.append({"seeds": j, "mean": e.mean, "low": e.interval.low, "high": e.interval.high})
        outcome = {
            "status": status,
            "seeds": len(matrix),
            "level": self.level,
            "looks": [
                {"seeds": x.seeds, "leader": x.leader, "difference": x.difference, "low": x.interval.low,
                 "high": x.interval.high, "p": x.p, "dropped": x.dropped}
                for x in looks
            ],
            "running": running,
        }  # fmt: skip
        mlflow.log_text(json.dumps(outcome, indent=1), record.RACE_OUTCOME)

    def recommendation(self) -> dict | None:
        """The leader, and the survivors it cannot be told apart from (95% interval includes
        0), those among them equivalent within the margin."""
        leader = self.leader()
        if leader is None:
            return None
        close, same = [], []
        for other in self._survivors.values():
            if other is leader:
                continue
            c = paired(leader.correct, other.correct)
            if 0 in c.interval:
                close.append(other.trial_id)
                if c.equivalent(self.margin):
                    same.append(other.trial_id)
        return {"trial": leader.trial_id, "mean": leader.mean, "untold": close, "equivalent": same}
