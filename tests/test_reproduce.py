"""`catdog reproduce`: a logged run trained again from its logged config, checked metric by
metric against the original, with what differs named when it does not reproduce."""

import json

import pytest
from mlflow.tracking import MlflowClient

from catdog import training
from catdog.cli import main as catdog_main
from catdog.training.reproduce import TAG
from helpers import store_overrides, write_images


def _reproduce(uri, run_id, capsys, *overrides) -> tuple[dict, int]:
    code = 0
    try:
        catdog_main(["--tracking-uri", uri, "reproduce", run_id, *overrides, "--json"])
    except SystemExit as exc:
        code = exc.code
    return json.loads(capsys.readouterr().out.strip().splitlines()[-1]), code


def test_a_run_reproduces_and_a_changed_one_says_what_differs(make_cfg, tmp_path, capsys):
    store = [*store_overrides(tmp_path), "tracking.experiment=repro", "train.log_model=false"]
    original = training.train(make_cfg("cnn", store, "seed=2"))
    uri = f"sqlite:///{tmp_path}/mlflow.db"

    same, code = _reproduce(uri, original.run_id, capsys)
    assert code == 0 and same["reproduced"]
    checks = {c["name"]: c for c in same["checks"]}
    assert set(checks) == {"validation images right", "test images right", "initial weights digest", "validation loss"}
    assert all(c["same"] and c["logged"] is not None for c in checks.values())
    assert all(c["same"] for c in same["context"])  # same code, data, libraries and CPU
    again = MlflowClient().get_run(same["new_run_id"])
    assert again.data.tags[TAG] == original.run_id and again.info.status == "FINISHED"

    # The same config on other images: the data digest is named, and the exit code says so.
    other = tmp_path / "other"
    write_images(other / "train", {"cats": 24, "dogs": 24}, size=(60, 60), seed=1)
    write_images(other / "validation", {"cats": 20, "dogs": 20}, size=(60, 60), seed=2)
    changed, code = _reproduce(uri, original.run_id, capsys, f"data.dir={other}")
    assert code == 1 and not changed["reproduced"]
    assert {c["name"] for c in changed["context"] if not c["same"]} == {"data digest"}
    assert not {c["name"]: c for c in changed["checks"]}["validation loss"]["same"]


def test_reproduce_refuses_what_it_cannot_train_again(tmp_path, capsys):
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    with pytest.raises(SystemExit) as exit_info:
        catdog_main(["--tracking-uri", uri, "reproduce", "0" * 32])
    assert exit_info.value.code == 2
    assert capsys.readouterr().err.strip().splitlines()[-1] == f"catdog: error: run {'0' * 32} not found in {uri}"
