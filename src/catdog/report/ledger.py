"""How often the test split has been looked at. The tracking store knows its own runs; the
project's ledger (a JSON file kept with the published pages, `paths.ledger`) knows every
experiment that scored the split since the project began, whatever store it was in, so a
store reset does not make the test split look fresh."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

from catdog.report.runs import TEST_USED_TAG, Study, _group
from catdog.tracking.record import TEST_ACCURACY, find


def in_store(study: Study) -> dict:
    """The runs that logged a test score in this experiment (any status) and in the whole
    store (any experiment, same data), and whether a choice here used test."""
    here = find([study.experiment.experiment_id], scored=TEST_ACCURACY)
    data_id = study.param("data_id")
    store = find(everywhere=True, params={"data_id": data_id}, scored=TEST_ACCURACY) if data_id else []
    objectives = {s.data.params.get("tuner.objective", "val_accuracy") for s in study.searches}
    dates = sorted(_day(r.info.start_time) for r in here)
    return {
        "runs": len(here),
        "variants": len({_group(r) for r in here}),
        "first": dates[0] if dates else None,
        "last": dates[-1] if dates else None,
        "store_runs": len(store),
        "store_experiments": len({r.info.experiment_id for r in store}),
        "chosen_on_test": any("test" in o for o in objectives)
        or study.experiment.tags.get(TEST_USED_TAG, "").lower() == "true",
    }


def _day(millis: int) -> str:
    return datetime.fromtimestamp(millis / 1000, UTC).strftime("%Y-%m-%d")


def record(path, experiment: str, counts: dict, by: str = "catdog report") -> list[dict]:
    """Add EXPERIMENT's entry to the ledger at PATH, or update the one this store made (the
    same name and first day); BY: the command or script that scored the split and records
    it. Each entry says whether a choice used test. Returns every entry."""
    path = Path(path)
    book = json.loads(path.read_text()) if path.is_file() else {"about": __doc__.split("\n\n")[0], "entries": []}
    entry = {k: counts[k] for k in ("first", "last", "runs", "variants")} | {
        "store": "current",
        "by": by,
        "choice_used_test": counts["chosen_on_test"],
    }
    entries = book["entries"]
    same = [e for e in entries if e["experiment"] == experiment and e["first"] == counts["first"]]
    if same:
        same[0].update(entry)
    else:
        entries.append({"experiment": experiment, **entry})
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(book, indent=2) + "\n")
    return entries


def summary(entries: list[dict]) -> dict:
    """The ledger in a sentence's numbers: experiments and runs, since when, and how many
    entries say a choice used test (or do not say)."""
    return {
        "experiments": len(entries),
        "runs": sum(e.get("runs") or 0 for e in entries),
        "since": min((e["first"] for e in entries if e.get("first")), default=None),
        "chose_on_test": sum(e.get("choice_used_test") is True for e in entries),
        "unrecorded_choice": sum(e.get("choice_used_test") is None for e in entries),
        "entries": entries,
    }


def before(book: dict | None, experiment: str, first: str | None) -> list[dict]:
    """The BOOK's entries (a `summary`) of EXPERIMENT's name from days before FIRST (this
    store's first test score of it) in stores this page cannot read: runs whose outcomes may
    have been seen before the rule in force was declared, which the store alone cannot show."""
    if book is None or first is None:
        return []
    entries = book["entries"]
    return [e for e in entries if e["experiment"] == experiment and e["last"] < first and e["store"] != "current"]
