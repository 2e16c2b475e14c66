"""The schemas of a search: its space (one row per hyperparameter, `SEARCHED`), how it runs
(`SearchConfig`) and the Keras Tuner class that runs it (`TunerConfig`); what they mean
together: the settings a search varies (`hp_names`), its policy, and the checks across
groups (`check_search`)."""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass, field, make_dataclass
from typing import TYPE_CHECKING, Any, Optional

from omegaconf import MISSING

from catdog import CatdogError
from catdog.schema.run import POOLINGS, _least

if TYPE_CHECKING:
    from catdog.schema import SearchRunConfig


@dataclass
class Range:
    """A float searched between `min` and `max`, in steps of `step` (None: continuous)."""

    min: float = MISSING
    max: float = MISSING
    step: float | None = None


@dataclass
class LogRange:
    """A positive float searched on a log scale between `min` and `max`."""

    min: float = MISSING
    max: float = MISSING


@dataclass(frozen=True)
class Searched:
    """One hyperparameter a search can vary: the config value it sets, how Keras Tuner draws
    it (LINEAR, LOG or CHOICE), its default space (`search.<name>`; null in a config keeps
    the configured value), the values it may take, and where a variant uses it. Adding a
    hyperparameter to searches is one row of SEARCHED."""

    name: str
    path: str
    kind: str
    default: Any
    allowed: Callable[[Any], bool]
    rule: str  # what ALLOWED accepts, for the error message
    applies: Callable[[Any], bool] = lambda cfg: True


LINEAR, LOG, CHOICE = "linear", "log", "choice"
# How a search spends its fits on settings and seeds (docs/how-it-works.md, "Searches"):
# one seed per setting; racing (tuning/race.py); intensification (tuning/intensify.py).
POLICIES = ("plain", "racing", "intensify")
_rotates = lambda cfg: cfg.model.rotation_factor is not None
_has_backbone = lambda cfg: cfg.model.backbone is not None
_fine_tunes = lambda cfg: cfg.model.backbone is not None and cfg.model.backbone.fine_tune_at is not None
# In the order Keras Tuner declares them: its random draws follow this order, so a search
# started before keeps drawing the same trials.
SEARCHED = (
    Searched("dropout", "model.dropout", LINEAR, Range(0.0, 0.5), lambda v: 0 <= v < 1, "lie in [0, 1)"),
    Searched("dense_units", "model.dense_units", CHOICE, [32, 64, 128, 256], lambda v: v >= 0, "be integers >= 0"),
    Searched(
        "rotation_factor", "model.rotation_factor", LINEAR, Range(0.0, 0.5, 0.1), lambda v: v >= 0, "be >= 0", _rotates
    ),
    Searched("learning_rate", "train.learning_rate", LOG, LogRange(1.0e-4, 3.0e-3), lambda v: v > 0, "be > 0"),
    Searched(
        "pooling",
        "model.pooling",
        CHOICE,
        ["flatten", "avg"],
        lambda v: v in POOLINGS,
        f"be one of {POOLINGS}",
        _has_backbone,
    ),  # fmt: skip
    Searched(
        "fine_tune_at",
        "model.backbone.fine_tune_at",
        CHOICE,
        [80, 100, 120],
        lambda v: v > 0,
        "be positive layer indices",
        _fine_tunes,
    ),  # fmt: skip
    Searched(
        "fine_tune_learning_rate",
        "train.fine_tune.learning_rate",
        LOG,
        LogRange(1.0e-5, 3.0e-4),
        lambda v: v > 0,
        "be > 0",
        _fine_tunes,
    ),  # fmt: skip
)


def _check_space(h: Searched, space) -> None:
    if space is None:  # kept at the configured value
        return
    name = f"search.{h.name}"
    if h.kind == CHOICE:
        if not space or not all(h.allowed(v) for v in space):
            raise CatdogError(f"{name} must be a non-empty list, every value must {h.rule}; got {list(space or [])}")
        return
    if space.min > space.max:
        raise CatdogError(f"{name}: min ({space.min}) must not exceed max ({space.max})")
    if not (h.allowed(space.min) and h.allowed(space.max)):
        raise CatdogError(f"{name}: min and max must {h.rule}, got [{space.min}, {space.max}]")
    if h.kind == LINEAR and space.step is not None and space.step <= 0:
        raise CatdogError(f"{name}.step must be positive or null, got {space.step}")


