"""`catdog report` on a real store: two variants x two seeds and a two-trial search."""

import base64
import io
import re
import shutil
from html.parser import HTMLParser
from pathlib import Path

import matplotlib.image
import mlflow
import numpy as np
import pytest
from mlflow.tracking import MlflowClient

from catdog import CatdogError, tracking, training
from catdog.cli import main as catdog_main
from catdog.report.build import build_report
from catdog.tuning import tune
from helpers import store_overrides

EXPERIMENT = "review"


class Tables(HTMLParser):
    """Cell texts of every <table id=...> in a page."""

    def __init__(self):
        super().__init__()
        self.tables, self._current, self._cell = {}, None, None

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "table":
            self._current = self.tables.setdefault(attrs.get("id") or attrs.get("class"), [])
        elif tag == "tr" and self._current is not None:
            self._current.append([])
        elif tag in ("td", "th") and self._current is not None:
            self._cell = ""

    def handle_endtag(self, tag):
        if tag in ("td", "th") and self._cell is not None:
            self._current[-1].append(self._cell.strip())
            self._cell = None
        elif tag == "table":
            self._current = None

    def handle_data(self, data):
        if self._cell is not None:
            self._cell += data


@pytest.fixture(scope="module")
def study(make_cfg, tmp_path_factory):
    root = tmp_path_factory.mktemp("review")
    store = [*store_overrides(root), f"tracking.experiment={EXPERIMENT}"]
    runs = [
        training.train(make_cfg(v, store, f"seed={s}", "train.log_model=false", "train.epochs=2"))
        for v in ("cnn", "transfer")
        for s in (0, 1)
    ]
    search = tune(make_cfg("transfer", store, "search.retrain_seeds=0", "tuner.max_trials=4", config="tune"))
    out = root / "report"
    content = build_report(EXPERIMENT, out)
    return {
        "root": root,
        "store": store,
        "runs": runs,
        "search": search,
        "out": out,
        "content": content,
        "html": (out / "report.html").read_text(),
        "md": (out / "report.md").read_text(),
    }


def test_every_section_is_present(study):
    html, md = study["html"], study["md"]
    search = f"{study['search'].search_id}-{study['search'].parent_run_id[:8]}"
    anchors = ["decision", "pairs", "variants", "hyperparameters", "classes", "cost", "curves", "confusion", "gallery"]
    for anchor in [*anchors, f"search-{search}", "setup"]:
        assert f'id="{anchor}"' in html, anchor
    assert html.index('id="decision"') < html.index('id="pairs"') < html.index('id="variants"')  # decision first
    for heading in (
        "## Decision",
        "## Comparisons on the test images",
        "## Variants",
        "## What sets each variant apart",
        "## Per class and calibration (test)",
        "## Cost",
        "## Training curves",
        "## Confusion matrix of",
        f"## Search {study['search'].search_id}",
        "## Provenance",
    ):
        assert heading in md, heading
    assert "rough estimate" in html and "rough estimate" in md  # the importance warning with few trials
    assert "plain policy; the pick, " in md and "over 1 seed" in md  # no seed variance measured: no expected score
    assert "http" not in re.sub(r'data:image/[a-z]+;base64,[^"]+', "", html).replace("http://www.w3.org", "")


def test_the_page_names_no_local_path_and_stays_small(study):
    for text in (study["html"], study["md"]):
        assert str(study["root"]) not in text and str(Path.home()) + "/" not in text
    assert "`sqlite:///.../" in study["md"] or "`sqlite:///" in study["md"]
    assert len(study["html"].encode()) < 500_000  # self-contained, thumbnails as JPEG


def test_embedded_images_decode(study):
    uris = re.findall(r'src="data:image/(png|jpeg);base64,([^"]+)"', study["html"])
    assert len(uris) >= 8  # accuracy, reliability, cost, curves, confusion, thumbnails, search figures
    assert {kind for kind, _ in uris} == {"png", "jpeg"}
    for kind, data in uris:
        image = matplotlib.image.imread(io.BytesIO(base64.b64decode(data)), format=kind)
        assert image.ndim == 3 and min(image.shape[:2]) >= 16
    for name in ("accuracy.png", "curves.png", "confusion.png", "gallery.png", "cost.png", "reliability.png"):
        assert (study["out"] / name).stat().st_size > 1000 and f"]({name})" in study["md"]


