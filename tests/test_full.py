"""Slow, full-data checks (`make test-full`): the transfer variant on all 3,000 images."""

import pytest
from mlflow.tracking import MlflowClient

from catdog import training

from conftest import compose


@pytest.mark.slow
def test_transfer_reaches_95_percent_on_the_full_data(archive, weights, store, tmp_path):
    cfg = compose("model=transfer", f"data.url=file://{archive}", f"model.backbone.weights={weights}",
                  f"data.cache_dir={tmp_path}/data", *store)
    result = training.train(cfg)
    run = MlflowClient().get_run(result.run_id)
    assert run.info.status == "FINISHED"
    assert run.data.params["n_test_cats"] == "100" and run.data.params["n_test_dogs"] == "100"
    assert result.test_accuracy >= 0.95, f"test accuracy {result.test_accuracy:.3f}"
