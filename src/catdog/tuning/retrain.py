"""Retraining a search's chosen hyperparameters with several seeds, scored on the test split."""

from __future__ import annotations

import json

from omegaconf import OmegaConf

from catdog import training
from catdog.schema import SearchRunConfig
from catdog.tracking import record
from catdog.tuning.space import with_values


def retrain(cfg: SearchRunConfig, values: dict, label: str, data, cache, parent_run_id) -> list[float]:
    """Train the hyperparameter VALUES with `search.retrain_seeds` seeds under the parent; test accuracies.
    Runs already finished for the same label and seed (a resumed search) are reused."""
    accuracies, chosen = [], with_values(cfg, values)
    for seed in range(cfg.search.retrain_seeds):
        done = [r for r in record.children(parent_run_id, hparams=label, seed=seed) if r.info.status == record.FINISHED]
        if done and done[0].data.tags.get("hparams_values") == json.dumps(values, sort_keys=True):
            accuracies.append(done[0].data.metrics[record.TEST_ACCURACY])
            continue
        run_cfg = OmegaConf.merge(chosen, {"seed": seed})
        tags = {"hparams": label, "hparams_values": json.dumps(values, sort_keys=True)}
        result = training.train(run_cfg, tags=tags, data=data, cache=cache, parent_run_id=parent_run_id)
        accuracies.append(result.test_accuracy)
    return accuracies