def test_numbers_in_the_page_are_the_stores(study):
    client = MlflowClient()
    tables = Tables()
    tables.feed(study["html"])
    header, *rows = tables.tables["variant-table"]
    cells = {row[0]: dict(zip(header, row)) for row in rows}
    assert {"cnn", "transfer"} <= set(cells)
    means = {}
    for variant in ("cnn", "transfer"):
        runs = [client.get_run(r.run_id) for r in study["runs"]]
        runs = [r for r in runs if r.data.tags["variant"] == variant]
        tests = [r.data.metrics["test_accuracy"] for r in runs]
        vals = [r.data.metrics["model_val_accuracy"] for r in runs]
        means[variant] = np.mean(tests)
        row = cells[variant]
        assert row["runs"] == "2"
        assert row["test accuracy"] == f"{100 * np.mean(tests):.1f}%"
        assert row["test right per seed"] == f"{round(8 * tests[0])}, {round(8 * tests[1])} of 8"
        assert row["val right per seed"] == f"{round(32 * vals[0])}, {round(32 * vals[1])} of 32"
        assert row["val loss"] == f"{np.mean([r.data.metrics['model_val_loss'] for r in runs]):.4g}"
        best = max(runs, key=lambda r: r.data.metrics["model_val_accuracy"])
        assert row["best run (by val)"] == best.info.run_id[:8]
    pair = next(r for r in tables.tables["pair-table"][1:] if set(r[0].split(" vs ")) == {"cnn", "transfer"})
    first, second = pair[0].split(" vs ")
    assert pair[1] == f"{100 * (means[first] - means[second]):+.1f} pts"
    # Interval and p-value from one statistic: the interval leaves out 0 exactly when p < 0.05.
    low, high = (float(v) for v in pair[2].strip("[]").split(","))
    assert (low > 0 or high < 0) == (pair[3] != "-" and float(pair[3].replace("< ", "")) < 0.05)
    leaderboard = next(t for k, t in tables.tables.items() if k.startswith("leaderboard"))
    assert len(leaderboard) == 1 + 4 and leaderboard[0][:3] == ["trial", "status", "score"]


def test_the_decision_is_on_top_in_the_terminal_and_on_the_report_run(study, capsys):
    verdict = study["content"]["decision"]
    chosen = verdict.recommended.variant
    assert f"Recommended: {chosen}" in study["html"] and f"**Recommended: {chosen}.**" in study["md"]
    assert study["content"]["ledger"]["runs"] == 4 and study["content"]["ledger"]["chosen_on_test"] is False
    run = MlflowClient().get_run(study["content"]["report_run_id"])
    assert run.data.tags["recommended_variant"] == chosen
    assert run.data.tags["recommended_run"] == verdict.recommended.best_run_id
    out = study["root"] / "cli-report"
    catdog_main(
        [
            "--tracking-uri",
            mlflow.get_tracking_uri(),
            "report",
            "--experiment",
            EXPERIMENT,
            "--out",
            str(out),
            "--all-pairs",
        ]
    )
    printed = capsys.readouterr().out.strip().splitlines()
    assert printed[-1].startswith(f"Decision for {EXPERIMENT}: recommend {chosen} (")
    assert printed[-1] == run.data.tags["decision"]
    assert f"Report: {out / 'report.html'}" in printed[-2]
    assert 'id="all-pairs"' in (out / "report.html").read_text()


def test_the_page_is_a_function_of_the_store_not_of_todays_presets(study, tmp_path, monkeypatch):
    """The incumbent is what experiment=best trained when the runs were made (a tag on each
    run): a page rebuilt after the preset changed decides as before."""
    from catdog import config, decision_rule

    runs = [MlflowClient().get_run(r.run_id) for r in study["runs"]]
    assert {r.data.tags[decision_rule.INCUMBENT_TAG] for r in runs} == {config.preset_variant("best")}
    conf = tmp_path / "conf"
    shutil.copytree(config.CONFIG_DIR, conf)
    best = conf / "experiment" / "best.yaml"
    best.write_text(best.read_text().replace("name: frozen-224-linear", "name: transfer"))  # a variant of this study
    monkeypatch.setattr(config, "CONFIG_DIR", conf)
    config.preset_variant.cache_clear()
    try:
        assert config.preset_variant("best") == "transfer"
        again = build_report(EXPERIMENT, tmp_path / "again", log_run=False)
    finally:
        config.preset_variant.cache_clear()
    before, after = study["content"]["decision"], again["decision"]
    assert after.recommended.variant == before.recommended.variant and after.reason == before.reason
    assert (after.control and after.control.variant) == (before.control and before.control.variant)
    assert after.control_note == before.control_note and "incumbent" not in after.control_note


def test_the_page_names_outcomes_known_before_its_rule_was_declared(study, make_cfg, tmp_path):
    """A run of one of the study's variants and seeds, on its data, made under an older rule
    in another experiment: the page says its outcome was known before the rule."""
    from catdog import decision_rule

    store = [*study["store"][:-1], "tracking.experiment=earlier", "train.log_model=false", "train.epochs=2"]
    earlier = training.train(make_cfg("cnn", store, "seed=0"))
    MlflowClient().set_tag(earlier.run_id, decision_rule.TAG, "3")
    content = build_report(EXPERIMENT, tmp_path / "out", log_run=False)
    [known] = content["rule"]["known_before"]
    assert known == {"experiment": "earlier", "variant": "cnn", "seeds": ["0"], "versions": ["3"], "runs": 1}
    assert "its outcomes were known before the rule was declared" not in content["prose"]["rule"]
    assert (
        "(earlier: cnn seed 0 (rule 3)): their outcomes were known before the rule was declared"
        in (content["prose"]["rule"])
    )


