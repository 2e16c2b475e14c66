"""Intensification over seeds (search.policy=intensify): its rules on scores given by hand,
Keras Tuner's own oracles driving it through their public API, the pick's expected score on
simulated searches, a short replay on the committed table of real fits, and real
intensifying searches on a small real subset read back from a real SQLite store."""

import importlib.util
import json
import sys

import keras_tuner as kt
import numpy as np
import pytest
from mlflow.tracking import MlflowClient

from catdog import PROJECT_ROOT
from catdog.cli import main as catdog_main
from catdog.tracking import record
from catdog.tuning import tune
from catdog.tuning.intensify import CHALLENGER, INCUMBENT, REJECTED, Intensifier
from catdog.tuning.oracle import SEED_INDEX, SETTING, BayesianOptimizationOracle, RandomSearchOracle
from catdog.tuning.shrinkage import shrunk
from helpers import store_overrides


def _run(policy: Intensifier, key: str, score: float) -> tuple[str, int]:
    step = policy.next()
    if step is None:
        step = (key, policy.add(key))
    policy.finished(*step, score)
    return step


@pytest.mark.unit
def test_the_incumbent_gains_seeds_and_a_challenger_is_rejected_as_soon_as_it_is_behind():
    policy = Intensifier(cap=3)
    assert _run(policy, "a", 0.96) == ("a", 0)  # the first setting is the incumbent
    assert _run(policy, "x", 0.98) == ("a", 1)  # a new round: the incumbent's second seed
    assert _run(policy, "b", 0.95) == ("b", 0)  # a challenger on the incumbent's first seed
    assert policy.settings["b"].status == REJECTED and policy.settings["b"].rejected_after == 1
    assert policy.settings["b"].rejected_by == pytest.approx(0.95 - 0.96)
    assert _run(policy, "x", 0.97) == ("a", 2)  # the next round: the incumbent's third seed
    # A challenger ahead on its first seed doubles to two, then to all three, and takes over.
    assert [_run(policy, "c", s) for s in (0.99, 0.98, 0.99)] == [("c", 0), ("c", 1), ("c", 2)]
    assert policy.incumbent == "c" and policy.settings["a"].status == REJECTED
    assert policy.settings["c"].status == INCUMBENT and policy.pick().mean == pytest.approx(0.98666, abs=1e-4)
    # At the cap the incumbent gains nothing: the next fit is a new challenger's.
    assert policy.next() is None
    # A tie on every seed the incumbent has: the incumbent stays.
    [_run(policy, "d", s) for s in (0.99, 0.98, 0.99)]
    assert policy.incumbent == "c" and policy.settings["d"].status == REJECTED
    assert policy.fits() == 3 + 1 + 3 + 3


@pytest.mark.unit
def test_its_state_round_trips_and_a_failed_fit_rejects_a_challenger():
    policy = Intensifier(cap=3)
    _run(policy, "a", 0.9)
    _run(policy, "x", 0.92)
    key, seed = policy.next() or ("b", policy.add("b", {"dropout": 0.1}))
    again = Intensifier.from_state(policy.state())
    assert again.settings["b"].values == {"dropout": 0.1} and again.settings["b"].running == [seed]
    again.finished(key, seed, None)
    assert again.settings["b"].status == REJECTED and again.fits() == 3
    assert again.seed_variance() == pytest.approx(np.var([0.9, 0.92], ddof=1))
    assert Intensifier(3).seed_variance() is None


def _drive(oracle, score, fits: int) -> list[tuple[str, int]]:
    """FITS trials from ORACLE through Keras Tuner's own calls, each scored by
    SCORE(setting, seed), as a tuner would; returns the (setting, seed) of each."""
    seen = []
    for i in range(fits):
        trial = oracle.create_trial(f"tuner{i}")
        values = trial.hyperparameters.values
        key, seed = values[SETTING], values[SEED_INDEX]
        oracle.update_trial(trial.trial_id, {"val_accuracy": score(key, seed)})
        trial.status = "COMPLETED"
        oracle.end_trial(trial)
        seen.append((key, seed))
    return seen


def _space() -> kt.HyperParameters:
    hp = kt.HyperParameters()
    hp.Float("dropout", 0.0, 0.5)
    return hp


