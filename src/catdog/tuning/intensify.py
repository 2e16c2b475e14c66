"""Intensification over seeds (search.policy=intensify), after SMAC's (Hutter et al. 2011):
the search keeps an incumbent, the setting it would pick now, and gives it one more seed
each round up to `cap`; a challenger, a new setting from the oracle, runs on 1, 2, 4, ... of
the seeds the incumbent already has (the same seeds: common random numbers) and is rejected
as soon as its mean on the seeds they share is lower. A challenger that matches all of the
incumbent's seeds with a higher mean becomes the incumbent; on a tie the incumbent stays.

This is decision logic only, with no Keras Tuner or MLflow in it: the search's oracle asks
`next()` what to run and reports each fit with `finished()`, and the replay benchmark
(bench/replay.py) drives the same object from a table of fits. Its state is plain data, so
the oracle saves it with its own and a resumed or distributed search goes on with the same
incumbent."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

from catdog import stats

INCUMBENT, CHALLENGER, REJECTED, UNTRIED = "incumbent", "challenger", "rejected", "untried"


@dataclass
class Setting:
    """One setting's seeds: finished ones with their scores, and those running."""

    key: str
    values: dict = field(default_factory=dict)  # its hyperparameter values, for running it again
    scores: dict[int, float] = field(default_factory=dict)  # seed index -> score
    running: list[int] = field(default_factory=list)
    status: str = UNTRIED
    target: int = 1  # seeds to finish before the next comparison (1, 2, 4, ...)
    rejected_after: int | None = None  # shared seeds when it was rejected
    rejected_by: float | None = None  # its mean minus the incumbent's on them

    @property
    def mean(self) -> float:
        return sum(self.scores.values()) / len(self.scores) if self.scores else float("nan")

    def issued(self) -> int:
        return len(self.scores) + len(self.running)


class Intensifier:
    """The incumbent and its challengers. CAP: the most seeds the incumbent gains."""

    def __init__(self, cap: int = 3):
        self.cap = cap
        self.settings: dict[str, Setting] = {}
        self.incumbent: str | None = None
        self.due = False  # the incumbent's seed of this round is still to be run
        self.failed: list[tuple[str, int]] = []

    # -- what to run next ---------------------------------------------------------------
    def next(self) -> tuple[str, int] | None:
        """The next fit, (setting, seed index): the incumbent's next seed when a round
        starts (once the round's challengers are settled), else a challenger's next seed;
        None: time for a new setting (`add`), which starts the next round."""
        inc = self.settings.get(self.incumbent)
        active = [s for s in self.settings.values() if s.status == CHALLENGER]
        if inc is not None and self.due and not active and not inc.running:
            self.due = False
            if inc.issued() < self.cap:
                return self._issue(inc, self._next_seed(inc))
        for challenger in active:
            wanted = self._shared_order()[: challenger.target]
            todo = [i for i in wanted if i not in challenger.scores and i not in challenger.running]
            if todo:
                return self._issue(challenger, todo[0])
        return None

    def add(self, key: str, values: dict | None = None) -> int:
        """A new setting from the oracle (VALUES: its hyperparameters): the incumbent if it
        is the first, else a challenger; returns the seed index its first fit runs."""
        setting = self.settings[key] = Setting(key, dict(values or {}))
        self.due = True  # a new round starts with the incumbent's next seed
        if self.incumbent is None:
            self.incumbent, setting.status = key, INCUMBENT
            return self._issue(setting, 0)[1]
        setting.status = CHALLENGER
        return self._issue(setting, self._shared_order()[0])[1]

    def _shared_order(self) -> list[int]:
        """A challenger's seeds: the incumbent's finished ones, lowest index first, then those
        it is running."""
        inc = self.settings[self.incumbent]
        return sorted(inc.scores) + [i for i in inc.running if i not in inc.scores] or [0]

    def _next_seed(self, setting: Setting) -> int:
        used = set(setting.scores) | set(setting.running) | {i for k, i in self.failed if k == setting.key}
        return next(i for i in range(len(used) + 1) if i not in used)

    def _issue(self, setting: Setting, seed: int) -> tuple[str, int]:
        setting.running.append(seed)
        return setting.key, seed

    # -- what a fit taught ----------------------------------------------------------------
    def finished(self, key: str, seed: int, score: float | None) -> None:
        """SCORE of KEY's fit on seed SEED (None: the fit failed): a failed challenger is
        rejected; a challenger is compared once its batch of seeds is done."""
        setting = self.settings[key]
        if seed in setting.running:
            setting.running.remove(seed)
        if score is None:
            self.failed.append((key, seed))
            if setting.status == CHALLENGER:
                setting.status = REJECTED
            return
        setting.scores[seed] = float(score)
        for challenger in [s for s in self.settings.values() if s.status == CHALLENGER]:
            self._judge(challenger)

    def _judge(self, challenger: Setting) -> None:
        inc = self.settings[self.incumbent]
        shared = sorted(set(challenger.scores) & set(inc.scores))
        if challenger.running or not shared or len(challenger.scores) < min(challenger.target, len(inc.scores)):
            return
        mine = sum(challenger.scores[i] for i in shared) / len(shared)
        theirs = sum(inc.scores[i] for i in shared) / len(shared)
        if mine < theirs:
            self._reject(challenger, len(shared), mine - theirs)
        elif len(shared) == len(inc.scores) and not inc.running:
            if mine > theirs:
                inc.status, challenger.status = REJECTED, INCUMBENT
                inc.rejected_after, inc.rejected_by = len(shared), theirs - mine
                self.incumbent = challenger.key
            else:  # a tie on every seed the incumbent has: the incumbent stays
                self._reject(challenger, len(shared), 0.0)
        else:
            challenger.target = min(2 * challenger.target, max(len(inc.scores), 1))

    def _reject(self, setting: Setting, shared: int, by: float) -> None:
        setting.status, setting.rejected_after, setting.rejected_by = REJECTED, shared, by

    # -- reading it ---------------------------------------------------------------------
    def pick(self) -> Setting | None:
        return self.settings.get(self.incumbent)

    def seed_variance(self) -> float | None:
        """The variance of one fit's score between seeds, pooled over the settings that ran
        two or more; None before any has."""
        # Each fit's score as a one-column row: the pooled variance of per-seed means.
        found = stats.pooled_seed_variance([[v] for v in s.scores.values()] for s in self.settings.values())
        return found.var if found else None

    def fits(self) -> int:
        return sum(len(s.scores) for s in self.settings.values()) + len(self.failed)

    def state(self) -> dict:
        """Plain data, for the oracle's saved state."""
        return {
            "cap": self.cap,
            "incumbent": self.incumbent,
            "due": self.due,
            "failed": [list(f) for f in self.failed],
            "settings": [
                {**asdict(s), "scores": {str(i): v for i, v in s.scores.items()}} for s in self.settings.values()
            ],
        }

    @classmethod
    def from_state(cls, state: dict) -> Intensifier:
        out = cls(state["cap"])
        out.incumbent, out.due = state["incumbent"], state["due"]
        out.failed = [tuple(f) for f in state["failed"]]
        for s in state["settings"]:
            setting = Setting(**{**s, "scores": {int(i): v for i, v in s["scores"].items()}})
            # A fit that was running when the search stopped is handed out again by Keras
            # Tuner's retry queue, and reported once it finishes.
            out.settings[setting.key] = setting
        return out