def _space_type(h: Searched):
    if h.kind == CHOICE:
        return Optional[list[type(h.default[0])]]  # noqa: UP045 - make_dataclass needs a runtime type
    return Optional[type(h.default)]  # noqa: UP045 - make_dataclass needs a runtime type


def _search_post_init(self) -> None:
    for h in SEARCHED:
        _check_space(h, getattr(self, h.name))
    _least("search.retrain_seeds", self.retrain_seeds, 0)
    _least("search.max_seeds", self.max_seeds, 1)
    if self.policy not in POLICIES:
        raise CatdogError(f"search.policy must be one of {', '.join(POLICIES)}, got {self.policy!r}")
    if self.racing and self.policy not in ("plain", "racing"):
        raise CatdogError(f"search.racing=true is search.policy=racing; it cannot go with search.policy={self.policy}")
    if not 0 < self.race_alpha < 1:
        raise CatdogError(f"search.race_alpha must lie in (0, 1), got {self.race_alpha}")
    if self.equivalence_margin < 0:
        raise CatdogError(f"search.equivalence_margin must be >= 0 (points), got {self.equivalence_margin}")
    if self.budget_minutes is not None and self.budget_minutes <= 0:
        raise CatdogError(f"search.budget_minutes must be > 0 or null, got {self.budget_minutes}")


def _default(value):
    return field(default_factory=lambda: copy.deepcopy(value))


# search.<name> for every row of SEARCHED, then the search's own settings.
SearchConfig = make_dataclass(
    "SearchConfig",
    [(h.name, _space_type(h), _default(h.default)) for h in SEARCHED]
    + [
        # After the search: retrain the pick with this many fresh seeds and score them on the
        # test split; `reference` does the same for the variant's configured values.
        ("retrain_seeds", int, 3),
        ("reference", bool, True),
        ("overwrite", bool, False),  # True: start the search over instead of resuming it
        ("project_dir", str, MISSING),
        ("policy", str, "plain"),  # how settings get seeds: POLICIES
        ("racing", bool, False),  # the same as policy=racing, as stores and commands made before it say
        ("max_seeds", int, 3),  # racing: seeds a setting runs at most; intensify: the incumbent's cap
        ("race_alpha", float, 0.05),  # racing: one-sided, split over the max_seeds looks (Bonferroni)
        ("equivalence_margin", float, 0.5),  # racing: points of validation accuracy (a 90% interval inside it)
        # The search's wall time, across resumes; None: no budget.
        ("budget_minutes", Optional[float], None),  # noqa: UP045 - make_dataclass needs a runtime type
    ],
    namespace={"__post_init__": _search_post_init, "__doc__": "The search space and how a search runs."},
)


@dataclass
class TunerConfig:
    """The Keras Tuner class of a search (`_target_`), its trials and their epochs, workers."""

    _target_: str = MISSING  # the Keras Tuner class
    name: str = MISSING
    objective: str = "val_accuracy"
    max_trials: int = 20  # trials (intensifying: fits) at most
    # Per trial: the transfer head's validation accuracy plateaus within a few; retrains use train.epochs.
    epochs: int = 10
    executions_per_trial: int = 1  # >1 averages the objective over repeated fits
    seed: int = 0  # decides which settings the trials try
    workers: int = 0  # >0: trials in this many worker processes, this one the chief (docs/team.md)
    wait_s: float = 600  # once every trial is handed out, how long the chief waits for running ones
    options: dict[str, Any] = field(default_factory=dict)  # the tuner class's own arguments

    def __post_init__(self):
        for key in ("max_trials", "epochs", "executions_per_trial"):
            _least(f"tuner.{key}", getattr(self, key), 1)
        _least("tuner.workers", self.workers, 0)
        _check_tuner_class(self._target_, self.options)


# The Keras Tuner tuners a search runs (tuner._target_), each with its tracked twin and its
# oracle in catdog.tuning.tracked.TUNERS.
TUNER_CLASSES = ("keras_tuner.RandomSearch", "keras_tuner.BayesianOptimization", "keras_tuner.GridSearch",
                 "keras_tuner.Hyperband")  # fmt: skip

