"""Keras Tuner searches over a variant's hyperparameters, with every trial a nested MLflow
run under one parent run per search."""

from catdog.tuning.result import SearchResult, WorkerResult
from catdog.tuning.search import tune

__all__ = ["SearchResult", "WorkerResult", "tune"]
