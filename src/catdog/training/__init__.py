"""Training: one tracked run of a variant (`train`), the plan of how it fits, the cached
backbone features it may train on, its evaluation and seeding, and resuming a study."""

from catdog.training.run import RunResult, precision, train

__all__ = ["RunResult", "precision", "train"]