# What catdog-tune passes to every tuner itself (tuner.objective, tuner.seed, ...).
SET_BY_THE_SEARCH = (
    "hypermodel",
    "objective",
    "max_trials",
    "executions_per_trial",
    "seed",
    "directory",
    "project_name",
    "overwrite",
)


def _check_tuner_class(target: str, options: dict) -> None:
    """TARGET is a Keras Tuner class that takes OPTIONS, each of its default's type: a
    mistake there would otherwise surface as a traceback once the search has started."""
    import inspect

    import keras_tuner as kt
    from hydra.utils import get_class

    try:
        cls = get_class(target)
    except (ImportError, ValueError, AttributeError) as exc:
        raise CatdogError(f"tuner._target_ {target!r}: no such class to import") from exc
    if not issubclass(cls, kt.Tuner):
        raise CatdogError(f"tuner._target_ {target!r} is not a Keras Tuner tuner class")
    if target not in TUNER_CLASSES:
        raise CatdogError(f"tuner._target_ {target!r}: catdog-tune runs {', '.join(TUNER_CLASSES)}")
    params = inspect.signature(cls).parameters
    for name, value in options.items():
        if name in SET_BY_THE_SEARCH:
            raise CatdogError(f"tuner.options.{name}: catdog-tune sets it (tuner.{name} where there is one)")
        if name not in params:
            raise CatdogError(f"tuner.options.{name}: {cls.__name__} takes no such argument")
        default = params[name].default
        if default in (None, inspect.Parameter.empty) or value is None:
            continue
        kinds = (int, float) if isinstance(default, float) else type(default)
        if isinstance(value, bool) != isinstance(default, bool) or not isinstance(value, kinds):
            kind = type(default).__name__
            raise CatdogError(f"tuner.options.{name} must be of type {kind} (default {default}), got {value!r}")


def check_search(cfg: SearchRunConfig) -> None:
    """What the search's groups cannot check alone, run by the search and by a sweep's
    check of every job: a linear head (no dense units) is only for backbones, the variant
    must use one of the settings left to search, and a policy over seeds ranks by
    validation accuracy with one fit per seed (intensify, at fixed epochs)."""
    units = cfg.search.dense_units
    if units is not None and not cfg.model.backbone and min(units) < 1:
        raise CatdogError(
            f"search.dense_units: a linear head needs a backbone; "
            f"{cfg.model.name} needs integers >= 1, got {list(units)}"
        )
    if not hp_names(cfg):
        raise CatdogError(f"nothing to search: every setting {cfg.model.name} uses is fixed (search.<name>=null)")
    chosen = policy(cfg)
    if chosen == "plain":
        return
    name = "search.racing" if cfg.search.racing else f"search.policy={chosen}"
    if cfg.tuner.objective != "val_accuracy":
        raise CatdogError(f"{name} ranks settings by validation accuracy; tuner.objective is {cfg.tuner.objective}")
    if cfg.tuner.executions_per_trial != 1:
        raise CatdogError(f"{name} decides how many seeds a setting gets: leave tuner.executions_per_trial at 1")
    if chosen == "intensify" and cfg.tuner._target_ == "keras_tuner.Hyperband":
        raise CatdogError(
            "search.policy=intensify re-runs settings at the same epochs, and Hyperband gives settings other "
            "epochs: use tuner=random or tuner=bayesian"
        )
    if chosen == "intensify" and cfg.tuner._target_ == "keras_tuner.GridSearch":
        # The grid walks its combinations from every ended trial, re-run seeds included,
        # which are not settings of its own.
        raise CatdogError("search.policy=intensify proposes settings with tuner=random or tuner=bayesian, not a grid")


def policy(cfg: SearchRunConfig) -> str:
    """How the search gives settings seeds: `search.policy`, or racing where `search.racing`
    says so (as stores and commands made before `search.policy` do)."""
    return "racing" if cfg.search.racing else cfg.search.policy


def hp_names(cfg: SearchRunConfig) -> list[str]:
    """The settings a search varies: each row of `schema.SEARCHED` that CFG's variant uses
    (rotation for variants that rotate, pooling for backbones, the fine-tuning cut and rate
    for fine-tuned ones), unless `search.<name>: null` keeps it at the configured value."""
    return [h.name for h in SEARCHED if h.applies(cfg) and cfg.search[h.name] is not None]