@pytest.mark.unit
def test_keras_tuners_oracle_reissues_settings_and_resumes_with_the_same_incumbent(tmp_path):
    def oracle():
        o = RandomSearchOracle(objective="val_accuracy", max_trials=9, seed=3, hyperparameters=_space(),
                               intensify_cap=2)  # fmt: skip
        o._set_project_dir(str(tmp_path), "p")  # what a Tuner does with its oracle
        return o

    first = oracle()
    seen = _drive(first, lambda key, seed: {"0": 0.96}.get(key, 0.9), 4)
    assert seen == [("0", 0), ("0", 1), ("2", 0), ("3", 0)]  # challengers on the incumbent's first seed
    assert first.trials["0"].hyperparameters.values["dropout"] == first.trials["1"].hyperparameters.values["dropout"]
    resumed = oracle()
    resumed.reload()
    assert resumed.intensifier.incumbent == "0" and resumed.intensifier.fits() == 4
    assert resumed.intensifier.settings["2"].status == REJECTED


@pytest.mark.unit
def test_the_bayesian_oracle_learns_each_settings_mean_with_the_seed_variance_as_its_noise(tmp_path):
    oracle = BayesianOptimizationOracle(objective="val_accuracy", max_trials=30, seed=1, hyperparameters=_space(),
                                        num_initial_points=3, intensify_cap=3)  # fmt: skip
    oracle._set_project_dir(str(tmp_path), "p")
    scores = lambda key, seed: 0.95 + 0.01 * np.random.default_rng([int(key), seed]).standard_normal()
    _drive(oracle, scores, 8)
    seen = []
    fit = oracle.gpr.fit

    def spy(x, y):
        seen.append((len(x), oracle.gpr.alpha))
        return fit(x, y)

    oracle.gpr.fit = spy
    _drive(oracle, scores, 4)
    n, alpha = seen[-1]
    assert n < len(oracle.trials)  # one observation per setting, not per fit
    assert isinstance(alpha, np.ndarray) and len(alpha) == n  # each mean's own noise
    assert (alpha > 1e-4).all()  # not Keras Tuner's 1e-4
    assert oracle.gpr.alpha == oracle.alpha  # put back after each fit


@pytest.mark.unit
def test_the_expected_score_removes_the_winners_curse_on_simulated_searches():
    """Searches of 20 settings, one seed each, whose settings truly differ by a spread of
    0.2 points (a few far worse, as real landscapes have) and whose seeds scatter by 0.4:
    the best raw score overstates its truth by about two thirds of a point; Tweedie's
    correction, with a kernel density as wide as the noise, takes about half of that away
    here (on the real table of fits, bench/replay.py, nearly all of it), and its interval
    covers the truth most of the time."""
    rng = np.random.default_rng(7)
    raw, bias, covered = [], [], []
    for _ in range(2000):
        truth = 0.97 + 0.002 * rng.standard_normal(20) - 0.02 * (rng.random(20) < 0.1)
        scores = truth + 0.004 * rng.standard_normal(20)
        best = int(np.argmax(scores))
        est = shrunk(scores[[best] + [i for i in range(20) if i != best]], 0, 0.004**2)
        raw.append(scores[best] - truth[best])
        bias.append(est.mean - truth[best])
        covered.append(est.interval.low <= truth[best] <= est.interval.high)
    assert np.mean(raw) > 0.004
    assert 0 < np.mean(bias) < 0.6 * np.mean(raw)
    assert np.mean(covered) > 0.85


def _replay():
    spec = importlib.util.spec_from_file_location("replay", PROJECT_ROOT / "bench" / "replay.py")
    module = sys.modules["replay"] = importlib.util.module_from_spec(spec)  # its dataclasses look themselves up
    spec.loader.exec_module(module)
    return module


@pytest.mark.unit
def test_a_short_replay_of_the_committed_table_resolves_the_winners_curse():
    replay = _replay()
    table = replay.Table.load(str(PROJECT_ROOT / "bench" / "fits.npz"))
    assert table.correct.shape[0] >= 40 and table.correct.shape[1] >= 8 and table.correct.shape[2] == 800
    results = replay.replay_all(table, 150, [12])[12]
    plain, intensify = results["plain"][:, 0], results["intensify (cap 5)"][:, 0]
    low = replay.mean_ci(plain)[1]
    assert low > 0.003  # plain search's pick overstates its truth
    assert intensify.mean() < 0.6 * plain.mean()
    assert abs(replay.mean_ci(results["plain"][:, 2])[0]) < abs(plain.mean()) / 3  # the expected score's bias


def _intensify_cfg(make_cfg, root, *extra):
    return make_cfg("transfer", store_overrides(root), "search.policy=intensify", "search.retrain_seeds=0", *extra,
                    config="tune")  # fmt: skip


