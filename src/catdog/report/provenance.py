"""What a page can say about where its runs came from: whether its decision rule was
declared before them (each run records the rule's version when it starts), and what they
ran on (each run's `env.*` tags)."""

from __future__ import annotations

from collections import Counter

from catdog import decision_rule
from catdog.report.runs import Study

ENV_SHOWN = ("python", "tensorflow", "keras", "keras_tuner", "mlflow", "numpy", "cpu", "isa", "cores", "threads")


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
    }


def environment(study: Study) -> dict[str, list[tuple[str, int]]]:
    """Each environment fact with its values across the runs and how many runs had each
    ("not recorded" for runs made before environments were logged)."""
    out = {}
    for key in ENV_SHOWN:
        values = Counter(r.env.get(key, "not recorded") for r in study.records)
        out[key] = sorted(values.items(), key=lambda kv: -kv[1])
    return out
