"""Shared fixtures: small real image folders from the shared archive, temporary SQLite
MLflow stores, and configs composed with `hydra.compose` (plain helpers: helpers.py)."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest

from helpers import ARCHIVE, WEIGHTS, compose, extract_subset, store_overrides

# Reports made by tests (and the commands they start) record their experiments in a ledger
# of their own, never in the project's, which is kept with the published pages.
os.environ.setdefault("CATDOG_LEDGER", os.path.join(tempfile.mkdtemp(prefix="catdog-ledger-"), "ledger.json"))


def _require(path: Path) -> Path:
    if not path.is_file():
        pytest.skip(f"needs {path} (set CATDOG_DATA_URL / CATDOG_BACKBONE_WEIGHTS)")
    return path


@pytest.fixture(scope="session")
def archive() -> Path:
    return _require(ARCHIVE)


@pytest.fixture(scope="session")
def weights() -> str:
    return str(_require(WEIGHTS))


@pytest.fixture(scope="session")
def small_data(archive, tmp_path_factory) -> Path:
    """48 training and 40 validation images (32 validation + 8 test after the split)."""
    return extract_subset(archive, tmp_path_factory.mktemp("small"), {"train": 24, "validation": 20})


@pytest.fixture()
def store(tmp_path) -> list[str]:
    return store_overrides(tmp_path)


@pytest.fixture(scope="session")
def shared_store(tmp_path_factory) -> list[str]:
    return store_overrides(tmp_path_factory.mktemp("store"))


@pytest.fixture(scope="session")
def make_cfg(small_data, weights):
    """The one way tests build a run's config: `make_cfg("transfer", store, "seed=1")`
    composes CONFIG with the small real subset, one quiet epoch, the local backbone
    weights for transfer variants, the store overrides and any extra overrides."""

    def make(variant: str, store: list[str], *extra: str, config: str = "train"):
        overrides = [f"model={variant}", f"data.dir={small_data}", "train.epochs=1", "train.verbose=0", *store]
        if variant in ("transfer", "finetuned"):
            overrides.append(f"model.backbone.weights={weights}")
        if config == "tune":
            # pooling fixed: a trial with avg pooling would build a pooled feature cache of its own
            overrides += ["tuner.max_trials=2", "tuner.epochs=1", "search.retrain_seeds=1", "search.pooling=null"]
        return compose(*overrides, *extra, config=config)

    return make
