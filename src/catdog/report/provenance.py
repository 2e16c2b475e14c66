"""What a page can say about where its runs came from: whether its decision rule was
declared before them (each run records the rule's version when it starts), and what they
ran on (each run's `env.*` tags)."""

from __future__ import annotations

from collections import Counter

import mlflow

from catdog import decision_rule
from catdog.report.runs import Study, _group
from catdog.tracking.record import FINISHED, KIND_TAG, RETRAIN, TRAIN, find

ENV_SHOWN = (
    "python",
    "tensorflow",
    "keras",
    "keras_tuner",
    "mlflow",
    "numpy",
    "cpu",
    "isa",
    "cores",
    "threads",
    "onednn",
)


def rule(study: Study) -> dict:
    """The rule in force, since when, and how many of the study's runs started under it."""
    versions = Counter(r.rule for r in study.records)
    under = versions.get(decision_rule.VERSION, 0)
    return {
        "version": decision_rule.VERSION,
        "since": decision_rule.HISTORY[decision_rule.VERSION][0],
        "text": decision_rule.TEXT,
        "runs": len(study.records),
        "under": under,
        "declared_before": under == len(study.records),
        "earlier": {v or "none recorded": n for v, n in versions.items() if v != decision_rule.VERSION},
        "history": decision_rule.HISTORY,
        "known_before": known_before(study),
    }


def known_before(study: Study) -> list[dict]:
    """Runs anywhere in the store of this study's variants, with its seeds, on its data,
    that started under an older rule: their outcomes were known before the rule in force
    was declared, so runs that repeat them add no evidence on accuracy. One entry per
    experiment and variant, with the seeds and rule versions."""
    data_id = study.param("data_id")
    if not data_id:
        return []
    wanted = {(r.group, r.seed) for r in study.records}
    own = {r.id for r in study.records}  # the study's own runs: `earlier` counts them
    runs = find(everywhere=True, params={"data_id": data_id})
    found: dict[tuple[str, str], dict] = {}
    names = {}
    for run in runs:
        tags = run.data.tags
        version = tags.get(decision_rule.TAG)
        older = version is None or (version.isdigit() and int(version) < int(decision_rule.VERSION))
        if tags.get(KIND_TAG) not in (TRAIN, RETRAIN) or not older:
            continue
        group = _group(run)
        if (group, tags.get("seed")) not in wanted or run.info.status != FINISHED or run.info.run_id in own:
            continue
        experiment = names.setdefault(run.info.experiment_id, mlflow.get_experiment(run.info.experiment_id).name)
        empty = {"experiment": experiment, "variant": group, "seeds": set(), "versions": set(), "runs": 0}
        entry = found.setdefault((experiment, group), empty)
        entry["seeds"].add(tags.get("seed"))
        entry["versions"].add(version or "none recorded")
        entry["runs"] += 1
    return [
        {**e, "seeds": sorted(e["seeds"], key=lambda x: (len(x), x)), "versions": sorted(e["versions"])}
        for e in found.values()
    ]


def environment(study: Study) -> dict[str, list[tuple[str, int]]]:
    """Each environment fact with its values across the runs and how many runs had each
    ("not recorded" for runs made before environments were logged)."""
    out = {}
    for key in ENV_SHOWN:
        values = Counter(r.env.get(key, "not recorded") for r in study.records)
        out[key] = sorted(values.items(), key=lambda kv: -kv[1])
    return out
