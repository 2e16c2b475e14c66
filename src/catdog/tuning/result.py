"""What a search returns: its pick with the score to expect of it, why it stopped, and the
pick's retrains on the test split; read by the command line, the tests and benchmarks."""

from __future__ import annotations

import dataclasses
import statistics
from dataclasses import dataclass

from catdog.tuning.pick import Pick


@dataclass(frozen=True)
class Retrained:
    """Test accuracies of hyperparameters retrained with fresh seeds."""

    accuracies: tuple[float, ...]

    @property
    def mean(self) -> float:
        return statistics.fmean(self.accuracies)

    @property
    def sd(self) -> float:
        return statistics.stdev(self.accuracies) if len(self.accuracies) > 1 else 0.0


@dataclass(frozen=True)
class SearchResult:
    parent_run_id: str
    search_id: str
    policy: str  # plain | racing | intensify
    pick: Pick
    settings: int  # settings the search tried
    fits: int
    baseline_accuracy: float
    stop_reason: str  # max_trials | budget | settled | schedule
    race: dict | None = None  # racing: the leader and the settings it cannot be told apart from
    best_test: Retrained | None = None
    reference_test: Retrained | None = None

    @property
    def best(self) -> dict:
        return self.pick.values

    @property
    def best_score(self) -> float:
        return self.pick.score

    def to_json(self) -> dict:
        out = dataclasses.asdict(self)
        for label in ("best_test", "reference_test"):
            retrained = getattr(self, label)
            if retrained is not None:
                out[label] |= {"mean": retrained.mean, "sd": retrained.sd}
        return out

    def line(self) -> str:
        """The command's last line."""
        pick = self.pick
        seeds = f"{pick.seeds} seed{'s' if pick.seeds != 1 else ''}"
        text = (
            f"search {self.search_id} (run {self.parent_run_id}), {self.policy}, stopped by {self.stop_reason} "
            f"after {self.settings} settings and {self.fits} fits: best {pick.values}, validation {pick.score:.2%} "
            f"over {seeds}"
        )
        if pick.expected is not None:
            e = pick.expected
            text += f", expected on fresh seeds {e.mean:.2%} {e.interval.text(digits=2)}"
        else:
            text += " (expected on fresh seeds: unknown, no seed variance measured for this variant yet)"
        if self.race:
            text += f"; cannot be told apart from trials {', '.join(self.race['untold']) or 'none'}"
            text += f" (equivalent within the margin: {', '.join(self.race['equivalent']) or 'none'})"
        for label in ("best_test", "reference_test"):
            retrained = getattr(self, label)
            if retrained is not None:
                text += f"; {label.replace('_', ' ')} accuracy {retrained.mean:.1%} ± {retrained.sd:.1%}"
        return text


@dataclass(frozen=True)
class WorkerResult:
    """A distributed search's worker: the chief ranks the trials and retrains the pick."""

    parent_run_id: str
    search_id: str
    worker: str