def test_the_report_is_logged_as_a_run(study):
    run = MlflowClient().get_run(study["content"]["report_run_id"])
    assert run.data.tags[tracking.KIND_TAG] == "report" and run.info.status == "FINISHED"
    assert {a.path for a in MlflowClient().list_artifacts(run.info.run_id)} >= {"report.html", "report.md"}
    html = mlflow.artifacts.load_text(f"runs:/{run.info.run_id}/report.html")
    assert html == study["html"]


def test_runs_on_different_data_are_not_compared(make_cfg, tmp_path, capsys):
    store = [*store_overrides(tmp_path), "tracking.experiment=mixed", "train.log_model=false"]
    training.train(make_cfg("cnn", store))
    training.train(make_cfg("cnn", store, "data.split_seed=1"))
    with pytest.raises(CatdogError, match="different data"):
        build_report("mixed", tmp_path / "out")
    with pytest.raises(SystemExit):
        catdog_main(
            [
                "--tracking-uri",
                f"sqlite:///{tmp_path}/mlflow.db",
                "report",
                "--experiment",
                "mixed",
                "--out",
                str(tmp_path / "out"),
            ]
        )
    last = capsys.readouterr().err.strip().splitlines()[-1]
    assert last.startswith("catdog: error: experiment 'mixed' mixes runs on different data (data_id ")


def test_runs_at_two_image_sizes_of_the_same_images_are_compared(make_cfg, tmp_path):
    store = [*store_overrides(tmp_path), "tracking.experiment=sizes", "train.log_model=false", "train.epochs=1"]
    small = training.train(make_cfg("cnn", store, "data.image_size=[64,64]"))
    large = training.train(make_cfg("cnn", store, "model.name=cnn-96", "data.image_size=[96,96]"))
    params = [mlflow.get_run(r.run_id).data.params for r in (small, large)]
    assert params[0]["data_hash"] != params[1]["data_hash"] and params[0]["data_id"] == params[1]["data_id"]
    build_report("sizes", tmp_path / "out")
    report = (tmp_path / "out" / "report.md").read_text()
    assert "cnn-96" in report and f"data id `{params[0]['data_id']}`" in report


def test_plan_prices_a_budget_and_plans_power_from_the_stores_runs(study, capsys):
    import json

    catdog_main(["--tracking-uri", f"sqlite:///{study['root']}/mlflow.db", "plan", "--experiment", EXPERIMENT,
                 "--budget-minutes", "10", "--difference", "2", "--difference", "5", "--json"])  # fmt: skip
    planned = {p["variant"]: p for p in json.loads(capsys.readouterr().out)}
    assert set(planned) == {"cnn", "transfer"}
    for p in planned.values():
        assert p["runs"] == 2 and p["buys"]["runs"] == int(10 // p["minutes_per_run"])
        assert p["buys"]["settings_by_seeds"]["2"] == p["buys"]["runs"] // 2
        assert p["seed_var"] is not None and [n["difference"] for n in p["needs"]] == [0.02, 0.05]
        for need in p["needs"]:  # each is the fewest that detects the difference, or beyond the data
            assert need["seeds"] is None or 2 <= need["seeds"] <= 50
            assert need["images"] is None or 1 <= need["images"] <= p["supply"] == 40


@pytest.mark.unit
def test_plan_says_a_single_runs_seed_variance_is_unknown():
    from catdog.report.plan import _one, lines
    from helpers import variant_row as row

    planned = _one(row("transfer", [770], 0.1), {}, 5.0, [0.01], supply=1000)
    assert planned["seed_var"] is None and planned["needs"][0]["note"].startswith("seed variance unknown")
    assert "seed variance unknown (one run)" in "\n".join(lines([planned]))


@pytest.mark.unit
def test_the_ledger_names_earlier_runs_of_the_experiment_that_the_store_does_not_hold(tmp_path):
    """A store reset does not make a study's outcomes look fresh: the page reads the ledger's
    earlier entries of the experiment's name from stores it cannot read."""
    from catdog.report import ledger, prose

    path = tmp_path / "ledger.json"
    counts = {"first": "2026-12-01", "last": "2026-12-01", "runs": 4, "variants": 4, "chosen_on_test": False}
    ledger.record(path, "study", counts)
    ledger.record(path, "other", counts)
    gone = path.read_text().replace('"current"', '"gone"')  # that store was lost
    path.write_text(gone)
    today = counts | {"first": "2026-12-07", "last": "2026-12-07", "runs": 12}
    book = ledger.summary(ledger.record(path, "study", today))
    [earlier] = ledger.before(book, "study", "2026-12-07")
    assert (earlier["first"], earlier["runs"], earlier["store"]) == ("2026-12-01", 4, "gone")
    assert ledger.before(book, "study", "2026-12-01") == [] and ledger.before(None, "study", "2026-12-07") == []
    rule = {"version": "4", "since": "2026-12-07", "declared_before": True, "known_before": []}
    rule["ledger_before"] = [earlier]
    assert "under this experiment's name in stores this page cannot read (2026-12-01, 4 runs)" in prose._rule(rule)
