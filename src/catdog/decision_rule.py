"""The rule a review page decides by, and its versions. Every run records the version in
force when it started (the tag `decision_rule`), so a page can say whether its rule was
declared before the runs it judges or changed after they were seen."""

from __future__ import annotations

TAG = "decision_rule"
VERSION = "3"
TEXT = (
    "Highest mean validation accuracy. A variant whose validation difference to the leader has a 95% "
    "interval that includes 0 is tied with it. Among tied variants the lowest mean validation loss wins "
    "only where the 95% interval of its paired loss difference to each other tied variant excludes 0. "
    "Those it cannot be told apart from on loss go to the cheapest (mean wall time per run); a variant "
    "whose wall-time difference to the cheapest has a 95% interval that includes 0 is as cheap, and among "
    "equally cheap variants the incumbent (today's experiment=best) stays if it is one, else the lowest "
    "mean validation loss wins. The test split is never used to choose."
)
# version: (date it took effect, what it said)
HISTORY = {
    "1": (
        "2026-12-01",
        "highest mean validation accuracy; ties inside the validation interval broken by the lower mean "
        "validation loss as a bare point estimate, then the cheaper run",
    ),
    "2": (
        "2026-12-06",
        "the loss tie-break needs an interval that excludes 0, else the cheaper run by bare mean wall time",
    ),
    VERSION: ("2026-12-06", "cost needs an interval too; among equally cheap variants the incumbent stays"),
}
