"""Slow, full-data checks (`make test-full`): the transfer variant and the recommended
setting on all 3,000 images."""

import pytest
from mlflow.tracking import MlflowClient

from catdog import training
from helpers import compose


def full_data(archive, weights, store, tmp_path) -> list[str]:
    return [
        f"data.url=file://{archive}",
        f"model.backbone.weights={weights}",
        f"data.cache_dir={tmp_path}/data",
        *store,
    ]


@pytest.mark.slow
def test_transfer_on_the_full_data(archive, weights, store, tmp_path):
    """The reference reported 97% validation / 96.35% test (one unseeded run, 192 test
    images). Measured here on our fixed 800 / 200 split: 94.6-96.5% validation and
    92.5-95.5% test over 7 runs, so the bars sit at what the data supports, far above the
    50% baseline; a 95% test bar would fail most seeds on a 200-image split."""
    cfg = compose("model=transfer", *full_data(archive, weights, store, tmp_path))
    result = training.train(cfg)
    run = MlflowClient().get_run(result.run_id)
    assert run.info.status == "FINISHED"
    assert run.data.params["n_test_cats"] == "100" and run.data.params["n_test_dogs"] == "100"
    assert result.val_accuracy >= 0.94, f"validation accuracy {result.val_accuracy:.3f}"
    assert result.test_accuracy >= 0.90, f"test accuracy {result.test_accuracy:.3f}"


@pytest.mark.slow
def test_the_recommended_setting_on_the_full_data(archive, weights, store, tmp_path):
    """`experiment=best` scored 790-792 of 800 validation and 198-199 of 200 test images
    over seeds 0-2 (docs/results.md); the bars leave a few images of room for other machines."""
    cfg = compose("experiment=best", *full_data(archive, weights, store, tmp_path), "train.verbose=0")
    result = training.train(cfg)
    assert result.val_accuracy >= 0.98, f"validation accuracy {result.val_accuracy:.4f}"
    assert result.test_accuracy >= 0.96, f"test accuracy {result.test_accuracy:.4f}"