def test_an_intensifying_search_runs_seeds_under_settings_and_picks_its_incumbent(make_cfg, tmp_path, capsys):
    result = tune(_intensify_cfg(make_cfg, tmp_path, "tuner.max_trials=6", "search.max_seeds=2"))
    client = MlflowClient()
    parent = client.get_run(result.parent_run_id)
    assert parent.data.tags["policy"] == "intensify" and result.fits == 6
    settings = record.children(result.parent_run_id, record.TRIAL)
    seeds_by_index, statuses = {}, {}
    for setting in settings:
        seeds = record.children(setting.info.run_id, record.SEED)
        statuses[setting.data.tags["trial_id"]] = setting.data.tags["intensify_status"]
        assert int(setting.data.tags["intensify_seeds"]) == len(seeds) >= 1
        scores = record.validation_correct(seeds)
        assert setting.data.metrics["score"] == pytest.approx(np.mean([v.mean() for v in scores.values()]))
        for seed in seeds:
            seeds_by_index.setdefault(seed.data.tags["seed_index"], set()).add(seed.data.tags["seed"])
    # Common random numbers: every setting's k-th seed is the same seed.
    assert all(len(values) == 1 for values in seeds_by_index.values())
    assert list(statuses.values()).count(INCUMBENT) == 1
    assert set(statuses.values()) <= {INCUMBENT, CHALLENGER, REJECTED}
    assert statuses[result.pick.key] == INCUMBENT == statuses[parent.data.tags["best.trial"]]
    assert parent.data.tags["best.seeds"] == str(result.pick.seeds) == "2"
    # Its seed variance is measured, so its expected score is given, and no higher than its score.
    assert parent.data.metrics["seed_variance"] >= 0 and result.pick.seed_variance.source == "this search"
    expected = result.pick.expected
    assert expected.interval.low <= expected.mean <= expected.interval.high
    assert parent.data.metrics["expected_val_accuracy"] == pytest.approx(expected.mean)

    # Extended, it resumes with the same incumbent and settings; a plain search of the same
    # variant and data borrows the seed variance it measured.
    extended = tune(_intensify_cfg(make_cfg, tmp_path, "tuner.max_trials=8", "search.max_seeds=2"))
    assert extended.parent_run_id == result.parent_run_id and extended.fits == 8
    plain = tune(make_cfg("transfer", store_overrides(tmp_path), "search.retrain_seeds=0", config="tune"))
    assert plain.pick.seed_variance.source == f"search run {result.parent_run_id}"

    # `catdog plan` answers from the searches' own fits: this store has no training run.
    experiment = client.get_experiment(parent.info.experiment_id).name
    capsys.readouterr()  # the searches' progress lines
    catdog_main(["--tracking-uri", f"sqlite:///{tmp_path}/mlflow.db", "plan", "--experiment", experiment,
                 "--budget-minutes", "10", "--json"])  # fmt: skip
    plans = {p["policy"]: p for p in json.loads(capsys.readouterr().out)}
    assert set(plans) == {"intensify", "plain"} and plans["intensify"]["fits"] == 8
    assert plans["intensify"]["seed_var"] == pytest.approx(parent.data.metrics["seed_variance"])
    fits = plans["intensify"]["buys"]["fits"]
    assert fits == int(10 // plans["intensify"]["minutes_per_fit"]) > 0
    rows = {r["policy"]: r for r in plans["intensify"]["policies"]}
    # The pick's seeds under racing and intensify: this search's own cap (search.max_seeds=2).
    assert rows["plain"]["settings"] == [fits, fits] and rows["intensify"]["pick_seeds"] == 2
    assert all(need["seeds"] is None or need["seeds"] >= 2 for need in rows["intensify"]["needs"])


@pytest.mark.unit
@pytest.mark.parametrize(
    "override, message",
    [
        ("search.policy=intensify tuner=hyperband", "use tuner=random or tuner=bayesian"),
        ("search.policy=intensify tuner._target_=keras_tuner.GridSearch", "tuner=bayesian, not a grid"),
        ("search.policy=intensify tuner.objective=val_loss", "ranks settings by validation accuracy"),
        ("search.policy=nope", "search.policy must be one of plain, racing, intensify"),
        ("search.policy=intensify search.racing=true", "cannot go with search.policy=intensify"),
    ],
)
def test_a_policy_that_cannot_work_is_refused_before_anything_runs(make_cfg, tmp_path, override, message):
    from catdog import CatdogError, schema

    with pytest.raises(CatdogError, match=message):
        cfg = make_cfg("transfer", store_overrides(tmp_path), *override.split(), config="tune")
        schema.validate(cfg)
        schema.check_search(cfg)
